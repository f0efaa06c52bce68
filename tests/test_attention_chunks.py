"""CPU window attention in chunks of windows (``attention_window_chunk``): same result as all at once."""

from __future__ import annotations

import pytest
import torch

import vsrt.archs.layers.execution as execution
from helpers import torch_threads
from vsrt.archs.layers.attention import (
    WindowAttention3D,
    matmul_attention,
    scaled_dot_product,
    threaded_matmul_attention_pays,
    window_chunks,
)
from vsrt.archs.layers.execution import attention_window_chunk, force_sync_free
from vsrt.archs.layers.window import shifted_window_mask, window_index


@pytest.mark.parametrize(("total", "nw", "unmasked", "chunk"), [(64, 64, 49, 16), (128, 64, 49, 16),
                                                                (30, 15, 0, 4), (30, 15, 15, 7), (10, None, 0, 3)])
def test_chunks_cover_every_window_once_without_mixing_masked_and_unmasked(total, nw, unmasked, chunk):
    mask = None if nw is None else torch.arange(nw, dtype=torch.float32).view(nw, 1, 1)
    parts = window_chunks(total, mask, unmasked, chunk)
    assert [s for s, _, _ in parts] == [0] + [e for _, e, _ in parts[:-1]] and parts[-1][1] == total
    for start, stop, rows in parts:
        assert 0 < stop - start <= chunk
        if mask is None:
            assert rows is None
            continue
        first = start // nw * nw  # the chunk's sample
        assert stop <= first + nw
        if stop - first <= unmasked:
            assert rows is None
        else:  # masked windows only, with their own mask rows
            assert start - first >= unmasked
            assert rows.flatten().tolist() == list(range(start - first, stop - first))


@pytest.mark.parametrize("last_frame_queries", [False, True])
def test_chunked_attention_equals_one_batch(monkeypatch, last_frame_queries):
    torch.manual_seed(0)
    window, padded, shift = (3, 4, 4), (3, 12, 8), (3, 2, 2)
    attn = WindowAttention3D(12, window, 2, last_frame_queries=last_frame_queries).eval()
    index = window_index(padded, window, shift, (0, 3), (12, 8), attn.num_queries, torch.device("cpu"))
    mask = shifted_window_mask(padded, window, shift)[index.order][:, -attn.num_queries:]
    windows = torch.randn(2 * mask.shape[0], 48, 12)  # 2 samples of 6 windows, 2 of them unmasked
    monkeypatch.setattr(execution, "CPU_ATTENTION_CHUNK_TOKENS", 10**9)
    with torch.no_grad():
        whole = [attn(windows, mask, index.num_unmasked), attn(windows)]
    monkeypatch.setattr(execution, "CPU_ATTENTION_CHUNK_TOKENS", 2 * 48)  # 2 windows a chunk
    assert attention_window_chunk(windows, 48) == 2
    with torch.no_grad():
        chunked = [attn(windows, mask, index.num_unmasked), attn(windows)]
    for got, want in zip(chunked, whole):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    # gradients flow through the chunks as through one batch
    windows.requires_grad_(True)
    attn(windows, mask, index.num_unmasked).square().sum().backward()
    chunked_grad = windows.grad.clone()
    windows.grad = None
    monkeypatch.setattr(execution, "CPU_ATTENTION_CHUNK_TOKENS", 10**9)
    attn(windows, mask, index.num_unmasked).square().sum().backward()
    torch.testing.assert_close(chunked_grad, windows.grad, atol=1e-5, rtol=0)


def test_sync_free_path_does_not_chunk():
    x = torch.zeros(64, 192, 8)
    assert attention_window_chunk(x, 192) == execution.CPU_ATTENTION_CHUNK_TOKENS // 192
    with force_sync_free():
        assert attention_window_chunk(x, 192) is None


def test_matmul_attention_only_for_threaded_cpu_inference_with_fewer_queries_than_keys():
    """SDPA's fused CPU kernel stays where it is fastest (one thread, square attention), and training and
    graphs keep it; otherwise MIA/IIA-shaped attention takes the matrix products, with SDPA's result."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 5), torch.randn(3, 2, 12, 5), torch.randn(3, 2, 12, 5)
    mask = torch.randn(1, 2, 4, 12)
    with torch_threads(1):
        assert not threaded_matmul_attention_pays(q, k)
    with torch_threads(2):
        with torch.no_grad():
            assert threaded_matmul_attention_pays(q, k)
            assert not threaded_matmul_attention_pays(k, k)  # square: the fused kernel
            assert not threaded_matmul_attention_pays(q.double(), k.double())
            want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3)
            torch.testing.assert_close(matmul_attention(q, k, v, mask, 0.3), want)
            torch.testing.assert_close(scaled_dot_product(q, k, v, None, 0.3),
                                       torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.3))
        assert not threaded_matmul_attention_pays(q, k)  # gradients on: training keeps SDPA
