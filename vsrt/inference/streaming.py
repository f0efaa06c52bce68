"""The streaming core shared by upscaling and frame-rate doubling: frame tensors, statistics, the
chunked upscaling loop and a progress bar that moves while the network works through a chunk.

:mod:`vsrt.inference.upscale` (the command) and :mod:`vsrt.inference.interpolate` both import
this module and never each other's internals.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vsrt.archs.tiling import TileConfig, tile_starts
from vsrt.inference.video_stream import Timestamp
from vsrt.utils import tensor2img


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


class ChunkProgress:
    """A frame counter (a tqdm bar, or anything with ``update``) that also moves within a chunk.

    :meth:`begin` announces that the next ``calls`` network calls produce ``frames`` output
    frames; every network call (:meth:`network_call`, hooked into the runner by :meth:`watch`)
    then advances the bar by ``frames / calls``, and :meth:`end` completes the chunk exactly.
    Within one long call (a recurrent network on whole frames: one call per chunk) the bar moves
    with the time the previous call of the same work took, up to 90 % of the call's share, so a
    slow model shows progress and an ETA long before its first frame is written. A wrong
    estimate only changes the pace; the count is exact at every chunk's end.
    """

    def __init__(self, bar: Any, tick_seconds: float = 1.0) -> None:
        self.bar = bar
        self.share = 0.0  # bar units per network call in the current chunk
        self.pending = 0.0  # what the current chunk has left to show
        self.calls = 0  # network calls seen (for tests and logs)
        self.tick_seconds = tick_seconds
        self.call_seconds: dict[float, float] = {}  # duration of the last call, by its share
        self.lock = threading.Lock()

    def watch(self, runner: Any) -> None:
        """Count the network calls of ``runner`` (a :class:`~vsrt.inference.runner.ClipRunner`)."""
        model_fn = runner.model_fn

        def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
            start, share = time.perf_counter(), self.share
            ticker = self._start_ticker(share, self.call_seconds.get(share))
            try:
                out = model_fn(*args, **kwargs)
            finally:
                if ticker is not None:
                    ticker[0].set()
                    ticker[1].join()
            self.call_seconds[share] = time.perf_counter() - start
            self.network_call(ticker[2][0] if ticker is not None else 0.0)
            return out

        runner.model_fn = counted

    def _start_ticker(self, share: float, expected: float | None) -> tuple[Any, Any, list[float]] | None:
        """A thread that moves the bar during a call expected to last ``expected`` seconds."""
        if not share or not expected or expected < 2 * self.tick_seconds:
            return None
        stop, shown = threading.Event(), [0.0]
        start = time.perf_counter()

        def tick() -> None:
            while not stop.wait(self.tick_seconds):
                target = min(0.9, (time.perf_counter() - start) / expected) * min(share, self.pending)
                with self.lock:
                    if target > shown[0]:
                        self.bar.update(target - shown[0])
                        shown[0] = target

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        return stop, thread, shown

    def begin(self, frames: int, calls: int) -> None:
        self.pending = float(frames)
        self.share = frames / max(calls, 1)

    def network_call(self, already_shown: float = 0.0) -> None:
        """One call is done; ``already_shown`` of its share was shown while it ran."""
        self.calls += 1
        step = min(self.share, self.pending)
        with self.lock:
            if step > already_shown:
                self.bar.update(step - already_shown)
        self.pending -= max(step, already_shown)

    def end(self) -> None:
        """The chunk's frames are written: show what is left of them, and a whole frame count."""
        if self.pending > 0:
            self.bar.update(self.pending)
        if isinstance(getattr(self.bar, "n", None), float):
            self.bar.n = round(self.bar.n)  # no 15.999999 from the sum of fractions
        self.pending = self.share = 0.0

    def update(self, frames: int) -> None:  # a plain bar's interface, for callers without chunks
        self.bar.update(frames)


def calls_per_window(kind: str, tiles: TileConfig, frame_size: tuple[int, int], out_frames: int) -> int:
    """Network calls :class:`~vsrt.inference.runner.ClipRunner` makes for one window: one per
    spatial tile, and per output frame for sliding-window networks (their window is per frame)."""
    per_frame = 1
    for length, tile, overlap in zip(frame_size, tiles.tile, tiles.tile_overlap):
        per_frame *= len(tile_starts(length, tile, overlap)) if tile else 1
    return per_frame * (out_frames if kind == "sliding" else 1)


def upscale_stream(frames: Iterable[tuple[np.ndarray, Timestamp]], runner: Callable[..., torch.Tensor],
                   chunk: int, context: int, emit: Callable[[np.ndarray, Timestamp], None],
                   progress: Any = None, calls_for: Callable[[int, tuple[int, int]], int] | None = None,
                   window: int = 0) -> UpscaleStats:
    """Upscale ``frames`` chunk by chunk and ``emit`` every output frame in order.

    ``runner(lq (t, c, h, w), frames=[...])`` returns the outputs of the listed frames of its
    window (:class:`vsrt.inference.runner.ClipRunner`). At most ``chunk + 2 * context`` input
    frames are held. ``progress`` counts output frames; a :class:`ChunkProgress` also moves
    within a chunk, by the network calls ``calls_for(out_frames, (h, w))`` that it takes.

    ``window`` > 0 (an exported graph of that many frames): every call gets exactly ``window``
    frames, ``context`` on each side of the chunk where the video allows, the window shifted
    inwards at the video's ends (``chunk + 2 * context <= window``); a video shorter than
    ``window`` is padded by repeating its last frame, whose outputs are dropped.
    """
    if chunk < 1 or context < 0:
        raise ValueError(f"chunk must be >= 1 and overlap >= 0, got {chunk} and {context}")
    if window and chunk + 2 * context > window:
        raise ValueError(f"--chunk {chunk} with --chunk-overlap {context} needs windows of {chunk + 2 * context} "
                         f"frames; the model takes {window}")
    stats, start_time = UpscaleStats(), time.perf_counter()
    source = iter(frames)
    buffer: deque[tuple[np.ndarray, Timestamp]] = deque()
    buffer_start, next_out, exhausted = 0, 0, False
    while True:
        wanted_end = next_out + chunk + context
        if window:  # the whole window, also when it is shifted right at the video's start
            wanted_end = max(wanted_end, max(0, next_out - context) + window)
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
        window_end = min(wanted_end, available_end)
        if window:  # shifted left at the video's end (the buffer holds the last `window` frames)
            window_start = max(0, min(window_start, available_end - window))
            window_end = min(window_start + window, available_end)
        clip = [buffer[i - buffer_start][0] for i in range(window_start, window_end)]
        clip += clip[-1:] * (window - len(clip))  # only a video shorter than the window
        stats.max_window_frames = max(stats.max_window_frames, len(clip))
        chunked = isinstance(progress, ChunkProgress)
        if chunked:
            progress.begin(out_end - next_out, calls_for(out_end - next_out, clip[0].shape[:2]) if calls_for else 1)
        lq = torch.stack([to_tensor(f) for f in clip])  # (t, 3, h, w)
        outputs = runner(lq, frames=range(next_out - window_start, out_end - window_start))
        del lq
        for k, index in enumerate(range(next_out, out_end)):
            emit(tensor2img(outputs[k]), buffer[index - buffer_start][1])
            stats.frames_out += 1
        if chunked:
            progress.end()
        elif progress is not None:
            progress.update(out_end - next_out)
        next_out = out_end
        while buffer and buffer_start < next_out - max(context, window):  # the next window's left frames
            buffer.popleft()
            buffer_start += 1
    stats.seconds = time.perf_counter() - start_time
    return stats
