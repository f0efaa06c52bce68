"""Clips on disk: a folder of frames or a video file (read and written with PyAV).

Frames are uint8 BGR ``(h, w, 3)`` arrays, the layout ``cv2.imread`` gives, so
frames from videos and from image folders go through the same code. ``av`` is
imported inside the functions: importing vsrt never needs it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vsrt.data.data_util import check_same_size, list_images, read_image

# containers read through PyAV (FFmpeg); the upscaler writes the first five
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts",
                    ".wmv", ".flv", ".3gp")
PathLike = str | os.PathLike


def is_video_file(path: PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def read_video(path: PathLike) -> list[np.ndarray]:
    """Decode every frame of the first video stream of ``path``."""
    import av

    if not os.path.isfile(path):
        raise FileNotFoundError(f"Video not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"No video stream in {path}")
            frames = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    except av.FFmpegError as err:
        raise ValueError(f"Cannot decode video {path}: {err}") from err
    if not frames:
        raise ValueError(f"Video {path} has no frames")
    return frames


def write_video(path: PathLike, frames: Sequence[np.ndarray], fps: float = 25.0, codec: str = "libx264",
                pix_fmt: str = "yuv420p", options: dict[str, str] | None = None) -> None:
    """Encode uint8 BGR frames. ``codec='ffv1', pix_fmt='bgr0'`` in ``.mkv`` is lossless."""
    from fractions import Fraction

    import av

    if not frames:
        raise ValueError(f"No frames to write to {path}")
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if options:
            stream.options = dict(options)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():  # flush the encoder
            container.mux(packet)


def list_clips(root: PathLike) -> dict[str, Path]:
    """Clips under ``root``: each sub-folder (frames) or video file, keyed by its name without extension."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Clip folder not found: {root}")
    clips: dict[str, Path] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() or (entry.is_file() and is_video_file(entry)):
            name = entry.stem if entry.is_file() else entry.name
            if name in clips:
                raise ValueError(f"Two clips named '{name}' in {root}: {clips[name].name} and {entry.name}")
            clips[name] = entry
    if not clips:
        raise ValueError(f"No clips (frame folders or {', '.join(VIDEO_EXTENSIONS)} files) in {root}")
    return clips


def _check_indices(indices: Sequence[int], num_frames: int, path: PathLike) -> None:
    if indices and (max(indices) >= num_frames or min(indices) < 0):
        raise IndexError(f"Clip {path} has {num_frames} frames; frames {list(indices)} were asked for")


def read_clip(path: PathLike, indices: Sequence[int] | None = None) -> list[np.ndarray]:
    """Frames of a clip folder or video (all, or those at ``indices``), all of one size."""
    if is_video_file(path):
        frames = read_video(path)
        names = [f"{path}#frame{i}" for i in range(len(frames))]
        if indices is not None:
            _check_indices(indices, len(frames), path)
            frames, names = [frames[i] for i in indices], [names[i] for i in indices]
    else:
        names = list_images(path)
        if indices is not None:  # read only the requested files
            _check_indices(indices, len(names), path)
            names = [names[i] for i in indices]
        frames = [read_image(p) for p in names]
    check_same_size(frames, names, f"clip {path}")
    return frames
