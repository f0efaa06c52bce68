"""STAUpsample: SAVSR's spatio-temporal adaptive arbitrary-scale upsampler."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vsrt.archs.layers.execution import capturing_graph, sync_free
from vsrt.archs.savsr.scale import inverse_scale, sr_size


def relative_coords(size: int, scale: float, like: torch.Tensor) -> torch.Tensor:
    """Position of each HR pixel inside its LR pixel, in ``[-0.5, 0.5)``: ``(size,)``.

    ``(i + 0.5) / s - floor((i + 0.5) / s + 1e-3) - 0.5``. The ``+1e-3`` is kept from the official
    code: where ``(i + 0.5) / s`` is mathematically an integer but lands just below it in float32
    (row 43 at s = 2.9), it picks the upper cell.
    """
    centres = (torch.arange(size, dtype=like.dtype, device=like.device) + 0.5) / scale
    return centres - torch.floor(centres + 1e-3) - 0.5


def sampling_grid(lr_size: tuple[int, int], scale: tuple[float, float], offset: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` grid ``(b, H, W, 2)`` (x first) for HR pixels shifted by ``offset``.

    ``offset`` ``(b, 2, H, W)`` is in LR pixels, channel 0 along x (width). HR pixel ``(i, j)`` sits at
    LR position ``((j + 0.5) / s_w - 0.5, (i + 0.5) / s_h - 0.5)``, normalised with the
    ``align_corners=True`` convention (``2 p / (n - 1) - 1``), as in the official code.
    """
    h, w = lr_size
    out_h, out_w = offset.shape[-2:]
    grid_x = (torch.arange(out_w, dtype=offset.dtype, device=offset.device) + 0.5) / scale[1] - 0.5
    grid_y = (torch.arange(out_h, dtype=offset.dtype, device=offset.device) + 0.5) / scale[0] - 0.5
    grid_x = (grid_x * 2 / (w - 1) - 1).view(1, 1, out_w) + offset[:, 0] * 2 / (w - 1)  # (b, H, W)
    grid_y = (grid_y * 2 / (h - 1) - 1).view(1, out_h, 1) + offset[:, 1] * 2 / (h - 1)
    return torch.stack((grid_x, grid_y), dim=-1)


def resample(feat: torch.Tensor, scale: tuple[float, float], offset: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling of ``feat`` ``(b, c, h, w)`` at the shifted HR positions -> ``(b, c, H, W)``.

    Zero padding with ``align_corners=True`` (official): HR border pixels that fall outside the LR
    sample centres are partly blended with zeros.
    """
    grid = sampling_grid(feat.shape[-2:], scale, offset.expand(feat.shape[0], -1, -1, -1))
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class STAUpsample(nn.Module):
    """Arbitrary-scale upsampling of a feature map, guided by the aligned (spatio-temporal) feature.

    * ``sta``: per-pixel, per-channel 5x5 filters predicted from ``st_feat`` by ``kernel_conv`` filter
      ``x`` at LR size, then the result is resampled at the HR positions (offsets ``st_offset``);
    * ``fea``: ``x`` resampled (offsets ``offset``) plus a per-pixel low-rank map ``C -> C/8 -> C``
      mixed from ``num_experts`` experts by ``routing`` (a sigmoid, not a softmax);
    * ``out = fusion(cat(sta, fea))``.

    Offsets and routing come from an embedding of ``[1/s_w, 1/s_h, rel_h, rel_w]`` per HR pixel
    (``body``: two 1x1 convs of hard-coded width 64).

    Deliberate difference: the expert map is applied as two 1x1 convolutions over the expert
    outputs (the same linear map, re-associated) instead of materialising a ``(H, W, C, C/8)``
    weight per HR pixel, which needs ``C/2`` instead of ``C^2/8`` values per HR pixel.
    """

    def __init__(self, channels: int, num_experts: int = 4, st_ksize: int = 5) -> None:
        super().__init__()
        self.num_experts = num_experts
        self.st_ksize = st_ksize
        rank = channels // 8
        self.kernel_conv = nn.Sequential(nn.Conv2d(channels, channels * st_ksize ** 2, 1),
                                         nn.LeakyReLU(0.1, inplace=True))
        self.weight_compress = nn.Parameter(torch.empty(num_experts, rank, channels, 1, 1))
        self.weight_expand = nn.Parameter(torch.empty(num_experts, channels, rank, 1, 1))
        for expert in (*self.weight_compress.data, *self.weight_expand.data):
            nn.init.kaiming_uniform_(expert, a=math.sqrt(5))
        self.body = nn.Sequential(nn.Conv2d(4, 64, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(64, 64, 1), nn.ReLU(inplace=True))
        self.routing = nn.Sequential(nn.Conv2d(64, num_experts, 1), nn.Sigmoid())
        self.offset = nn.Conv2d(64, 2, 1)
        self.st_offset = nn.Conv2d(64, 2, 1)
        self.fusion = nn.Conv2d(2 * channels, channels, 1)

    def adaptive_filter(self, x: torch.Tensor, st_feat: torch.Tensor) -> torch.Tensor:
        """Filter ``x`` ``(b, c, h, w)`` with per-pixel 5x5 kernels from ``st_feat`` (replicate padding).

        Kernel channel ``c * k*k + k * row + col`` weights the sample at ``(row - k//2, col - k//2)``.
        """
        b, c, h, w = x.shape
        k = self.st_ksize
        kernels = self.kernel_conv(st_feat).view(b, c, k * k, h, w)
        padded = F.pad(x, [k // 2] * 4, mode="replicate")
        # One multiply-add per tap on shifted views (no (b, c*k*k, h, w) tensor of unfolded patches).
        out = padded[..., :h, :w] * kernels[:, :, 0]
        for tap in range(1, k * k):
            row, col = divmod(tap, k)
            out.addcmul_(padded[..., row:row + h, col:col + w], kernels[:, :, tap])
        return out

    def scale_embedding(self, rel_h: torch.Tensor, rel_w: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
        """``(1, 64, len(rel_h), len(rel_w))`` embedding of ``[1/s_w, 1/s_h, rel_h, rel_w]`` (note: w first)."""
        inv_h, inv_w = inverse_scale(scale, rel_h)
        size = (rel_h.shape[0], rel_w.shape[0])
        coords = torch.stack((inv_w.expand(size), inv_h.expand(size),
                              rel_h.view(-1, 1).expand(size), rel_w.view(1, -1).expand(size)))
        return self.body(coords.unsqueeze(0))

    def scale_heads(self, out_size: tuple[int, int], scale: tuple[float, float],
                    like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per HR pixel: ``offset`` and ``st_offset`` ``(1, 2, H, W)``, ``routing`` ``(1, E, H, W)``.

        They depend on a pixel only through ``(rel_h[i], rel_w[j])``, which repeat with the scale's
        period (4 distinct values per axis at x4), so on the gathered path (the CPU) the embedding and
        heads run on the distinct values only and are then indexed out to ``H x W``: the same per-pixel
        arithmetic. The sync-free path (GPU; also while tracing) runs them on every HR pixel, as officially.
        """
        rel_h = relative_coords(out_size[0], scale[0], like)
        rel_w = relative_coords(out_size[1], scale[1], like)
        distinct = not (sync_free(like) or capturing_graph())
        if distinct:
            rel_h, index_h = torch.unique(rel_h, return_inverse=True)
            rel_w, index_w = torch.unique(rel_w, return_inverse=True)
        embedding = self.scale_embedding(rel_h, rel_w, scale)
        heads = torch.cat((self.offset(embedding), self.st_offset(embedding), self.routing(embedding)), dim=1)
        if distinct:
            heads = heads[:, :, index_h][:, :, :, index_w]  # (1, 4 + E, H, W)
        return heads.split((2, 2, self.num_experts), dim=1)

    def expert_map(self, feat: torch.Tensor, routing: torch.Tensor) -> torch.Tensor:
        """``feat + sum_e r_e W_expand[e] (sum_e r_e W_compress[e] feat)`` per HR pixel.

        ``feat`` ``(b, C, H, W)``, ``routing`` ``(1, E, H, W)``.
        """
        experts = self.num_experts
        compress = rearrange(self.weight_compress, "e r c 1 1 -> (e r) c 1 1")
        compressed = rearrange(F.conv2d(feat, compress), "b (e r) h w -> b e r h w", e=experts)
        compressed = (compressed * routing.unsqueeze(2)).sum(dim=1)  # (b, r, H, W)
        # sum_e r_e W_expand[e] y == [W_expand[0] ... W_expand[E-1]] @ cat_e(r_e y)
        routed = rearrange(compressed.unsqueeze(1) * routing.unsqueeze(2), "b e r h w -> b (e r) h w")
        expand = rearrange(self.weight_expand, "e c r 1 1 -> c (e r) 1 1")
        return feat + F.conv2d(routed, expand)

    def forward(self, x: torch.Tensor, scale: tuple[float, float], st_feat: torch.Tensor) -> torch.Tensor:
        """``x`` and ``st_feat`` ``(b, C, h, w)`` -> ``(b, C, round(h s_h), round(w s_w))``."""
        out_size = sr_size(x.shape[-2], x.shape[-1], scale)
        filtered = self.adaptive_filter(x, st_feat)
        offset, st_offset, routing = self.scale_heads(out_size, scale, x)
        fea = self.expert_map(resample(x, scale, offset), routing)
        sta = resample(filtered, scale, st_offset)
        return self.fusion(torch.cat((sta, fea), dim=1))
