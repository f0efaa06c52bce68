"""Tiled and chunked inference for any video network ``fn(lq (n,t,c,h,w)) -> (n,t,c,H,W)``.

A long or large video is cut into temporal chunks and, inside each chunk, into
overlapping spatial tiles; outputs are blended by averaging. With
``TileConfig.from_vrt_args`` the result equals the official VRT ``test_video`` /
``test_clip`` of ``main_test_vrt.py`` (https://github.com/JingyunLiang/VRT) value for
value (same float32 accumulation order), which is what the VRT README protocols use.

Rules (the official ones):

* Temporal: clip starts ``0, stride, 2*stride, ...`` below ``t - chunk``, then one clip
  aligned to the end (it may overlap its predecessor by more than ``temporal_overlap``).
  Overlapping frames are the plain average of the clips that contain them. Clips are not
  padded; a video shorter than a chunk is one clip.
* Spatial: the same start rule per axis; tiles are not padded. At every tile side that is
  not an image border, half the overlap is dropped before averaging: ``ceil(o/2)`` at the
  bottom/right and ``floor(o/2)`` at the top/left, counted in OUTPUT pixels (the official
  rule: not multiplied by the scale).
* An axis with tile / chunk 0 is processed whole, after appending its last ``pad``
  entries in reverse order (the last one included) to reach ``size_multiple``; the output
  is cropped back.

Memory: :func:`iter_tiled_inference` yields the output in temporal blocks as soon as no
later clip can change them, so at most about two chunks of output are held besides the
input (independent of the video length); :func:`tiled_inference` writes those blocks into
one output tensor (or a caller-provided one, e.g. a memory-mapped array). Buffers are not
duplicated: the first clip's output is the running sum, blocks are averaged in place, and
a single block that is the whole output is returned as it is. Everything runs under
``torch.no_grad`` (no autograd state), accumulating in ``dtype``.

Deliberate difference from the official code: an overlap of 0 drops nothing (the
official ``x[-0//2:] *= 0`` zeroes whole tiles and divides by zero).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

ModelFn = Callable[[torch.Tensor], torch.Tensor]


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 0 for v in pair):
        raise ValueError(f"{name} must be a non-negative int or (h, w) pair, got {value!r}")
    return int(pair[0]), int(pair[1])


@dataclass(frozen=True)
class TileConfig:
    """How to cut a video for inference. Sizes are in input (LR) pixels and frames.

    Attributes:
        temporal_chunk: frames per clip; 0 processes the whole video as one clip.
        temporal_overlap: frames shared by consecutive clips (< temporal_chunk).
        tile: spatial tile ``(h, w)`` (an int means square); 0 on an axis processes it whole.
        tile_overlap: pixels shared by neighbouring tiles per axis (< tile).
        size_multiple: ``(t, h, w)`` multiples that axes processed whole are padded to
            (e.g. VRT's window size).
    """

    temporal_chunk: int = 0
    temporal_overlap: int = 0
    tile: tuple[int, int] | int = (0, 0)  # normalised to (h, w)
    tile_overlap: tuple[int, int] | int = (0, 0)
    size_multiple: tuple[int, int, int] = (1, 1, 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tile", _pair(self.tile, "tile"))
        object.__setattr__(self, "tile_overlap", _pair(self.tile_overlap, "tile_overlap"))
        multiple = tuple(int(v) for v in self.size_multiple)
        if len(multiple) != 3 or min(multiple) < 1:
            raise ValueError(f"size_multiple must be three positive ints (t, h, w), got {self.size_multiple!r}")
        object.__setattr__(self, "size_multiple", multiple)
        if self.temporal_chunk < 0 or self.temporal_overlap < 0:
            raise ValueError("temporal_chunk and temporal_overlap must be >= 0")
        if self.temporal_chunk and self.temporal_overlap >= self.temporal_chunk:
            raise ValueError(f"temporal_overlap ({self.temporal_overlap}) must be smaller than "
                             f"temporal_chunk ({self.temporal_chunk})")
        for size, overlap in zip(self.tile, self.tile_overlap):
            if size and overlap >= size:
                raise ValueError(f"tile_overlap {self.tile_overlap} must be smaller than tile {self.tile}")

    @classmethod
    def from_vrt_args(cls, tile: Sequence[int], tile_overlap: Sequence[int],
                      window_size: Sequence[int]) -> TileConfig:
        """The options of ``main_test_vrt.py``: ``--tile T P P --tile_overlap To Po Po``.

        As in the official script, ``tile[1]`` / ``tile_overlap[1]`` serve both spatial
        axes (``tile[2]`` is ignored) and must be a multiple of ``window_size[-1]``.
        """
        if tile[1] % window_size[-1]:
            raise ValueError(f"tile size {tile[1]} must be a multiple of the window {window_size[-1]}")
        return cls(temporal_chunk=tile[0], temporal_overlap=tile_overlap[0] if tile[0] else 0,
                   tile=tile[1], tile_overlap=tile_overlap[1] if tile[1] else 0,
                   size_multiple=tuple(window_size))


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles along one axis (the last tile is aligned to the end)."""
    return list(range(0, length - tile, tile - overlap)) + [max(0, length - tile)]


def pad_mirrored(x: torch.Tensor, dim: int, multiple: int) -> torch.Tensor:
    """Append the last ``pad`` entries of ``dim`` in reverse order to reach a multiple.

    Like the official code, an axis shorter than ``pad`` is only doubled.
    """
    length = x.shape[dim]
    pad = (-length) % multiple
    if not pad:
        return x
    tail = x.narrow(dim, max(length - pad, 0), min(pad, length))
    return torch.cat([x, tail.flip(dim)], dim=dim)


def _run_clip(model_fn: ModelFn, clip: torch.Tensor, scale: int, config: TileConfig,
              device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Spatially tiled output of one clip ``(n, t, c, h, w)`` -> ``(n, t', c', h*s, w*s)``."""
    h, w = clip.shape[-2:]
    for dim, size in ((-2, config.tile[0]), (-1, config.tile[1])):
        if not size:
            clip = pad_mirrored(clip, dim, config.size_multiple[dim])
    padded_h, padded_w = clip.shape[-2:]
    tile_h, tile_w = config.tile[0] or padded_h, config.tile[1] or padded_w
    rows = tile_starts(padded_h, tile_h, config.tile_overlap[0])
    cols = tile_starts(padded_w, tile_w, config.tile_overlap[1])
    if len(rows) == 1 and len(cols) == 1:  # one tile: nothing to blend
        out = model_fn(clip).to(device=device, dtype=dtype)
        return out[..., :h * scale, :w * scale]

    acc = None
    weight = torch.zeros(1, 1, 1, padded_h * scale, padded_w * scale, device=device, dtype=dtype)
    (ov_h, ov_w) = config.tile_overlap
    for row in rows:
        top = ov_h // 2 if row != rows[0] else 0
        bottom = -(-ov_h // 2) if row != rows[-1] else 0  # ceil(o/2)
        for col in cols:
            left = ov_w // 2 if col != cols[0] else 0
            right = -(-ov_w // 2) if col != cols[-1] else 0
            patch = model_fn(clip[..., row:row + tile_h, col:col + tile_w]).to(device=device, dtype=dtype)
            if acc is None:  # (n, t', c', H, W): channels and frames as the model returns them
                acc = torch.zeros(*patch.shape[:3], padded_h * scale, padded_w * scale,
                                  device=device, dtype=dtype)
            ph, pw = patch.shape[-2:]
            y0, x0 = row * scale, col * scale
            acc[..., y0 + top:y0 + ph - bottom, x0 + left:x0 + pw - right] += \
                patch[..., top:ph - bottom, left:pw - right]
            weight[..., y0 + top:y0 + ph - bottom, x0 + left:x0 + pw - right] += 1
    return acc.div_(weight)[..., :h * scale, :w * scale]


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` may be a view of ``b`` (e.g. an identity model's output)."""
    return a.device == b.device and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


@torch.no_grad()
def iter_tiled_inference(model_fn: ModelFn, lq: torch.Tensor, scale: int,
                         config: TileConfig = TileConfig(), *,
                         output_device: torch.device | str | None = None,
                         dtype: torch.dtype = torch.float32) -> Iterator[torch.Tensor]:
    """Run ``model_fn`` tile by tile and yield the output video in temporal blocks.

    Args:
        model_fn: ``(n, t, c, h, w) -> (n, t, c', h*scale, w*scale)``; it receives views
            of ``lq`` (move them to the model's device inside ``model_fn`` if needed).
        lq: the whole input video ``(n, t, c, h, w)``.
        scale: spatial upscaling factor of ``model_fn``.
        config: chunk and tile sizes (:class:`TileConfig`).
        output_device: where outputs are accumulated (default: ``lq.device``).
        dtype: accumulation / output dtype (float32 as the official code).
    Yields:
        consecutive blocks ``(n, k, c', H, W)`` covering frames ``0 .. t-1`` in order.
        Without temporal chunking the single block holds whatever frames the model
        returns (at most ``t``; e.g. one interpolated frame).
    """
    device = torch.device(output_device) if output_device is not None else lq.device
    frames = lq.shape[1]
    chunk = config.temporal_chunk
    if not chunk:
        video = pad_mirrored(lq, 1, config.size_multiple[0])
        yield _run_clip(model_fn, video, scale, config, device, dtype)[:, :frames]
        return

    starts = tile_starts(frames, chunk, config.temporal_overlap)
    pending: torch.Tensor | None = None  # running sum of frames [first_pending, ...)
    counts = torch.zeros(0, device=device, dtype=dtype)
    first_pending = 0
    for i, start in enumerate(starts):
        clip_out = _run_clip(model_fn, lq[:, start:start + chunk], scale, config, device, dtype)
        length = min(chunk, frames - start)
        if clip_out.shape[1] != length:
            raise ValueError(f"temporal chunking needs one output frame per input frame; the "
                             f"model returned {clip_out.shape[1]} for {length}")
        offset = start - first_pending
        if (pending is None or not pending.shape[1]) and not _shares_memory(clip_out, lq):
            # nothing pending: the clip's output is the running sum (no copy)
            pending, counts = clip_out, torch.ones(length, device=device, dtype=dtype)
        else:
            if pending is None:
                pending = clip_out.new_zeros(clip_out.shape[0], 0, *clip_out.shape[2:])
            grow = offset + length - pending.shape[1]
            if grow > 0:
                pending = torch.cat([pending, pending.new_zeros(pending.shape[0], grow, *pending.shape[2:])], 1)
                counts = torch.cat([counts, counts.new_zeros(grow)])
            pending[:, offset:offset + length] += clip_out
            counts[offset:offset + length] += 1
        del clip_out
        # frames before the next clip's start are final: averaged in place and yielded as a view
        done = (starts[i + 1] if i + 1 < len(starts) else frames) - first_pending
        if done > 0:
            block = pending[:, :done].div_(counts[:done].view(1, -1, 1, 1, 1))
            pending, counts = pending[:, done:].clone(), counts[done:].clone()
            first_pending += done
            yield block
            del block


def tiled_inference(model_fn: ModelFn, lq: torch.Tensor, scale: int,
                    config: TileConfig = TileConfig(), *,
                    output_device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """Tiled / chunked inference of a whole video; see :func:`iter_tiled_inference`.

    Returns ``(n, t', c', h*scale, w*scale)``. If ``out`` is given, blocks are written
    into it (any device / dtype, e.g. a CPU tensor over a memory map) and it is returned.
    """
    blocks = iter_tiled_inference(model_fn, lq, scale, config, output_device=output_device, dtype=dtype)
    written = 0
    for block in blocks:
        whole = block.shape[1] == (lq.shape[1] if config.temporal_chunk else block.shape[1])
        if out is None and whole:  # one block is the whole output: no copy
            return block
        if out is None:
            out = block.new_empty(block.shape[0], lq.shape[1] if config.temporal_chunk else block.shape[1],
                                  *block.shape[2:])
        out[:, written:written + block.shape[1]] = block
        written += block.shape[1]
    assert out is not None
    return out
