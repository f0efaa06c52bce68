"""Spatial tile blending against the documented rule, with a model whose output reveals which tile made it.

The "model" returns each output pixel's coordinates inside its tile, so an output pixel's value is the
average of those coordinates over the tiles that keep it. Kept part of a tile (output pixels): drop
``floor(o/2)`` at a top/left side and ``ceil(o/2)`` at a bottom/right side unless it is an image border.
"""

from __future__ import annotations

import pytest
import torch

from vsrt.archs.tiling import TileConfig, tiled_inference


def tile_coordinates(scale: int):
    def model(clip: torch.Tensor) -> torch.Tensor:  # (n, t, c, h, w) -> (n, t, c, h*s, w*s)
        n, t, c, h, w = clip.shape
        rows = torch.arange(h * scale, dtype=torch.float64).view(h * scale, 1)
        cols = torch.arange(w * scale, dtype=torch.float64).view(1, w * scale)
        return (1000 * rows + cols).expand(n, t, c, h * scale, w * scale).clone()
    return model


def kept_spans(length: int, tile: int, overlap: int, scale: int) -> list[tuple[int, int, int]]:
    """``(output start, kept from, kept to)`` per tile along one axis."""
    starts, start = [], 0
    while start < length - tile:  # stride tile - overlap, then one tile aligned to the end
        starts.append(start)
        start += tile - overlap
    starts.append(max(0, length - tile))
    spans = []
    for i, start in enumerate(starts):
        first, last = i == 0, i == len(starts) - 1
        kept_from = start * scale + (0 if first else overlap // 2)
        kept_to = (start + tile) * scale - (0 if last else (overlap + 1) // 2)
        spans.append((start * scale, kept_from, kept_to))
    return spans


@pytest.mark.parametrize(("size", "tile", "overlap", "scale"), [
    ((21, 26), (8, 9), (5, 4), 1),
    ((17, 15), (6, 6), (3, 1), 2),
    ((13, 20), (13, 7), (0, 3), 1),
])
def test_blend_averages_the_kept_part_of_every_tile(size, tile, overlap, scale):
    h, w = size
    lq = torch.zeros(1, 2, 1, h, w, dtype=torch.float64)
    out = tiled_inference(tile_coordinates(scale), lq, scale, TileConfig(tile=tile, tile_overlap=overlap),
                          dtype=torch.float64)
    row_spans, col_spans = kept_spans(h, tile[0], overlap[0], scale), kept_spans(w, tile[1], overlap[1], scale)
    expected = torch.empty(h * scale, w * scale, dtype=torch.float64)
    for y in range(h * scale):
        for x in range(w * scale):
            values = [1000 * (y - r) + (x - c) for r, r_from, r_to in row_spans if r_from <= y < r_to
                      for c, c_from, c_to in col_spans if c_from <= x < c_to]
            expected[y, x] = sum(values) / len(values)
    for frame in range(2):
        torch.testing.assert_close(out[0, frame, 0], expected, rtol=0, atol=1e-9)
