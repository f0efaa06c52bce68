"""``--start`` / ``--frames`` / ``--duration``: which input frames the upscaler processes.

A start is a frame number (``--start 250``: the 251st decoded frame) or a time (``--start 10s``,
``--start 1:30``, ``--start 0:01:30.5``); a length is a frame count (``--frames``) or a time
(``--duration``). Kept frames and audio are moved so the output starts at time 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

Timestamp = tuple[int, Fraction]
STOP = object()  # FrameSelector.take: the range is complete, stop decoding
_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")  # [h:]m:s[.frac]


def parse_time(text: str, option: str) -> float:
    """``'12.5'``, ``'12.5s'``, ``'1:30'``, ``'0:01:30.5'`` -> seconds (>= 0)."""
    value = str(text).strip()
    clock = _CLOCK.match(value)
    try:
        if clock:
            hours, minutes, seconds = clock.groups()
            result = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
        else:
            result = float(value[:-1] if value.lower().endswith("s") else value)
    except ValueError:
        result = -1.0
    if not 0 <= result < float("inf"):
        raise ValueError(f"{option} {text!r}: expected a time such as 12.5s, 1:30 or 0:01:30.5")
    return result


@dataclass(frozen=True)
class FrameRange:
    """Input frames from ``start_frame`` or ``start_seconds`` on, at most ``max_frames`` of them or
    ``max_seconds`` of video (None: to the end)."""

    start_frame: int = 0
    start_seconds: float = 0.0
    max_frames: int | None = None
    max_seconds: float | None = None

    @property
    def trims(self) -> bool:
        return bool(self.start_frame or self.start_seconds) or self.max_frames is not None \
            or self.max_seconds is not None

    @classmethod
    def from_args(cls, start: str | None, frames: int | None, duration: str | None) -> FrameRange:
        """From the ``--start`` / ``--frames`` / ``--duration`` strings (a clear error for bad ones)."""
        start_frame, start_seconds = 0, 0.0
        if start is not None:
            text = str(start).strip()
            if text.isdigit():
                start_frame = int(text)
            elif re.fullmatch(r"\d*\.\d*", text):
                raise ValueError(f"--start {start}: a plain number is a frame number; write {text}s for seconds")
            else:
                start_seconds = parse_time(text, "--start")
        if frames is not None and frames < 1:
            raise ValueError(f"--frames {frames}: must be at least 1")
        seconds = parse_time(duration, "--duration") if duration is not None else None
        if seconds is not None and seconds <= 0:
            raise ValueError(f"--duration {duration}: must be positive")
        return cls(start_frame, start_seconds, frames, seconds)

    def expected(self, total: int | None, fps: Fraction) -> int | None:
        """How many frames this range should yield from a video of ``total`` frames (None: unknown)."""
        counts = []
        if total is not None:
            counts.append(max(total - self.start_frame - round(self.start_seconds * float(fps)), 0))
        if self.max_frames is not None:
            counts.append(self.max_frames)
        if self.max_seconds is not None:
            counts.append(max(round(self.max_seconds * float(fps)), 1))
        return min(counts) if counts else None


WHOLE = FrameRange()  # every frame, timestamps unchanged


class FrameSelector:
    """Picks the frames of a :class:`FrameRange` from a decoded stream and shifts their
    timestamps (and the audio's) so the first kept frame is at time 0.

    ``take(timestamp)`` returns the new timestamp, None for a frame before the range, or
    :data:`STOP` once the range is complete. ``audio(packet, send)`` forwards a kept audio packet.
    Without trimming everything passes unchanged.
    """

    def __init__(self, frame_range: FrameRange, fps: Fraction) -> None:
        self.range, self.half_frame = frame_range, 0.5 / float(fps)
        self.index = -1  # decoded frames seen (counts from the start only when nothing was seeked)
        self.kept = 0
        self.first: Fraction | None = None  # time of the first kept frame (seconds)
        self.held_audio: list[Any] = []
        self.skipped_until = Fraction(0)  # time of the last frame skipped before the range

    def take(self, timestamp: Timestamp) -> Timestamp | None | object:
        self.index += 1
        if not self.range.trims:
            self.kept += 1
            return timestamp
        pts, time_base = timestamp
        seconds = pts * Fraction(time_base)
        if self.index < self.range.start_frame or seconds < self.range.start_seconds - self.half_frame:
            self.skipped_until = seconds
            return None
        if self.first is None:
            self.first = seconds
        limit = self.range.max_seconds
        if (self.range.max_frames is not None and self.kept >= self.range.max_frames) or (
                limit is not None and seconds - self.first >= limit - self.half_frame):
            return STOP
        self.kept += 1
        return pts - round(self.first / Fraction(time_base)), time_base

    def audio(self, packet: Any, send: Callable[[Any], None]) -> None:
        if not self.range.trims:
            send(packet)
            return
        self.held_audio.append(packet)
        if self.first is None:  # the shift is known with the first kept frame
            if len(self.held_audio) > 256:  # a far start: audio before a skipped frame is never sent, forget it
                self.held_audio = [held for held in self.held_audio if held.pts is not None and
                                   held.pts * Fraction(held.time_base) >= self.skipped_until]
            return
        for held in self.held_audio:
            self._send_shifted(held, send)
        self.held_audio.clear()

    def _send_shifted(self, packet: Any, send: Callable[[Any], None]) -> None:
        time_base = Fraction(packet.time_base)
        seconds = packet.pts * time_base if packet.pts is not None else None
        if seconds is None or seconds < self.first:
            return
        if self.range.max_seconds is not None and seconds - self.first >= self.range.max_seconds:
            return
        shift = round(self.first / time_base)
        packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        send(packet)
