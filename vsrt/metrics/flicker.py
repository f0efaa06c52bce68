"""Flicker at the chunk and tile borders of the streaming upscaler (``vsrt upscale --report``).

The upscaler runs the network on chunks of ``chunk`` output frames (with context frames on each side)
and, with ``--tile``, on spatial tiles that are blended. A seam shows as a temporal jump: a pair of
consecutive output frames that straddles a chunk border, or the pixels along a tile seam, change more
than the rest. No ground truth is needed: the report compares

* the **temporal difference** of a pair of frames, the mean absolute difference of their grayscale
  uint8 images (``cv2.COLOR_BGR2GRAY``, grey levels 0-255), at chunk-border pairs (output frame
  ``k * chunk - 1`` to ``k * chunk``) with the pairs inside chunks: ``chunk_border.ratio`` is
  ``border / inside`` (1 = no extra change at the borders). The same ratio of the input frames
  (``input_ratio``) tells what the video itself does at those frames (a scene cut, a fade);
* with spatial tiles, the temporal difference of the output pixels within ``band`` pixels of a tile seam
  with that of the other pixels, over all pairs (``tile_seams.ratio``).

Tile seams are where the blending of :func:`vsrt.archs.tiling.tiled_inference` hands over from one
tile to the next: output row ``(start + overlap // 2) * scale`` for every tile start but the first
(the same for columns).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from vsrt.archs.tiling import tile_starts


def seam_positions(length: int, tile: int, overlap: int, scale: float = 1) -> list[int]:
    """Output coordinates of the tile seams along an axis of ``length`` LQ pixels (none without tiles)."""
    if not tile or tile >= length:
        return []
    return [round((start + overlap // 2) * scale) for start in tile_starts(length, tile, overlap)[1:]]


def _gray(frame: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 and frame.shape[2] == 3 else frame
    return gray.reshape(gray.shape[:2]).astype(np.float32)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None:
        return None
    return numerator / denominator if denominator > 0 else (1.0 if numerator == 0 else float("inf"))


class FlickerReport:
    """Collects per-pair temporal differences while frames stream through; :meth:`summary` reports them.

    Feed the input frames with :meth:`add_input` and the output frames with :meth:`add_output`, each in
    order (uint8 BGR ``(h, w, 3)``, or grayscale); output frame ``i`` is the upscaled input frame ``i``.
    Only the previous frame of each stream and one number per pair are kept.
    """

    def __init__(self, chunk: int, tile: tuple[int, int] = (0, 0), tile_overlap: tuple[int, int] = (0, 0),
                 band: int | None = None) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.chunk, self.tile, self.tile_overlap = chunk, tuple(tile), tuple(tile_overlap)
        self.band = band  # None: one LQ pixel on each side of a seam (the scale, from the first frames)
        self.input_differences: list[float] = []
        self.output_differences: list[float] = []
        self.seam_differences: list[float] = []  # per pair: near the tile seams, and away from them
        self.rest_differences: list[float] = []
        self._previous_input: np.ndarray | None = None
        self._previous_output: np.ndarray | None = None
        self._seam_mask: np.ndarray | None = None
        self._seams: tuple[list[int], list[int]] = ([], [])

    def add_input(self, frame: np.ndarray) -> None:
        gray = _gray(frame)
        if self._previous_input is not None:
            self.input_differences.append(float(np.abs(gray - self._previous_input).mean()))
        self._previous_input = gray

    def add_output(self, frame: np.ndarray) -> None:
        gray = _gray(frame)
        if self._previous_output is None:
            if self._previous_input is None:
                raise ValueError("FlickerReport: add input frame i before output frame i")
            self._seam_mask = self._mask(self._previous_input.shape, gray.shape)
        else:
            difference = np.abs(gray - self._previous_output)  # (H, W)
            self.output_differences.append(float(difference.mean()))
            if self._seam_mask is not None:
                self.seam_differences.append(float(difference[self._seam_mask].mean()))
                self.rest_differences.append(float(difference[~self._seam_mask].mean()))
        self._previous_output = gray

    def _mask(self, lq_shape: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray | None:
        """``(H, W)`` bool: within ``band`` output pixels of a seam; None without seams (or nothing left)."""
        scale_h, scale_w = shape[0] / lq_shape[0], shape[1] / lq_shape[1]
        if self.band is None:
            self.band = max(1, round(max(scale_h, scale_w)))
        rows = seam_positions(lq_shape[0], self.tile[0], self.tile_overlap[0], scale_h)
        cols = seam_positions(lq_shape[1], self.tile[1], self.tile_overlap[1], scale_w)
        self._seams = (rows, cols)
        if not rows and not cols:
            return None
        mask = np.zeros(shape[:2], dtype=bool)
        for row in rows:
            mask[max(row - self.band, 0):row + self.band] = True
        for col in cols:
            mask[:, max(col - self.band, 0):col + self.band] = True
        return mask if 0 < mask.sum() < mask.size else None

    def border_pairs(self) -> list[int]:
        """Indices ``i`` of the output pairs ``(i - 1, i)`` that straddle a chunk border."""
        return [i for i in range(1, len(self.output_differences) + 1) if i % self.chunk == 0]

    def summary(self) -> dict[str, Any]:
        """The report (JSON-ready): chunk-border and tile-seam scores and the per-pair differences."""
        borders = set(self.border_pairs())
        pairs = range(1, len(self.output_differences) + 1)
        out_border = _mean([self.output_differences[i - 1] for i in pairs if i in borders])
        out_inside = _mean([self.output_differences[i - 1] for i in pairs if i not in borders])
        inputs = self.input_differences
        in_border = _mean([inputs[i - 1] for i in pairs if i in borders and i <= len(inputs)])
        in_inside = _mean([inputs[i - 1] for i in pairs if i not in borders and i <= len(inputs)])
        tiles = None
        if self._seam_mask is not None:
            near, away = _mean(self.seam_differences), _mean(self.rest_differences)
            tiles = {"seam_rows": self._seams[0], "seam_cols": self._seams[1], "band": self.band,
                     "near_seams": near, "away_from_seams": away, "ratio": _ratio(near, away)}
        return {
            "measure": "mean absolute difference of consecutive grayscale frames (0-255)",
            "frames": len(self.output_differences) + (self._previous_output is not None),
            "chunk": self.chunk,
            "chunk_border": {"pairs": sorted(borders), "border": out_border, "inside": out_inside,
                             "ratio": _ratio(out_border, out_inside), "input_border": in_border,
                             "input_inside": in_inside, "input_ratio": _ratio(in_border, in_inside)},
            "tile_seams": tiles,
            "per_pair": [{"pair": i, "output": self.output_differences[i - 1],
                          "input": inputs[i - 1] if i <= len(inputs) else None, "chunk_border": i in borders}
                         for i in pairs],
        }


def format_summary(summary: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    def show(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    border = summary["chunk_border"]
    lines = [f"flicker report ({summary['frames']} frames, chunks of {summary['chunk']}; {summary['measure']}):",
             f"  chunk borders ({len(border['pairs'])} pairs): {show(border['border'])} vs "
             f"{show(border['inside'])} inside chunks, ratio {show(border['ratio'], 2)} "
             f"(input: {show(border['input_ratio'], 2)})"]
    tiles = summary["tile_seams"]
    if tiles is not None:
        lines.append(f"  tile seams (+-{tiles['band']} px): {show(tiles['near_seams'])} vs "
                     f"{show(tiles['away_from_seams'])} elsewhere, ratio {show(tiles['ratio'], 2)}")
    return "\n".join(lines)
