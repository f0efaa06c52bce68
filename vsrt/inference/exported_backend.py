"""``vsrt upscale --backend onnxruntime --onnx FILE``: an exported graph behind the streaming upscaler.

The graph (``python -m vsrt export``) takes clips of a fixed length and frame size, so the upscaler
feeds it exactly that: windows of the exported length (:func:`vsrt.inference.streaming.upscale_stream`
``window``), tiles of the exported size (smaller frames are padded, :mod:`vsrt.export.runtime`).
The file's metadata says which frame protocol and scale it has; no option file is needed.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

logger = logging.getLogger("vsrt")
BACKENDS = ("pytorch", "onnxruntime")


def check_backend(args: argparse.Namespace) -> str:
    """The backend ``args`` ask for, or a ValueError naming the conflicting flags (no torch import)."""
    backend = args.backend or ("onnxruntime" if args.onnx else "pytorch")
    if backend == "onnxruntime" and not args.onnx:
        raise ValueError("--backend onnxruntime runs an exported file: give it with --onnx FILE "
                         "(python -m vsrt export ... -o FILE.onnx)")
    if backend == "pytorch" and args.onnx:
        raise ValueError("--onnx runs on ONNX Runtime: drop --backend pytorch (or give --opt / --model instead)")
    if backend == "pytorch":
        return backend
    if not str(args.onnx).endswith(".onnx"):
        raise ValueError(f"--onnx {args.onnx}: expected a .onnx file written by python -m vsrt export")
    fixed = {"--weights": args.weights, "--compile": args.compile,
             "--precision": args.precision if args.precision != "fp32" else None,
             "--device": args.device if args.device not in ("auto", "cpu") else None}
    given = [flag for flag, value in fixed.items() if value]
    if given:
        raise ValueError(f"{', '.join(given)}: fixed in the exported file or not available with --backend "
                         "onnxruntime (it runs on the CPU, at the precision it was exported with)")
    return backend


def load_exported_model(path: str) -> Any:
    """A :class:`vsrt.inference.loading.LoadedModel` whose network runs the exported file."""
    from pathlib import Path

    from vsrt.export.runtime import load_exported
    from vsrt.inference.loading import LoadedModel

    net = load_exported(path)
    info = net.info
    logger.info("%s: %s exported for %d frames of %dx%d (%s)", path, info.label, info.frames, *info.size,
                info.precision)
    return LoadedModel(net, info.network_g, info.model_spec(), info.label, Path(path))


def exported_tiles(args: argparse.Namespace, info: Any, spec: Any) -> Any:
    """Tiles no larger than the exported frame size (default: that size, overlapping by 1/8 of it)."""
    from vsrt.archs.tiling import TileConfig
    from vsrt.inference.cli import _pair

    if info.scale and not all(float(s).is_integer() for s in info.scale):  # output tiles would not align
        if args.tile:
            raise ValueError(f"--tile: {args.onnx} upscales by x{info.scale[0]:g}/x{info.scale[1]:g}, and "
                             "non-integer scales cannot be tiled")
        return TileConfig()
    tile = TileConfig(tile=_pair(args.tile) or tuple(info.size)).tile  # S or (H, W) as (H, W)
    if tile[0] > info.size[0] or tile[1] > info.size[1]:
        raise ValueError(f"--tile {tile[0]} {tile[1]}: {args.onnx} takes frames of at most {info.size[0]}x"
                         f"{info.size[1]}")
    default_overlap = tuple(_round_up(max(t // 8, 1), m) for t, m in zip(tile, spec.size_multiple[1:]))
    overlap = _pair(args.tile_overlap) or default_overlap
    return TileConfig(tile=tile, tile_overlap=overlap, size_multiple=spec.size_multiple)


def exported_window(args: argparse.Namespace, info: Any, spec: Any) -> tuple[int, int, int]:
    """``(chunk, context, window)`` for :func:`~vsrt.inference.streaming.upscale_stream`: windows of the
    exported length for recurrent and VRT graphs; sliding-window graphs take their own windows."""
    if spec.kind == "sliding":
        context = max(args.chunk_overlap or 0, spec.num_frame // 2)
        return args.chunk or 16, context, 0
    window = info.frames
    context = args.chunk_overlap if args.chunk_overlap is not None else min(4, (window - 1) // 2)
    chunk = args.chunk or window - 2 * context
    if args.chunk == 0 or chunk < 1 or chunk + 2 * context > window:
        raise ValueError(f"--chunk {args.chunk} --chunk-overlap {context}: {args.onnx} takes windows of exactly "
                         f"{window} frames, so chunk + 2 * overlap must be between 1 and {window}")
    return chunk, context, window


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple
