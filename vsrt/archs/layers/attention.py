"""Multi-head attention inside 3-D windows with a relative position bias.

One module serves PSRT-recurrent (every token of a window is a query) and
MIA-VSR / IIA-VSR (only the last frame's tokens are queries, keys are the whole
window). Parameter names (``relative_position_bias_table``, ``qkv``, ``proj``)
and the ``relative_position_index`` buffer follow the official checkpoints.
"""

from __future__ import annotations

from itertools import groupby

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vsrt.archs.layers.execution import attention_window_chunk, capturing_graph, fused_head_dim
from vsrt.archs.layers.linear import linear
from vsrt.archs.layers.window import Size3, relative_position_index


def scaled_dot_product(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None,
                       scale: float) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` that keeps the fused kernels eligible.

    ``q`` ``(B, heads, Nq, d)``, ``k``, ``v`` ``(B, heads, N, d)``, ``attn_mask`` additive,
    broadcastable to ``(B, heads, Nq, N)``. Where :func:`fused_head_dim` asks for it, q, k and v
    are zero-padded to a multiple of 8 (GPU: a head dim the memory-efficient kernel takes; CPU float32:
    head dims 1-2 short of one, which the fused CPU kernel runs faster): zero columns add nothing to
    ``q k^T`` and give zero output columns, which are cut off; ``scale`` stays that of the real head dim.
    Where :func:`threaded_matmul_attention_pays` (several CPU threads, fewer queries than keys) it is
    :func:`matmul_attention` instead. Returns ``(B, heads, Nq, d)``.
    """
    if threaded_matmul_attention_pays(q, k):
        return matmul_attention(q, k, v, attn_mask, scale)
    head_dim = q.shape[-1]
    padded = fused_head_dim(q, head_dim)
    if padded == head_dim:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
    q, k, v = (F.pad(t, (0, padded - head_dim)) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)[..., :head_dim]


def threaded_matmul_attention_pays(q: torch.Tensor, k: torch.Tensor) -> bool:
    """Whether :func:`scaled_dot_product` takes :func:`matmul_attention`: CPU float32 inference on more than one
    thread, with fewer query rows than keys (MIA-VSR / IIA-VSR: the current frame's 64 tokens against 192).

    SDPA's fused CPU kernel is the fastest on one thread, but on two it uses twice the CPU time for the same
    work (16 windows of 64 x 192 tokens, head dim 20, on the 2-core VM: 2.2 ms on one thread, 1.7 ms on two),
    while the matrix products and the softmax split well (1.25 ms). In the whole networks on two threads
    IIA-VSR gains about 9 % and MIA-VSR dense about 6 %; PSRT-recurrent (192 x 192) and VRT got slower, so
    square attention keeps the fused kernel.
    """
    return (q.device.type == "cpu" and q.dtype == torch.float32 and q.shape[-2] < k.shape[-2]
            and not torch.is_grad_enabled() and type(q) is torch.Tensor
            and not capturing_graph()  # before get_num_threads(), which graphs cannot hold
            and torch.get_num_threads() > 1)


def matmul_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None,
                     scale: float) -> torch.Tensor:
    """``softmax(q k^T * scale + attn_mask) v`` from matrix products (the mask added in place: no autograd).

    Shapes as :func:`scaled_dot_product`; the same result up to float rounding."""
    scores = torch.matmul(q * scale, k.transpose(-1, -2))  # (B, heads, Nq, N)
    if attn_mask is not None:
        scores.add_(attn_mask)
    return torch.matmul(scores.softmax(-1), v)


def truncated_normal_(tensor: torch.Tensor, std: float, bound: float = 2.0) -> torch.Tensor:
    """timm's ``trunc_normal_(std=std)`` (absolute bounds +-2): at std 0.02 the cut is
    100 sigma away, so a clamped normal draw is the same distribution and much faster."""
    with torch.no_grad():
        return tensor.normal_(0.0, std).clamp_(-bound, bound)


def gathered_position_bias(owner: nn.Module, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(heads, Nq, N)`` contiguous bias ``table[index]`` (``table`` ``(rows, heads)``, ``index`` ``(Nq, N)``).

    Without gradients (inference) the gathered bias is kept on ``owner`` and reused until the table or the
    index changes (an optimizer step, ``load_state_dict`` or a move bumps the version or the storage; the
    index shape is part of the key, so a sliced index gets its own entry), so a recurrent network gathers
    it once per block instead of once per block call. With gradients, and while compiling, it is gathered
    every call (the graph needs the gather). Contiguous: a permuted bias added to a shift mask gives a
    heads-last sum that SDPA copies again on every call."""
    if torch.is_grad_enabled() or torch.compiler.is_compiling():
        return rearrange(table[index], "q k h -> h q k")  # (Nq, N, heads) -> (heads, Nq, N)
    try:
        key = (table._version, index._version, table.data_ptr(), index.data_ptr(), tuple(index.shape),
               table.device, table.dtype, torch.is_inference_mode_enabled())
    except RuntimeError:  # inference tensors keep no version counter: nothing to key a cache on
        key = None
    cached = owner.__dict__.get("_bias_cache")
    if key is None or cached is None or cached[0] != key:
        cached = (key, rearrange(table[index], "q k h -> h q k").contiguous())
        owner.__dict__["_bias_cache"] = cached
    return cached[1]


class WindowAttention3D(nn.Module):
    """Window attention with a learned relative position bias.

    Args:
        dim: token channels.
        window_size: (frames, h, w) of a window; ``N = frames*h*w`` tokens.
        num_heads: attention heads (``dim`` must be divisible by it).
        qkv_bias: bias in the qkv projection.
        qk_scale: logit scale; default ``head_dim ** -0.5``.
        last_frame_queries: False: all N tokens are queries (bias table of
            ``(2wd-1)(2wh-1)(2ww-1)`` rows). True: only the ``wh*ww`` tokens of the
            last frame are queries, and their frame coordinate in the relative index
            is 0 (MIA-VSR layout, table of ``wd(2wh-1)(2ww-1)`` rows).
    """

    def __init__(self, dim: int, window_size: Size3, num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, last_frame_queries: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        wd, wh, ww = window_size
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.last_frame_queries = last_frame_queries
        if last_frame_queries:
            rows = wd * (2 * wh - 1) * (2 * ww - 1)
            index = relative_position_index(window_size, query_frame=0)
        else:
            rows = (2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1)
            index = relative_position_index(window_size)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(rows, num_heads))
        truncated_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", index)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    @property
    def num_queries(self) -> int:
        return self.relative_position_index.shape[0]

    def position_bias(self) -> torch.Tensor:
        """``(heads, Nq, N)`` bias from the table (reused without gradients: :func:`gathered_position_bias`)."""
        return gathered_position_bias(self, self.relative_position_bias_table, self.relative_position_index)

    def project_queries(self, tokens: torch.Tensor, ragged_rows: bool = False) -> torch.Tensor:
        """The q part of ``qkv``: ``(..., dim) -> (..., dim)`` (heads still interleaved); ``ragged_rows`` as in
        :func:`vsrt.archs.layers.linear.linear`."""
        bias = None if self.qkv.bias is None else self.qkv.bias[:self.dim]
        return linear(tokens, self.qkv.weight[:self.dim], bias, ragged_rows=ragged_rows)

    def project_keys_values(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The k and v parts of ``qkv``: ``(B, N, dim)`` -> ``(B, heads, N, head_dim)`` twice."""
        bias = None if self.qkv.bias is None else self.qkv.bias[self.dim:]
        kv = linear(tokens, self.qkv.weight[self.dim:], bias)
        return tuple(rearrange(kv, "b t (two h d) -> two b h t d", two=2, h=self.num_heads))

    def project_split(self, query_tokens: torch.Tensor, key_tokens: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``qkv`` applied to the query tokens ``(B, Nq, dim)`` for q and the key tokens ``(B, N, dim)``
        for k and v: ``(B, heads, Nq, head_dim)``, ``(B, heads, N, head_dim)`` twice."""
        q = rearrange(self.project_queries(query_tokens), "b t (h d) -> b h t d", h=self.num_heads)
        return (q, *self.project_keys_values(key_tokens))

    def attend(self, windows: torch.Tensor, mask: torch.Tensor | None = None,
               num_unmasked: int = 0) -> torch.Tensor:
        """Attention of the query tokens, before ``proj``.

        Args:
            windows: ``(n*nW, N, dim)`` tokens, window-major per sample.
            mask: ``(nW, Nq, N)`` additive shifted-window mask, or None.
            num_unmasked: the first ``num_unmasked`` windows of every sample have an all-zero
                ``mask`` (:func:`vsrt.archs.layers.window.window_index` orders them so): they
                run with the position bias alone, and only the others get a per-window
                ``(bias + mask)`` (which would otherwise be ``nW*heads*Nq*N`` floats per call).
        Returns:
            ``(n*nW, Nq, dim)``.
        """
        num_windows_total, num_tokens, _ = windows.shape
        if self.num_queries == num_tokens:
            qkv = rearrange(linear(windows, self.qkv.weight, self.qkv.bias), "b t (three h d) -> three b h t d",
                            three=3, h=self.num_heads)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, N, head_dim)
        else:  # queries of the last frame only: no q for the other frames' tokens
            q, k, v = self.project_split(windows[:, num_tokens - self.num_queries:], windows)
        # 4-D inputs and a 4-D mask keep SDPA on its fused CPU kernel (3-D or 5-D fall
        # back to a several times slower path)
        attn_mask = self.position_bias().to(q.dtype).unsqueeze(0)  # (1, heads, Nq, N)
        if mask is not None and 0 < num_unmasked < mask.shape[0]:
            return self._attend_split(q, k, v, attn_mask, mask, num_unmasked)
        if mask is not None and num_unmasked == 0:
            nw = mask.shape[0]
            attn_mask = attn_mask + mask.to(q.dtype).unsqueeze(1)  # (nW, heads, Nq, N)
            if num_windows_total != nw:  # windows are sample-major: repeat per sample
                attn_mask = attn_mask.repeat(num_windows_total // nw, 1, 1, 1)
        out = scaled_dot_product(q, k, v, attn_mask, self.scale)
        return rearrange(out, "b h t d -> b t (h d)")

    def _attend_split(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                      mask: torch.Tensor, num_unmasked: int) -> torch.Tensor:
        """:meth:`attend` with the unmasked windows first: bias alone there, bias + mask on the rest."""
        nw = mask.shape[0]
        n = q.shape[0] // nw

        def windows_of(t: torch.Tensor, part: slice) -> torch.Tensor:  # (n*nW, ...) -> (n*len(part), ...)
            return t.view(n, nw, *t.shape[1:])[:, part].flatten(0, 1)

        plain, masked = slice(0, num_unmasked), slice(num_unmasked, nw)
        masked_bias = bias + mask[masked].to(q.dtype).unsqueeze(1)  # (nW - U, heads, Nq, N)
        if n > 1:
            masked_bias = masked_bias.repeat(n, 1, 1, 1)
        out = torch.cat([
            scaled_dot_product(*(windows_of(t, part) for t in (q, k, v)), part_bias, self.scale)
            .view(n, -1, *q.shape[1:3], v.shape[-1])
            for part, part_bias in ((plain, bias), (masked, masked_bias))], dim=1)  # (n, nW, heads, Nq, d)
        return rearrange(out, "n w h t d -> (n w) t (h d)")

    def forward_kept(self, windows: torch.Tensor, keep: torch.Tensor, fallback: torch.Tensor,
                     mask: torch.Tensor | None = None, num_unmasked: int = 0, bucket: int = 8) -> torch.Tensor:
        """``where(keep, forward(windows, mask, num_unmasked), fallback)``, computing only the kept query rows.

        Windows without a kept query are skipped (no q, k or v). The others are sorted by their number of
        kept queries rounded up to a multiple of ``Nq // bucket``, then unmasked before masked; each run of
        windows with the same rounded count and mask kind is one dense attention batch whose query rows are
        each window's kept positions (then a few unkept ones as padding, computed and dropped). Fully kept
        unmasked windows read the shared position bias as :meth:`attend` does; the others a per-row copy
        (plus their shift-mask rows). Per chunk of windows (:func:`attention_window_chunk`) k/v, q and
        ``proj`` are one matrix product each. Each kept row gets the arithmetic of :meth:`forward` (equal up
        to float rounding). Data-dependent shapes: the gathered (CPU) path only.

        Args:
            windows: ``(n*nW, N, dim)``.
            keep: ``(n*nW, Nq)`` bool.
            fallback: ``(n*nW, Nq, dim)``, the rows where ``keep`` is False.
            mask, num_unmasked: as in :meth:`attend`.
        Returns:
            ``(n*nW, Nq, dim)``, a new tensor.
        """
        num_tokens, dim, heads = windows.shape[1], self.dim, self.num_heads
        num_queries, device = self.num_queries, windows.device
        step = max(1, num_queries // bucket)
        padded_rows = (keep.sum(1) + step - 1) // step * step  # (n*nW,) query rows each window runs with
        nw = windows.shape[0] if mask is None else mask.shape[0]
        masked = (torch.arange(windows.shape[0], device=device) % nw >= num_unmasked) & (mask is not None)
        # largest padded size first, unmasked before masked within a size, windows without kept rows last
        order = torch.argsort(padded_rows * 2 + (~masked).to(padded_rows.dtype), descending=True, stable=True)
        sizes = padded_rows.index_select(0, order)  # (n*nW,) in processing order
        kinds = list(zip(sizes.tolist(), masked.index_select(0, order).tolist()))
        active = sum(size > 0 for size, _ in kinds)
        # each window's kept query positions first (in order), then the unkept ones; all in order where
        # every row runs: (A, Nq)
        positions = torch.argsort((~keep.index_select(0, order[:active])).to(torch.uint8), dim=1, stable=True)
        every_row = sizes[:active].unsqueeze(1) == num_queries
        positions = torch.where(every_row, torch.arange(num_queries, device=device), positions)
        table = self.position_bias()  # (heads, Nq, N)
        mask_rows = None if mask is None else mask.reshape(-1, num_tokens)  # (nW*Nq, N)
        out = fallback.reshape(-1, dim).clone()  # (n*nW*Nq, dim)
        for lo, hi in even_splits(0, active, attention_window_chunk(windows, num_tokens) or active):
            ids, chunk_sizes = order[lo:hi], sizes[lo:hi]  # (m,) windows of this chunk, their query rows
            slot = torch.repeat_interleave(torch.arange(hi - lo, device=device), chunk_sizes)  # (P,) window of each row
            row = positions[lo:hi][torch.arange(num_queries, device=device) < chunk_sizes.unsqueeze(1)]  # (P,)
            target = ids.index_select(0, slot) * num_queries + row  # (P,) rows of ``out``
            token = windows.index_select(0, ids)  # (m, N, dim)
            k, v = self.project_keys_values(token)  # (m, heads, N, head_dim) each
            q = self.project_queries(  # (P, dim); P depends on the data, m does not (much): k/v stay on oneDNN
                token.view(-1, dim).index_select(0, slot * num_tokens + (num_tokens - num_queries) + row),
                ragged_rows=True)
            attended, row_start, window_start = [], 0, 0
            for (size, is_masked), group_kinds in groupby(kinds[lo:hi]):  # one attention batch each
                count = len(list(group_kinds))
                rows = slice(row_start, row_start + size * count)
                group = slice(window_start, window_start + count)
                if size == num_queries:  # every row, in order: the shared table
                    bias = table.unsqueeze(0)  # (1, heads, Nq, N)
                else:
                    bias = rearrange(table.index_select(1, row[rows]), "h (m s) n -> m h s n", m=count)
                if is_masked:  # (count, 1, size, N) shift-mask rows of each window
                    mask_index = target[rows] % mask_rows.shape[0]
                    bias = bias + rearrange(mask_rows.index_select(0, mask_index), "(m s) n -> m 1 s n", m=count)
                result = scaled_dot_product(rearrange(q[rows], "(m s) (h d) -> m h s d", m=count, h=heads),
                                            k[group], v[group], bias.to(q.dtype), self.scale)  # (count, h, size, d)
                attended.append(rearrange(result, "m h s d -> (m s) (h d)"))
                row_start, window_start = rows.stop, group.stop
            kept = keep.reshape(-1).index_select(0, target).nonzero().squeeze(1)  # padded rows that are kept
            projected = self.project_out(torch.cat(attended).index_select(0, kept), ragged_rows=True)
            out.index_copy_(0, target.index_select(0, kept), projected.to(out.dtype))
        return out.view(fallback.shape)

    def project_out(self, attended: torch.Tensor, ragged_rows: bool = False) -> torch.Tensor:
        """``proj`` (key ``proj``) through :func:`vsrt.archs.layers.linear.linear`: ``(..., dim) -> (..., dim)``."""
        return linear(attended, self.proj.weight, self.proj.bias, ragged_rows=ragged_rows)

    def forward(self, windows: torch.Tensor, mask: torch.Tensor | None = None, num_unmasked: int = 0) -> torch.Tensor:
        """``(n*nW, N, dim)`` -> ``(n*nW, Nq, dim)`` (arguments as :meth:`attend`).

        On the CPU the windows go through in chunks (:func:`attention_window_chunk`): every window's
        arithmetic is the same, only fewer of them are in flight at once."""
        chunk = attention_window_chunk(windows, windows.shape[1])
        if chunk is None or windows.shape[0] <= chunk:
            return self.project_out(self.attend(windows, mask, num_unmasked))
        return torch.cat([self.project_out(self.attend(windows[start:stop], part_mask))
                          for start, stop, part_mask in window_chunks(windows.shape[0], mask, num_unmasked, chunk)])


def window_chunks(num_windows_total: int, mask: torch.Tensor | None, num_unmasked: int, chunk: int
                  ) -> list[tuple[int, int, torch.Tensor | None]]:
    """``(start, stop, mask rows or None)`` covering ``n*nW`` sample-major windows, at most ``chunk`` each.

    A chunk never mixes samples or the unmasked windows (the first ``num_unmasked`` of a sample, which
    get None) with the masked ones (which get their ``(stop - start, Nq, N)`` rows of ``mask``); each
    run of windows is cut into equal chunks (49 windows at most 16 a chunk: 12, 12, 12, 13).
    """
    if mask is None:
        return [(s, e, None) for s, e in even_splits(0, num_windows_total, chunk)]
    nw = mask.shape[0]
    return [(first + s, first + e, None if hi == num_unmasked else mask[s:e])
            for first in range(0, num_windows_total, nw)
            for lo, hi in ((0, num_unmasked), (num_unmasked, nw)) if hi > lo
            for s, e in even_splits(lo, hi, chunk)]


def even_splits(lo: int, hi: int, chunk: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` cut into the fewest near-equal ``(start, stop)`` parts of at most ``chunk`` (49 by 16: 12, 12,
    12, 13)."""
    if hi <= lo:
        return []
    count = -(-(hi - lo) // chunk)
    bounds = [lo + (hi - lo) * i // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))
