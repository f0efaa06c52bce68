"""Temporal mutual self attention (TMSA) blocks of VRT.

VRT: A Video Restoration Transformer (Liang et al., IEEE TIP 2024), arXiv 2201.12288,
official code https://github.com/JingyunLiang/VRT (``models/network_vrt.py``).

Attention runs in 3-D windows of the channel-last feature ``(n, d, h, w, c)``. A
window of the mutual groups spans two frames: besides self attention over the whole
window, the tokens of each frame query the other frame (mutual attention, no relative
bias, a sine position encoding instead). Parameter names (``qkv_self``, ``qkv_mut``,
``proj``, ``relative_position_bias_table``, ``fc11``/``fc12``/``fc2``) and the buffers
(``relative_position_index``, ``position_bias``) are the official ones.

Differences from the official code: stages pass channel-last tensors (the official one
permutes to channel-first between modules; the values are the same); attention uses
``F.scaled_dot_product_attention`` over chunks of windows (bounded memory at any tile size; on two CPU
threads the chunks alternate between the two, see ``MIN_CHUNKS_SIDE_BY_SIDE``);
roll + window partition and window reverse + roll + crop are one cached gather each
(:func:`window_index`), which puts the windows without a shift mask first: those attend with the
position bias alone, only the others get ``bias + mask``; the gathered bias is reused without
gradients; the shifted-window mask is rebuilt per group call instead of being held in an
``lru_cache``; the unused ``input_resolution`` arguments are gone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from vsrt.archs.layers.attention import gathered_position_bias, scaled_dot_product, window_chunks
from vsrt.archs.layers.execution import sync_free
from vsrt.archs.layers.mlp import DropPath
from vsrt.archs.layers.threads import for_each_alternating
from vsrt.archs.layers.window import (
    Size3,
    pad_to_windows,
    relative_position_index,
    shifted_window_mask,
    take_tokens,
    window_index,
)


def clamp_window(size: Size3, window_size: Sequence[int],
                 shift_size: Sequence[int]) -> tuple[Size3, Size3]:
    """Shrink the window to the input along axes where the input is not larger; no shift there."""
    window = tuple(min(s, ws) for s, ws in zip(size, window_size))
    shift = tuple(0 if s <= ws else sh for s, ws, sh in zip(size, window_size, shift_size))
    return window, shift  # type: ignore[return-value]


def sine_position_encoding(height: int, width: int, num_pos_feats: int,
                           temperature: float = 10000.0) -> torch.Tensor:
    """2-D sine encoding of a ``height x width`` grid (DETR style, normalised to 2*pi).

    Returns ``(1, height*width, 2*num_pos_feats)``: tokens row-major, channels the
    y part then the x part, each interleaved ``[sin(p0), cos(p1), sin(p2), ...]``.
    """
    scale, eps = 2 * math.pi, 1e-6
    ones = torch.ones(1, height, width)
    y_embed = ones.cumsum(1, dtype=torch.float32)
    x_embed = ones.cumsum(2, dtype=torch.float32)
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32)
    dim_t = temperature ** (2 * (dim_t // 2) / num_pos_feats)

    def interleave(embed: torch.Tensor) -> torch.Tensor:
        pos = embed[..., None] / dim_t  # (1, h, w, F)
        return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=4).flatten(3)

    pos = torch.cat((interleave(y_embed), interleave(x_embed)), dim=3)  # (1, h, w, 2F)
    return rearrange(pos, "one h w c -> one (h w) c").contiguous()


# Most attention logits (windows x heads x queries x keys) one SDPA call gets: the combined bias +
# shifted-window mask, and the logits and softmax of SDPA's math path (e.g. CUDA fp32 at head_dim 30),
# are materialised per call, so windows are attended in chunks (2**26 float32 values = 256 MiB each);
# the official code holds two tensors of all windows' logits at once.
ATTENTION_CHUNK_LOGITS = 2**26


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, bias: torch.Tensor | None,
           mask: torch.Tensor | None, num_unmasked: int = 0, out: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax attention inside windows, in chunks of windows (see ``ATTENTION_CHUNK_LOGITS``).

    ``q, k, v``: ``(n*nW, heads, t, head_dim)``, windows sample-major; ``bias``: ``(heads, t, t)`` or
    None; ``mask``: ``(nW, t, t)`` additive or None, windows in :func:`window_index` order: the first
    ``num_unmasked`` are all zero and attend with the bias alone, so only the others get a per-window
    ``bias + mask`` (``nW*heads*t*t`` floats otherwise). ``out``: ``(n*nW, t, heads*head_dim)`` to
    write into (a view into a wider buffer is fine), else a new tensor. Returns ``out``.
    """
    windows, heads, queries, head_dim = q.shape
    if out is None:
        out = q.new_empty(windows, queries, heads * head_dim)
    step = max(1, ATTENTION_CHUNK_LOGITS // (heads * queries * k.shape[2]))
    if mask is None:  # one run over all samples' windows
        per_sample, runs = windows, [(0, windows, False)]
    else:
        per_sample, runs = mask.shape[0], [(0, num_unmasked, False), (num_unmasked, mask.shape[0], True)]
    for first in range(0, windows, per_sample):
        for lo, hi, masked in runs:
            for start in range(lo, hi, step):
                stop = min(start + step, hi)
                part = slice(first + start, first + stop)
                attn_mask = None if bias is None else bias.to(q.dtype).unsqueeze(0)  # (1, heads, t, t)
                if masked:  # 4-D masks keep SDPA on its fused CPU kernel (3-D ones fall back)
                    window_mask = mask[start:stop].to(q.dtype).unsqueeze(1)  # (b, 1, t, t)
                    attn_mask = window_mask if attn_mask is None else attn_mask + window_mask
                # (b, t, heads*d) viewed as (b, heads, t, d): the result is written in place
                out[part].unflatten(-1, (heads, head_dim)).transpose(1, 2).copy_(
                    scaled_dot_product(q[part], k[part], v[part], attn_mask, scale))
    return out


# CPU inference runs window attention and the token-wise layers in chunks of about this many tokens:
# a chunk's temporaries stay in cache and under glibc's mmap threshold (whole-tile ones, such as stage
# 8's 53 MB qkv at 64x64, come as fresh zeroed pages on every call: a third of the process's CPU time)
CPU_CHUNK_TOKENS = 2048


# On two CPU threads a block's window attention runs its chunks alternately on the caller and the helper
# thread (vsrt.archs.layers.threads), one thread each, where there are at least this many chunks: the
# fused CPU attention kernel gains only 1.3-1.7x from a second OpenMP thread, and a region of a few chunks
# loses more to the hand-over than it gains (docs/performance.md, "VRT on two threads, and head dims for
# the CPU kernel (session 11)")
MIN_CHUNKS_SIDE_BY_SIDE = 4


def inference_chunk(x: torch.Tensor, tokens_per_item: int) -> int | None:
    """Items (windows, tokens) per chunk for a forward on ``x``: about :data:`CPU_CHUNK_TOKENS` tokens
    without gradients on the CPU; None (all at once) with gradients, while compiling and on the
    sync-free (GPU) path, where one big kernel launch beats many small ones."""
    if torch.is_grad_enabled() or torch.compiler.is_compiling() or sync_free(x):
        return None
    return max(1, CPU_CHUNK_TOKENS // tokens_per_item)


def add_tokenwise_(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], chunk: int) -> torch.Tensor:
    """``x += fn(x)`` in place, ``chunk`` tokens at a time, for a token-wise ``fn`` (no gradients).

    ``x``: contiguous ``(..., c)``; ``fn`` maps ``(m, c)`` to ``(m, c)``.
    """
    flat = x.view(-1, x.shape[-1])
    for start in range(0, flat.shape[0], chunk):
        part = flat[start:start + chunk]
        part += fn(part)
    return x


def map_tokenwise(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor, chunk: int | None) -> torch.Tensor:
    """``fn(*inputs)`` for a token-wise ``fn`` of ``(..., c_i)`` inputs with equal leading dims,
    ``chunk`` tokens at a time (all at once for None)."""
    if chunk is None:
        return fn(*inputs)
    lead = inputs[0].shape[:-1]
    flats = [t.reshape(-1, t.shape[-1]) for t in inputs]
    out = None
    for start in range(0, flats[0].shape[0], chunk):
        part = fn(*(t[start:start + chunk] for t in flats))
        if out is None:
            out = part.new_empty(flats[0].shape[0], part.shape[-1])
        out[start:start + chunk] = part
    return out.view(*lead, -1)


class MutualSelfAttention(nn.Module):
    """Window self attention with relative position bias, plus mutual attention (optional).

    ``forward(windows (n*nW, N, C), mask (nW, N, N) | None) -> (n*nW, N, C)``. With
    ``mut_attn`` the window holds two frames of ``N/2`` tokens; frame-2 queries attend to
    frame 1 and frame-1 queries to frame 2, and ``proj`` maps ``[mutual, self]`` (2C) to C.
    """

    def __init__(self, dim: int, window_size: Size3, num_heads: int, qkv_bias: bool = False,
                 qk_scale: float | None = None, mut_attn: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.mut_attn = mut_attn
        wd, wh, ww = window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv_self = nn.Linear(dim, dim * 3, bias=qkv_bias)
        if mut_attn:
            self.register_buffer("position_bias", sine_position_encoding(wh, ww, dim // 2))
            self.qkv_mut = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(2 * dim if mut_attn else dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _split_heads(self, qkv: torch.Tensor) -> torch.Tensor:
        return rearrange(qkv, "b t (three h d) -> three b h t d", three=3, h=self.num_heads)

    def forward(self, windows: torch.Tensor, mask: torch.Tensor | None = None,
                num_unmasked: int = 0) -> torch.Tensor:
        """``mask`` in :func:`window_index` order, its first ``num_unmasked`` windows all zero.

        Without gradients on the CPU the windows go through in chunks (:func:`inference_chunk`);
        each window's arithmetic is the same."""
        chunk = inference_chunk(windows, windows.shape[1])
        if chunk is None or windows.shape[0] <= chunk:
            return self._attend_project(windows, mask, num_unmasked)
        out = torch.empty_like(windows)

        def attend_chunk(part: tuple[int, int, torch.Tensor | None]) -> None:
            start, stop, part_mask = part
            out[start:stop] = self._attend_project(windows[start:stop], part_mask)

        chunks = window_chunks(windows.shape[0], mask, num_unmasked, chunk)
        if len(chunks) < MIN_CHUNKS_SIDE_BY_SIDE:
            for part in chunks:
                attend_chunk(part)
        else:
            for_each_alternating(windows, attend_chunk, chunks)
        return out

    def _attend_project(self, windows: torch.Tensor, mask: torch.Tensor | None,
                        num_unmasked: int = 0) -> torch.Tensor:
        """:meth:`forward` on all ``windows`` at once."""
        num_windows, num_tokens, dim = windows.shape
        # a window clamped to a small input keeps the leading block of the full-window index
        index = self.relative_position_index[:num_tokens, :num_tokens]
        bias = gathered_position_bias(self, self.relative_position_bias_table, index)  # (heads, N, N)
        q, k, v = self._split_heads(self.qkv_self(windows))
        if not self.mut_attn:
            return self.proj(attend(q, k, v, self.scale, bias, mask, num_unmasked))

        # proj maps [mutual, self] (2C) to C: the three attentions write their parts of one buffer
        both = q.new_empty(num_windows, num_tokens, 2 * dim)
        attend(q, k, v, self.scale, bias, mask, num_unmasked, out=both[:, :, dim:])
        q, k, v = self._split_heads(self.qkv_mut(windows + self.position_bias.repeat(1, 2, 1)))
        (q1, q2), (k1, k2), (v1, v2) = (t.chunk(2, dim=2) for t in (q, k, v))
        half = num_tokens // 2
        # the official code masks both directions with the frame-1 x frame-1 block
        half_mask = None if mask is None else mask[:, :half, :half]
        attend(q2, k1, v1, self.scale, None, half_mask, num_unmasked, out=both[:, :half, :dim])  # frame 1 aligned
        attend(q1, k2, v2, self.scale, None, half_mask, num_unmasked, out=both[:, half:, :dim])  # frame 2 aligned
        return self.proj(both)


class GEGLUMlp(nn.Module):
    """``fc2(gelu(fc11(x)) * fc12(x))`` (gated GELU feed-forward, exact erf GELU)."""

    def __init__(self, in_features: int, hidden_features: int | None = None,
                 out_features: int | None = None) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc11 = nn.Linear(in_features, hidden_features)
        self.fc12 = nn.Linear(in_features, hidden_features)
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc11(x)) * self.fc12(x))


NormFactory = Callable[[int], nn.Module]


class TMSA(nn.Module):
    """One pre-norm transformer block: (shifted) window attention then the GEGLU MLP.

    ``forward(x (n, d, h, w, c), mask) -> (n, d, h, w, c)``; ``mask`` is the shifted-window
    mask of the (clamped) window in :func:`window_index` order, used only when this block shifts.
    """

    # what vsrt.utils.compile compiles: the two residual branches (activation checkpointing
    # stays outside the graphs)
    compile_methods: ClassVar[tuple[str, ...]] = ("_attention_branch", "_mlp_branch")

    def __init__(self, dim: int, num_heads: int, window_size: Size3, shift_size: Size3,
                 mut_attn: bool, mlp_ratio: float, qkv_bias: bool, qk_scale: float | None,
                 drop_path: float, norm_layer: NormFactory, use_checkpoint_attn: bool,
                 use_checkpoint_ffn: bool) -> None:
        super().__init__()
        if not all(0 <= s < w for s, w in zip(shift_size, window_size)):
            raise ValueError(f"shift {shift_size} must lie in [0, window {window_size})")
        self.window_size = window_size
        self.shift_size = shift_size
        self.use_checkpoint_attn = use_checkpoint_attn
        self.use_checkpoint_ffn = use_checkpoint_ffn
        self.norm1 = norm_layer(dim)
        self.attn = MutualSelfAttention(dim, window_size, num_heads, qkv_bias, qk_scale, mut_attn)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = GEGLUMlp(dim, int(dim * mlp_ratio))

    def _attention_branch(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n, d, h, w, c = x.shape
        window, shift = clamp_window((d, h, w), self.window_size, self.shift_size)
        # padded tokens are zeros after the norm and are not masked (as the official code)
        tokens = pad_to_windows(self.norm1(x), window)  # (n, D, H, W, c)
        num_tokens = window[0] * window[1] * window[2]
        # roll by -shift + window partition, and window reverse + roll back + crop: one gather each
        index = window_index(tuple(tokens.shape[1:4]), window, shift, (0, d), (h, w), num_tokens, x.device)
        windows = take_tokens(tokens.reshape(n, -1, c), index.gather).view(-1, num_tokens, c)  # (n*nW, N, c)
        windows = self.attn(windows, mask if any(shift) else None, index.num_unmasked)
        return self.drop_path(take_tokens(windows.view(n, -1, c), index.scatter).view(n, d, h, w, c))

    def _mlp_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.mlp(self.norm2(x)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        grad = torch.is_grad_enabled()
        if self.use_checkpoint_attn and grad:
            x = x + checkpoint(self._attention_branch, x, mask, use_reentrant=False)
        else:
            x = x + self._attention_branch(x, mask)
        chunk = None if self.training else inference_chunk(x, 1)
        if chunk is not None:  # x is this block's own sum: updated in place, chunk by chunk
            x = add_tokenwise_(x, self._mlp_branch, chunk)
        elif self.use_checkpoint_ffn and grad:
            x = x + checkpoint(self._mlp_branch, x, use_reentrant=False)
        else:
            x = x + self._mlp_branch(x)
        return x


class TMSAG(nn.Module):
    """A group of TMSA blocks; odd blocks shift the windows by half a window.

    ``forward(x (n, d, h, w, c)) -> (n, d, h, w, c)``.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: Sequence[int],
                 mut_attn: bool = True, mlp_ratio: float = 2.0, qkv_bias: bool = False,
                 qk_scale: float | None = None, drop_path: float | Sequence[float] = 0.0,
                 norm_layer: NormFactory = nn.LayerNorm, use_checkpoint_attn: bool = False,
                 use_checkpoint_ffn: bool = False) -> None:
        super().__init__()
        self.window_size: Size3 = tuple(window_size)  # type: ignore[assignment]
        self.shift_size: Size3 = tuple(w // 2 for w in window_size)  # type: ignore[assignment]
        rates = list(drop_path) if isinstance(drop_path, Sequence) else [drop_path] * depth
        self.blocks = nn.ModuleList([
            TMSA(dim, num_heads, self.window_size, (0, 0, 0) if i % 2 == 0 else self.shift_size,
                 mut_attn, mlp_ratio, qkv_bias, qk_scale, rates[i], norm_layer,
                 use_checkpoint_attn, use_checkpoint_ffn)
            for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[1:4])
        window, shift = clamp_window(size, self.window_size, self.shift_size)
        mask = None
        if len(self.blocks) > 1 and any(shift):  # (nW, N, N) in the window order of the shifted blocks
            padded = tuple(math.ceil(s / w) * w for s, w in zip(size, window))
            order = window_index(padded, window, shift, (0, size[0]), size[1:], math.prod(window), x.device).order
            mask = shifted_window_mask(padded, window, shift, device=x.device, order=order)
        for block in self.blocks:
            x = block(x, mask)
        return x


class RTMSA(nn.Module):
    """Residual TMSA group of stage 8: ``x + linear(TMSAG(x))`` with self attention only."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: Sequence[int],
                 mlp_ratio: float = 2.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop_path: float | Sequence[float] = 0.0, norm_layer: NormFactory = nn.LayerNorm,
                 use_checkpoint_attn: bool = False, use_checkpoint_ffn: bool = False) -> None:
        super().__init__()
        self.residual_group = TMSAG(dim, depth, num_heads, window_size, False, mlp_ratio,
                                    qkv_bias, qk_scale, drop_path, norm_layer,
                                    use_checkpoint_attn, use_checkpoint_ffn)
        self.linear = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(self.residual_group(x))
