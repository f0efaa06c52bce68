"""Temporal-consistency metrics of a whole clip: tOF and the flow-based warping error.

Both take the clip's output frames and its reference frames as sequences of uint8 images in the
layout :func:`vsrt.utils.tensor2img` gives (``(h, w, 3)`` BGR, or ``(h, w)`` / ``(h, w, 1)`` gray),
or one ``(t, h, w[, c])`` array; lower is better; they are clip-level metrics (a clip of ``t`` frames
gives ``t - 1`` frame pairs, averaged).

* **tOF** (Chu et al., "Learning Temporal Coherence via Self-Supervision for GAN-based Video
  Generation" (TecoGAN), ACM TOG 2020, arXiv:1811.09393; https://github.com/thunil/TecoGAN,
  ``metrics.py``): for each pair of consecutive frames, the dense optical flow from frame ``t - 1``
  to frame ``t`` of the output and of the reference, both by OpenCV's Farneback on the grayscale
  uint8 frames (``cv2.COLOR_BGR2GRAY``) with TecoGAN's parameters :data:`FARNEBACK_PARAMS`; the
  per-pixel Euclidean norm of the difference of the two flows (in pixels), averaged over pixels, then
  over pairs. Differences from TecoGAN's script: every pair of the clip is scored (TecoGAN drops two
  frames at each end) and ``crop_border`` pixels are removed from the flows (TecoGAN crops them to a
  centred multiple of 32 pixels, at least 8 pixels from each side).
* **Warping error** (E_warp of Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018,
  arXiv:1808.00449): the flow is estimated on the reference frames (the GT, or the input upscaled to
  the output size), with the same Farneback parameters. Output frame ``t - 1`` is warped onto frame
  ``t`` by the backward flow ``b`` (reference ``t`` -> ``t - 1``; bilinear, positions ``x + b(x)``).
  A pixel counts when its position lies inside the frame and the flow is forward-backward consistent
  (Sundaram et al., ECCV 2010): with ``f`` the forward flow (``t - 1`` -> ``t``) sampled at
  ``x + b(x)``, ``|b + f|^2 <= 0.01 (|b|^2 + |f|^2) + 0.5``; occluded and disoccluded pixels fail it.
  The error of a pair is the mean over valid pixels and channels of the squared difference of the
  output frame ``t`` and the warped frame ``t - 1``, on [0, 1] intensities; pairs without a valid
  pixel are skipped; the clip's value is the mean over pairs (``nan`` when no pair has one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from vsrt.registry import METRIC_REGISTRY

# cv2.calcOpticalFlowFarneback's arguments as TecoGAN's metrics.py passes them (positionally):
# a pyramid of 3 levels halving the size, 15x15 averaging windows, 3 iterations per level,
# polynomial expansion over 5x5 neighbourhoods with a Gaussian of sigma 1.2, no flags.
FARNEBACK_PARAMS = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3,
                    "poly_n": 5, "poly_sigma": 1.2, "flags": 0}

# forward-backward consistency test of Sundaram et al. (as used by Ruder et al. 2016, Lai et al. 2018)
CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_ABSOLUTE = 0.5


def _as_frames(frames: Any, what: str) -> list[np.ndarray]:
    """A list of uint8 ``(h, w, c)`` frames from a sequence of images or a ``(t, h, w[, c])`` array."""
    if isinstance(frames, np.ndarray):
        if frames.ndim not in (3, 4) or (frames.ndim == 3 and frames.shape[-1] in (1, 3)):
            raise ValueError(f"{what}: an array of shape {frames.shape} is not a clip; give a sequence of "
                             "frames or a (t, h, w) / (t, h, w, c) array")
        frames = list(frames)
    result = []
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise ValueError(f"{what}[{i}]: expected uint8 frames (tensor2img's output), got {frame.dtype}")
        if frame.ndim == 2:
            frame = frame[..., None]
        if frame.ndim != 3 or frame.shape[2] not in (1, 3):
            raise ValueError(f"{what}[{i}]: expected (h, w), (h, w, 1) or (h, w, 3), got {frame.shape}")
        result.append(frame)
    return result


def _check_clip(imgs: Any, imgs2: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    frames, references = _as_frames(imgs, "imgs"), _as_frames(imgs2, "imgs2")
    if len(frames) != len(references):
        raise ValueError(f"imgs has {len(frames)} frames but imgs2 has {len(references)}")
    if len(frames) < 2:
        raise ValueError(f"temporal metrics need at least 2 frames, got {len(frames)}")
    for i, (frame, reference) in enumerate(zip(frames, references)):
        if frame.shape[:2] != reference.shape[:2] or frame.shape != frames[0].shape:
            raise ValueError(f"frame {i}: imgs is {frame.shape} and imgs2 is {reference.shape}; every frame of "
                             f"both clips must have the size of imgs[0] {frames[0].shape}")
    return frames, references


def _gray(frame: np.ndarray) -> np.ndarray:
    """``(h, w)`` uint8 luma of a BGR frame (OpenCV's 0.299 R + 0.587 G + 0.114 B, rounded)."""
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.shape[2] == 3 else frame[..., 0]


def farneback_flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Flow ``(h, w, 2)`` float32 (dx, dy in pixels) with ``first(x) ~ second(x + flow(x))``.

    ``first`` / ``second`` are uint8 ``(h, w)`` grayscale; :data:`FARNEBACK_PARAMS` are used.
    """
    return cv2.calcOpticalFlowFarneback(first, second, None, **FARNEBACK_PARAMS)


def _crop(array: np.ndarray, crop_border: int) -> np.ndarray:
    if crop_border < 0 or 2 * crop_border >= min(array.shape[:2]):
        raise ValueError(f"crop_border {crop_border} leaves nothing of {array.shape[0]}x{array.shape[1]} frames")
    return array[crop_border:-crop_border, crop_border:-crop_border] if crop_border else array


def _check_better(better: str) -> None:
    if better != "lower":
        raise ValueError(f"temporal metrics are lower-is-better; 'better' must be 'lower', got {better!r}")


@METRIC_REGISTRY.register()
def calculate_tof(imgs: Any, imgs2: Any, crop_border: int = 0, better: str = "lower") -> float:
    """tOF of output frames ``imgs`` against reference frames ``imgs2`` (see the module docstring), in pixels."""
    _check_better(better)
    frames, references = _check_clip(imgs, imgs2)
    out_gray, ref_gray = [_gray(f) for f in frames], [_gray(f) for f in references]
    pair_means = []
    for t in range(1, len(frames)):
        difference = farneback_flow(out_gray[t - 1], out_gray[t]) - farneback_flow(ref_gray[t - 1], ref_gray[t])
        norm = np.sqrt(np.sum(difference.astype(np.float64) ** 2, axis=-1))  # (h, w)
        pair_means.append(float(_crop(norm, crop_border).mean()))
    return float(np.mean(pair_means))


def consistency_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """``(h, w)`` bool: pixels of frame ``t`` that are inside frame ``t - 1`` and flow-consistent.

    ``backward`` is the flow ``t -> t - 1``, ``forward`` the flow ``t - 1 -> t``, both ``(h, w, 2)``.
    """
    from vsrt.archs.flow.warp import flow_warp  # here: importing vsrt.archs builds every architecture module

    h, w = backward.shape[:2]
    back = torch.from_numpy(np.ascontiguousarray(backward, dtype=np.float64))[None]  # (1, h, w, 2)
    fwd = torch.from_numpy(np.ascontiguousarray(forward, dtype=np.float64)).permute(2, 0, 1)[None]  # (1, 2, h, w)
    fwd_at = flow_warp(fwd, back)[0].permute(1, 2, 0).numpy()  # forward flow at x + b(x), (h, w, 2)
    ys, xs = np.mgrid[0:h, 0:w]
    px, py = xs + backward[..., 0], ys + backward[..., 1]
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    mismatch = np.sum((backward + fwd_at) ** 2, axis=-1)
    bound = CONSISTENCY_RELATIVE * (np.sum(backward.astype(np.float64) ** 2, axis=-1)
                                    + np.sum(fwd_at ** 2, axis=-1)) + CONSISTENCY_ABSOLUTE
    return inside & (mismatch <= bound)


@METRIC_REGISTRY.register()
def calculate_warping_error(imgs: Any, imgs2: Any, crop_border: int = 0, better: str = "lower") -> float:
    """Masked warping error of output frames ``imgs`` with the flow of ``imgs2`` (see the module docstring).

    ``imgs2`` are the frames the flow is estimated on: the GT, or the input upscaled to the output size.
    """
    from vsrt.archs.flow.warp import flow_warp

    _check_better(better)
    frames, references = _check_clip(imgs, imgs2)
    ref_gray = [_gray(f) for f in references]
    pair_errors = []
    for t in range(1, len(frames)):
        backward = farneback_flow(ref_gray[t], ref_gray[t - 1])  # (h, w, 2), t -> t - 1
        forward = farneback_flow(ref_gray[t - 1], ref_gray[t])
        mask = consistency_mask(backward, forward)
        previous = torch.from_numpy(frames[t - 1].astype(np.float64) / 255).permute(2, 0, 1)[None]  # (1, c, h, w)
        warped = flow_warp(previous, torch.from_numpy(backward.astype(np.float64))[None])[0]
        squared = ((frames[t].astype(np.float64) / 255 - warped.permute(1, 2, 0).numpy()) ** 2).mean(axis=-1)
        squared, mask = _crop(squared, crop_border), _crop(mask, crop_border)
        if mask.any():
            pair_errors.append(float(squared[mask].mean()))
    return float(np.mean(pair_errors)) if pair_errors else float("nan")


def is_clip_metric(metric_type: str) -> bool:
    """Whether the registered metric ``metric_type`` scores a whole clip (``imgs``/``imgs2``), not a frame."""
    return metric_type in CLIP_METRICS


CLIP_METRICS = frozenset({"calculate_tof", "calculate_warping_error"})


def score_clip(frames: Sequence[np.ndarray], references: Sequence[np.ndarray],
               crop_border: int = 0) -> dict[str, float]:
    """Both temporal metrics of one clip: ``{'tof': ..., 'warping_error': ...}`` (flow on ``references``)."""
    return {"tof": calculate_tof(frames, references, crop_border),
            "warping_error": calculate_warping_error(frames, references, crop_border)}
