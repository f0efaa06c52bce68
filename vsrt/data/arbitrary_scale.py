"""Arbitrary-scale LR generation and GT cropping of SAVSR (pure functions).

Follows the official Weepingchestnut/SAVSR code: ``arbitrary_scale_downsample`` in
``lbasicsr/data/data_util.py``, ``as_mod_crop`` / ``cal_step`` in ``lbasicsr/data/transforms.py`` and
the MATLAB-style ``imresize`` of ``lbasicsr/data/core.py`` (the ``core`` mode).

Deliberate differences from the official code:

* ``mode='numpy'`` (named in a config comment, a silent no-op officially) and any unknown mode raise
  a ValueError; ``degradation='BD'`` raises too (use ``vsrt.data.data_util.duf_downsample``);
* ``core`` computes float64 inputs in float64 (officially everything was computed in float32);
  non-floating inputs are rejected;
* ``cal_step`` raises a ValueError for scales it cannot handle (officially an UnboundLocalError).
"""

from __future__ import annotations

import math
import numbers
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

Scale = float | tuple[float, float]
ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)

__all__ = ["arbitrary_scale_downsample", "as_mod_crop", "cal_step", "lr_size", "matlab_bicubic_resize"]


def _scale_pair(scale: Scale) -> tuple[float, float]:
    if isinstance(scale, numbers.Real):
        return scale, scale
    if isinstance(scale, (tuple, list)) and len(scale) == 2:
        return scale[0], scale[1]
    raise TypeError(f"scale must be a number or a pair (s_h, s_w), got {scale!r}")


def lr_size(height: int, width: int, scale: Scale) -> tuple[int, int]:
    """LR size ``(round(H / s_h), round(W / s_w))`` with Python's round (halves to even: 22.5 -> 22)."""
    scale_h, scale_w = _scale_pair(scale)
    return round(height / scale_h), round(width / scale_w)


def arbitrary_scale_downsample(x: torch.Tensor, scale: Scale, mode: str = "torch",
                               degradation: str = "BI") -> torch.Tensor:
    """Bicubic downsampling of ``(b, t, c, H, W)`` or ``(t, c, H, W)`` frames to :func:`lr_size`.

    * ``torch``: ``F.interpolate(mode='bicubic', align_corners=False, antialias=True)``, which is
      what the official ``torchvision.transforms.Resize(BICUBIC, antialias=True)`` does on float
      tensors. Not clamped: the result may leave [0, 1] slightly.
    * ``core``: MATLAB-style bicubic (:func:`matlab_bicubic_resize`).

    Nothing is cropped here; crop the GT first (:func:`as_mod_crop`) so that ``H / s_h`` is an integer.
    """
    if degradation != "BI":
        raise ValueError(f"degradation '{degradation}' is not supported here (only 'BI'); "
                         "for 'BD' use vsrt.data.data_util.duf_downsample")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got {x.dtype}")
    if x.dim() not in (4, 5):
        raise ValueError(f"expected (b, t, c, h, w) or (t, c, h, w) frames, got shape {tuple(x.shape)}")
    size = lr_size(x.shape[-2], x.shape[-1], scale)
    frames = x.reshape(-1, *x.shape[-3:])  # (b*t, c, H, W)
    if mode == "torch":
        out = F.interpolate(frames, size=size, mode="bicubic", align_corners=False, antialias=True)
    elif mode == "core":
        out = matlab_bicubic_resize(frames, size)
    else:
        raise ValueError(f"unknown downsampling mode '{mode}' (expected 'torch' or 'core')")
    return out.reshape(*x.shape[:-2], *size)


def _cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution kernel (MATLAB's bicubic uses a = -0.5)."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = ((a + 2) * ax3 - (a + 3) * ax2 + 1) * (ax <= 1).to(x.dtype)
    far = (a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a) * ((ax > 1) & (ax <= 2)).to(x.dtype)
    return near + far


def _symmetric_index(index: torch.Tensor, length: int) -> torch.Tensor:
    """MATLAB 'symmetric' border: the edge sample is repeated (``[a, b, c] -> b a | a b c | c b``)."""
    period = index.remainder(2 * length)
    return torch.where(period < length, period, 2 * length - 1 - period)


def _resize_axis(x: torch.Tensor, dim: int, out_len: int) -> torch.Tensor:
    """Resize ``x`` along ``dim`` to ``out_len`` with MATLAB's antialiased bicubic."""
    in_len = x.shape[dim]
    scale = out_len / in_len
    if scale == 1:
        return x
    # When downsampling the kernel is stretched by 1/scale (antialiasing); 2 margin taps as core.py.
    stretch = scale if scale < 1 else 1.0
    taps = math.ceil(4 / stretch) + 2
    pos = (torch.arange(out_len, dtype=x.dtype, device=x.device) + 0.5) / scale - 0.5  # source position
    first = pos.floor() - (taps // 2) + 1
    offsets = torch.arange(taps, dtype=x.dtype, device=x.device)
    weight = _cubic(((pos - first).unsqueeze(1) - offsets) * stretch)  # (out_len, taps)
    weight = weight / weight.sum(dim=1, keepdim=True)
    index = _symmetric_index(first.long().unsqueeze(1) + offsets.long(), in_len)  # (out_len, taps)

    x = x.movedim(dim, -1)  # (..., in_len)
    samples = x[..., index]  # (..., out_len, taps)
    return (samples * weight).sum(dim=-1).movedim(-1, dim)


def matlab_bicubic_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """MATLAB-compatible ``imresize(x, [h, w], 'bicubic')`` of ``(..., H, W)`` floats (SAVSR ``core``).

    Height first, then width. Per axis the factor is ``out / in`` from the integer sizes (not 1/s),
    output sample ``j`` sits at source position ``(j + 0.5) / factor - 0.5``, the a = -0.5 cubic is
    widened by ``1 / factor`` when downsampling, weights are normalised per output sample and the
    border is MATLAB-symmetric. float16/bfloat16 are computed in float32.

    Why not ``vsrt.utils.imresize`` (BasicSR's): the per-axis 1-D kernel is the same MATLAB bicubic,
    but BasicSR's takes one scale for both axes and picks the size as ``ceil(in * scale)``; here
    each axis has its own target size, so asymmetric and non-integer scales (and factors such as
    20/54, which are not 1/2.7) are reproduced exactly.
    """
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got {x.dtype}")
    dtype = x.dtype
    work = x if dtype in (torch.float32, torch.float64) else x.float()
    out = _resize_axis(_resize_axis(work, -2, size[0]), -1, size[1])
    return out.to(dtype)


def cal_step(scale: float) -> int:
    """Smallest step in (1, 2, 5, 10, 20, 50) for which ``scale * step`` is an integer (within 1e-3)."""
    for step in (1, 2, 5, 10, 20, 50):
        if abs(scale * step - round(scale * step)) < 0.001:
            return step
    raise ValueError(f"scale {scale} * step is not an integer for any step in (1, 2, 5, 10, 20, 50)")


def as_mod_crop(img: ArrayOrTensor, scale: Scale) -> ArrayOrTensor:
    """Top-left crop of an ``(H, W, ...)`` image so that ``H / s_h`` and ``W / s_w`` are integers.

    Per axis the kept length is ``round(floor(L / step / s) * step * s)`` with ``step = cal_step(s)``;
    then ``round(round(L' / s) * s) == L'``, so SR and GT shapes agree. Used for test-time GT.
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got {img.ndim} dims")
    scale_h, scale_w = _scale_pair(scale)
    step_h, step_w = cal_step(scale_h), cal_step(scale_w)
    h, w = img.shape[0], img.shape[1]
    h = round(math.floor(h / step_h / scale_h) * step_h * scale_h)
    w = round(math.floor(w / step_w / scale_w) * step_w * scale_w)
    return img[:h, :w].copy() if isinstance(img, np.ndarray) else img[:h, :w].clone()
