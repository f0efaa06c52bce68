"""SAVSR reconstruction trunk: RCAN residual groups and the scale-adaptive OSAdapt block."""

from __future__ import annotations

import torch
from torch import nn

from vsrt.archs.layers.nnpack_conv import Conv2d
from vsrt.archs.savsr.osconv import OSConv2d, SingleValueSafeBatchNorm2d


class ChannelAttention(nn.Module):
    """RCAN channel attention: ``x * sigmoid(conv(relu(conv(avgpool(x)))))`` (keys ``attention.{1,3}``)."""

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, num_feat // squeeze_factor, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat // squeeze_factor, num_feat, 1),
            nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class RCAB(nn.Module):
    """Residual channel-attention block: ``x + CA(conv(relu(conv(x))))`` (keys ``rcab.{0,2,3}``)."""

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        self.rcab = nn.Sequential(
            Conv2d(num_feat, num_feat, 3, 1, 1),
            nn.ReLU(inplace=True),
            Conv2d(num_feat, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.rcab(x)


class ResidualGroup(nn.Module):
    """``num_block`` RCABs and a 3x3 conv, with a residual (keys ``residual_group.{i}``, ``conv``)."""

    def __init__(self, num_feat: int, num_block: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        self.residual_group = nn.Sequential(*[RCAB(num_feat, squeeze_factor) for _ in range(num_block)])
        self.conv = Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.residual_group(x))


class OSAdapt(nn.Module):
    """``x + OSConv2d(x, scale) * mask(x)``: a scale-conditioned correction gated by a spatial mask.

    The mask branch pools by 2 and upsamples by 2, so ``h`` and ``w`` must be even (SAVSR pads its
    input once for this). ``mask`` keeps the official Sequential indices (convs at 0, 4, 7, 11; BNs at
    1, 5, 8, 12).
    """

    def __init__(self, channels: int, ratio: int = 4) -> None:
        super().__init__()
        hidden = channels // ratio
        self.mask = nn.Sequential(
            Conv2d(channels, hidden, 3, 1, 1), SingleValueSafeBatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
            Conv2d(hidden, hidden, 3, 1, 1), SingleValueSafeBatchNorm2d(hidden), nn.ReLU(inplace=True),
            Conv2d(hidden, hidden, 3, 1, 1), SingleValueSafeBatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            Conv2d(hidden, 1, 3, 1, 1), SingleValueSafeBatchNorm2d(1), nn.Sigmoid())
        self.adapt = OSConv2d(channels, channels, kernel_size=3)

    def forward(self, x: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
        """``(b, c, h, w)`` -> ``(b, c, h, w)``; ``h`` and ``w`` even."""
        return x + self.adapt(x, scale) * self.mask(x)
