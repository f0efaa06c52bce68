"""Backward warping of images or features by a dense optical flow."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def flow_warp(x: torch.Tensor, flow: torch.Tensor, interp_mode: str = "bilinear",
              padding_mode: str = "zeros", align_corners: bool = True) -> torch.Tensor:
    """Sample ``x`` at ``pixel + flow`` (BasicSR's ``flow_warp``).

    Args:
        x: ``(n, c, h, w)``.
        flow: ``(n, h, w, 2)`` in pixels; channel 0 is dx, channel 1 is dy.
    Returns:
        ``(n, c, h, w)``; float32 for bf16 / fp16 ``x`` (as autocast's ``grid_sample``).

    Positions are computed in float32 (float64 for float64 ``x``) whatever ``x``'s dtype: under
    autocast features are bf16, which holds integers exactly only up to 256 (REDS LR frames are
    320 pixels wide).
    """
    if x.shape[-2:] != flow.shape[1:3]:
        raise ValueError(f"flow_warp: x is {tuple(x.shape)} but flow is {tuple(flow.shape)}; "
                         "expected flow (n, h, w, 2) with the spatial size of x")
    _, _, h, w = x.shape
    work_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    grid_y, grid_x = torch.meshgrid(
        torch.arange(h, dtype=work_dtype, device=x.device),
        torch.arange(w, dtype=work_dtype, device=x.device), indexing="ij")
    grid = torch.stack((grid_x, grid_y), dim=2)  # (h, w, 2), (x, y) order
    position = grid + flow.to(work_dtype)
    x = x.to(work_dtype)
    # normalise pixel positions to [-1, 1]; the max() keeps 1-pixel axes finite
    norm_x = 2.0 * position[..., 0] / max(w - 1, 1) - 1.0
    norm_y = 2.0 * position[..., 1] / max(h - 1, 1) - 1.0
    grid_norm = torch.stack((norm_x, norm_y), dim=3)
    return F.grid_sample(x, grid_norm, mode=interp_mode, padding_mode=padding_mode,
                         align_corners=align_corners)


def patch_align_warp(x: torch.Tensor, flow: torch.Tensor, patch_size: int = 8) -> torch.Tensor:
    """Move every ``patch_size`` x ``patch_size`` patch of ``x`` by its mean flow.

    PSRT's "patch alignment" (also used by MIA-VSR): the flow is reflect-padded
    at the bottom/right to a multiple of the patch size, averaged per patch, and
    each patch is copied from the position given by its mean flow rounded to the
    nearest pixel (``grid_sample`` nearest, ``align_corners=True``, so ties round
    to even); samples from outside the frame are zeros.

    Args:
        x: ``(n, c, h, w)`` features.
        flow: ``(n, 2, h, w)`` in pixels, channel 0 = dx (note: channels first,
            unlike :func:`flow_warp`).
    Returns:
        ``(n, c, h, w)`` in ``x``'s dtype. The official code always returns
        float32 and fails for float64 models; here the positions are computed in
        float64 for float64 inputs and float32 otherwise (bit-identical to the
        official result for float32).
    """
    if x.shape[-2:] != flow.shape[-2:] or flow.shape[1] != 2:
        raise ValueError(f"patch_align_warp: x is {tuple(x.shape)} but flow is {tuple(flow.shape)}; "
                         "expected flow (n, 2, h, w) with the spatial size of x")
    _, _, h, w = x.shape
    work_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    flow = flow.to(work_dtype)
    pad_h, pad_w = (-h) % patch_size, (-w) % patch_size
    flow = F.pad(flow, (0, pad_w, 0, pad_h), mode="reflect")
    patch_flow = F.avg_pool2d(flow, patch_size)  # (n, 2, hp/p, wp/p)
    flow = F.interpolate(patch_flow, scale_factor=patch_size, mode="nearest")[:, :, :h, :w]
    grid_y, grid_x = torch.meshgrid(
        torch.arange(h, dtype=work_dtype, device=x.device),
        torch.arange(w, dtype=work_dtype, device=x.device), indexing="ij")
    pos_x = grid_x + flow[:, 0]  # (n, h, w)
    pos_y = grid_y + flow[:, 1]
    grid_norm = torch.stack((2.0 * pos_x / max(w - 1, 1) - 1.0,
                             2.0 * pos_y / max(h - 1, 1) - 1.0), dim=3)
    out = F.grid_sample(x.to(work_dtype), grid_norm, mode="nearest", padding_mode="zeros",
                        align_corners=True)
    return out.to(x.dtype)
