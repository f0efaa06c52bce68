"""SpyNet optical flow (Ranjan & Black, CVPR 2017) in BasicSR's state-dict layout.

``basic_module.{level}.basic_module.{0,2,4,6,8}.{weight,bias}`` plus the
``mean``/``std`` buffers, so BasicSR's ``spynet_sintel_final-3d2a1287.pth``
(and every BasicVSR/PSRT/MIA-VSR checkpoint that embeds it) loads strictly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vsrt.archs.flow.warp import flow_warp
from vsrt.archs.layers.execution import autocast_off
from vsrt.archs.layers.nnpack_conv import Conv2d
from vsrt.archs.layers.threads import run_concurrently

NUM_LEVELS = 6
SIZE_MULTIPLE = 2 ** (NUM_LEVELS - 1)  # 32: the coarsest level is h/32 x w/32


class SpyNetLevel(nn.Module):
    """One pyramid level: predicts a flow residual from (ref, warped supp, flow)."""

    def __init__(self) -> None:
        super().__init__()
        channels = (8, 32, 64, 32, 16, 2)
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            layers.append(Conv2d(c_in, c_out, kernel_size=7, stride=1, padding=3))
            if i < len(channels) - 2:
                layers.append(nn.ReLU(inplace=False))
        self.basic_module = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basic_module(x)


def _full_precision(method: Callable) -> Callable:
    """Run a SpyNet entry point in float32 even under autocast (bf16/fp16 inputs are upcast).

    Flows are pixel offsets that warping turns into sampling positions: bf16 keeps 8 significant
    bits, so a 20-pixel flow would be off by up to 0.06 px, and the pyramid adds such errors over
    its levels. SpyNet is a small part of every network's work.
    """

    @functools.wraps(method)
    def wrapper(self: nn.Module, ref: torch.Tensor, supp: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        def upcast(x: torch.Tensor) -> torch.Tensor:
            return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x

        with autocast_off(ref.device.type):
            return method(self, upcast(ref), upcast(supp), *args, **kwargs)

    return wrapper


class SpyNet(nn.Module):
    """Coarse-to-fine flow estimator.

    ``forward(ref, supp)`` takes two ``(n, 3, h, w)`` RGB frames in [0, 1] and
    returns the flow ``(n, 2, h, w)`` that warps ``supp`` onto ``ref``
    (use it as ``flow_warp(supp, flow.permute(0, 2, 3, 1))``).

    Unlike BasicSR, the constructor never reads a file: call
    :meth:`load_pretrained` explicitly.
    """

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = nn.ModuleList([SpyNetLevel() for _ in range(NUM_LEVELS)])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def load_pretrained(self, path: str | Path) -> None:
        """Load BasicSR's SpyNet file (a dict with 'params') strictly."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("params", state)
        self.load_state_dict(state, strict=True)

    def _pyramid(self, img: torch.Tensor) -> list[torch.Tensor]:
        """Normalised image pyramid, coarsest level first."""
        levels = [(img - self.mean) / self.std]
        for _ in range(NUM_LEVELS - 1):
            levels.append(F.avg_pool2d(levels[-1], kernel_size=2, stride=2, count_include_pad=False))
        return levels[::-1]

    def _level_flows(self, ref: torch.Tensor, supp: torch.Tensor) -> Iterator[torch.Tensor]:
        """Yield the flow after every pyramid level, coarsest first (sides multiples of 32)."""
        ref_levels, supp_levels = self._pyramid(ref), self._pyramid(supp)
        flow = None
        for level, (ref_l, supp_l) in enumerate(zip(ref_levels, supp_levels)):
            if flow is None:
                # BasicSR doubles a zero flow of half the coarsest size, which is zero at
                # the coarsest size; starting there also works for 32-pixel inputs,
                # where BasicSR's half-size flow would be empty.
                up = ref_l.new_zeros(ref_l.shape[0], 2, *ref_l.shape[2:])
            else:
                up = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
                # odd coarse sizes: the doubled flow is one row/column short
                pad_w = ref_l.shape[3] - up.shape[3]
                pad_h = ref_l.shape[2] - up.shape[2]
                if pad_w or pad_h:
                    up = F.pad(up, [0, pad_w, 0, pad_h], mode="replicate")
            warped = flow_warp(supp_l, up.permute(0, 2, 3, 1), interp_mode="bilinear",
                               padding_mode="border")
            flow = self.basic_module[level](torch.cat([ref_l, warped, up], dim=1)) + up
            yield flow

    def _estimate(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        """Flow for inputs whose sides are multiples of 32."""
        *_, flow = self._level_flows(ref, supp)
        return flow

    @_full_precision
    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        if ref.shape != supp.shape:
            raise ValueError(f"SpyNet: ref {tuple(ref.shape)} and supp {tuple(supp.shape)} differ")
        h, w = ref.shape[2:]
        h32 = math.ceil(h / SIZE_MULTIPLE) * SIZE_MULTIPLE
        w32 = math.ceil(w / SIZE_MULTIPLE) * SIZE_MULTIPLE
        ref = F.interpolate(ref, size=(h32, w32), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h32, w32), mode="bilinear", align_corners=False)
        flow = F.interpolate(self._estimate(ref, supp), size=(h, w), mode="bilinear",
                             align_corners=False)
        # flow is in pixels of the resized frames: rescale each axis
        scale = torch.tensor([w / w32, h / h32], dtype=flow.dtype, device=flow.device)
        return flow * scale.view(1, 2, 1, 1)

    @_full_precision
    def forward_pyramid(self, ref: torch.Tensor, supp: torch.Tensor,
                        scales: Sequence[int] = (1, 2, 4, 8)) -> list[torch.Tensor]:
        """Flows at several resolutions from one pass (VRT's ``return_levels``).

        For every ``s`` in ``scales`` (powers of two up to 32) this returns the flow
        of the pyramid level at 1/s resolution, resized to ``(h // s, w // s)`` and
        rescaled to pixels of that size: ``(n, 2, h // s, w // s)``, in the order of
        ``scales``. ``scales=(1,)`` gives the values of :meth:`forward`.
        """
        if ref.shape != supp.shape:
            raise ValueError(f"SpyNet: ref {tuple(ref.shape)} and supp {tuple(supp.shape)} differ")
        levels = []
        for s in scales:
            level = NUM_LEVELS - 1 - round(math.log2(s)) if s >= 1 else -1
            if level < 0 or 2 ** (NUM_LEVELS - 1 - level) != s:
                raise ValueError(f"SpyNet.forward_pyramid: scale {s} is not a power of two <= 32")
            levels.append(level)
        h, w = ref.shape[2:]
        h32 = math.ceil(h / SIZE_MULTIPLE) * SIZE_MULTIPLE
        w32 = math.ceil(w / SIZE_MULTIPLE) * SIZE_MULTIPLE
        ref = F.interpolate(ref, size=(h32, w32), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h32, w32), mode="bilinear", align_corners=False)
        level_flows = list(self._level_flows(ref, supp))  # coarsest (1/32) first
        flows = []
        for s, level in zip(scales, levels):
            flow = F.interpolate(level_flows[level], size=(h // s, w // s), mode="bilinear",
                                 align_corners=False)
            scale = torch.tensor([(w // s) / (w32 // s), (h // s) / (h32 // s)],
                                 dtype=flow.dtype, device=flow.device)
            flows.append(flow * scale.view(1, 2, 1, 1))
        return flows


def neighbour_flows(spynet: SpyNet, lqs: torch.Tensor,
                    mirrored: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows between neighbouring frames of ``lqs`` ``(n, t, c, h, w)``.

    Returns ``(flows_backward, flows_forward)``, each ``(n, t-1, 2, h, w)``:
    ``flows_backward[:, i]`` warps frame ``i+1`` onto frame ``i`` and
    ``flows_forward[:, i]`` warps frame ``i`` onto frame ``i+1``. For a
    mirror-extended clip (``mirrored``: frame i equals frame t-1-i) the forward
    flows are the reversed backward ones, which saves half of the SpyNet calls.
    """
    n, t, c, h, w = lqs.shape
    earlier = lqs[:, :-1].reshape(-1, c, h, w)  # (n*(t-1), c, h, w)
    later = lqs[:, 1:].reshape(-1, c, h, w)
    if mirrored:
        flows_backward = spynet(earlier, later).view(n, t - 1, 2, h, w)
        return flows_backward, flows_backward.flip(1)
    # two independent SpyNet passes: side by side on two CPU threads (vsrt.archs.layers.threads)
    flows_backward, flows_forward = run_concurrently(lqs, lambda: spynet(earlier, later),
                                                     lambda: spynet(later, earlier))
    return flows_backward.view(n, t - 1, 2, h, w), flows_forward.view(n, t - 1, 2, h, w)
