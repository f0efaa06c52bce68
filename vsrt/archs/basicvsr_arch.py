"""BasicVSR: the framework's reference recurrent baseline.

Paper: "BasicVSR: The Search for Essential Components in Video Super-Resolution
and Beyond", Chan et al., CVPR 2021, arXiv:2012.02181. Official code: BasicSR
(XPixelGroup/BasicSR, ``basicsr/archs/basicvsr_arch.py``); state-dict keys are
identical, so BasicSR's released BasicVSR checkpoints load strictly.

Differences from BasicSR: ``spynet_path`` is not read in the constructor (call
:meth:`BasicVSR.load_spynet`; vsrt's model layer does it), and the network
rejects clips whose frames are too small for SpyNet's pyramid with a clear error.
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
        flows_backward, flows_forward = neighbour_flows(self.spynet, lqs)

        backward_feats: list[torch.Tensor] = [lqs.new_empty(0)] * t
        feat = lqs.new_zeros(n, self.num_feat, h, w)
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                feat = flow_warp(feat, flows_backward[:, i].permute(0, 2, 3, 1))
            feat = self.backward_trunk(torch.cat([lqs[:, i], feat], dim=1))
            backward_feats[i] = feat

        outputs = []
        feat = lqs.new_zeros(n, self.num_feat, h, w)
        for i in range(t):
            if i > 0:
                feat = flow_warp(feat, flows_forward[:, i - 1].permute(0, 2, 3, 1))
            feat = self.forward_trunk(torch.cat([lqs[:, i], feat], dim=1))
            fused = self.lrelu(self.fusion(torch.cat([backward_feats[i], feat], dim=1)))
            backward_feats[i] = lqs.new_empty(0)  # no longer needed
            outputs.append(self.upsample(fused, lqs[:, i]))
        return torch.stack(outputs, dim=1)
