"""Preprocessing shared by the numpy metrics (layout and Y channel)."""

from __future__ import annotations

import numpy as np

from vsrt.utils.color import bgr2ycbcr

INPUT_ORDERS = ("HWC", "CHW")


def reorder_image(img: np.ndarray, input_order: str = "HWC") -> np.ndarray:
    """Return ``img`` as ``(h, w, c)``.

    ``(h, w)`` becomes ``(h, w, 1)`` whatever ``input_order`` says; a 3-D
    array is transposed from ``(c, h, w)`` when ``input_order == 'CHW'``.
    """
    if input_order not in INPUT_ORDERS:
        raise ValueError(f"input_order must be one of {INPUT_ORDERS}, got '{input_order}'")
    if img.ndim == 2:
        return img[..., None]
    if input_order == "CHW":
        return img.transpose(1, 2, 0)
    return img


def to_y_channel(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of a BGR image in [0, 255], as float32 ``(h, w, 1)`` in [16, 235].

    The value is **not** rounded (rounding shifts PSNR-Y by up to 0.04 dB).
    Computed as BasicSR does: ``img / 255`` in float32, luma in float64,
    stored as float32 on [0, 1], times 255. Arrays that are not 3-channel
    ``(h, w, 3)`` are only converted to float32 (``/ 255 * 255``).
    """
    unit = img.astype(np.float32) / np.float32(255.0)
    if unit.ndim == 3 and unit.shape[2] == 3:
        unit = bgr2ycbcr(unit, y_only=True)[..., None]
    return unit * np.float32(255.0)
