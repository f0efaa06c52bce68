"""OSConv2d: SAVSR's omni-dimensional scale-attention convolution.

A bank of ``kernel_num`` 3x3 kernels is mixed per sample. The mixing weights (kernel, spatial,
input-channel and output-channel attention, as in ODConv) are predicted from a "scale vector":
``[1/s_h, 1/s_w]`` concatenated with the global average of the input, passed through a small MLP
(``scale_routing``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vsrt.archs.layers.nnpack_conv import conv2d
from vsrt.archs.savsr.scale import inverse_scale


class SingleValueSafeBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that normalises with its running statistics when a batch has one value per channel.

    Deliberate difference from the official code: ScaleAttention's BatchNorm sees ``(b, A, 1, 1)``, so
    training at batch size 1 raised "Expected more than 1 value per channel". Such a batch now uses
    (and leaves untouched) the running statistics; every other input behaves as ``nn.BatchNorm2d``.
    The state-dict keys are those of ``nn.BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values_per_channel = x.numel() // max(x.shape[1], 1)
        if self.training and values_per_channel == 1 and self.running_mean is not None:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                training=False, momentum=0.0, eps=self.eps)
        return super().forward(x)


class ScaleAttention(nn.Module):
    """Four attentions predicted from the routed scale vector ``(b, in, 1, 1)``.

    Keys ``fc`` (no bias), ``bn``, ``channel_fc``, ``filter_fc``, ``spatial_fc``, ``kernel_fc``. The
    official temperature is fixed at 1 and is left out.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, kernel_num: int = 8,
                 reduction: float = 0.0625, min_channels: int = 16) -> None:
        super().__init__()
        hidden = max(int(in_channels * reduction), min_channels)
        self.kernel_size = kernel_size
        self.fc = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.bn = SingleValueSafeBatchNorm2d(hidden)
        self.channel_fc = nn.Conv2d(hidden, in_channels, 1)
        self.filter_fc = nn.Conv2d(hidden, out_channels, 1)
        self.spatial_fc = nn.Conv2d(hidden, kernel_size * kernel_size, 1)
        self.kernel_fc = nn.Conv2d(hidden, kernel_num, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, routed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``routed`` ``(b, in, 1, 1)`` -> channel ``(b, in, 1, 1)``, filter ``(b, out, 1, 1)``,
        spatial ``(b, 1, 1, 1, k, k)`` and kernel ``(b, kernel_num, 1, 1, 1, 1)`` attentions."""
        hidden = F.relu(self.bn(self.fc(routed)))
        channel = torch.sigmoid(self.channel_fc(hidden))
        filters = torch.sigmoid(self.filter_fc(hidden))
        k = self.kernel_size
        spatial = torch.sigmoid(rearrange(self.spatial_fc(hidden), "b (kh kw) 1 1 -> b 1 1 1 kh kw", kh=k, kw=k))
        kernel = torch.softmax(rearrange(self.kernel_fc(hidden), "b n 1 1 -> b n 1 1 1 1"), dim=1)
        return channel, filters, spatial, kernel


class OSConv2d(nn.Module):
    """Scale-conditioned dynamic convolution, stride 1, "same" padding, no bias.

    Keys: ``weight`` ``(kernel_num, out, in, k, k)``, ``attention.*`` and ``scale_routing.{0,2}``
    (``Linear(in + 2, 2 in)``, ``Linear(2 in, in)``, each followed by a ReLU).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, kernel_num: int = 8,
                 reduction: float = 0.0625) -> None:
        super().__init__()
        self.padding = kernel_size // 2
        self.attention = ScaleAttention(in_channels, out_channels, kernel_size, kernel_num, reduction)
        self.weight = nn.Parameter(torch.empty(kernel_num, out_channels, in_channels, kernel_size, kernel_size))
        for kernel in self.weight.data:
            nn.init.kaiming_normal_(kernel, mode="fan_out", nonlinearity="relu")
        self.scale_routing = nn.Sequential(
            nn.Linear(in_channels + 2, in_channels * 2), nn.ReLU(inplace=True),
            nn.Linear(in_channels * 2, in_channels), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
        """``x`` ``(b, in, h, w)``, ``scale`` ``(s_h, s_w)`` -> ``(b, out, h, w)``."""
        b = x.shape[0]
        # The routing input is ordered [1/s_h, 1/s_w, mean of x] (STAUpsample uses [1/s_w, 1/s_h]).
        inv_h, inv_w = inverse_scale(scale, x)
        scale_info = torch.cat((inv_h, inv_w), dim=1).expand(b, 2)
        routed = self.scale_routing(torch.cat((scale_info, x.mean(dim=(2, 3))), dim=1))  # (b, in)
        channel, filters, spatial, kernel = self.attention(routed[..., None, None])

        # One kernel per sample: the bank mixed by the kernel attention (one matrix product), then
        # scaled by the spatial, input-channel and output-channel attentions. Officially the two channel
        # attentions scale the feature maps (x * channel before, out * filters after the convolution);
        # folded into the (b, out, in, k, k) kernel they cost a kernel's size instead of a feature map's.
        bank = rearrange(self.weight, "n o i kh kw -> n (o i kh kw)")
        mixed = (kernel.view(b, -1) @ bank).view(b, *self.weight.shape[1:])  # (b, out, in, k, k)
        weight = (mixed * spatial.view(b, 1, 1, *spatial.shape[-2:]) * channel.view(b, 1, -1, 1, 1)
                  * filters.view(b, -1, 1, 1, 1))
        # A grouped convolution runs every sample with its own kernel.
        out = conv2d(rearrange(x, "b c h w -> 1 (b c) h w"),
                     rearrange(weight, "b o i kh kw -> (b o) i kh kw"), padding=self.padding, groups=b)
        return rearrange(out, "1 (b o) h w -> b o h w", b=b)
