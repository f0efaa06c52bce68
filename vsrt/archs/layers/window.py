"""3-D (frames x rows x cols) window helpers for Swin-style video attention.

Parameter-free: window partition/reverse, padding to window multiples, the
shifted-window attention mask and relative position indices. Token order inside
a window is (frame, row, col), as in Video Swin / PSRT / MIA-VSR checkpoints.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange

Size3 = tuple[int, int, int]

# value added to the attention logits of token pairs from different shifted regions
SHIFT_MASK_VALUE = -100.0


def as_size3(window_size: Sequence[int]) -> Size3:
    """Validate a (frames, h, w) window size given as list or tuple."""
    if len(window_size) != 3:
        raise ValueError(f"window_size must be (frames, h, w); got {window_size!r}")
    d, h, w = (int(v) for v in window_size)
    return d, h, w


def pad_to_windows(x: torch.Tensor, window_size: Size3, pad_frames: bool = True) -> torch.Tensor:
    """Zero-pad ``(n, d, h, w, c)`` at the end of d (optional), h and w to window multiples."""
    _, d, h, w, _ = x.shape
    pad_d = (-d) % window_size[0] if pad_frames else 0
    pad_h, pad_w = (-h) % window_size[1], (-w) % window_size[2]
    if pad_d or pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h, 0, pad_d))
    return x


def window_partition(x: torch.Tensor, window_size: Size3) -> torch.Tensor:
    """``(n, D, H, W, c)`` (sides multiples of the window) -> ``(n*nW, wd*wh*ww, c)``."""
    wd, wh, ww = window_size
    return rearrange(x, "n (d wd) (h wh) (w ww) c -> (n d h w) (wd wh ww) c", wd=wd, wh=wh, ww=ww)


def window_reverse(windows: torch.Tensor, window_size: Size3, batch: int, padded: Size3) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(n*nW, wd*wh*ww, c)`` -> ``(n, D, H, W, c)``.

    ``window_size[0]`` may be 1 for windows that hold a single frame.
    """
    wd, wh, ww = window_size
    d, h, w = padded
    return rearrange(windows, "(n d h w) (wd wh ww) c -> n (d wd) (h wh) (w ww) c",
                     n=batch, d=d // wd, h=h // wh, w=w // ww, wd=wd, wh=wh, ww=ww)


def shifted_window_mask(padded: Size3, window_size: Size3, shift_size: Size3,
                        device: torch.device | None = None, order: torch.Tensor | None = None,
                        num_queries: int | None = None) -> torch.Tensor:
    """Attention mask of shifted windows, ``(nW, N, N)`` with 0 / -100.

    Swin's labelling: along each axis the padded grid is cut into
    ``[0, -window)``, ``[-window, -shift)`` and ``[-shift, end)``; tokens of one
    window attend freely only to tokens carrying the same label. ``order``: the windows
    in this order (``mask.index_select(0, order)``, without building the mask twice);
    ``num_queries``: only the rows of each window's last ``num_queries`` tokens,
    ``(nW, num_queries, N)`` (``mask[:, -num_queries:]``, without building the other rows).
    """
    labels = torch.zeros(1, *padded, 1, device=device)
    cuts = [(slice(-ws), slice(-ws, -s), slice(-s, None)) for ws, s in zip(window_size, shift_size)]
    count = 0
    for sd in cuts[0]:
        for sh in cuts[1]:
            for sw in cuts[2]:
                labels[:, sd, sh, sw, :] = count
                count += 1
    label_windows = window_partition(labels, window_size).squeeze(-1)  # (nW, N)
    if order is not None:
        label_windows = label_windows.index_select(0, order)
    query_labels = label_windows if num_queries is None else label_windows[:, label_windows.shape[1] - num_queries:]
    differs = query_labels.unsqueeze(2) != label_windows.unsqueeze(1)  # (nW, Nq, N)
    return torch.where(differs, SHIFT_MASK_VALUE, 0.0)


def relative_position_index(window_size: Size3, query_frame: int | None = None) -> torch.Tensor:
    """Index into a relative-position bias table, ``(Nq, N)`` int64.

    Keys are all ``N = wd*wh*ww`` tokens of a window. With ``query_frame=None`` the
    queries are all tokens too (table of ``(2wd-1)(2wh-1)(2ww-1)`` rows). With an
    integer, the queries are the ``wh*ww`` tokens of one frame whose frame
    coordinate is taken as ``query_frame`` (MIA-VSR passes 0; its table has
    ``wd(2wh-1)(2ww-1)`` rows).
    """
    wd, wh, ww = window_size
    keys = torch.stack(torch.meshgrid(torch.arange(wd), torch.arange(wh), torch.arange(ww),
                                      indexing="ij")).flatten(1)  # (3, N)
    if query_frame is None:
        queries = keys
    else:
        queries = torch.stack(torch.meshgrid(torch.tensor([query_frame]), torch.arange(wh),
                                             torch.arange(ww), indexing="ij")).flatten(1)  # (3, Nq)
    rel = queries[:, :, None] - keys[:, None, :]  # (3, Nq, N)
    rel_d, rel_h, rel_w = rel[0] + wd - 1, rel[1] + wh - 1, rel[2] + ww - 1
    return (rel_d * (2 * wh - 1) + rel_h) * (2 * ww - 1) + rel_w


class WindowIndex(NamedTuple):
    """Shifted window partition and reverse as two flat gathers (see :func:`window_index`).

    ``gather``: ``(nW*N,)`` position in the flattened padded grid of every window slot, window
    by window, the windows whose shift mask is all zero first; ``order``: ``(nW,)`` the standard
    window number (:func:`window_partition`) of each window in that order; ``num_unmasked``: how
    many windows come first; ``scatter``: for every position of the cropped output grid, its slot
    among the flattened query slots ``(nW*Nq,)``.
    """

    gather: torch.Tensor
    order: torch.Tensor
    num_unmasked: int
    scatter: torch.Tensor


def unmasked_first(masked: torch.Tensor, num_unmasked: int) -> torch.Tensor:
    """Stable order of ``masked`` ``(nW,)`` bool: the indices of the False entries, then of the True ones.

    The same as ``argsort(masked, stable=True)`` from two cumulative sums and one scatter, with no
    sort (ONNX has no stable sort and the exported graph must not need one).
    """
    flag = masked.long()
    rank = torch.where(masked, num_unmasked + flag.cumsum(0) - 1, (1 - flag).cumsum(0) - 1)  # (nW,)
    return torch.empty_like(rank).scatter_(0, rank, torch.arange(rank.numel(), device=rank.device))


def _build_window_index(padded: Size3, window_size: Size3, shift_size: Size3, frames: tuple[int, int],
                        size_hw: tuple[int, int], num_queries: int, device: torch.device | None) -> WindowIndex:
    grids = [p // ws for p, ws in zip(padded, window_size)]
    # a shift s (0 < s < window) cuts the last window of its axis into two regions
    cut = [g - 1 if 0 < s < ws else -1 for g, s, ws in zip(grids, shift_size, window_size)]
    masked = torch.zeros(grids, dtype=torch.bool, device=device)
    for axis, k in enumerate(cut):
        if k >= 0:
            masked.select(axis, k).fill_(True)
    num_unmasked = 1
    for g, k in zip(grids, cut):
        num_unmasked *= g - (k >= 0)
    order = unmasked_first(masked.flatten(), num_unmasked)  # (nW,)
    positions = torch.arange(padded[0] * padded[1] * padded[2], device=device).view(1, *padded, 1)
    if any(shift_size):
        positions = torch.roll(positions, shifts=tuple(-s for s in shift_size), dims=(1, 2, 3))
    slots = window_partition(positions, window_size)[..., 0].index_select(0, order)  # (nW, N)
    query_slots = slots[:, slots.shape[1] - num_queries:].flatten()  # (nW*Nq,)
    inverse = torch.full((positions.numel(),), -1, dtype=torch.long, device=device)
    inverse.scatter_(0, query_slots, torch.arange(query_slots.numel(), device=device))
    h, w = size_hw
    scatter = inverse.view(padded)[frames[0]:frames[1], :h, :w].flatten()
    return WindowIndex(slots.flatten(), order, num_unmasked, scatter)


_cached_window_index = functools.lru_cache(maxsize=64)(_build_window_index)


def take_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tokens.index_select(1, index)`` for ``tokens`` ``(n, L, c)``: ``(n, len(index), c)``, the same values.

    Written as one ``index_select`` along dim 0 of the ``(n*L, c)`` rows: PyTorch's CPU kernel copies whole
    rows there and splits them over threads, while along dim 1 it is several times slower and barely
    threaded (24576 x 120 tokens on the 2-core VM: 2.5 -> 1.6 ms on one thread, 2.1 -> 0.44 ms on two).
    """
    n, length, c = tokens.shape
    rows = index if n == 1 else (index + length * torch.arange(n, device=index.device).unsqueeze(1)).flatten()
    return tokens.reshape(n * length, c).index_select(0, rows).view(n, -1, c)


def window_index(padded: Size3, window_size: Size3, shift_size: Size3, frames: tuple[int, int],
                 size_hw: tuple[int, int], num_queries: int, device: torch.device) -> WindowIndex:
    """Flat gathers that replace roll + :func:`window_partition` and :func:`window_reverse` + roll + crop.

    ``take_tokens(tokens.reshape(n, -1, c), gather).view(n*nW, N, c)`` gives the windows of the
    padded grid ``(n, *padded, c)`` rolled by ``-shift_size`` (in ``order``, unmasked windows
    first); ``take_tokens(out.reshape(n, -1, c), scatter)`` maps the query slots ``(n*nW, Nq, c)``
    (the last ``num_queries`` of each window) back to the grid rolled by ``+shift_size``, cropped to
    ``frames`` (start, stop) x ``size_hw``. Built from shapes alone with device-side ops (no host
    read), cached per shape and device; one gather each way instead of several copies.
    """
    args = (tuple(padded), tuple(window_size), tuple(shift_size), tuple(frames), tuple(size_hw), num_queries)
    if torch.compiler.is_compiling():
        return _build_window_index(*args, device)
    with torch.inference_mode(False), torch.no_grad():  # cached tensors usable in training too
        return _cached_window_index(*args, device)


class StepWindows:
    """Windows of ``[fixed frames..., current frame]`` for a run of blocks whose leading frames stay the same.

    MIA-VSR's blocks all see one step's two neighbour frames; only the current frame changes from block to
    block. Instead of stacking, normalising and gathering every frame in every block, this keeps one buffer
    of raw windows per window shift for the step, gathers the neighbours once, and per block rewrites only
    the current frame's slots before the block's norm (a per-token op, so norm-then-gather and
    gather-then-norm agree; the padding slots, which padding after the norm leaves at zero, are zeroed
    again). The buffer is written in place: inference only (no autograd graph).

    ``neighbours`` ``(n, f, h, w, c)``; windows span all ``f + 1`` frames (``window_size[0] == f + 1``) and
    the frame shift is a multiple of it, so the current frame's slots are the last ``wh*ww`` of each window.
    """

    def __init__(self, neighbours: torch.Tensor) -> None:
        self.neighbours = neighbours
        self._buffers: dict[Size3, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = {}

    def normalised(self, x: torch.Tensor, index: WindowIndex, window_size: Size3, shift_size: Size3,
                   norm: torch.nn.Module) -> torch.Tensor:
        """``norm`` of the windows of ``[neighbours, x]`` (``x`` ``(n, h, w, c)``) as ``index.gather`` takes
        them from the zero-padded, normalised stack: ``(n*nW, N, c)``."""
        n, h, w, c = x.shape
        wd, wh, ww = window_size
        num_queries, num_tokens = wh * ww, wd * wh * ww
        entry = self._buffers.get(shift_size)
        if entry is None:  # first block with this shift: gather every frame
            frames = pad_to_windows(torch.cat([self.neighbours, x.unsqueeze(1)], dim=1), window_size)
            _, num_frames, hp, wp, _ = frames.shape
            if num_frames != wd or shift_size[0] % wd:
                raise ValueError(f"StepWindows needs windows over all {num_frames} frames and a frame shift that "
                                 f"keeps them in order; got window {window_size}, shift {shift_size}")
            raw = take_tokens(frames.reshape(n, -1, c), index.gather).view(n, -1, num_tokens, c)
            slots = index.gather.view(-1, num_tokens)  # (nW, N) positions in the padded (f + 1, hp, wp) grid
            current = slots[:, num_tokens - num_queries:].reshape(-1) - (num_frames - 1) * hp * wp  # (nW*Nq,)
            padding = None
            if (hp, wp) != (h, w):
                pixel = slots % (hp * wp)
                padding = ((pixel // wp >= h) | (pixel % wp >= w)).view(1, -1, num_tokens, 1)  # (1, nW, N, 1)
            self._buffers[shift_size] = entry = (raw, current, padding)
        else:  # later blocks: only the current frame's slots change
            raw, current, padding = entry
            grid = pad_to_windows(x.unsqueeze(1), window_size, pad_frames=False).reshape(n, -1, c)  # (n, hp*wp, c)
            raw[:, :, num_tokens - num_queries:] = take_tokens(grid, current).view(n, -1, num_queries, c)
        windows = norm(raw)  # (n, nW, N, c)
        if padding is not None:
            windows.masked_fill_(padding, 0.0)
        return windows.view(-1, num_tokens, c)
