"""x4 reconstruction head of the BasicVSR family (two PixelShuffle(2) stages)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def pixel_shuffle(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``F.pixel_shuffle`` as a reshape, a permute and one copy: ``(n, c*f*f, h, w) -> (n, c, h*f, w*f)``.

    The same values; PyTorch's own CPU kernel for contiguous (NCHW) input is about 3x slower (256
    channels at 128x128 on one core of the development VM: 10.4 vs 2.9 ms)."""
    return rearrange(x, "n (c a b) h w -> n c (h a) (w b)", a=factor, b=factor)


def pixel_shuffle_x4(feat: torch.Tensor, upconv1: nn.Conv2d, upconv2: nn.Conv2d, conv_hr: nn.Conv2d,
                     conv_last: nn.Conv2d, negative_slope: float = 0.1) -> torch.Tensor:
    """``conv_last(lrelu(conv_hr(lrelu(PS(upconv2(lrelu(PS(upconv1(feat)))))))))``.

    ``(n, c, h, w)`` -> ``(n, conv_last.out_channels, 4h, 4w)``. The convolutions
    are passed in so that their state-dict keys stay where each network's
    official checkpoint has them (``upconv1``, ``upconv2``, ``conv_hr``, ``conv_last``).
    """
    out = F.leaky_relu(pixel_shuffle(upconv1(feat), 2), negative_slope, inplace=True)
    out = F.leaky_relu(pixel_shuffle(upconv2(out), 2), negative_slope, inplace=True)
    return conv_last(F.leaky_relu(conv_hr(out), negative_slope, inplace=True))


def bilinear_x4(img: torch.Tensor) -> torch.Tensor:
    """Bilinear x4 upsampling (``align_corners=False``): the skip of the x4 heads."""
    return F.interpolate(img, scale_factor=4, mode="bilinear", align_corners=False)
