"""Shared tiled / chunked inference (vsrt.archs.tiling)."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vsrt.archs.tiling import TileConfig, iter_tiled_inference, tiled_inference


class LocalSR(nn.Module):
    """Per-frame 3x3 conv + pixel shuffle: each output pixel sees a 3x3 LR neighbourhood."""

    def __init__(self, scale: int = 2, in_ch: int = 3, out_ch: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.scale = scale
        self.conv = nn.Conv2d(in_ch, out_ch * scale * scale, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        out = F.pixel_shuffle(self.conv(x.flatten(0, 1)), self.scale)
        return out.unflatten(0, (n, t))


class ClipMixer(LocalSR):
    """Adds the clip's temporal mean: the output depends on which frames share a clip."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out + out.mean(dim=1, keepdim=True)


def naive_official(lq: torch.Tensor, model, scale: int, tile: list, overlap: list, window: list,
                   nonblind: bool = False) -> torch.Tensor:
    """The official main_test_vrt.py algorithm written out with full-size float32 buffers."""

    def run_clip(x: torch.Tensor) -> torch.Tensor:
        n, d, c, h, w = x.shape
        size = tile[1]
        if not size:
            ph, pw = (-h) % window[1], (-w) % window[2]
            if ph:
                x = torch.cat([x, x[..., -ph:, :].flip(-2)], -2)
            if pw:
                x = torch.cat([x, x[..., -pw:].flip(-1)], -1)
            return model(x)[..., :h * scale, :w * scale]
        c_out = c - 1 if nonblind else c
        acc = torch.zeros(n, d, c_out, h * scale, w * scale)
        weight = torch.zeros_like(acc)
        o = overlap[1]
        rows = list(range(0, h - size, size - o)) + [max(0, h - size)]
        cols = list(range(0, w - size, size - o)) + [max(0, w - size)]
        for r in rows:
            for col in cols:
                patch = model(x[..., r:r + size, col:col + size]).clone()
                mask = torch.ones_like(patch)
                for t in (patch, mask):  # zero half the overlap at inner borders (output pixels)
                    if r != rows[-1]:
                        t[..., (-o) // 2:, :] *= 0  # the official `-o//2:`, i.e. ceil(o/2)
                    if col != cols[-1]:
                        t[..., (-o) // 2:] *= 0
                    if r != rows[0]:
                        t[..., :o // 2, :] *= 0
                    if col != cols[0]:
                        t[..., :o // 2] *= 0
                acc[..., r * scale:(r + size) * scale, col * scale:(col + size) * scale] += patch
                weight[..., r * scale:(r + size) * scale, col * scale:(col + size) * scale] += mask
        return acc / weight

    n, d, c, h, w = lq.shape
    chunk = tile[0]
    if not chunk:
        pad = (-d) % window[0]
        video = torch.cat([lq, lq[:, -pad:].flip(1)], 1) if pad else lq
        return run_clip(video)[:, :d]
    acc = torch.zeros(n, d, c - 1 if nonblind else c, h * scale, w * scale)
    weight = torch.zeros(n, d, 1, 1, 1)
    for start in list(range(0, d - chunk, chunk - overlap[0])) + [max(0, d - chunk)]:
        acc[:, start:start + chunk] += run_clip(lq[:, start:start + chunk])
        weight[:, start:start + chunk] += 1
    return acc / weight


def video(t: int = 7, c: int = 3, h: int = 21, w: int = 26, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, t, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("t", "tile", "overlap", "scale"), [
    (7, [3, 12, 12], [1, 4, 4], 2),   # temporal + spatial, last tiles aligned to the end
    (7, [4, 8, 8], [2, 5, 5], 1),     # odd overlap: ceil(o/2) dropped at bottom/right
    (5, [2, 16, 16], [1, 6, 6], 4),
    (7, [0, 12, 12], [0, 4, 4], 2),   # whole video (padded to the window), tiled space
    (7, [3, 0, 0], [1, 0, 0], 2),     # chunked time, whole frames padded to the window
    (4, [6, 32, 32], [2, 8, 8], 2),   # chunk and tile larger than the video
])
def test_equals_the_official_procedure_exactly(t: int, tile: list, overlap: list, scale: int) -> None:
    model, lq, window = ClipMixer(scale), video(t), [4, 4, 4]
    with torch.no_grad():
        got = tiled_inference(model, lq, scale, TileConfig.from_vrt_args(tile, overlap, window))
        want = naive_official(lq, model, scale, tile, overlap, window)
    assert got.shape == want.shape
    assert torch.equal(got, want)


def test_noise_level_channel_is_tiled_with_the_image() -> None:
    model, lq = LocalSR(2, in_ch=4, out_ch=3), video(6, c=4)
    tile, overlap, window = [4, 12, 12], [2, 4, 4], [2, 4, 4]
    with torch.no_grad():
        got = tiled_inference(model, lq, 2, TileConfig.from_vrt_args(tile, overlap, window))
        want = naive_official(lq, model, 2, tile, overlap, window, nonblind=True)
    assert got.shape == (1, 6, 3, 42, 52) and torch.equal(got, want)


def test_tiled_with_enough_overlap_equals_untiled() -> None:
    """A 3x3 receptive field fits in the dropped border (overlap//2 output px >= scale)."""
    model, lq = LocalSR(scale=2), video(9, h=37, w=45)
    with torch.no_grad():
        whole = model(lq)
        tiled = tiled_inference(model, lq, 2, TileConfig(temporal_chunk=4, temporal_overlap=1,
                                                         tile=(16, 20), tile_overlap=(4, 6)))
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-6)


def test_single_clip_keeps_the_frames_the_model_returns() -> None:
    """Frame interpolation: 4 frames in, 1 out; the untiled path crops to the input length."""
    lq = video(4, h=8, w=8)
    out = tiled_inference(lambda x: x.mean(dim=1, keepdim=True), lq, 1, TileConfig(size_multiple=(4, 8, 8)))
    assert torch.equal(out, lq.mean(dim=1, keepdim=True))
    with pytest.raises(ValueError, match="one output frame per input frame"):
        tiled_inference(lambda x: x[:, :1], video(6, h=8, w=8), 1, TileConfig(temporal_chunk=3))


def test_invalid_configs_are_rejected() -> None:
    with pytest.raises(ValueError, match="temporal_overlap"):
        TileConfig(temporal_chunk=4, temporal_overlap=4)
    with pytest.raises(ValueError, match="tile_overlap"):
        TileConfig(tile=16, tile_overlap=16)
    with pytest.raises(ValueError, match="multiple of the window"):
        TileConfig.from_vrt_args([6, 30, 30], [2, 8, 8], [6, 8, 8])
    assert TileConfig(tile=16, tile_overlap=4).tile == (16, 16)


def test_output_is_streamed_in_bounded_blocks() -> None:
    """The first frames are yielded before the last clip runs; no block exceeds a chunk."""
    calls = []

    def model(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[1])
        return x * 2

    lq = video(40, h=8, w=8)
    blocks = iter_tiled_inference(model, lq, 1, TileConfig(temporal_chunk=6, temporal_overlap=2))
    first = next(blocks)
    assert len(calls) == 1 and first.shape[1] == 4
    rest = list(blocks)
    assert len(calls) == 10 and max(b.shape[1] for b in rest) <= 6
    assert torch.equal(torch.cat([first, *rest], 1), lq * 2)


def _malloc_in_use() -> int | None:
    """Bytes held by glibc malloc (small + mmapped blocks), None where unavailable."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None

    class MallInfo2(ctypes.Structure):
        _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def test_peak_memory_does_not_grow_with_clip_length() -> None:
    if _malloc_in_use() is None:
        pytest.skip("glibc mallinfo2 not available")
    model = LocalSR(scale=4)
    frame_bytes = 3 * 128 * 128 * 4  # one float32 output frame

    def peak_extra(frames: int) -> int:
        lq = video(frames, h=32, w=32)
        base, peak = _malloc_in_use(), 0

        def watched(x: torch.Tensor) -> torch.Tensor:
            nonlocal peak
            out = model(x)
            peak = max(peak, _malloc_in_use() - base)
            return out

        with torch.no_grad():
            for block in iter_tiled_inference(watched, lq, 4, TileConfig(temporal_chunk=4, temporal_overlap=1,
                                                                          tile=16, tile_overlap=4)):
                peak = max(peak, _malloc_in_use() - base)
                del block
        return peak

    short, long = peak_extra(8), peak_extra(64)
    # holding the whole output would add 56 frames (~3.7 MB) for the long clip
    assert long < short + 8 * frame_bytes, (short, long)


class LargeAllocations(torch.utils._python_dispatch.TorchDispatchMode):
    """Records every tensor of at least ``min_bytes`` made outside the model (``paused`` while it runs)."""

    def __init__(self, min_bytes: int) -> None:
        super().__init__()
        self.min_bytes, self.paused, self.made = min_bytes, False, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {a.untyped_storage().data_ptr() for a in torch.utils._pytree.tree_leaves((args, kwargs))
                  if isinstance(a, torch.Tensor)}
        for t in torch.utils._pytree.tree_leaves(out):  # views and in-place results share an input's storage
            if (not self.paused and isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs
                    and t.untyped_storage().nbytes() >= self.min_bytes):
                self.made.append((str(func), t.untyped_storage().nbytes()))
        return out


def test_accumulation_does_not_duplicate_the_output() -> None:
    """One clip (VRT's REDS test: 40-frame chunks): the model's output is returned without any copy;
    with chunks, no buffer is larger than a chunk's output besides the output video."""
    model = LocalSR(scale=4)
    lq = video(8, h=16, w=16)
    frame_bytes = 3 * 64 * 64 * 4
    recorder = LargeAllocations(min_bytes=frame_bytes)

    def run_model(x: torch.Tensor) -> torch.Tensor:
        recorder.paused = True
        try:
            return model(x)
        finally:
            recorder.paused = False

    with recorder:
        out = tiled_inference(run_model, lq, 4, TileConfig(temporal_chunk=40, temporal_overlap=2))
    assert torch.equal(out, model(lq)) and recorder.made == []
    with recorder:
        tiled_inference(run_model, lq, 4, TileConfig(temporal_chunk=4, temporal_overlap=1))
    sizes = sorted(size for _, size in recorder.made)
    assert sizes[-1] == 8 * frame_bytes and sizes[-2] <= 4 * frame_bytes, recorder.made
