"""Spatial transforms shared by the video datasets: mod crop, paired random crop, flips/rotations.

Same semantics and the same ``random`` draws, in the same order, as BasicSR's
``basicsr/data/transforms.py`` (so a seeded run crops and flips like BasicSR).
Differences: ``augment`` never modifies its inputs in place (BasicSR flips the
caller's arrays with ``cv2.flip(img, 1, img)``), it also accepts 2-D images, and
the outputs are C-contiguous so ``torch.from_numpy`` takes them directly.
"""

from __future__ import annotations

import random
from typing import TypeVar

import numpy as np
import torch

Image = TypeVar("Image", np.ndarray, torch.Tensor)


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Drop the bottom rows and right columns so that ``h`` and ``w`` are multiples of ``scale``."""
    if img.ndim not in (2, 3):
        raise ValueError(f"mod_crop expects an (h, w) or (h, w, c) image, got ndim {img.ndim}")
    h, w = img.shape[:2]
    return img[:h - h % scale, :w - w % scale, ...].copy()


def _unwrap_single(items: list) -> list | object:
    return items[0] if len(items) == 1 else items


def paired_random_crop(img_gts: list[Image] | Image, img_lqs: list[Image] | Image,
                       gt_patch_size: int, scale: int, gt_path: str | None = None
                       ) -> tuple[list[Image] | Image, list[Image] | Image]:
    """Crop the same region from GT frames (``gt_patch_size``) and LQ frames (``gt_patch_size // scale``).

    Arrays are ``(h, w[, c])``, tensors ``(..., h, w)``. The LQ corner is drawn
    with ``random.randint`` (top first, then left) and the GT corner is
    ``scale`` times it. A single input image gives a single output image.
    """
    gts = img_gts if isinstance(img_gts, list) else [img_gts]
    lqs = img_lqs if isinstance(img_lqs, list) else [img_lqs]
    is_tensor = torch.is_tensor(gts[0])
    h_lq, w_lq = lqs[0].shape[-2:] if is_tensor else lqs[0].shape[:2]
    h_gt, w_gt = gts[0].shape[-2:] if is_tensor else gts[0].shape[:2]
    where = f" ({gt_path})" if gt_path is not None else ""
    if h_gt != h_lq * scale or w_gt != w_lq * scale:
        raise ValueError(f"GT size ({h_gt}, {w_gt}) is not {scale}x the LQ size ({h_lq}, {w_lq}){where}")
    lq_patch_size = gt_patch_size // scale
    if h_lq < lq_patch_size or w_lq < lq_patch_size:
        raise ValueError(f"LQ size ({h_lq}, {w_lq}) is smaller than the patch size "
                         f"({lq_patch_size}, {lq_patch_size}){where}")

    top = random.randint(0, h_lq - lq_patch_size)
    left = random.randint(0, w_lq - lq_patch_size)
    top_gt, left_gt = top * scale, left * scale
    if is_tensor:
        lqs = [v[..., top:top + lq_patch_size, left:left + lq_patch_size] for v in lqs]
        gts = [v[..., top_gt:top_gt + gt_patch_size, left_gt:left_gt + gt_patch_size] for v in gts]
    else:
        lqs = [v[top:top + lq_patch_size, left:left + lq_patch_size, ...] for v in lqs]
        gts = [v[top_gt:top_gt + gt_patch_size, left_gt:left_gt + gt_patch_size, ...] for v in gts]
    return _unwrap_single(gts), _unwrap_single(lqs)


def _flip_and_rotate(img: np.ndarray, hflip: bool, vflip: bool, rot90: bool) -> np.ndarray:
    if hflip:
        img = img[:, ::-1]
    if vflip:
        img = img[::-1]
    if rot90:  # vertical flip + transpose = a 90 degree rotation
        img = img.swapaxes(0, 1)
    return np.ascontiguousarray(img)


def _flip_and_rotate_flow(flow: np.ndarray, hflip: bool, vflip: bool, rot90: bool) -> np.ndarray:
    """Same geometry on an (h, w, 2) flow; the vector components follow the image axes."""
    flow = flow.copy()
    if hflip:
        flow = flow[:, ::-1]
        flow[..., 0] *= -1
    if vflip:
        flow = flow[::-1]
        flow[..., 1] *= -1
    if rot90:
        flow = flow.swapaxes(0, 1)[..., ::-1]  # (dx, dy) -> (dy, dx)
    return np.ascontiguousarray(flow)


def augment(imgs: list[np.ndarray] | np.ndarray, hflip: bool = True, rotation: bool = True,
            flows: list[np.ndarray] | np.ndarray | None = None, return_status: bool = False):
    """Random horizontal flip and rotation by a multiple of 90 degrees, identical for every image.

    One ``random.random()`` draw each for hflip, vflip and rot90 (a draw is
    skipped when its option is off, as in BasicSR). Returns the augmented
    images (a single array for a single input), plus the flows when given,
    or plus ``(hflip, vflip, rot90)`` when ``return_status``.
    """
    do_hflip = hflip and random.random() < 0.5
    do_vflip = rotation and random.random() < 0.5
    do_rot90 = rotation and random.random() < 0.5
    status = (do_hflip, do_vflip, do_rot90)

    img_list = imgs if isinstance(imgs, list) else [imgs]
    out = _unwrap_single([_flip_and_rotate(img, *status) for img in img_list])
    if flows is not None:
        flow_list = flows if isinstance(flows, list) else [flows]
        return out, _unwrap_single([_flip_and_rotate_flow(f, *status) for f in flow_list])
    if return_status:
        return out, status
    return out

