"""Frame-by-frame video input and output for the streaming upscaler.

Sources yield ``(frame, timestamp)`` one at a time (uint8 BGR ``(h, w, 3)``; a timestamp is
``(pts, time_base)`` of the input frame), so memory never depends on the video length. Sinks write
to a temporary file (or folder) next to the output and rename it on :meth:`close`; :meth:`abort`
removes it. ``av`` (PyAV) is imported only here, when a video is read or written; ``vsrt.data``
(and so torch) only when frames are read, so the upscaler's argument errors come quickly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vsrt.inference.frame_range import STOP, WHOLE, FrameRange, FrameSelector
from vsrt.publish import publish

logger = logging.getLogger("vsrt")
Timestamp = tuple[int, Fraction]
# (colorspace, primaries, transfer) codes of FFmpeg's AVCOL_* enums
HD_COLOR_TAG = (1, 1, 1)  # BT.709
SD_COLOR_TAG = (6, 6, 6)  # SMPTE 170M (BT.601, 525 lines)
UNSPECIFIED = 2
_CLOCK_TAG = re.compile(r"^(\d+):(\d+):(\d+(?:\.\d+)?)$")  # Matroska DURATION: HH:MM:SS.nnnnnnnnn


class InputError(ValueError):
    """The input cannot be read (missing, not a video, no video stream, no frames)."""


class VideoFileSource:
    """Decode a video file lazily; audio packets of the first audio stream go to ``on_audio``."""

    def __init__(self, path: str | os.PathLike) -> None:
        import av

        self.path = Path(path)
        try:
            self.container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as err:
            raise InputError(f"Cannot read video {self.path}: {err}") from err
        if not self.container.streams.video:
            self.container.close()
            raise InputError(f"No video stream in {self.path}")
        self.video = self.container.streams.video[0]
        self.audio = self.container.streams.audio[0] if self.container.streams.audio else None
        self.fps = Fraction(self.video.average_rate or self.video.guessed_rate or 25)
        self.size = (self.video.codec_context.height, self.video.codec_context.width)
        # counter-clockwise display rotation (phone videos: +-90), known once a frame is decoded
        self.rotation = 0
        self.decoded = 0  # frames decoded so far (skipped ones included)
        self.decoded_until: Fraction | None = None  # end time of the last decoded frame (seconds)
        self.reached_end = self.seeked = False

    @property
    def total(self) -> int | None:
        """Frame count from the container (an estimate from the duration when not stored)."""
        if self.video.frames:
            return int(self.video.frames)
        if self.video.duration and self.video.time_base:
            return round(float(self.video.duration * self.video.time_base * self.fps))
        return None

    def frames(self, on_audio: Any = None,
               frame_range: FrameRange = WHOLE) -> Iterator[tuple[np.ndarray, Timestamp]]:
        """Decoded frames of ``frame_range`` (a time start seeks to the keyframe before it first)."""
        import av

        selector = FrameSelector(frame_range, self.fps)
        if frame_range.start_seconds:
            self._seek(frame_range.start_seconds)
        streams = [self.video] + ([self.audio] if self.audio is not None and on_audio is not None else [])
        try:
            for packet in self.container.demux(*streams):
                if packet.stream.type == "audio":
                    if packet.dts is not None:  # skip the demuxer's empty flush packets
                        selector.audio(packet, on_audio)
                    continue
                for frame in packet.decode():
                    if self.decoded == 0:
                        self.rotation = int(getattr(frame, "rotation", 0) or 0)
                    time_base = Fraction(frame.time_base or Fraction(1) / self.fps)
                    pts = frame.pts if frame.pts is not None else self.decoded
                    self.decoded += 1
                    self.decoded_until = pts * time_base + 1 / self.fps
                    kept = selector.take((pts, time_base))
                    if kept is STOP:
                        return
                    if kept is not None:
                        yield to_bgr(frame), kept
        except av.FFmpegError as err:
            raise InputError(f"Cannot decode {self.path}: {err}") from err
        if self.decoded == 0:
            raise InputError(f"Video {self.path} has no frames")
        if selector.kept == 0:
            raise InputError(f"{self.path} has no frames in the range asked for (--start; "
                             f"{self.decoded} frames decoded)")
        self.reached_end, self.seeked = True, bool(frame_range.start_seconds)

    def _seek(self, seconds: float) -> None:
        """Jump to the keyframe at or before ``seconds`` (frames before the start are then skipped)."""
        base = Fraction(self.video.time_base)
        start = Fraction(self.video.start_time or 0) * base
        self.container.seek(int((start + Fraction(seconds).limit_denominator(10**6)) / base), backward=True,
                            any_frame=False, stream=self.video)

    def missing_frames(self) -> str | None:
        """After decoding to the end: a message when the file holds fewer frames than its header says
        (a cut-off download or copy), else None.

        The video stream's own duration is used where the file has one (MP4, MOV, AVI; Matroska's
        ``DURATION`` tag); otherwise the container's, which also covers the audio, so half a second
        more is tolerated there (audio often outlasts the video a little).
        """
        if not self.reached_end or self.decoded_until is None:
            return None
        base, fps = Fraction(self.video.time_base or 0), float(self.fps)
        start = Fraction(self.video.start_time or 0) * base
        declared, margin = self._declared_duration(base), 2 / fps
        if declared is None and self.container.duration:  # microseconds, all streams
            declared = ((self.container.start_time or 0) + self.container.duration) / 1e6 - float(start)
            margin += 0.5
        if declared is None:
            if self.video.frames and not self.seeked and self.decoded < self.video.frames:
                return (f"{self.path}: {self.decoded} frames decoded, the header says {self.video.frames}; "
                        "the file looks truncated or damaged")
            return None
        decoded = float(self.decoded_until - start)
        if declared - decoded < margin:  # durations are rounded; a frame or two is within their precision
            return None
        return (f"{self.path}: decoding stopped at {decoded:.2f} s of {declared:.2f} s (about "
                f"{round((declared - decoded) * fps)} frames missing); the file looks truncated or damaged")

    def _declared_duration(self, base: Fraction) -> float | None:
        """The video stream's duration in seconds from its header or Matroska's DURATION tag."""
        if self.video.duration and base:
            return float(self.video.duration * base)
        tag = _CLOCK_TAG.match(str(self.video.metadata.get("DURATION", "")))
        return int(tag[1]) * 3600 + int(tag[2]) * 60 + float(tag[3]) if tag else None

    def close(self) -> None:
        self.container.close()


def to_bgr(frame: Any) -> np.ndarray:
    """A decoded frame as uint8 BGR, with the YUV matrix its tags name; untagged frames get the one
    players assume (BT.709 from 720p up, BT.601 below), so the colours are the ones the user saw."""
    if getattr(frame, "colorspace", UNSPECIFIED) == UNSPECIFIED and (frame.height >= 720 or frame.width >= 1280):
        return frame.reformat(format="bgr24", src_colorspace="ITU709").to_ndarray()
    return frame.to_ndarray(format="bgr24")


class FolderSource:
    """Frames of an image folder in sorted order, at ``fps`` frames per second."""

    audio = None
    rotation = 0

    def __init__(self, path: str | os.PathLike, fps: float = 25.0) -> None:
        from vsrt.data.data_util import list_images, read_image

        try:
            self.paths = list_images(path)
        except (FileNotFoundError, ValueError) as err:
            raise InputError(str(err)) from err
        self.fps = Fraction(fps).limit_denominator(1001)
        first = read_image(self.paths[0])
        self.size = first.shape[:2]

    @property
    def total(self) -> int:
        return len(self.paths)

    def frames(self, on_audio: Any = None,
               frame_range: FrameRange = WHOLE) -> Iterator[tuple[np.ndarray, Timestamp]]:
        from vsrt.data.data_util import read_image

        time_base = 1 / self.fps
        selector = FrameSelector(frame_range, self.fps)
        for index, path in enumerate(self.paths):
            kept = selector.take((index, time_base))
            if kept is STOP:
                return
            if kept is None:
                continue
            try:
                frame = read_image(path)
            except (FileNotFoundError, ValueError) as err:
                raise InputError(str(err)) from err
            if frame.shape[:2] != self.size:
                raise InputError(f"{path} is {frame.shape[:2]}, the first frame is {self.size}")
            yield frame, kept
        if selector.kept == 0:
            raise InputError(f"{len(self.paths)} frames in the folder, none in the range asked for (--start)")

    def missing_frames(self) -> None:
        return None

    def close(self) -> None:
        pass


def open_source(path: str | os.PathLike, fps: float | None = None) -> VideoFileSource | FolderSource:
    from vsrt.data.video_io import VIDEO_EXTENSIONS, is_video_file

    path = Path(path)
    if not path.exists():
        raise InputError(f"Input not found: {path}")
    if path.is_dir():
        return FolderSource(path, fps or 25.0)
    if not is_video_file(path):
        raise InputError(f"Input {path} is neither a folder of frames nor a video ({' '.join(VIDEO_EXTENSIONS)})")
    return VideoFileSource(path)


def pick_codec(name: str | None) -> str:
    """``name`` if PyAV can encode it; the default (None) is libx264, else mpeg4."""
    import av

    for candidate in ([name] if name else ["libx264", "mpeg4"]):
        try:
            av.codec.Codec(candidate, "w")
            return candidate
        except (av.FFmpegError, ValueError):
            if name:
                raise ValueError(f"Codec '{name}' is not available for encoding in this PyAV build") from None
            logger.warning("Codec %s is not available; trying the next default.", candidate)
    raise ValueError("Neither libx264 nor mpeg4 can be encoded by this PyAV build")


class VideoSink:
    """Encode BGR frames to a temporary file beside ``path``; copy the audio stream of ``audio_template``.

    The display rotation of ``source`` (a phone video's) is stored in the output too.
    """

    def __init__(self, path: Path, fps: Fraction, codec: str, crf: int | None = None,
                 bitrate: int | None = None, audio_template: Any = None, source: Any = None) -> None:
        self.path, self.fps, self.codec, self.source = path, fps, codec, source
        self.crf, self.bitrate, self.audio_template = crf, bitrate, audio_template
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
        os.close(fd)
        self.tmp_path = Path(tmp)
        self.wants_audio = audio_template is not None
        self.container: Any = None
        self.pending_audio: list[Any] = []  # audio packets that arrive before the first output frame
        self.cropped = False
        self.transcode_audio = False

    def _open(self, height: int, width: int) -> None:
        import av

        self.container = av.open(str(self.tmp_path), mode="w", format=_format_for(self.path))
        stream = self.container.add_stream(self.codec, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if self.crf is not None:
            stream.options = {"crf": str(self.crf)}
        if self.bitrate is not None:
            stream.bit_rate = self.bitrate
        elif self.crf is None and self.codec not in ("libx264", "libx265", "libvpx-vp9"):
            stream.bit_rate = int(0.15 * width * height * float(self.fps))  # no CRF mode: ~0.15 bit/pixel
        # RGB -> YUV with the matrix players assume for this size, and say so in the stream's tags:
        # untagged HD decoded as BT.709 after a BT.601 conversion shifts saturated colours visibly
        self.colorspace = "ITU709" if height >= 720 or width >= 1280 else "ITU601"
        tag = HD_COLOR_TAG if self.colorspace == "ITU709" else SD_COLOR_TAG
        context = stream.codec_context
        context.colorspace, context.color_primaries, context.color_trc = tag
        context.color_range = 1  # limited ("MPEG") range, as the conversion below produces
        rotation = getattr(self.source, "rotation", 0)
        if rotation:  # frames are upscaled as stored; players rotate them as they did the input
            if hasattr(stream, "set_display_rotation"):
                stream.set_display_rotation(rotation)
            else:
                logger.warning("This PyAV cannot store the input's %d degree display rotation; the output "
                               "shows the frames as stored", rotation)
        self.video = stream
        self.audio = self._add_audio_stream()

    def _add_audio_stream(self) -> Any:
        """A copy of the input's audio stream, or an AAC re-encoding where the container cannot hold it."""
        if self.audio_template is None:
            return None
        if _container_takes(_format_for(self.path), self.audio_template):
            return self.container.add_stream_from_template(self.audio_template)
        codec = self.audio_template.codec_context
        logger.warning("%s cannot hold %s audio: it is re-encoded as AAC (or write .mkv to copy it)",
                       self.path.suffix, codec.name)
        stream = self.container.add_stream("aac", rate=codec.sample_rate)
        stream.layout = codec.layout
        self.transcode_audio = True
        return stream

    def write(self, frame: np.ndarray, timestamp: Timestamp) -> None:
        import av

        if frame.shape[0] % 2 or frame.shape[1] % 2:  # yuv420p needs even sizes
            if not self.cropped:
                logger.warning("%dx%d frames are cropped to %dx%d: the video encoder (yuv420p) needs even "
                               "sizes; write a folder of PNGs to keep every pixel", *frame.shape[:2],
                               frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2)
                self.cropped = True
            frame = frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]
        if self.container is None:
            self._open(*frame.shape[:2])
            for packet in self.pending_audio:
                self.mux_audio(packet)
            self.pending_audio.clear()
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24").reformat(
            format="yuv420p", dst_colorspace=self.colorspace, dst_color_range="MPEG")
        video_frame.pts, video_frame.time_base = timestamp
        for packet in self.video.encode(video_frame):
            self.container.mux(packet)

    def mux_audio(self, packet: Any) -> None:
        if self.container is None:
            self.pending_audio.append(packet)
            return
        if self.transcode_audio:
            for frame in packet.decode():  # decoded by the input stream's decoder
                self.container.mux(self.audio.encode(frame))
            return
        packet.stream = self.audio
        self.container.mux(packet)

    def close(self) -> None:
        if self.container is None:
            raise InputError("No frames were produced")
        for packet in self.video.encode():  # flush the encoder
            self.container.mux(packet)
        if self.transcode_audio:
            self.container.mux(self.audio.encode(None))
        self.container.close()
        publish(self.tmp_path, self.path)

    def abort(self) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):  # the partial file is removed anyway
                self.container.close()
        self.tmp_path.unlink(missing_ok=True)


def _container_takes(format_name: str, stream: Any) -> bool:
    """Whether a ``format_name`` file can hold a copy of ``stream`` (tried on an in-memory header)."""
    import io

    import av

    probe = av.open(io.BytesIO(), "w", format=format_name)
    try:
        probe.add_stream_from_template(stream)
        probe.start_encoding()
        return True
    except (av.FFmpegError, ValueError):
        return False
    finally:
        with contextlib.suppress(Exception):
            probe.close()


def _format_for(path: Path) -> str:
    return WRITABLE_FORMATS[path.suffix.lower()]


# output file suffix -> FFmpeg muxer (H.264 / MPEG-4 video, audio stream copied)
WRITABLE_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
