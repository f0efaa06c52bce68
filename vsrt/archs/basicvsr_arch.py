"""BasicVSR: the framework's reference recurrent baseline.

Paper: "BasicVSR: The Search for Essential Components in Video Super-Resolution
and Beyond", Chan et al., CVPR 2021, arXiv:2012.02181. Official code: BasicSR
(XPixelGroup/BasicSR, ``basicsr/archs/basicvsr_arch.py``); state-dict keys are
identical, so BasicSR's released BasicVSR checkpoints load strictly.

Differences from BasicSR: ``spynet_path`` is not read in the constructor (call
:meth:`BasicVSR.load_spynet`; vsrt's model layer does it), and the network
rejects clips whose frames are too small for SpyNet's pyramid with a clear error.
Inference on two CPU threads runs the two SpyNet passes, then the two propagations (independent of
each other: the forward trunk reads the frame and its own warped feature, the backward features enter
only the fusion), side by side, one thread each, and then each thread fuses and upsamples half of the
frames (``vsrt.archs.layers.threads``; on the 2-core development VM 0.29 -> 0.16 s per 64x64 frame).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from vsrt.archs.flow.spynet import SpyNet, neighbour_flows
from vsrt.archs.flow.warp import flow_warp
from vsrt.archs.layers.conv import ConvResidualBlocks
from vsrt.archs.layers.nnpack_conv import Conv2d
from vsrt.archs.layers.threads import concurrency_pays, map_in_halves, run_concurrently
from vsrt.archs.layers.upsample import bilinear_x4, pixel_shuffle_x4
from vsrt.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class BasicVSR(nn.Module):
    """Bidirectional recurrent VSR network, x4.

    Args:
        num_feat: channels of the propagated features.
        num_block: residual blocks in each propagation trunk.
        spynet_path: SpyNet weights for :meth:`load_spynet` (not read here).
    """

    scale = 4
    tiny_config = {"num_feat": 8, "num_block": 1}  # used by the registry-wide tests
    compile_blocks: ClassVar[tuple[type[nn.Module], ...]] = (ConvResidualBlocks,)  # see vsrt.utils.compile

    def __init__(self, num_feat: int = 64, num_block: int = 15, spynet_path: str | None = None) -> None:
        super().__init__()
        self.num_feat = num_feat
        self.spynet_path = spynet_path
        self.spynet = SpyNet()
        self.backward_trunk = ConvResidualBlocks(num_feat + 3, num_feat, num_block)
        self.forward_trunk = ConvResidualBlocks(num_feat + 3, num_feat, num_block)
        self.fusion = nn.Conv2d(num_feat * 2, num_feat, 1, 1, 0, bias=True)
        # x4 head; the second stage has 64 channels whatever num_feat is (BasicSR layout)
        self.upconv1 = Conv2d(num_feat, num_feat * 4, 3, 1, 1, bias=True)
        self.upconv2 = Conv2d(num_feat, 64 * 4, 3, 1, 1, bias=True)
        self.conv_hr = Conv2d(64, 64, 3, 1, 1)
        self.conv_last = Conv2d(64, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def load_spynet(self, path: str | Path) -> None:
        self.spynet.load_pretrained(path)

    def upsample(self, feat: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        """``(n, num_feat, h, w)`` features + ``(n, 3, h, w)`` frame -> ``(n, 3, 4h, 4w)`` (contiguous)."""
        return pixel_shuffle_x4(feat, self.upconv1, self.upconv2, self.conv_hr, self.conv_last) + bilinear_x4(lq)

    def forward(self, lqs: torch.Tensor) -> torch.Tensor:
        """``(n, t, 3, h, w)`` -> ``(n, t, 3, 4h, 4w)``."""
        if lqs.dim() != 5 or lqs.shape[2] != 3:
            raise ValueError(f"BasicVSR expects (n, t, 3, h, w); got {tuple(lqs.shape)}")
        n, t, _, h, w = lqs.shape
        if t < 2:
            raise ValueError(f"BasicVSR needs at least 2 frames; got {t}")
        flows_backward, flows_forward = neighbour_flows(self.spynet, lqs)  # each (n, t-1, 2, h, w)
        if concurrency_pays(lqs):
            return self._forward_side_by_side(lqs, flows_backward, flows_forward)

        backward_feats = self._propagate(self.backward_trunk, lqs, flows_backward, backward=True)
        outputs = []
        feat = lqs.new_zeros(n, self.num_feat, h, w)
        for i in range(t):
            feat = self._step(self.forward_trunk, lqs[:, i], feat, flows_forward[:, i - 1] if i > 0 else None)
            outputs.append(self._head(backward_feats[i], feat, lqs[:, i]))
            backward_feats[i] = lqs.new_empty(0)  # no longer needed
        return torch.stack(outputs, dim=1)

    def _forward_side_by_side(self, lqs: torch.Tensor, flows_backward: torch.Tensor,
                              flows_forward: torch.Tensor) -> torch.Tensor:
        """The forward pass on two CPU threads (``vsrt.archs.layers.threads``): the backward and forward
        propagations are independent, so they run at once; then each thread fuses and upsamples half of
        the frames. Holds both branches' features until their frame's head (the other path streams the
        forward branch into the heads)."""
        backward_feats, forward_feats = run_concurrently(
            lqs, lambda: self._propagate(self.backward_trunk, lqs, flows_backward, backward=True),
            lambda: self._propagate(self.forward_trunk, lqs, flows_forward, backward=False))

        def head(i: int) -> torch.Tensor:
            output = self._head(backward_feats[i], forward_feats[i], lqs[:, i])
            backward_feats[i] = forward_feats[i] = lqs.new_empty(0)  # no longer needed
            return output

        return torch.stack(map_in_halves(lqs, head, range(lqs.shape[1])), dim=1)

    def _step(self, trunk: ConvResidualBlocks, lq: torch.Tensor, feat: torch.Tensor,
              flow: torch.Tensor | None) -> torch.Tensor:
        """One propagation step: the previous feature ``(n, C, h, w)`` warped by ``flow`` ``(n, 2, h, w)``
        (none at the first frame), joined to the frame ``(n, 3, h, w)``, through the trunk."""
        if flow is not None:
            feat = flow_warp(feat, flow.permute(0, 2, 3, 1))
        return trunk(torch.cat([lq, feat], dim=1))

    def _propagate(self, trunk: ConvResidualBlocks, lqs: torch.Tensor, flows: torch.Tensor,
                   backward: bool) -> list[torch.Tensor]:
        """Features ``(n, C, h, w)`` of every frame from one propagation direction (the backward one walks
        from the last frame to the first, warping with ``flows[:, i]``; the forward one with ``flows[:, i-1]``)."""
        n, t, _, h, w = lqs.shape
        feats: list[torch.Tensor] = [lqs.new_empty(0)] * t
        feat = lqs.new_zeros(n, self.num_feat, h, w)
        for step, i in enumerate(range(t - 1, -1, -1) if backward else range(t)):
            flow = None if step == 0 else flows[:, i] if backward else flows[:, i - 1]
            feat = self._step(trunk, lqs[:, i], feat, flow)
            feats[i] = feat
        return feats

    def _head(self, backward_feat: torch.Tensor, forward_feat: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        """Both directions' features of one frame, fused and upsampled: ``(n, 3, 4h, 4w)``."""
        return self.upsample(self.lrelu(self.fusion(torch.cat([backward_feat, forward_feat], dim=1))), lq)
