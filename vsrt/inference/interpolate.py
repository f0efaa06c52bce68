"""Frame-rate doubling with a frame-interpolation network (VRT task 009), streaming.

``python -m vsrt upscale in.mp4 -o out.mp4 --model vrt_vfi_vimeo --weights ...`` writes every input
frame unchanged and, between each pair of neighbours, the frame the network predicts from the
four frames around the gap (``i-1, i, i+1, i+2``; the first and last frame are repeated at the
ends). ``n`` input frames give ``2n - 1`` output frames; timestamps move to a time base twice as
fine, so the new frame of a gap sits exactly halfway (variable frame rates included).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from vsrt.inference.streaming import UpscaleStats, to_tensor
from vsrt.inference.video_stream import Timestamp
from vsrt.utils import tensor2img

LOOKAHEAD = 2  # frames after the current one that its gap needs (i+1, i+2)


def _finer(timestamp: Timestamp) -> Timestamp:
    """The same instant in a time base twice as fine."""
    pts, time_base = timestamp
    return 2 * pts, Fraction(time_base) / 2


def _halfway(first: Timestamp, second: Timestamp) -> Timestamp:
    """The instant halfway between two frames, in the finer time base."""
    (pts_a, base_a), (pts_b, base_b) = first, second
    if base_a != base_b:  # not seen in practice: bring the second frame to the first one's base
        pts_b = round(pts_b * Fraction(base_b) / Fraction(base_a))
    return pts_a + pts_b, Fraction(base_a) / 2


def interpolate_stream(frames: Iterable[tuple[np.ndarray, Timestamp]],
                       runner: Callable[[torch.Tensor], torch.Tensor],
                       emit: Callable[[np.ndarray, Timestamp], None], progress: Any = None) -> UpscaleStats:
    """Emit every input frame and, after each but the last, the interpolated frame that follows it.

    ``runner(lq (4, c, h, w))`` returns ``(1, c, h, w)``: the frame between ``lq[1]`` and
    ``lq[2]`` (:class:`vsrt.inference.runner.ClipRunner` of an interpolation network). At most
    four input frames are held.
    """
    stats, start_time = UpscaleStats(), time.perf_counter()
    source = iter(frames)
    ahead: deque[tuple[np.ndarray, Timestamp, torch.Tensor]] = deque()  # frames i, i+1, i+2
    previous: torch.Tensor | None = None  # frame i-1

    def fill() -> None:
        while len(ahead) < LOOKAHEAD + 1:
            item = next(source, None)
            if item is None:
                return
            ahead.append((item[0], item[1], to_tensor(item[0])))
            stats.frames_in += 1

    fill()
    while ahead:
        frame, timestamp, current = ahead[0]
        emit(frame, _finer(timestamp))
        stats.frames_out += 1
        if len(ahead) > 1:
            following = ahead[1][2]
            after = ahead[2][2] if len(ahead) > 2 else following
            before = previous if previous is not None else current
            window = torch.stack([before, current, following, after])  # (4, 3, h, w)
            stats.max_window_frames = 4
            emit(tensor2img(runner(window)[0]), _halfway(timestamp, ahead[1][1]))
            stats.frames_out += 1
        previous = current
        ahead.popleft()
        if progress is not None:
            progress.update(1)
        fill()
        stats.max_buffered_frames = max(stats.max_buffered_frames, len(ahead) + 1)
    stats.seconds = time.perf_counter() - start_time
    return stats
