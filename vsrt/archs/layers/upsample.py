"""x4 reconstruction head of the BasicVSR family (two PixelShuffle(2) stages)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pixel_shuffle_x4(feat: torch.Tensor, upconv1: nn.Conv2d, upconv2: nn.Conv2d, conv_hr: nn.Conv2d,
                     conv_last: nn.Conv2d, negative_slope: float = 0.1) -> torch.Tensor:
    """``conv_last(lrelu(conv_hr(lrelu(PS(upconv2(lrelu(PS(upconv1(feat)))))))))``.

    ``(n, c, h, w)`` -> ``(n, conv_last.out_channels, 4h, 4w)``. The convolutions
    are passed in so that their state-dict keys stay where each network's
    official checkpoint has them (``upconv1``, ``upconv2``, ``conv_hr``, ``conv_last``).
    """
    out = F.leaky_relu(F.pixel_shuffle(upconv1(feat), 2), negative_slope)
    out = F.leaky_relu(F.pixel_shuffle(upconv2(out), 2), negative_slope)
    return conv_last(F.leaky_relu(conv_hr(out), negative_slope))


def bilinear_x4(img: torch.Tensor) -> torch.Tensor:
    """Bilinear x4 upsampling (``align_corners=False``): the skip of the x4 heads."""
    return F.interpolate(img, scale_factor=4, mode="bilinear", align_corners=False)
