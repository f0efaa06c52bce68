"""Residual convolution blocks in BasicSR's state-dict layout.

The 3x3 convolutions are :class:`vsrt.archs.layers.nnpack_conv.Conv2d` (``nn.Conv2d`` with the same
arguments and keys): CPU float32 inference without gradients takes the Winograd transform, about twice
as fast there; training, autocast, other devices and graphs keep the direct convolution.
"""

from __future__ import annotations

import torch
from torch import nn

from vsrt.archs.layers.nnpack_conv import Conv2d


class ResidualBlockNoBN(nn.Module):
    """``x + res_scale * conv2(relu(conv1(x)))`` (keys ``conv1``, ``conv2``)."""

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.conv2 = Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class ConvResidualBlocks(nn.Module):
    """Conv + LeakyReLU + ``num_block`` residual blocks.

    Keys ``main.0.{weight,bias}`` and ``main.2.{i}.conv{1,2}.{weight,bias}``,
    as BasicSR's ``ConvResidualBlocks`` (used by BasicVSR, PSRT, MIA-VSR).
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 64, num_block: int = 15) -> None:
        super().__init__()
        self.main = nn.Sequential(
            Conv2d(num_in_ch, num_out_ch, 3, 1, 1, bias=True),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Sequential(*[ResidualBlockNoBN(num_feat=num_out_ch) for _ in range(num_block)]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)
