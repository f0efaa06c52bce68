"""ITU-R BT.601 colour conversions with BasicSR's numerics.

These follow MATLAB's ``rgb2ycbcr``/``ycbcr2rgb`` (studio range: Y in [16, 235],
Cb/Cr in [16, 240]), which is what every super-resolution paper reports PSNR-Y
on. This is *not* OpenCV's ``COLOR_BGR2YCrCb`` (the full-range JPEG variant).

Accepted inputs for the numpy functions, like BasicSR:

* ``uint8`` in [0, 255]  -> ``uint8`` output (rounded half to even);
* ``float32`` in [0, 1]  -> ``float32`` output in [0, 1] (no rounding).

Anything else (``float64`` included) raises ``TypeError``: the range of a
float64 image is ambiguous. The maths runs on float32 [0, 1] inputs with
float64 coefficients exactly as in BasicSR, so uint8 results round the same
way bit for bit.

Differences from BasicSR: the uint8 output of :func:`ycbcr2rgb` /
:func:`ycbcr2bgr` is clipped to [0, 255] before the cast (BasicSR casts
out-of-range values, which wrap around); results inside the range are
identical.
"""

from __future__ import annotations

import numpy as np
import torch

# Rows: input R, G, B; columns: output Y, Cb, Cr (values for [0, 1] input, 0..255 output).
_RGB_TO_YCBCR = np.array([[65.481, -37.797, 112.0],
                          [128.553, -74.203, -93.786],
                          [24.966, 112.0, -18.214]])
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])
_BGR_TO_YCBCR = np.ascontiguousarray(_RGB_TO_YCBCR[::-1])  # input rows B, G, R
_RGB_TO_Y = np.ascontiguousarray(_RGB_TO_YCBCR[:, 0])
_BGR_TO_Y = np.ascontiguousarray(_BGR_TO_YCBCR[:, 0])

# Rows: input Y, Cb, Cr (0..255); columns: output R, G, B (0..1 before the * 255).
_YCBCR_TO_RGB = np.array([[0.00456621, 0.00456621, 0.00456621],
                          [0.0, -0.00153632, 0.00791071],
                          [0.00625893, -0.00318811, 0.0]])
_YCBCR_TO_RGB_OFFSET = np.array([-222.921, 135.576, -276.836])
_YCBCR_TO_BGR = np.ascontiguousarray(_YCBCR_TO_RGB[:, ::-1])  # output columns B, G, R
_YCBCR_TO_BGR_OFFSET = np.ascontiguousarray(_YCBCR_TO_RGB_OFFSET[::-1])


def _to_unit_float32(img: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] or float32 [0, 1] -> float32 [0, 1]."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / np.float32(255.0)
    if img.dtype == np.float32:
        return img.astype(np.float32)  # a copy, never a view of the caller's array
    raise TypeError(f"colour conversion accepts uint8 [0, 255] or float32 [0, 1] images, "
                    f"got {img.dtype}")


def _from_255_scale(img: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 on the 0..255 scale -> ``dtype`` (uint8 rounded, float32 divided by 255)."""
    if dtype == np.uint8:
        return np.clip(img.round(), 0, 255).astype(np.uint8)
    return (img / 255.0).astype(np.float32)


def _to_ycbcr(img: np.ndarray, y_only: bool, to_y: np.ndarray, to_ycbcr: np.ndarray) -> np.ndarray:
    """YCbCr (or Y) of ``img`` with the given channel-order matrices, in ``img``'s range and dtype."""
    unit = _to_unit_float32(img)
    if y_only:
        out = np.dot(unit, to_y) + _YCBCR_OFFSET[0]
    else:
        out = np.matmul(unit, to_ycbcr) + _YCBCR_OFFSET
    return _from_255_scale(out, img.dtype)


def rgb2ycbcr(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """RGB ``(..., 3)`` -> YCbCr ``(..., 3)``, or Y ``(...)`` when ``y_only``."""
    return _to_ycbcr(img, y_only, _RGB_TO_Y, _RGB_TO_YCBCR)


def bgr2ycbcr(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """BGR ``(..., 3)`` (OpenCV order) -> YCbCr ``(..., 3)``, or Y ``(...)`` when ``y_only``."""
    return _to_ycbcr(img, y_only, _BGR_TO_Y, _BGR_TO_YCBCR)


def ycbcr2rgb(img: np.ndarray) -> np.ndarray:
    """YCbCr ``(..., 3)`` -> RGB ``(..., 3)``; the inverse of :func:`rgb2ycbcr`."""
    scaled = _to_unit_float32(img) * np.float32(255.0)
    out = np.matmul(scaled, _YCBCR_TO_RGB) * 255.0 + _YCBCR_TO_RGB_OFFSET
    return _from_255_scale(out, img.dtype)


def ycbcr2bgr(img: np.ndarray) -> np.ndarray:
    """YCbCr ``(..., 3)`` -> BGR ``(..., 3)``; the inverse of :func:`bgr2ycbcr`."""
    scaled = _to_unit_float32(img) * np.float32(255.0)
    out = np.matmul(scaled, _YCBCR_TO_BGR) * 255.0 + _YCBCR_TO_BGR_OFFSET
    return _from_255_scale(out, img.dtype)


def rgb2ycbcr_pt(img: torch.Tensor, y_only: bool = False) -> torch.Tensor:
    """RGB ``(n, 3, h, w)`` in [0, 1] -> YCbCr ``(n, 3, h, w)`` or Y ``(n, 1, h, w)`` in [0, 1].

    Keeps the dtype and device of ``img``. The coefficients are rounded to
    float32 first even for float64 input, as in BasicSR.
    """
    columns = 1 if y_only else 3
    coefficients = torch.tensor(_RGB_TO_YCBCR[:, :columns], dtype=torch.float32).to(img)  # (3, 1|3)
    offset = torch.tensor(_YCBCR_OFFSET[:columns], dtype=torch.float32).to(img)
    channels_last = img.permute(0, 2, 3, 1)  # (n, 3, h, w) -> (n, h, w, 3)
    out = torch.matmul(channels_last, coefficients).permute(0, 3, 1, 2)  # -> (n, 3|1, h, w)
    return (out + offset.view(1, -1, 1, 1)) / 255.0
