"""``python -m vsrt upscale INPUT -o OUTPUT``: upscale a video file or a folder of frames, streaming.

    python -m vsrt upscale in.mp4 -o out.mp4 --model mia_vsr_reds --weights MIAVSR_REDS_x4.pth
    python -m vsrt upscale frames/ -o out_frames/ --opt options/test/X.yml --chunk 8 --tile 128
    python -m vsrt upscale in.mp4 -o out.mp4 --model savsr_vimeo --weights savsr_best.pth --target-size 1080x1920

Frames are decoded, upscaled and encoded chunk by chunk, so memory depends on ``--chunk``,
``--chunk-overlap`` and ``--tile``, never on the video length. Every network call sees
``chunk + 2 * overlap`` frames: the ``overlap`` frames on each side are context (recurrent
propagation, VRT's temporal attention) and their outputs are discarded; only the ``chunk`` centre
frames are kept. Sliding-window networks (SAVSR) get at least ``num_frame // 2`` context frames,
which makes the result identical to processing the whole video at once.

Video output keeps the input's frame timestamps (so its frame rate) and copies its first audio
stream; it is written to a temporary file in the output folder and renamed at the end.

A frame-interpolation network (``vrt_vfi_vimeo``) doubles the frame rate instead: the input frames
are kept and a new frame is inserted halfway between each pair (:mod:`vsrt.inference.interpolate`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsrt.inference.video_stream import InputError, Timestamp
from vsrt.utils import tensor2img

logger = logging.getLogger("vsrt")


@dataclass
class UpscaleStats:
    frames_in: int = 0
    frames_out: int = 0
    max_buffered_frames: int = 0  # LQ frames held at once
    max_window_frames: int = 0  # frames given to one network call
    seconds: float = 0.0


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    """uint8 BGR ``(h, w, 3)`` -> float32 RGB ``(3, h, w)`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frame[..., ::-1])).permute(2, 0, 1).float().div_(255.0)


def upscale_stream(frames: Iterable[tuple[np.ndarray, Timestamp]], runner: Callable[..., torch.Tensor],
                   chunk: int, context: int, emit: Callable[[np.ndarray, Timestamp], None],
                   progress: Any = None) -> UpscaleStats:
    """Upscale ``frames`` chunk by chunk and ``emit`` every output frame in order.

    ``runner(lq (t, c, h, w), frames=[...])`` returns the outputs of the listed frames of its
    window (:class:`vsrt.inference.runner.ClipRunner`). At most ``chunk + 2 * context`` input
    frames are held.
    """
    if chunk < 1 or context < 0:
        raise ValueError(f"chunk must be >= 1 and overlap >= 0, got {chunk} and {context}")
    stats, start_time = UpscaleStats(), time.perf_counter()
    source = iter(frames)
    buffer: deque[tuple[np.ndarray, Timestamp]] = deque()
    buffer_start, next_out, exhausted = 0, 0, False
    while True:
        wanted_end = next_out + chunk + context
        while not exhausted and buffer_start + len(buffer) < wanted_end:
            item = next(source, None)
            if item is None:
                exhausted = True
            else:
                buffer.append(item)
                stats.frames_in += 1
        stats.max_buffered_frames = max(stats.max_buffered_frames, len(buffer))
        available_end = buffer_start + len(buffer)
        if next_out >= available_end:
            break
        out_end = min(next_out + chunk, available_end)
        window_start = max(0, next_out - context)
        window = [buffer[i - buffer_start][0] for i in range(window_start, min(wanted_end, available_end))]
        stats.max_window_frames = max(stats.max_window_frames, len(window))
        lq = torch.stack([to_tensor(f) for f in window])  # (t, 3, h, w)
        outputs = runner(lq, frames=range(next_out - window_start, out_end - window_start))
        del lq
        for k, index in enumerate(range(next_out, out_end)):
            emit(tensor2img(outputs[k]), buffer[index - buffer_start][1])
            stats.frames_out += 1
        if progress is not None:
            progress.update(out_end - next_out)
        next_out = out_end
        while buffer and buffer_start < next_out - context:  # keep the left context of the next chunk
            buffer.popleft()
            buffer_start += 1
    stats.seconds = time.perf_counter() - start_time
    return stats


def _open_sink(args: argparse.Namespace, output: Path, source: Any, rate_factor: int = 1) -> Any:
    from vsrt.inference.video_stream import FolderSink, VideoSink, pick_codec

    if _writes_video(output):
        audio = None if args.no_audio else source.audio
        return VideoSink(output, source.fps * rate_factor, pick_codec(args.codec), args.crf,
                         _parse_bitrate(args.bitrate), audio, source)
    if source.audio is not None and not args.no_audio:
        logger.warning("Output %s is a folder of frames: the audio stream is dropped.", output)
    return FolderSink(output, source)


def _writes_video(output: Path) -> bool:
    """True for a video file output, False for a folder of PNGs; other video suffixes are an error."""
    from vsrt.data.video_io import is_video_file
    from vsrt.inference.video_stream import WRITABLE_FORMATS

    suffix = output.suffix.lower()
    if suffix in WRITABLE_FORMATS:
        return True
    if is_video_file(output):
        raise ValueError(f"Cannot write {output}: video outputs are {' '.join(WRITABLE_FORMATS)} "
                         "(or give a folder for PNG frames)")
    return False


def _parse_bitrate(text: str | None) -> int | None:
    if text is None:
        return None
    factor = {"k": 1e3, "m": 1e6}.get(text[-1].lower(), 1)
    try:
        return int(float(text[:-1] if factor != 1 else text) * factor)
    except ValueError:
        raise ValueError(f"--bitrate must look like 8M, 800k or 800000, got {text!r}") from None


def _target_size(text: str | None, output: Path) -> tuple[int, int] | None:
    """``--target-size`` as ``(H, W)``; a video output needs even sizes (yuv420p)."""
    from vsrt.archs.scale import parse_size

    if text is None:
        return None
    height, width = parse_size(text)
    if _writes_video(output) and (height % 2 or width % 2):
        raise ValueError(f"--target-size {height}x{width}: a video output (yuv420p) needs an even height and "
                         "width; choose an even size or write PNG frames to a folder")
    return height, width


def upscale(args: argparse.Namespace) -> UpscaleStats:
    """Run the command described by ``args`` (see :func:`build_parser`)."""
    from vsrt.archs.tiling import TileConfig
    from vsrt.inference.cli import _pair
    from vsrt.inference.loading import load_model, pick_device
    from vsrt.inference.runner import ClipRunner
    from vsrt.inference.spec import resolve_scale
    from vsrt.inference.video_stream import open_source

    output, input_path = Path(args.output), Path(args.input)
    if output.exists() and not args.force:
        raise FileExistsError(f"{output} exists; use --force to overwrite it")
    if output.resolve() == input_path.resolve():
        raise ValueError("the output must differ from the input")
    _writes_video(output)  # an unwritable video suffix fails before any work
    target_size = _target_size(args.target_size, output)
    output.parent.mkdir(parents=True, exist_ok=True)
    source = open_source(input_path, args.fps)
    try:
        device = pick_device(args.device)
        loaded = load_model(opt=args.opt, model=args.model, weights=args.weights, device=device,
                            allow_download=not args.no_download)
        spec = loaded.spec
        tiles = TileConfig(tile=_pair(args.tile) or 0, tile_overlap=_pair(args.tile_overlap) or 0,
                           size_multiple=spec.size_multiple)
        if spec.kind == "interpolation":  # frame-rate doubling (vsrt.inference.interpolate)
            from vsrt.inference.interpolate import interpolate_stream

            if args.scale is not None or target_size is not None:
                raise ValueError(f"{loaded.label} interpolates frames at their own size; "
                                 "drop --scale / --target-size")
            runner = ClipRunner(loaded.net, spec, device, args.precision, tiles, scale=1)
            logger.info("%s is a frame-interpolation network: %s -> %s frames/s", loaded.label,
                        float(source.fps), float(source.fps * 2))
            stats = _stream_to_sink(args, output, source, lambda frames, emit, bar: interpolate_stream(
                frames, runner, emit, bar), rate_factor=2)
        else:
            runner = ClipRunner(loaded.net, spec, device, args.precision, tiles,
                                resolve_scale(loaded.net, spec, args.scale), args.noise_sigma, target_size)
            if target_size is not None:  # a fixed-scale network fails here, before anything is written
                logger.info("%dx%d -> %dx%d frames (scale %s)", *source.size, *target_size,
                            runner.scale_for(*source.size))
            context = args.chunk_overlap if args.chunk_overlap is not None else 4
            if spec.kind == "sliding":
                context = max(context, spec.num_frame // 2)
            chunk = _chunk_length(args.chunk)
            stats = _stream_to_sink(args, output, source, lambda frames, emit, bar: upscale_stream(
                frames, runner, chunk, context, emit, bar))
    finally:
        source.close()
    logger.info("%d frames in, %d frames out in %.1f s (%.2f frames/s) -> %s", stats.frames_in,
                stats.frames_out, stats.seconds, stats.frames_out / max(stats.seconds, 1e-9), output)
    return stats


StreamFn = Callable[[Iterable[tuple[np.ndarray, Timestamp]], Callable[[np.ndarray, Timestamp], None], Any],
                    UpscaleStats]


def _stream_to_sink(args: argparse.Namespace, output: Path, source: Any, process: StreamFn,
                    rate_factor: int = 1) -> UpscaleStats:
    """``process(frames, emit, progress_bar)`` from ``source`` into the output sink (audio copied),
    which is published on success and removed on any failure."""
    from tqdm import tqdm

    sink = _open_sink(args, output, source, rate_factor)
    try:
        with tqdm(total=source.total, unit="frame", disable=args.quiet, desc=Path(args.input).name) as bar:
            stats = process(source.frames(on_audio=sink.mux_audio if sink.wants_audio else None), sink.write, bar)
        sink.close()
    except BaseException:
        sink.abort()
        raise
    return stats


def _chunk_length(chunk: int | None) -> int:
    """``--chunk``: 16 by default; 0 means the whole video in one call (memory then grows with its length)."""
    if chunk is None:
        return 16
    if chunk == 0:
        logger.warning("--chunk 0: the whole video goes through the network at once; memory grows with its "
                       "length (the official protocol of recurrent models, for short clips)")
        return sys.maxsize
    return chunk


def build_parser() -> argparse.ArgumentParser:
    from vsrt.inference.cli import add_model_arguments

    parser = argparse.ArgumentParser(prog="python -m vsrt upscale", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="video file (.mp4 .mov .mkv .avi .webm ...) or folder of frames")
    parser.add_argument("-o", "--output", required=True,
                        help="video file (.mp4 .m4v .mov .mkv .avi), or a folder for PNG frames")
    add_model_arguments(parser)
    parser.add_argument("--codec", help="video codec (default libx264, else mpeg4)")
    parser.add_argument("--crf", type=int, help="constant rate factor (x264: 0-51, lower is better)")
    parser.add_argument("--bitrate", help="target bitrate, e.g. 8M")
    parser.add_argument("--fps", type=float, help="frame rate of a folder input (default 25)")
    parser.add_argument("--no-audio", action="store_true", help="do not copy the audio stream")
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.epilog = ("Here --chunk is the number of output frames per network call (default 16; 0 = the whole "
                     "video at once, memory growing with its length) and --chunk-overlap the context frames on "
                     "each side whose outputs are discarded (default 4).")
    return parser


def main(argv: list[str] | None = None) -> UpscaleStats:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        return upscale(args)
    except (InputError, FileExistsError, FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        raise SystemExit(2) from None
