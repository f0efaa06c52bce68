"""Synthetic video clips for the demo and the tests (no download needed).

A clip is a window sliding with constant sub-pixel velocity over a random
canvas: multi-scale coloured texture plus sharp-edged shapes and stripes, so
that super-resolution has both fine detail and edges to recover and the
frames are related by real motion.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def _canvas(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A float32 BGR canvas in [0, 1]."""
    canvas = np.zeros((height, width, 3), np.float32)
    for cell, weight in ((48, 0.5), (12, 0.3), (4, 0.2)):
        noise = rng.random((height // cell + 2, width // cell + 2, 3)).astype(np.float32)
        canvas += weight * cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(max(4, height * width // 1500)):
        colour = tuple(float(c) for c in rng.random(3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(4, max(6, min(height, width) // 4)))
        if rng.random() < 0.5:
            cv2.rectangle(canvas, (x, y), (x + size, y + size // 2), colour, -1)
        else:
            cv2.circle(canvas, (x, y), size // 2, colour, -1)
    period = int(rng.integers(5, 9))
    stripes = (np.arange(width) // period % 2).astype(np.float32)
    canvas[: height // 6] = 0.7 * canvas[: height // 6] + 0.3 * stripes[None, :, None]
    return np.clip(canvas, 0, 1)


def make_clip(num_frames: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """``num_frames`` uint8 BGR frames ``(height, width, 3)`` of one moving scene."""
    rng = np.random.default_rng(seed)
    margin = 4 + num_frames * 3
    canvas = _canvas(rng, height + 2 * margin, width + 2 * margin)
    velocity = rng.uniform(-2.5, 2.5, size=2)
    frames = []
    for t in range(num_frames):
        dx, dy = velocity * t
        shift = np.float32([[1, 0, -(margin + dx)], [0, 1, -(margin + dy)]])
        frame = cv2.warpAffine(canvas, shift, (width, height), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REFLECT)
        frames.append(np.clip(np.round(frame * 255), 0, 255).astype(np.uint8))
    return frames


def write_clip_folders(root: str | Path, clip_names: list[str], num_frames: int, height: int,
                       width: int, seed: int = 0) -> Path:
    """Write clips as ``root/<clip>/<%08d>.png`` (the REDS/Vid4 frame-folder layout)."""
    root = Path(root)
    for i, name in enumerate(clip_names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(make_clip(num_frames, height, width, seed=seed + i)):
            cv2.imwrite(str(folder / f"{t:08d}.png"), frame)
    return root
