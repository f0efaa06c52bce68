"""``python -m vsrt upscale INPUT -o OUTPUT``: upscale a video file or a folder of frames, streaming.

    python -m vsrt upscale in.mp4 -o out.mp4 --model mia_vsr_reds --weights MIAVSR_REDS_x4.pth
    python -m vsrt upscale frames/ -o out_frames/ --opt options/test/X.yml --chunk 8 --tile 128
    python -m vsrt upscale in.mp4 -o out.mp4 --model savsr_vimeo --weights savsr_best.pth --target-size 1080x1920
    python -m vsrt upscale in.mp4 -o out.mp4 --backend onnxruntime --onnx mia_vsr.onnx  # python -m vsrt export

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

``--start`` / ``--frames`` / ``--duration`` pick part of the input (:mod:`vsrt.inference.frame_range`).
Nothing the user wrote is destroyed: ``--force`` replaces a video file, or only the frames a vsrt
manifest lists in a PNG folder (:mod:`vsrt.inference.folder_output`). A video that ends before its
header says is reported (an error with ``--strict``), and a request whose output cannot fit in memory
fails before any work (:mod:`vsrt.utils.memory_check`). Arguments and paths are checked before torch
is imported.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vsrt.inference.folder_output import FolderSink, OutputError, check_folder_output
from vsrt.inference.frame_range import FrameRange, Timestamp
from vsrt.inference.video_stream import InputError

# torch and the networks are imported once the arguments and paths are checked (errors come at once)
__all__ = ["build_parser", "check_output", "main", "upscale"]

logger = logging.getLogger("vsrt")


def _open_sink(args: argparse.Namespace, output: Path, source: Any, rate_factor: int = 1) -> Any:
    from vsrt.inference.video_stream import VideoSink, pick_codec

    if _writes_video(args.output):
        audio = None if args.no_audio else source.audio
        return VideoSink(output, source.fps * rate_factor, pick_codec(args.codec), args.crf,
                         _parse_bitrate(args.bitrate), audio, source)
    if source.audio is not None and not args.no_audio:
        logger.warning("Output %s is a folder of frames: the audio stream is dropped.", output)
    return FolderSink(output, source)


def _writes_video(output: Path | str) -> bool:
    """True for a video file output, False for a folder of PNGs (a name without a suffix, an existing
    folder, or a path ending in a separator); any other suffix (``x.gif``, ``x.png``, ``x.webm``) is
    an error rather than a folder with an odd name."""
    from vsrt.inference.video_stream import WRITABLE_FORMATS

    suffix = Path(output).suffix.lower()
    if suffix in WRITABLE_FORMATS:
        return True
    if not suffix or Path(output).is_dir() or str(output).endswith(("/", "\\")):
        return False
    raise OutputError(f"Cannot write {output}: video outputs are {' '.join(WRITABLE_FORMATS)}; for PNG frames "
                      f"give a folder (a name without a suffix, or ending with /)")


def check_output(text: str, input_path: Path, force: bool) -> bool:
    """All output checks, before any work; returns whether the output is a video file."""
    output = Path(text)
    if not _writes_video(text):
        check_folder_output(output, input_path, force)
        return False
    if output.resolve() == input_path.resolve():
        raise OutputError("the output must differ from the input")
    if output.is_dir():
        raise OutputError(f"{output} is a folder; a video output must be a file path")
    if output.exists() and not force:
        raise FileExistsError(f"{output} exists; use --force to overwrite it")
    return True


def _parse_bitrate(text: str | None) -> int | None:
    if text is None:
        return None
    factor = {"k": 1e3, "m": 1e6}.get(text[-1].lower(), 1)
    try:
        return int(float(text[:-1] if factor != 1 else text) * factor)
    except ValueError:
        raise ValueError(f"--bitrate must look like 8M, 800k or 800000, got {text!r}") from None


def _target_size(text: str | None, writes_video: bool) -> tuple[int, int] | None:
    """``--target-size`` as ``(H, W)``; a video output needs even sizes (yuv420p)."""
    from vsrt.archs.scale import parse_size

    if text is None:
        return None
    height, width = parse_size(text)
    if writes_video and (height % 2 or width % 2):
        raise ValueError(f"--target-size {height}x{width}: a video output (yuv420p) needs an even height and "
                         "width; choose an even size or write PNG frames to a folder")
    return height, width


def upscale(args: argparse.Namespace) -> Any:
    """Run the command described by ``args`` (see :func:`build_parser`); returns the
    :class:`~vsrt.inference.streaming.UpscaleStats`."""
    output, input_path = Path(args.output), Path(args.input)
    writes_video = check_output(args.output, input_path, args.force)  # before any work
    _check_report_path(args.report, output)
    frame_range = FrameRange.from_args(args.start, args.frames, args.duration)
    from vsrt.zoo import check_preset_name

    check_preset_name(args.model)  # a misspelt preset is reported before torch is imported
    from vsrt.inference.exported_backend import check_backend

    backend = check_backend(args)

    from vsrt.archs.tiling import TileConfig
    from vsrt.inference.cli import _pair
    from vsrt.inference.interpolate import interpolate_stream
    from vsrt.inference.loading import load_model, pick_device
    from vsrt.inference.runner import ClipRunner
    from vsrt.inference.spec import resolve_scale
    from vsrt.inference.streaming import calls_per_window, upscale_stream
    from vsrt.inference.video_stream import open_source
    from vsrt.metrics.flicker import FlickerReport

    target_size = _target_size(args.target_size, writes_video)
    output.parent.mkdir(parents=True, exist_ok=True)
    source = open_source(input_path, args.fps)
    try:
        window = 0  # frames of every network call, when the network fixes it (an exported graph)
        if backend == "onnxruntime":
            from vsrt.inference import exported_backend

            device = pick_device("cpu")
            loaded = exported_backend.load_exported_model(args.onnx)
            spec = loaded.spec
            tiles = exported_backend.exported_tiles(args, loaded.net.info, spec)
            if loaded.net.info.scale and args.scale is None and target_size is None:  # the scale it was exported at
                args.scale = "{},{}".format(*loaded.net.info.scale)
        else:
            device = pick_device(args.device)
            loaded = load_model(opt=args.opt, model=args.model, weights=args.weights, device=device,
                                allow_download=not args.no_download)
            spec = loaded.spec
            tiles = TileConfig(tile=_pair(args.tile) or 0, tile_overlap=_pair(args.tile_overlap) or 0,
                               size_multiple=spec.size_multiple)
        if spec.kind == "interpolation":  # frame-rate doubling (vsrt.inference.interpolate)
            if args.report is not None:
                raise ValueError(f"--report measures the chunk and tile borders of upscaling; {loaded.label} "
                                 "interpolates frames")
            if args.scale is not None or target_size is not None:
                raise ValueError(f"{loaded.label} interpolates frames at their own size; "
                                 "drop --scale / --target-size")
            runner = ClipRunner(loaded.net, spec, device, args.precision, tiles, scale=1, compile=args.compile,
                                tf32=args.tf32)
            logger.info("%s is a frame-interpolation network: %s -> %s frames/s", loaded.label,
                        float(source.fps), float(source.fps * 2))
            stats = _stream_to_sink(args, output, source, frame_range, runner, lambda frames, emit, bar:
                                    interpolate_stream(frames, runner, emit, bar), rate_factor=2)
        else:
            runner = ClipRunner(loaded.net, spec, device, args.precision, tiles,
                                resolve_scale(loaded.net, spec, args.scale), args.noise_sigma, target_size,
                                compile=args.compile, tf32=args.tf32)
            scale = runner.scale_for(*source.size)  # a fixed-scale network fails here, before anything is written
            if target_size is not None:
                logger.info("%dx%d -> %dx%d frames (scale %s)", *source.size, *target_size, scale)
            context = args.chunk_overlap if args.chunk_overlap is not None else 4
            if spec.kind == "sliding":
                context = max(context, spec.num_frame // 2)
            chunk = _chunk_length(args.chunk)  # the runner checks that a window's outputs fit, at its first call
            if backend == "onnxruntime":
                chunk, context, window = exported_backend.exported_window(args, loaded.net.info, spec)
                logger.info("chunks of %d frames with %d context frames each side, tiles of %dx%d", chunk, context,
                            *tiles.tile)

            def calls_for(out_frames: int, size: tuple[int, int]) -> int:
                return calls_per_window(spec.kind, tiles, size, out_frames)

            report = None if args.report is None else FlickerReport(chunk, tiles.tile, tiles.tile_overlap)

            def process(frames: Iterable[tuple[np.ndarray, Timestamp]], emit: Callable[..., None], bar: Any) -> Any:
                if report is not None:  # both streams go through the report on their way
                    frames, emit = report_streams(report, frames, emit)
                return upscale_stream(frames, runner, chunk, context, emit, bar, calls_for, window)

            stats = _stream_to_sink(args, output, source, frame_range, runner, process)
            if report is not None:
                write_report(report, Path(args.report))
    finally:
        source.close()
    logger.info("%d frames in, %d frames out in %.1f s (%.2f frames/s) -> %s", stats.frames_in,
                stats.frames_out, stats.seconds, stats.frames_out / max(stats.seconds, 1e-9), output)
    return stats


StreamFn = Callable[[Iterable[tuple[np.ndarray, Timestamp]], Callable[[np.ndarray, Timestamp], None], Any], Any]


def _stream_to_sink(args: argparse.Namespace, output: Path, source: Any, frame_range: FrameRange, runner: Any,
                    process: StreamFn, rate_factor: int = 1) -> Any:
    """``process(frames, emit, progress)`` from ``source`` into the output sink (audio copied), which is
    published on success and removed on any failure. A source that ends before its header says
    (a truncated file) is a warning, and an error with ``--strict``."""
    from tqdm import tqdm

    from vsrt.inference.streaming import ChunkProgress

    total = frame_range.expected(source.total, source.fps)
    bar_format = ("{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"
                  if total else "{desc}: {n:.1f} frames [{elapsed}, {rate_fmt}]")
    sink = _open_sink(args, output, source, rate_factor)
    try:
        with tqdm(total=total, unit="frame", disable=args.quiet, desc=Path(args.input).name,
                  bar_format=bar_format) as bar:
            progress = ChunkProgress(bar)
            progress.watch(runner)  # moves the bar per network call (tile / frame), not only per chunk
            frames = source.frames(on_audio=sink.mux_audio if sink.wants_audio else None, frame_range=frame_range)
            stats = process(frames, sink.write, progress)
        shortfall = source.missing_frames()
        if shortfall and args.strict:
            raise InputError(f"{shortfall} (--strict: no output written)")
        if shortfall:
            logger.warning("%s; the output has only the %d frames decoded (--strict makes this an error)",
                           shortfall, stats.frames_in)
        sink.close()
    except BaseException:
        sink.abort()
        raise
    return stats


def _check_report_path(report: str | None, output: Path) -> None:
    if report is None:
        return
    path = Path(report)
    if path.suffix.lower() != ".json":
        raise ValueError(f"--report {report}: the flicker report is a JSON file; give a name ending in .json")
    if path.resolve() == output.resolve() or path.is_dir():
        raise ValueError(f"--report {report} must be a file other than the output")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--report {report}: folder {path.parent} does not exist")


def report_streams(report: Any, frames: Iterable[tuple[np.ndarray, Timestamp]],
                   emit: Callable[[np.ndarray, Timestamp], None]) -> tuple[Any, Any]:
    """The input frames and the output callback, feeding a :class:`~vsrt.metrics.flicker.FlickerReport`."""
    def inputs() -> Any:
        for frame, timestamp in frames:
            report.add_input(frame)
            yield frame, timestamp

    def outputs(frame: np.ndarray, timestamp: Timestamp) -> None:
        report.add_output(frame)
        emit(frame, timestamp)

    return inputs(), outputs


def write_report(report: Any, path: Path) -> None:
    import json

    from vsrt.metrics.flicker import format_summary

    summary = report.summary()
    path.write_text(json.dumps(summary, indent=2))
    print(format_summary(summary))
    print(f"wrote the flicker report to {path}")


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
    from vsrt import program_name
    from vsrt.inference.cli import add_model_arguments

    parser = argparse.ArgumentParser(prog=program_name("upscale", "python -m vsrt upscale"),
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="video file (.mp4 .mov .mkv .avi .webm ...) or folder of frames")
    parser.add_argument("-o", "--output", required=True,
                        help="video file (.mp4 .m4v .mov .mkv .avi), or a folder for PNG frames (a name without "
                        "a suffix, an existing folder, or a path ending in /); other suffixes are an error")
    source = add_model_arguments(parser)
    source.add_argument("--onnx", metavar="FILE",
                        help="an exported model (python -m vsrt export) to run with ONNX Runtime instead")
    parser.add_argument("--backend", choices=("pytorch", "onnxruntime"),
                        help="what runs the network (default: onnxruntime with --onnx, else pytorch)")
    parser.add_argument("--codec", help="video codec (default libx264, else mpeg4)")
    parser.add_argument("--crf", type=int, help="constant rate factor (x264: 0-51, lower is better)")
    parser.add_argument("--bitrate", help="target bitrate, e.g. 8M")
    parser.add_argument("--fps", type=float, help="frame rate of a folder input (default 25)")
    parser.add_argument("--no-audio", action="store_true", help="do not copy the audio stream")
    parser.add_argument("--force", action="store_true",
                        help="replace OUTPUT: a video file, or the frames (and manifest) an earlier vsrt run wrote "
                        "into an OUTPUT folder; other files there are kept")
    parser.add_argument("--start", metavar="FRAME|TIME",
                        help="first input frame: a frame number (250) or a time (10s, 1:30, 0:01:30.5)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--frames", type=int, metavar="N", help="process at most N input frames")
    length.add_argument("--duration", metavar="TIME", help="process at most this much video (10s, 1:30)")
    parser.add_argument("--strict", action="store_true",
                        help="fail (no output) when a video holds fewer frames than its header says (truncated "
                        "file) instead of warning")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--report", metavar="FILE.json",
                        help="measure flicker at the chunk borders and tile seams (temporal difference there vs "
                        "elsewhere; docs/metrics.md), print it and write it to FILE.json")
    parser.epilog = ("Here --chunk is the number of output frames per network call (default 16; 0 = the whole "
                     "video at once, memory growing with its length) and --chunk-overlap the context frames on "
                     "each side whose outputs are discarded (default 4).")
    return parser


def main(argv: list[str] | None = None) -> Any:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        return upscale(args)
    except Exception as err:
        if not _expected(err):
            raise
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        raise SystemExit(2) from None


def _expected(err: Exception) -> bool:
    """Errors that are the user's to fix, reported in one line (no traceback)."""
    if isinstance(err, (InputError, FileExistsError, FileNotFoundError, ValueError, KeyError)):
        return True
    safe_load = sys.modules.get("vsrt.utils.safe_load")  # loaded with the weights; importing it here costs torch
    return safe_load is not None and isinstance(err, safe_load.CheckpointError)
