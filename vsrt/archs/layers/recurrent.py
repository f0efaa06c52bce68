"""Second-order recurrent propagation shared by PSRT-recurrent, MIA-VSR and IIA-VSR.

The three official networks share one skeleton (MIA-VSR was derived from PSRT):
``conv_first`` features, SpyNet flows between neighbouring LR frames, four
propagation branches ``backward_1, forward_1, backward_2, forward_2`` (each
consumes the previous branch's features), and the x4 head on the
``forward_2`` features plus a bilinear skip. A branch step sees the current
frame's feature and the outputs of the previous one and two steps, patch-warped
(:func:`vsrt.archs.flow.warp.patch_align_warp`) to the current frame; what it
does with them is the family's ``make_step``.

Differences from the official code (all numerically neutral):
* the mirror-extended input check is recomputed for every call (and skipped on the
  sync-free path, :mod:`vsrt.archs.layers.execution`, where both SpyNet passes run) (the official
  sets a flag on the module and never resets it, so one mirrored clip made every
  later clip skip its second SpyNet pass); it stays keyed on exact equality of
  the halves, which decides only whether ``flows_forward`` is derived from
  ``flows_backward`` (bitwise equal on mirrored input) instead of computed;
* ``cpu_cache_length``: for longer clips the per-frame features, flows and HR
  outputs are parked on the CPU (host) and moved to the input's device when used,
  without any ``.cuda()`` call, and the output is returned on the CPU (as the
  official); it also works for mirrored clips (the official crashes there);
* features of a branch are freed as soon as the next branch has consumed them;
* the official asserts LR frames of at least 64x64; vsrt's SpyNet handles
  smaller frames, so none is enforced (there is no official reference below 64);
* CPU float32 inference runs the head's ``upconv1`` and ``upconv2`` through Winograd's
  transform (:mod:`vsrt.archs.layers.nnpack_conv`; float32 rounding only), as the
  transformer steps do; ``conv_hr`` and ``conv_last``, which write the output, keep the
  direct convolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from vsrt.archs.flow.spynet import SpyNet, neighbour_flows
from vsrt.archs.flow.warp import flow_warp, patch_align_warp
from vsrt.archs.layers.execution import sync_free
from vsrt.archs.layers.nnpack_conv import Conv2d
from vsrt.archs.layers.threads import map_in_halves
from vsrt.archs.layers.upsample import bilinear_x4, pixel_shuffle_x4

BRANCH_NAMES = ("backward_1", "forward_1", "backward_2", "forward_2")

# step(current feature, aligned previous output or None, aligned output two steps back or None)
StepFn = Callable[[torch.Tensor, "torch.Tensor | None", "torch.Tensor | None"], torch.Tensor]


class BranchSchedule(NamedTuple):
    """Which input position each step reads, which flow it uses, and the output order."""

    visit: list[int]  # step s reads inputs[visit[s]]
    flow_index: list[int]  # step s >= 1 aligns with flows[:, flow_index[s]]
    reverse_output: bool  # outputs are stored in step order, then reversed if True


def standard_schedule(name: str, num_frames: int) -> BranchSchedule:
    """Backward branches visit t-1..0 with flows_backward[:, f]; forward 0..t-1 with flows_forward[:, f-1]."""
    if name.startswith("backward"):
        visit = list(range(num_frames - 1, -1, -1))
        return BranchSchedule(visit, visit, True)
    visit = list(range(num_frames))
    return BranchSchedule(visit, [f - 1 for f in visit], False)


class FeatureCache:
    """Keeps per-frame tensors on the host for long clips (``cpu_cache_length``)."""

    def __init__(self, enabled: bool, device: torch.device) -> None:
        self.enabled = enabled
        self.device = device

    def store(self, x: torch.Tensor) -> torch.Tensor:
        return x.cpu() if self.enabled else x

    def load(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device) if self.enabled else x


def second_order_propagate(inputs: Sequence[torch.Tensor], flows: torch.Tensor, schedule: BranchSchedule,
                           step: StepFn, cache: FeatureCache) -> list[torch.Tensor]:
    """Run one branch; returns its outputs in the order given by ``schedule``.

    Args:
        inputs: per-frame features ``(n, c, h, w)`` of the previous branch (maybe cached).
        flows: ``(n, t-1, 2, h, w)`` (maybe cached).
    At step ``s >= 1`` the previous output is patch-warped with
    ``flow_n1 = flows[:, flow_index[s]]``; at ``s >= 2`` the output two steps back is
    patch-warped with the composed flow ``flow_n1 + flow_warp(flows[:, flow_index[s-1]], flow_n1)``.
    """
    outputs: list[torch.Tensor] = []
    prev = prev_flow = None  # the previous output and flow, on the compute device
    for s, position in enumerate(schedule.visit):
        current = cache.load(inputs[position])
        if s == 0:
            out = step(current, None, None)
        else:
            flow_n1 = cache.load(flows[:, schedule.flow_index[s]])
            aligned_1 = patch_align_warp(prev, flow_n1)
            aligned_2 = None
            if s >= 2:
                flow_n2 = flow_n1 + flow_warp(prev_flow, flow_n1.permute(0, 2, 3, 1))
                aligned_2 = patch_align_warp(cache.load(outputs[-2]), flow_n2)
            out = step(current, aligned_1, aligned_2)
            prev_flow = flow_n1
        prev = out
        outputs.append(cache.store(out))
    if schedule.reverse_output:
        outputs.reverse()
    return outputs


def is_mirror_extended(lqs: torch.Tensor) -> bool:
    """True when frame i equals frame t-1-i exactly (t even), e.g. Vimeo ``flip_sequence``."""
    t = lqs.shape[1]
    if t % 2:
        return False
    return torch.equal(lqs[:, : t // 2], lqs[:, t // 2:].flip(1))


class RecurrentPatchAlignNet(nn.Module):
    """Skeleton with the official top-level keys of PSRT-recurrent / MIA-VSR / IIA-VSR.

    Keys: ``conv_before_upsample``, ``spynet.*``, ``conv_first``,
    ``patch_align.{backward_1,...}.*`` (built by ``make_aligner``), ``upconv1``,
    ``upconv2``, ``conv_hr``, ``conv_last``. Subclasses implement ``make_step``.
    """

    branch_names = BRANCH_NAMES

    def __init__(self, in_channels: int, mid_channels: int, embed_dim: int, cpu_cache_length: int,
                 is_low_res_input: bool, spynet_path: str | None,
                 make_aligner: Callable[[], nn.Module]) -> None:
        super().__init__()
        if not is_low_res_input:
            # the official code then lacks conv_first and crashes in forward
            raise ValueError("is_low_res_input=False is not supported (the official networks need LR input)")
        self.in_channels = in_channels
        self.mid_channels = mid_channels
        self.embed_dim = embed_dim
        self.cpu_cache_length = cpu_cache_length
        self.is_low_res_input = is_low_res_input
        self.spynet_path = spynet_path  # read only by load_spynet()
        self.conv_before_upsample = nn.Conv2d(embed_dim, mid_channels, 3, 1, 1)
        self.spynet = SpyNet()
        self.conv_first = nn.Conv2d(in_channels, embed_dim, 3, 1, 1)
        # built on every device (the official builds these only when CUDA is available)
        self.patch_align = nn.ModuleDict({name: make_aligner() for name in self.branch_names})
        # Winograd (vsrt.archs.layers.nnpack_conv) in the upsampling convs; conv_hr and conv_last keep the direct
        # convolution: Winograd there moves the output by up to 1e-5, the parity tolerance (docs/performance.md)
        self.upconv1 = Conv2d(mid_channels, mid_channels * 4, 3, 1, 1)
        self.upconv2 = Conv2d(mid_channels, 64 * 4, 3, 1, 1)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)

    def load_spynet(self, path: str | Path | None = None) -> None:
        """Load BasicSR's SpyNet weights (``spynet_path`` unless ``path`` is given)."""
        path = path if path is not None else self.spynet_path
        if path is None:
            raise ValueError("load_spynet: no path given and spynet_path is None")
        self.spynet.load_pretrained(path)

    def schedule(self, name: str, num_frames: int) -> BranchSchedule:
        return standard_schedule(name, num_frames)

    def make_step(self, name: str, attn_mask: torch.Tensor, records: list) -> StepFn:
        raise NotImplementedError

    def shift_mask(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """Shifted-window attention mask for LR frames of h x w (computed once per forward)."""
        raise NotImplementedError

    def compute_flows(self, lqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(flows_backward, flows_forward)``, each ``(n, t-1, 2, h, w)``.

        ``flows_backward[:, i]`` warps frame i+1 onto frame i, ``flows_forward[:, i]``
        warps frame i onto frame i+1.
        """
        # the mirror check is decided per call (the official flag was sticky); it reads the
        # data, so the sync-free path (GPU) skips it and runs both SpyNet passes (same flows)
        mirrored = not sync_free(lqs) and is_mirror_extended(lqs)
        return neighbour_flows(self.spynet, lqs, mirrored=mirrored)

    def propagate_all(self, lqs: torch.Tensor, cache: FeatureCache, records: dict) -> list[torch.Tensor]:
        """Features of the last branch, one ``(n, embed_dim, h, w)`` per frame (maybe cached)."""
        n, t, c, h, w = lqs.shape
        if cache.enabled:
            feats = [cache.store(self.conv_first(lqs[:, i])) for i in range(t)]
        else:
            feats = list(self.conv_first(lqs.reshape(-1, c, h, w)).view(n, t, -1, h, w).unbind(1))
        if t > 1:
            flows_backward, flows_forward = (cache.store(f) for f in self.compute_flows(lqs))
        else:  # a single frame: only the first step of every branch runs
            flows_backward = flows_forward = lqs.new_zeros(n, 0, 2, h, w)
        attn_mask = self.shift_mask(h, w, lqs.device)
        for name in self.branch_names:
            flows = flows_backward if name.startswith("backward") else flows_forward
            records[name] = []
            step = self.make_step(name, attn_mask, records[name])
            feats = second_order_propagate(feats, flows, self.schedule(name, t), step, cache)
        return feats

    def reconstruct(self, lqs: torch.Tensor, feats: list[torch.Tensor], cache: FeatureCache) -> torch.Tensor:
        """x4 head on every frame's features + bilinear skip -> ``(n, t, 3, 4h, 4w)``."""
        def head(i: int) -> torch.Tensor:
            feat, feats[i] = cache.load(feats[i]), None  # free as we go
            hr = pixel_shuffle_x4(self.conv_before_upsample(feat), self.upconv1, self.upconv2,
                                  self.conv_hr, self.conv_last)
            return cache.store(hr + bilinear_x4(lqs[:, i]))

        # frames are independent: on two CPU threads each takes half of them (vsrt.archs.layers.threads)
        return torch.stack(map_in_halves(lqs, head, range(lqs.shape[1])), dim=1)

    def run(self, lqs: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Whole network; returns the HR clip and the per-branch step records."""
        if lqs.dim() != 5:
            raise ValueError(f"expected lqs of shape (n, t, c, h, w); got {tuple(lqs.shape)}")
        cache = FeatureCache(lqs.shape[1] > self.cpu_cache_length, lqs.device)
        records: dict = {}
        feats = self.propagate_all(lqs, cache, records)
        return self.reconstruct(lqs, feats, cache), records
