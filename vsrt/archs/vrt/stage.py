"""Multi-scale stages of VRT: resize, two TMSA groups and parallel warping.

VRT: A Video Restoration Transformer (Liang et al., IEEE TIP 2024), arXiv 2201.12288,
official code https://github.com/JingyunLiang/VRT. Key layout of the official ``Stage``:
``reshape.{1,2}``, ``residual_group{1,2}``, ``linear{1,2}``, ``pa_deform``, ``pa_fuse``.

Differences from the official code: features are channel-last ``(n, d, h, w, c)``
between stages; parallel warping runs the deformable convolution once for all frames of
a clip (batched) instead of frame by frame, for every ``pa_frames`` with one code path (on the
CPU the layer splits torchvision's sampling into calls of a few images); in CPU inference
``pa_fuse`` runs in chunks of tokens (:func:`vsrt.archs.vrt.tmsa.inference_chunk`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from einops.layers.torch import Rearrange
from torch import nn

from vsrt.archs.flow.warp import flow_warp
from vsrt.archs.layers.dcn import FlowGuidedDeformConv
from vsrt.archs.vrt.tmsa import TMSAG, GEGLUMlp, NormFactory, inference_chunk, map_tokenwise


def frames_at(seq: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """``seq[:, start : start + length]`` of ``(n, t, ...)`` with zero frames outside ``[0, t)``."""
    lo, hi = max(start, 0), min(start + length, seq.shape[1])
    before = lo - start
    inside = seq[:, lo:hi] if hi > lo else seq[:, :0]
    after = length - before - inside.shape[1]
    parts = [seq.new_zeros(seq.shape[0], before, *seq.shape[2:])] if before else []
    parts.append(inside)
    if after:
        parts.append(seq.new_zeros(seq.shape[0], after, *seq.shape[2:]))
    return torch.cat(parts, dim=1) if len(parts) > 1 else inside


def make_reshape(kind: str, in_dim: int, dim: int) -> nn.Sequential:
    """Resize at the start of a stage, channel-last in and out.

    Index 1 is always the LayerNorm and index 2 the Linear (official keys). Index 0 is
    parameter-free: nothing for 'none', space-to-depth for 'down', depth-to-space for 'up'.
    The 2x2 neighbourhood is packed with the column offset slowest and channels fastest,
    ``(neiw neih c)``: not nn.PixelUnshuffle's order.
    """
    if kind == "none":
        return nn.Sequential(nn.Identity(), nn.LayerNorm(dim))
    if kind == "down":
        return nn.Sequential(
            Rearrange("n d (h neih) (w neiw) c -> n d h w (neiw neih c)", neih=2, neiw=2),
            nn.LayerNorm(4 * in_dim), nn.Linear(4 * in_dim, dim))
    if kind == "up":
        return nn.Sequential(
            Rearrange("n d h w (neiw neih c) -> n d (h neih) (w neiw) c", neih=2, neiw=2),
            nn.LayerNorm(in_dim // 4), nn.Linear(in_dim // 4, dim))
    raise ValueError(f"unknown reshape {kind!r}; expected 'none', 'down' or 'up'")


class Stage(nn.Module):
    """Resize, mutual+self TMSA group, self-only TMSA group, then parallel warping.

    ``forward(x (n, d, h, w, in_dim), flows_backward, flows_forward) -> (n, d, h', w', dim)``.
    The flow lists hold, for neighbour distances 1 .. pa_frames/2, the flows at this
    stage's resolution (see :mod:`vsrt.archs.vrt.flows`).
    """

    def __init__(self, in_dim: int, dim: int, depth: int, num_heads: int,
                 window_size: Sequence[int], mul_attn_ratio: float = 0.75, mlp_ratio: float = 2.0,
                 qkv_bias: bool = True, qk_scale: float | None = None,
                 drop_path: float | Sequence[float] = 0.0, norm_layer: NormFactory = nn.LayerNorm,
                 pa_frames: int = 2, deformable_groups: int = 16, reshape: str = "none",
                 max_residue_magnitude: float = 10.0, use_checkpoint_attn: bool = False,
                 use_checkpoint_ffn: bool = False) -> None:
        super().__init__()
        self.pa_frames = pa_frames
        self.reshape = make_reshape(reshape, in_dim, dim)
        mutual_depth = int(depth * mul_attn_ratio)
        common = {"mlp_ratio": mlp_ratio, "qkv_bias": qkv_bias, "qk_scale": qk_scale, "drop_path": drop_path,
                  "norm_layer": norm_layer, "use_checkpoint_ffn": use_checkpoint_ffn}
        # both groups start at the stage's first drop-path rate (official quirk)
        self.residual_group1 = TMSAG(dim, mutual_depth, num_heads, (2, window_size[1], window_size[2]),
                                     mut_attn=True, use_checkpoint_attn=use_checkpoint_attn, **common)
        self.linear1 = nn.Linear(dim, dim)
        # the official code always checkpoints the attention of the self-only group
        self.residual_group2 = TMSAG(dim, depth - mutual_depth, num_heads, window_size,
                                     mut_attn=False, use_checkpoint_attn=True, **common)
        self.linear2 = nn.Linear(dim, dim)
        if pa_frames:
            self.pa_deform = FlowGuidedDeformConv(
                dim, dim, 3, padding=1, deformable_groups=deformable_groups,
                max_residue_magnitude=max_residue_magnitude, num_neighbors=pa_frames // 2)
            self.pa_fuse = GEGLUMlp(dim * 3, dim * 3, dim)

    def forward(self, x: torch.Tensor, flows_backward: list[torch.Tensor],
                flows_forward: list[torch.Tensor]) -> torch.Tensor:
        x = self.reshape(x)
        x = x + self.linear1(self.residual_group1(x))
        x = x + self.linear2(self.residual_group2(x))
        if not self.pa_frames:
            return x
        feats = rearrange(x, "n d h w c -> n d c h w")
        from_next = self._align(feats, flows_backward, direction=1)
        from_previous = self._align(feats, flows_forward, direction=-1)
        # no residual around pa_fuse (official); token-wise, so chunked on the CPU without gradients
        return map_tokenwise(lambda *parts: self.pa_fuse(torch.cat(parts, dim=-1)), x, from_next, from_previous,
                             chunk=inference_chunk(x, 1))

    def _align(self, feats: torch.Tensor, flows: list[torch.Tensor], direction: int) -> torch.Tensor:
        """Neighbours on one side deformably aligned to every frame, ``(n, d, h, w, c)``.

        ``direction=1``: neighbours t+1 .. t+k (zeros for the last frame);
        ``direction=-1``: neighbours t-1 .. t-k (zeros for the first frame). Neighbours
        beyond the clip are zero features with zero flow.
        """
        n, d = feats.shape[:2]
        first = 0 if direction == 1 else 1  # the d-1 frames that have a neighbour on this side
        neighbors, warped, flow_list = [], [], []
        for j, flow in enumerate(flows[:self.pa_frames // 2], start=1):
            neighbor = frames_at(feats, first + direction * j, d - 1)
            # backward flows are indexed by the target frame, forward ones by the source
            flow = frames_at(flow, first if direction == 1 else first - j, d - 1)
            neighbor, flow = (rearrange(t, "n t c h w -> (n t) c h w") for t in (neighbor, flow))
            neighbors.append(neighbor)
            warped.append(flow_warp(neighbor, flow.permute(0, 2, 3, 1)))
            flow_list.append(flow)
        current = rearrange(feats[:, first:first + d - 1], "n t c h w -> (n t) c h w")
        aligned = self.pa_deform(torch.cat(neighbors, dim=1), warped, current, flow_list)
        aligned = rearrange(aligned, "(n t) c h w -> n t h w c", n=n)
        border = aligned.new_zeros(n, 1, *aligned.shape[2:])
        parts = [aligned, border] if direction == 1 else [border, aligned]
        return torch.cat(parts, dim=1)
