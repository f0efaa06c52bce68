"""Optical flow for VRT: multi-scale SpyNet flows, long-range flow composition and the
'nearest4' image alignment of the network input.

VRT: A Video Restoration Transformer (Liang et al., IEEE TIP 2024), arXiv 2201.12288,
official code https://github.com/JingyunLiang/VRT. Uses the shared SpyNet
(``SpyNet.forward_pyramid`` replaces the official copy's ``return_levels``) and ``flow_warp``.

Flow lists are indexed ``flows[scale][distance - 1]`` with scales 1, 2, 4, 8 and distances
1 .. pa_frames/2. ``backward[s][j-1][:, t]`` warps frame ``t+j`` onto frame ``t``
(``d - j`` entries); ``forward[s][j-1][:, t]`` warps frame ``t`` onto frame ``t+j``.
Each tensor is ``(n, d - j, 2, h/s, w/s)`` with channels ``(dx, dy)``.

The official code keeps one flat list ordered [distance 1 at s1, s2, s4, s8, distance 2 at
s1, ...] and slices it with a stride of 4; the nesting here carries the same tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from vsrt.archs.flow.spynet import SpyNet
from vsrt.archs.flow.warp import flow_warp
from vsrt.archs.layers.threads import run_concurrently

FLOW_SCALES = (1, 2, 4, 8)
FlowPyramid = list[list[torch.Tensor]]  # [scale][distance - 1] -> (n, d - j, 2, h/s, w/s)


def _warp_frames(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``flow_warp`` of a batch of frames: ``x`` (n, t, c, h, w), ``flow`` (n, t, 2, h, w)."""
    n = x.shape[0]
    warped = flow_warp(rearrange(x, "n t c h w -> (n t) c h w"),
                       rearrange(flow, "n t two h w -> (n t) h w two"))
    return rearrange(warped, "(n t) c h w -> n t c h w", n=n)


def _compose(near: torch.Tensor, far: torch.Tensor) -> torch.Tensor:
    """Chain two flows: ``near + warp(far, near)``, both ``(n, t, 2, h, w)``."""
    return near + _warp_frames(far, near)


def spynet_flows(spynet: SpyNet, frames: torch.Tensor, pa_frames: int) -> tuple[FlowPyramid, FlowPyramid]:
    """Backward and forward flow pyramids of ``frames`` (n, d, 3, h, w) for ``pa_frames`` 2/4/6."""
    n, d = frames.shape[:2]
    if d < pa_frames // 2 + 1:
        raise ValueError(f"VRT with pa_frames={pa_frames} needs at least {pa_frames // 2 + 1} "
                         f"frames, got {d}")
    current = rearrange(frames[:, :-1], "n t c h w -> (n t) c h w")
    following = rearrange(frames[:, 1:], "n t c h w -> (n t) c h w")

    def as_frames(flows: list[torch.Tensor]) -> list[torch.Tensor]:
        return [rearrange(f, "(n t) two h w -> n t two h w", n=n) for f in flows]

    # backward: flow from t to t+1 (warps t+1 onto t); forward: from t+1 to t
    # two independent SpyNet passes: side by side on two CPU threads (vsrt.archs.layers.threads)
    backward, forward = run_concurrently(frames, lambda: spynet.forward_pyramid(current, following, FLOW_SCALES),
                                         lambda: spynet.forward_pyramid(following, current, FLOW_SCALES))
    backward, forward = [[f] for f in as_frames(backward)], [[f] for f in as_frames(forward)]
    for back, fwd in zip(backward, forward):
        if pa_frames >= 4:  # t -> t+2 from (t -> t+1) and (t+1 -> t+2)
            back.append(_compose(back[0][:, :-1], back[0][:, 1:]))
            fwd.append(_compose(fwd[0][:, 1:], fwd[0][:, :-1]))
        if pa_frames >= 6:  # t -> t+3 from (t -> t+2) and (t+2 -> t+3)
            back.append(_compose(back[1][:, :-1], back[0][:, 2:]))
            fwd.append(_compose(fwd[1][:, 1:], fwd[0][:, :-2]))
    return backward, forward


def nearest4_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Read ``x`` (b, c, h, w) at the 4 integer neighbours of ``pixel + flow`` (b, h, w, 2).

    Returns ``(b, 4c, h, w)``: the reads at (floor x, floor y), (floor x, ceil y),
    (ceil x, floor y), (ceil x, ceil y), zeros outside the frame. A hard decision: no
    gradient reaches the flow (as in the official code).
    """
    _, _, h, w = x.shape
    grid_y, grid_x = torch.meshgrid(torch.arange(h, dtype=x.dtype, device=x.device),
                                    torch.arange(w, dtype=x.dtype, device=x.device), indexing="ij")
    pos_x, pos_y = grid_x + flow[..., 0], grid_y + flow[..., 1]  # (b, h, w)

    def normalise(v: torch.Tensor, size: int) -> torch.Tensor:
        return 2.0 * v / max(size - 1, 1) - 1.0

    xs = (normalise(torch.floor(pos_x), w), normalise(torch.ceil(pos_x), w))
    ys = (normalise(torch.floor(pos_y), h), normalise(torch.ceil(pos_y), h))
    reads = [F.grid_sample(x, torch.stack((gx, gy), dim=3), mode="nearest", padding_mode="zeros",
                           align_corners=True)
             for gx in xs for gy in ys]
    return torch.cat(reads, dim=1)


def align_input_frames(frames: torch.Tensor, backward: torch.Tensor,
                       forward: torch.Tensor) -> torch.Tensor:
    """Warp each frame's neighbours onto it with :func:`nearest4_warp`.

    ``frames`` (n, d, c, h, w) and the distance-1 full-resolution flows (n, d-1, 2, h, w)
    give ``(n, d, 8c, h, w)``: [frame t+1 warped to t (zeros for the last frame),
    frame t-1 warped to t (zeros for the first frame)], 4c channels each.
    """
    n, _, c, h, w = frames.shape

    def warp(src: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        out = nearest4_warp(rearrange(src, "n t c h w -> (n t) c h w"),
                            rearrange(flow, "n t two h w -> (n t) h w two"))
        return rearrange(out, "(n t) c h w -> n t c h w", n=n)

    border = frames.new_zeros(n, 1, 4 * c, h, w)
    from_next = torch.cat([warp(frames[:, 1:], backward), border], dim=1)
    from_previous = torch.cat([border, warp(frames[:, :-1], forward)], dim=1)
    return torch.cat([from_next, from_previous], dim=2)
