"""Scale arguments and the SR output size of SAVSR."""

from __future__ import annotations

import numbers

import torch

Scale = float | tuple[float, float]
"""An upscaling factor: one number for both axes, or ``(s_h, s_w)``."""


def as_scale_pair(scale: Scale) -> tuple[float, float]:
    """``scale`` as ``(s_h, s_w)`` floats; a single number means a symmetric scale.

    The official model only accepts an indexable pair (a bare float raises a TypeError there).
    """
    if isinstance(scale, numbers.Real):
        pair = (scale, scale)
    elif isinstance(scale, (tuple, list)) and len(scale) == 2:
        pair = tuple(scale)
    else:
        raise TypeError(f"scale must be a number or a pair (s_h, s_w), got {scale!r}")
    if not all(isinstance(s, numbers.Real) and s > 0 for s in pair):
        raise ValueError(f"scale factors must be positive numbers, got {scale!r}")
    return float(pair[0]), float(pair[1])


def sr_size(height: int, width: int, scale: Scale) -> tuple[int, int]:
    """HR size ``(round(h * s_h), round(w * s_w))``.

    Python's ``round`` rounds halves to even (11 * 1.5 = 16.5 -> 16, 13 * 3.5 = 45.5 -> 46), as the
    official code does; ``floor(x + 0.5)`` or ``int(x)`` would change the output shape.
    """
    scale_h, scale_w = as_scale_pair(scale)
    return round(height * scale_h), round(width * scale_w)


def inverse_scale(scale: tuple[float, float], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1/s_h, 1/s_w)`` as ``(1, 1)`` tensors with the dtype and device of ``like``."""
    one = torch.ones(1, 1, dtype=like.dtype, device=like.device)
    return one / scale[0], one / scale[1]
