"""Compare an exported file with the eager network on clips it was not traced on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from vsrt.archs.layers.execution import force_sync_free
from vsrt.export.graph import ExportableNet, ExportInfo
from vsrt.export.runtime import run_all_outputs

KEPT_TOLERANCE = 1e-6  # kept fractions are means of 0/1 maps: equal decisions give equal values


def verification_clip(info: ExportInfo, height: int | None = None, width: int | None = None,
                      seed: int = 1) -> torch.Tensor:
    """``(1, T, C, H, W)`` in [0, 1]: a smooth random picture with a bright square moving 1 px a frame.

    Most of the picture is static, so MIA-VSR's masks skip tokens and the comparison covers both its
    kept and its skipped paths (pure noise changes every token).
    """
    _, t, c, h, w = info.input_shape(height, width)
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, c, max(h // 4, 1), max(w // 4, 1), generator=generator)
    frames = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).repeat(t, 1, 1, 1)
    side = max(min(h, w) // 4, 1)
    for i in range(t):
        top, left = (h // 4 + i) % max(h - side, 1), (w // 4 + i) % max(w - side, 1)
        frames[i, :, top:top + side, left:left + side] = 0.9
    return frames.unsqueeze(0).to(info.dtype)


class StandardOps(TorchDispatchMode):
    """Runs every op unchanged. While a dispatch mode is active the CPU-only fast paths (Winograd
    convolutions, oneDNN linear layers) take the standard ops, as they do when traced: the eager
    reference then computes what the graph holds, and float rounding alone cannot flip a MIA-VSR keep
    decision that sits on its threshold."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        return func(*args, **(kwargs or {}))


def verify(path: str | Path, wrapper: ExportableNet, info: ExportInfo) -> dict[str, Any]:
    """``max_abs_diff`` of the output (and ``kept_equal`` for MIA-VSR) on a fresh verification clip."""
    sizes = [info.size]
    result: dict[str, Any] = {"max_abs_diff": 0.0, "sizes": sizes}
    for height, width in sizes:
        clip = verification_clip(info, height, width)
        with force_sync_free(True), torch.no_grad(), StandardOps():
            eager = wrapper(clip)
        eager = list(eager) if isinstance(eager, tuple) else [eager]
        exported = run_all_outputs(path, clip)
        if eager[0].shape != exported[0].shape:
            raise ValueError(f"{path}: output shape {tuple(exported[0].shape)} at {height}x{width}, eager gives "
                             f"{tuple(eager[0].shape)}")
        diff = (exported[0] - eager[0].float()).abs().max().item()
        result["max_abs_diff"] = max(result["max_abs_diff"], diff)
        if len(eager) > 1:  # MIA-VSR's kept-token fractions
            kept_diff = (exported[1] - eager[1].float()).abs().max().item()
            result["kept_equal"] = result.get("kept_equal", True) and kept_diff <= KEPT_TOLERANCE
            result["kept_fraction"] = eager[1].float().mean().item()
    return result
