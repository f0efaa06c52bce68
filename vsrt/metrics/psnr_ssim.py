"""PSNR and SSIM with BasicSR's numerics (the numbers every VSR paper reports).

Two families, as in BasicSR:

* ``calculate_psnr`` / ``calculate_ssim`` take numpy images in [0, 255]
  (uint8 or float, BGR when ``test_y_channel``), ``(h, w, c)`` or ``(c, h, w)``
  (``input_order``) or ``(h, w)``, and return a python / numpy float. Nothing is
  rounded or clipped inside.
* ``calculate_psnr_pt`` / ``calculate_ssim_pt`` take **RGB** tensors
  ``(n, c, h, w)`` in [0, 1] and return a float64 tensor ``(n,)``.

``crop_border`` pixels are removed from every side before anything else.
SSIM is the Gaussian-window (11x11, sigma 1.5) SSIM of Wang et al. 2004 over
the valid region, averaged over channels, which matches the authors' MATLAB
code. Every function accepts and ignores extra keywords (``better: higher``
in a YAML metric block is passed through by :func:`vsrt.metrics.calculate_metric`).

Differences from BasicSR: a shape mismatch raises ``ValueError`` instead of
``AssertionError``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vsrt.metrics.metric_util import INPUT_ORDERS, reorder_image, to_y_channel
from vsrt.registry import METRIC_REGISTRY
from vsrt.utils.color import rgb2ycbcr_pt

_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2


def _check_same_shape(img: Any, img2: Any) -> None:
    if tuple(img.shape) != tuple(img2.shape):
        raise ValueError(f"images to compare have different shapes: {tuple(img.shape)} "
                         f"and {tuple(img2.shape)}")


def _prepare(img: np.ndarray, crop_border: int, input_order: str,
             test_y_channel: bool) -> np.ndarray:
    """Reorder to HWC, crop, optionally take Y; returns float64 ``(h, w, c)``."""
    img = reorder_image(img, input_order)
    if crop_border != 0:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
    if test_y_channel:
        img = to_y_channel(img)
    return img.astype(np.float64)


def _check_input_order(input_order: str) -> None:
    if input_order not in INPUT_ORDERS:
        raise ValueError(f"input_order must be one of {INPUT_ORDERS}, got '{input_order}'")


def _prepare_pair(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str,
                  test_y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes and order, then crop, optionally take Y, and cast both images to float64."""
    _check_same_shape(img, img2)
    _check_input_order(input_order)
    return (_prepare(img, crop_border, input_order, test_y_channel),
            _prepare(img2, crop_border, input_order, test_y_channel))


@METRIC_REGISTRY.register()
def calculate_psnr(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str = "HWC",
                   test_y_channel: bool = False, **_ignored: Any) -> float:
    """PSNR in dB of two images in [0, 255]; ``inf`` when they are identical."""
    img, img2 = _prepare_pair(img, img2, crop_border, input_order, test_y_channel)
    mse = np.mean((img - img2) ** 2)
    if mse == 0:
        return float("inf")
    return 10.0 * np.log10(255.0 * 255.0 / mse)


def _gaussian_window() -> np.ndarray:
    """The 11x11 SSIM window (sigma 1.5), float64, sums to 1."""
    kernel = cv2.getGaussianKernel(11, 1.5)
    return np.outer(kernel, kernel.transpose())


def _ssim_single_channel(img: np.ndarray, img2: np.ndarray) -> float:
    """Mean SSIM of two float64 ``(h, w)`` images in [0, 255] over the valid region."""
    window = _gaussian_window()

    def local_mean(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, window)[5:-5, 5:-5]  # keep the 'valid' part (window 11)

    mu1, mu2 = local_mean(img), local_mean(img2)
    mu1_sq, mu2_sq, mu1_mu2 = mu1**2, mu2**2, mu1 * mu2
    sigma1_sq = local_mean(img**2) - mu1_sq
    sigma2_sq = local_mean(img2**2) - mu2_sq
    sigma12 = local_mean(img * img2) - mu1_mu2
    ssim_map = (((2 * mu1_mu2 + _SSIM_C1) * (2 * sigma12 + _SSIM_C2))
                / ((mu1_sq + mu2_sq + _SSIM_C1) * (sigma1_sq + sigma2_sq + _SSIM_C2)))
    return ssim_map.mean()


@METRIC_REGISTRY.register()
def calculate_ssim(img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str = "HWC",
                   test_y_channel: bool = False, **_ignored: Any) -> float:
    """SSIM of two images in [0, 255], the mean over channels; 1.0 when identical."""
    img, img2 = _prepare_pair(img, img2, crop_border, input_order, test_y_channel)
    per_channel = [_ssim_single_channel(img[..., c], img2[..., c]) for c in range(img.shape[2])]
    return np.array(per_channel).mean()


def _prepare_pt(img: torch.Tensor, crop_border: int, test_y_channel: bool) -> torch.Tensor:
    """Crop, optionally take Y; returns float64 ``(n, c, h, w)`` in [0, 1]."""
    if crop_border != 0:
        img = img[:, :, crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel:
        img = rgb2ycbcr_pt(img, y_only=True)
    return img.to(torch.float64)


@METRIC_REGISTRY.register()
def calculate_psnr_pt(img: torch.Tensor, img2: torch.Tensor, crop_border: int,
                      test_y_channel: bool = False, **_ignored: Any) -> torch.Tensor:
    """PSNR in dB per image of RGB ``(n, c, h, w)`` tensors in [0, 1] -> float64 ``(n,)``.

    ``1e-8`` is added to the MSE, so identical images give 80 dB, not ``inf``.
    """
    _check_same_shape(img, img2)
    img = _prepare_pt(img, crop_border, test_y_channel)
    img2 = _prepare_pt(img2, crop_border, test_y_channel)
    mse = torch.mean((img - img2) ** 2, dim=[1, 2, 3])
    return 10.0 * torch.log10(1.0 / (mse + 1e-8))


@METRIC_REGISTRY.register()
def calculate_ssim_pt(img: torch.Tensor, img2: torch.Tensor, crop_border: int,
                      test_y_channel: bool = False, **_ignored: Any) -> torch.Tensor:
    """SSIM per image of RGB ``(n, c, h, w)`` tensors in [0, 1] -> float64 ``(n,)``.

    Computed on the 0..255 scale with the same window as :func:`calculate_ssim`.
    """
    _check_same_shape(img, img2)
    img = _prepare_pt(img, crop_border, test_y_channel) * 255.0
    img2 = _prepare_pt(img2, crop_border, test_y_channel) * 255.0
    channels = img.shape[1]
    window = torch.from_numpy(_gaussian_window()).to(img)
    window = window.view(1, 1, 11, 11).expand(channels, 1, 11, 11)  # one filter per channel

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, stride=1, padding=0, groups=channels)  # 'valid' region

    mu1, mu2 = local_mean(img), local_mean(img2)
    mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    sigma1_sq = local_mean(img * img) - mu1_sq
    sigma2_sq = local_mean(img2 * img2) - mu2_sq
    sigma12 = local_mean(img * img2) - mu1_mu2
    contrast_structure = (2 * sigma12 + _SSIM_C2) / (sigma1_sq + sigma2_sq + _SSIM_C2)
    ssim_map = ((2 * mu1_mu2 + _SSIM_C1) / (mu1_sq + mu2_sq + _SSIM_C1)) * contrast_structure
    return ssim_map.mean([1, 2, 3])
