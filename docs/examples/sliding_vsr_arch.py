"""SlidingVSR: the worked example of docs/adding_an_architecture.md (not a published model).

Each output frame is restored from a window of ``num_frame`` neighbouring LQ frames (the clip's ends
repeated): the window's frames are stacked on the channel axis, a conv + residual-block trunk
extracts features, and BasicVSR's x4 pixel-shuffle head adds the detail to a bilinear upsampling.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from vsrt.archs.layers.conv import ConvResidualBlocks
from vsrt.archs.layers.upsample import bilinear_x4, pixel_shuffle_x4
from vsrt.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class SlidingVSR(nn.Module):
    """x4 video super-resolution from a sliding window of frames, without flow.

    Args:
        num_feat: channels of the trunk.
        num_block: residual blocks in the trunk.
        num_frame: frames in each window (odd: the output frame and its neighbours on each side).
    """

    tiny_config = {"num_feat": 8, "num_block": 1, "num_frame": 3}  # for the registry-wide tests

    def __init__(self, num_feat: int = 64, num_block: int = 10, num_frame: int = 3) -> None:
        super().__init__()
        if num_frame < 1 or num_frame % 2 == 0:
            raise ValueError(f"num_frame must be odd and >= 1, got {num_frame}")
        self.num_frame = num_frame
        self.trunk = ConvResidualBlocks(3 * num_frame, num_feat, num_block)
        self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, 64 * 4, 3, 1, 1)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)

    def forward(self, lqs: torch.Tensor) -> torch.Tensor:
        """``(n, t, 3, h, w)`` in [0, 1] -> ``(n, t, 3, 4h, 4w)``."""
        n, t, _, _, _ = lqs.shape
        radius = self.num_frame // 2
        offsets = torch.arange(-radius, radius + 1, device=lqs.device)
        neighbours = (torch.arange(t, device=lqs.device)[:, None] + offsets).clamp(0, t - 1)  # (t, num_frame)
        windows = rearrange(lqs[:, neighbours], "n t k c h w -> (n t) (k c) h w")
        centre = rearrange(lqs, "n t c h w -> (n t) c h w")
        out = pixel_shuffle_x4(self.trunk(windows), self.upconv1, self.upconv2, self.conv_hr, self.conv_last)
        out = out + bilinear_x4(centre)  # (n*t, 3, 4h, 4w)
        return rearrange(out, "(n t) c h w -> n t c h w", n=n)
