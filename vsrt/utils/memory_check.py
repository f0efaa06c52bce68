"""Fail before any work when the output alone cannot fit in memory.

An absurd request (SAVSR at ``--scale 1000`` on 64x64 frames: 64000x64000 outputs, about 49 GB per
float32 frame) would otherwise start, allocate for minutes and die with an out-of-memory error or
take the machine down. The estimate is a rough lower bound: the float32 output frames that must
exist at once (the frames of one network window, which :func:`vsrt.archs.tiling.tiled_inference`
accumulates whole even when tiled) plus one 64-channel feature map at output size per network call
(the upsamplers' last one); the real peak is higher.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from vsrt.archs.scale import as_scale_pair


class TooLargeError(ValueError):
    """The request needs more memory than the machine has."""


def format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1000
    raise AssertionError("unreachable")


def available_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` (CUDA: the driver's count; CPU: MemAvailable); None when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


FEATURE_CHANNELS = 64  # the upsamplers' last feature maps (BasicVSR, PSRT, MIA-VSR, SAVSR: 64 channels)


def output_size(lq_size: tuple[int, int], scale: Any) -> tuple[int, int]:
    scale_h, scale_w = as_scale_pair(scale)
    return math.ceil(lq_size[0] * scale_h), math.ceil(lq_size[1] * scale_w)


def output_bytes(spec: Any, lq_size: tuple[int, int], scale: Any, window_frames: int, out_frames: int) -> int:
    """Float32 bytes of the output frames held at once: the whole window (recurrent and windowed
    networks), the chunk's frames (sliding-window networks) or one frame (interpolation)."""
    height, width = output_size(lq_size, scale)
    frames = {"sliding": out_frames, "interpolation": 1}.get(spec.kind, window_frames)
    return frames * 3 * height * width * 4


def activation_bytes(lq_size: tuple[int, int], scale: Any, tile: tuple[int, int] = (0, 0)) -> int:
    """Float32 bytes of one feature map at output resolution for one network call (one tile)."""
    call_size = (min(tile[0] or lq_size[0], lq_size[0]), min(tile[1] or lq_size[1], lq_size[1]))
    height, width = output_size(call_size, scale)
    return FEATURE_CHANNELS * height * width * 4


def check_fits(spec: Any, lq_size: tuple[int, int], scale: Any, window_frames: int, out_frames: int,
               device: torch.device, tile: tuple[int, int] = (0, 0), available: int | None = None,
               outputs_on: torch.device | None = None) -> None:
    """Raise :class:`TooLargeError` naming the estimate when one network window cannot fit: its output
    frames (gathered on ``outputs_on``, default the CPU) plus one feature map at output size (on ``device``, where the
    network runs). ``spec`` is a :class:`vsrt.archs.spec.ModelSpec` (``arch`` and ``kind`` are used)."""
    outputs, features = output_bytes(spec, lq_size, scale, window_frames, out_frames), \
        activation_bytes(lq_size, scale, tile)
    needs: dict[str, int] = {}
    for place, count in ((outputs_on or torch.device("cpu"), outputs), (device, features)):
        key = "cpu" if place.type == "cpu" else str(place)
        needs[key] = needs.get(key, 0) + count
    for where, need in needs.items():
        free = available if available is not None else available_memory(torch.device(where))
        if free is None or need <= free:
            continue
        (out_h, out_w), (scale_h, scale_w) = output_size(lq_size, scale), as_scale_pair(scale)
        raise TooLargeError(
            f"{spec.arch} at scale {scale_h:g}x{scale_w:g} turns {lq_size[0]}x{lq_size[1]} frames into "
            f"{out_h}x{out_w}; one network call needs at least {format_bytes(need)} on {where} (output frames "
            f"{format_bytes(outputs)}, one {FEATURE_CHANNELS}-channel feature map at output size "
            f"{format_bytes(features)}), but {format_bytes(free)} is available. Use a smaller --scale / "
            "--target-size, --tile, or fewer frames per call (--chunk, --chunk-overlap).")
