"""The official VRT test protocol (``main_test_vrt.py::test_video``) on the shared tiling.

``test_video(lq, model, args)`` keeps the official signature so that scripts (and the
parity checker's ``--procedure``) can call it; the work is done by
:func:`vsrt.archs.tiling.tiled_inference`.
"""

from __future__ import annotations

from typing import Any

import torch

from vsrt.archs.tiling import TileConfig, tiled_inference

# README test commands: task -> (tile [frames, px, px], tile_overlap [frames, px, px]) for the
# main benchmark (Vimeo-90K-T SR uses ([8, 0, 0], [0, 20, 20]); DAVIS-train VFI ([0, 256, 256], [0, 20, 20]))
OFFICIAL_TEST_TILES: dict[str, tuple[list[int], list[int]]] = {
    "001_VRT_videosr_bi_REDS_6frames": ([40, 128, 128], [2, 20, 20]),
    "002_VRT_videosr_bi_REDS_16frames": ([40, 128, 128], [2, 20, 20]),
    "003_VRT_videosr_bi_Vimeo_7frames": ([32, 128, 128], [2, 20, 20]),
    "004_VRT_videosr_bd_Vimeo_7frames": ([32, 128, 128], [2, 20, 20]),
    "005_VRT_videodeblurring_DVD": ([12, 256, 256], [2, 20, 20]),
    "006_VRT_videodeblurring_GoPro": ([18, 192, 192], [2, 20, 20]),
    "007_VRT_videodeblurring_REDS": ([12, 256, 256], [2, 20, 20]),
    "008_VRT_videodenoising_DAVIS": ([12, 256, 256], [2, 20, 20]),
    "009_VRT_videofi_Vimeo_4frames": ([0, 0, 0], [0, 0, 0]),
}


def test_video(lq: torch.Tensor, model: Any, args: Any) -> torch.Tensor:
    """Chunked / tiled VRT inference with the official ``args``.

    ``args`` has ``tile`` ([frames, patch, patch]), ``tile_overlap`` ([frames, px, px]),
    ``scale`` and ``window_size``; ``nonblind_denoising`` is not needed (output channels
    are taken from the model's output). ``model`` is any callable on ``(n, t, c, h, w)``.
    Outputs are accumulated in float32 on the CPU, as in the official script.
    """
    config = TileConfig.from_vrt_args(args.tile, args.tile_overlap, args.window_size)
    return tiled_inference(model, lq, args.scale, config, output_device="cpu")


test_video.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
