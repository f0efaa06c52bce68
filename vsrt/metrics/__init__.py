"""Image-quality metrics, looked up by the ``type:`` of a YAML metric block.

    val:
      metrics:
        psnr: {type: calculate_psnr, crop_border: 0, test_y_channel: false}
        tof: {type: calculate_tof, better: lower}   # clip-level: scores all frames of a clip at once

Frame metrics take ``{'img': output, 'img2': reference}``; clip metrics (:func:`is_clip_metric`,
``vsrt.metrics.temporal``) take ``{'imgs': output frames, 'imgs2': reference frames}``.
"""

from __future__ import annotations

import copy
from typing import Any

from vsrt.metrics.lpips_metric import calculate_lpips
from vsrt.metrics.metric_util import reorder_image, to_y_channel
from vsrt.metrics.psnr_ssim import (
    calculate_psnr,
    calculate_psnr_pt,
    calculate_ssim,
    calculate_ssim_pt,
)
from vsrt.metrics.temporal import calculate_tof, calculate_warping_error, is_clip_metric
from vsrt.registry import METRIC_REGISTRY

__all__ = [
    "METRIC_REGISTRY", "calculate_lpips", "calculate_metric", "calculate_psnr", "calculate_psnr_pt",
    "calculate_ssim", "calculate_ssim_pt", "calculate_tof", "calculate_warping_error", "is_clip_metric",
    "metric_better", "reorder_image", "to_y_channel",
]


def metric_better(opt: dict[str, Any]) -> str:
    """``'higher'`` or ``'lower'``: the block's ``better`` key, else lower for the temporal metrics and LPIPS,
    higher for the others (PSNR, SSIM)."""
    metric_type = opt.get("type", "")
    lower = is_clip_metric(metric_type) or metric_type == "calculate_lpips"
    return opt.get("better") or ("lower" if lower else "higher")


def calculate_metric(data: dict[str, Any], opt: dict[str, Any]) -> Any:
    """Score ``data`` (``{'img': output, 'img2': reference}``, or ``{'imgs': ..., 'imgs2': ...}`` for a
    clip metric) with the metric ``opt`` names.

    ``opt['type']`` picks the registered metric; every other key of ``opt``
    is passed as a keyword (metrics ignore keys they do not use, e.g. ``better``).
    """
    opt = copy.deepcopy(dict(opt))
    if "type" not in opt:
        raise KeyError(f"metric options need a 'type' key (one of {', '.join(METRIC_REGISTRY.keys())}); "
                       f"got keys {sorted(opt)}")
    metric = METRIC_REGISTRY.get(opt.pop("type"))
    return metric(**data, **opt)
