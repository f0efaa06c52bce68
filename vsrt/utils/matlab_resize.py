"""MATLAB-compatible bicubic ``imresize`` (the degradation behind "BIx4" datasets).

Same numbers as BasicSR's ``basicsr.utils.matlab_functions.imresize``: the
cubic kernel with a = -0.5, a kernel widened to ``4 / scale`` (and weights
multiplied by ``scale``) when downscaling with antialiasing, half-sample
symmetric borders, and separate passes over H then W in float32. The kernel
weights are computed with the same float32 torch operations as BasicSR so the
tap positions and weights agree bit for bit.

Differences from BasicSR:

* downscaling with ``antialiasing=False`` works for every size (BasicSR fails
  when an edge needs no mirror padding, e.g. 96 px at scale 1/4);
* the passes are vectorised (a gather and a weighted sum) instead of one
  matrix-vector product per output row; results agree to float32 rounding.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (support [-2, 2])."""
    absx = torch.abs(x)
    absx2 = absx**2
    absx3 = absx**3
    inner = (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1).type_as(absx)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2)).type_as(absx)
    return inner + outer


def _mirror(index: torch.Tensor, length: int) -> torch.Tensor:
    """Map 0-based indices outside ``[0, length)`` back inside by half-sample symmetry."""
    period = 2 * length
    index = torch.remainder(index, period)
    return torch.where(index >= length, period - 1 - index, index)


def resize_weights(in_length: int, out_length: int, scale: float,
                   antialiasing: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolation taps of a 1-D MATLAB bicubic resize.

    Returns:
        ``(weights, indices)``, both ``(out_length, taps)``: output pixel ``k`` is
        ``sum_j weights[k, j] * input[indices[k, j]]``; ``indices`` are 0-based
        and already mirrored into ``[0, in_length)``.
    """
    kernel_width = 4.0
    widen = scale < 1 and antialiasing
    if widen:
        kernel_width = kernel_width / scale  # interpolate and low-pass in one kernel

    # Output pixel k (1-based) sits at input coordinate u[k]; pixel centres map to centres.
    out_positions = torch.linspace(1, out_length, out_length)
    centres = out_positions / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(centres - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2  # one spare tap on each side, trimmed below
    indices = left.view(out_length, 1) + torch.linspace(0, taps - 1, taps).view(1, taps)
    distance = centres.view(out_length, 1) - indices  # (out_length, taps)
    weights = scale * _cubic(distance * scale) if widen else _cubic(distance)
    weights = weights / torch.sum(weights, 1).view(out_length, 1)

    # The spare first and last columns are zero in exact arithmetic. BasicSR keeps the middle
    # taps - 2 columns when column 0 holds any zero (always, in practice), otherwise the first
    # taps - 2 columns when the last one does; reproduced as is for identical taps.
    if bool((weights[:, 0] == 0).any()):
        keep = slice(1, taps - 1)
    elif bool((weights[:, -1] == 0).any()):
        keep = slice(0, taps - 2)
    else:
        keep = slice(0, taps)
    indices, weights = indices[:, keep], weights[:, keep]
    # indices are 1-based input pixels (MATLAB convention)
    return weights.contiguous(), _mirror(indices.long() - 1, in_length)


def _resize_axis(img: torch.Tensor, axis: int, weights: torch.Tensor,
                 indices: torch.Tensor) -> torch.Tensor:
    """Resize ``img`` ``(c, h, w)`` along ``axis`` (1 = H, 2 = W)."""
    out_length, taps = indices.shape
    gathered = img.index_select(axis, indices.reshape(-1))
    if axis == 1:  # (c, out*taps, w) -> (c, out, taps, w)
        gathered = gathered.view(img.shape[0], out_length, taps, img.shape[2])
        return (gathered * weights.view(1, out_length, taps, 1)).sum(dim=2)
    # (c, h, out*taps) -> (c, h, out, taps)
    gathered = gathered.view(img.shape[0], img.shape[1], out_length, taps)
    return (gathered * weights.view(1, 1, out_length, taps)).sum(dim=3)


@torch.no_grad()
def imresize(img: np.ndarray | torch.Tensor, scale: float,
             antialiasing: bool = True) -> np.ndarray | torch.Tensor:
    """Resize like MATLAB's ``imresize(img, scale, 'bicubic')``.

    Args:
        img: numpy ``(h, w, c)`` / ``(h, w)`` or torch ``(c, h, w)`` / ``(h, w)``.
            Any value range; uint8 is converted to float32 without scaling.
        scale: the same factor for height and width; the output size is
            ``ceil(size * scale)``.
        antialiasing: widen the kernel when downscaling (MATLAB's default).

    Returns:
        float32 in the input's library and layout, neither rounded nor clipped.
    """
    is_numpy = isinstance(img, np.ndarray)
    tensor = torch.from_numpy(np.ascontiguousarray(img)) if is_numpy else img
    is_2d = tensor.ndim == 2
    if is_2d:
        tensor = tensor.unsqueeze(-1 if is_numpy else 0)
    if is_numpy:
        tensor = tensor.permute(2, 0, 1)  # (h, w, c) -> (c, h, w)
    tensor = tensor.float()

    _, in_h, in_w = tensor.shape
    out_h, out_w = math.ceil(in_h * scale), math.ceil(in_w * scale)
    weights_h, indices_h = resize_weights(in_h, out_h, scale, antialiasing)
    weights_w, indices_w = resize_weights(in_w, out_w, scale, antialiasing)
    out = _resize_axis(tensor, 1, weights_h.to(tensor.device), indices_h.to(tensor.device))
    out = _resize_axis(out, 2, weights_w.to(tensor.device), indices_w.to(tensor.device))

    if is_2d:
        out = out.squeeze(0)
    if not is_numpy:
        return out
    out = out.cpu().numpy()
    return out if is_2d else np.ascontiguousarray(out.transpose(1, 2, 0))  # -> (h, w, c)
