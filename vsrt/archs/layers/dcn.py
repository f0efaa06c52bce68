"""Flow-guided modulated deformable convolution (DCNv2) on ``torchvision.ops.deform_conv2d``.

The offsets are predicted as a bounded residual on top of optical flow, as in
BasicVSR++ (Chan et al., CVPR 2022, arXiv 2104.13371) and VRT's parallel warping
(Liang et al., arXiv 2201.12288). No compiled extension is needed: the sampling
itself is torchvision's ``deform_conv2d``, which runs on CPU and GPU.

State-dict layout (VRT's ``pa_deform``): ``weight``, ``bias`` and
``conv_offset.{0,2,4,6}.{weight,bias}``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from vsrt.archs.layers.execution import capturing_graph, sync_free

# float32 values of torchvision's deformable im2col buffer per CPU call (16 MiB; see _images_per_call):
# VRT's stage-1 buffer for 5 frames at 64x64 is 88 MB, and per image the sampling runs ~20 % faster
CPU_COLUMN_FLOATS = 2**22


def sampled_deform_conv_applies(x: torch.Tensor, weight: torch.Tensor, padding: int) -> bool:
    """Whether :func:`sampled_deform_conv2d` computes this call: CPU float32 inference (no autograd graph,
    no graph capture) of a same-size convolution (odd kernel, ``padding = k // 2``) on frames of at least
    2x2 pixels. Everything else (training, GPUs, tracing, export) keeps torchvision's ``deform_conv2d``."""
    if type(x) is not torch.Tensor or capturing_graph() or torch.is_grad_enabled():
        return False
    kh, kw = weight.shape[-2:]
    return (x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32 and kh == kw and kh % 2 == 1
            and padding == kh // 2 and min(x.shape[-2:]) >= 2)


def sampled_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                          mask: torch.Tensor) -> torch.Tensor:
    """torchvision's modulated ``deform_conv2d`` (stride 1, dilation 1, ``padding = k // 2``) computed as one
    ``grid_sample`` of every tap's positions and a grouped matrix product.

    torchvision's CPU kernel samples each column entry in scalar code (VRT: 10 % of a forward); the
    vectorised bilinear ``grid_sample`` with zero padding is the same interpolation (a corner outside the
    frame counts 0), about 2.3x faster for VRT's shapes, matrix product included. Positions are passed
    normalised (``align_corners=True``), which rounds them differently from torchvision's pixel
    coordinates, by about as much as torchvision's own float32 rounding (1e-6 of a pixel).

    Args (torchvision's layout): ``x`` ``(b, C, h, w)``; ``offset`` ``(b, 2*G*k*k, h, w)``, (dy, dx) per
    offset group and tap; ``weight`` ``(out, C / groups, k, k)``; ``bias`` ``(out,)``; ``mask``
    ``(b, G*k*k, h, w)``. Returns ``(b, out, h, w)``.
    """
    b, channels, h, w = x.shape
    k = weight.shape[-1]
    taps, groups = k * k, offset.shape[1] // (2 * k * k)
    tap = torch.arange(taps, device=x.device)
    tap_y = (tap // k - k // 2).to(x.dtype).view(taps, 1, 1)  # kernel row offset of every tap
    tap_x = (tap % k - k // 2).to(x.dtype).view(taps, 1, 1)
    offset = offset.reshape(b, groups, taps, 2, h, w)
    rows = torch.arange(h, dtype=x.dtype, device=x.device).view(h, 1) + tap_y + offset[:, :, :, 0]  # (b, G, taps, h, w)
    cols = torch.arange(w, dtype=x.dtype, device=x.device).view(1, w) + tap_x + offset[:, :, :, 1]
    grid = torch.stack([cols * (2 / (w - 1)) - 1, rows * (2 / (h - 1)) - 1], dim=-1)  # (b, G, taps, h, w, 2)
    sampled = F.grid_sample(x.reshape(b * groups, channels // groups, h, w), grid.view(b * groups, taps * h, w, 2),
                            mode="bilinear", padding_mode="zeros", align_corners=True)  # (b*G, C/G, taps*h, w)
    sampled = sampled.view(b, groups, channels // groups, taps, h * w) * mask.reshape(b, groups, 1, taps, h * w)
    conv_groups = channels // weight.shape[1]
    columns = sampled.view(b, conv_groups, weight.shape[1] * taps, h * w)  # channel-major, then tap
    out = torch.matmul(weight.reshape(conv_groups, -1, weight.shape[1] * taps), columns)  # (b, groups, out/groups, h*w)
    return (out.view(b, -1, h * w) + bias.view(1, -1, 1)).view(b, -1, h, w)


class FlowGuidedDeformConv(nn.Module):
    """Modulated deformable 3x3 convolution of ``num_neighbors`` frames guided by their flows.

    ``forward(neighbors, warped_neighbors, current, flows)``:

    * ``neighbors``: ``(b, k*C, h, w)``, the ``k = num_neighbors`` UNWARPED neighbour
      features, concatenated nearest neighbour first;
    * ``warped_neighbors``: ``k`` tensors ``(b, C, h, w)``, each neighbour pre-warped by its flow
      (only used to predict the offsets);
    * ``current``: ``(b, C, h, w)``, the frame the neighbours are aligned to;
    * ``flows``: ``k`` tensors ``(b, 2, h, w)`` with ``(dx, dy)`` channels.

    Returns ``(b, out_channels, h, w)``. The main weight has ``in_channels`` input
    channels although the input has ``k * in_channels``: torchvision then runs a grouped
    convolution in which output channels ``j*out/k ... (j+1)*out/k - 1`` only see
    neighbour ``j`` (VRT's layout, kept for checkpoint compatibility). The
    ``deformable_groups`` offset groups are spread over all ``k * in_channels`` input
    channels, so offset chunk ``j`` (of ``k`` equal chunks) belongs to neighbour ``j``
    and receives that neighbour's flow.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 padding: int = 1, deformable_groups: int = 1,
                 max_residue_magnitude: float = 10.0, num_neighbors: int = 1) -> None:
        super().__init__()
        if deformable_groups % num_neighbors:
            raise ValueError(f"deformable_groups ({deformable_groups}) must be divisible by "
                             f"num_neighbors ({num_neighbors})")
        if out_channels % num_neighbors:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by "
                             f"num_neighbors ({num_neighbors})")
        if (num_neighbors * in_channels) % deformable_groups:
            raise ValueError(f"deformable_groups ({deformable_groups}) must divide the "
                             f"{num_neighbors * in_channels} input channels")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.padding = padding
        self.deformable_groups = deformable_groups
        self.max_residue_magnitude = max_residue_magnitude
        self.num_neighbors = num_neighbors

        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        taps = kernel_size * kernel_size
        offset_in = (1 + num_neighbors) * in_channels + 2 * num_neighbors
        self.conv_offset = nn.Sequential(
            nn.Conv2d(offset_in, out_channels, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            # per offset group and tap: dy, dx and a modulation logit
            nn.Conv2d(out_channels, 3 * taps * deformable_groups, 3, 1, 1),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform main weight, zero bias, zero last offset conv (alignment starts at the flow)."""
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size ** 2)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.bias)
        nn.init.zeros_(self.conv_offset[-1].weight)
        nn.init.zeros_(self.conv_offset[-1].bias)

    def forward(self, neighbors: torch.Tensor, warped_neighbors: list[torch.Tensor],
                current: torch.Tensor, flows: list[torch.Tensor]) -> torch.Tensor:
        if len(flows) != self.num_neighbors or len(warped_neighbors) != self.num_neighbors:
            raise ValueError(f"expected {self.num_neighbors} neighbours and flows, got "
                             f"{len(warped_neighbors)} and {len(flows)}")
        out = self.conv_offset(torch.cat([*warped_neighbors, current, *flows], dim=1))
        offset_y_x_1, offset_y_x_2, mask = torch.chunk(out, 3, dim=1)
        residual = self.max_residue_magnitude * torch.tanh(torch.cat([offset_y_x_1, offset_y_x_2], 1))
        # chunk j of the offsets belongs to neighbour j; flows are (dx, dy), offsets (dy, dx)
        chunks = torch.chunk(residual, self.num_neighbors, dim=1)
        offset = torch.cat([chunk + flow.flip(1).repeat(1, chunk.shape[1] // 2, 1, 1)
                            for chunk, flow in zip(chunks, flows)], dim=1)
        # float32 sampling: torchvision's CPU kernel has no half / bfloat16 version
        args = (neighbors.float(), offset.float(), torch.sigmoid(mask.float()))
        weight, bias = self.weight.float(), self.bias.float()
        step = self._images_per_call(neighbors)
        if sampled_deform_conv_applies(args[0], weight, self.padding):
            def conv(x: torch.Tensor, off: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
                return sampled_deform_conv2d(x, off, weight, bias, m)
        else:
            def conv(x: torch.Tensor, off: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
                return deform_conv2d(x, off, weight, bias, padding=self.padding, mask=m)
        out = torch.cat([conv(x, off, m) for x, off, m in zip(*(t.split(step) for t in args))])
        return out.to(neighbors.dtype)

    def _images_per_call(self, neighbors: torch.Tensor) -> int:
        """Images per ``deform_conv2d`` call: all of them on the sync-free (GPU) path; on the CPU as many
        as keep torchvision's sampled-column buffer ``(k*C*taps, images*h*w)`` within
        :data:`CPU_COLUMN_FLOATS` (at least one), so that it stays in cache instead of being fresh pages."""
        if sync_free(neighbors):
            return neighbors.shape[0]
        b, channels, h, w = neighbors.shape
        return max(1, CPU_COLUMN_FLOATS // (channels * self.kernel_size ** 2 * h * w))
