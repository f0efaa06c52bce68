"""VRT inference memory: attention in bounded chunks of windows, same values."""

from __future__ import annotations

import pytest
import torch

from vsrt.archs import build_network
from vsrt.archs.vrt import tmsa
from vsrt.archs.vrt.vrt_arch import VRT


def naive_window_attention(q, k, v, scale, bias, mask):
    """softmax(q k^T * scale + bias + mask[b % nW]) v, window by window, heads concatenated."""
    out = []
    for b in range(q.shape[0]):
        logits = q[b] @ k[b].transpose(-1, -2) * scale + bias + mask[b % mask.shape[0]]
        out.append((logits.softmax(-1) @ v[b]).transpose(0, 1).flatten(1))  # (t, heads*d)
    return torch.stack(out)


def test_chunked_attention_is_window_attention(monkeypatch):
    """Chunks that straddle samples (7 windows a chunk, nW = 4, n = 3) take each window's own mask."""
    g = torch.Generator().manual_seed(0)
    n, nw, heads, t, d = 3, 4, 2, 6, 5
    q, k, v = (torch.randn(n * nw, heads, t, d, generator=g) for _ in range(3))
    bias = torch.randn(heads, t, t, generator=g)
    mask = torch.where(torch.rand(nw, t, t, generator=g) < 0.3, -100.0, 0.0)
    mask[:, :, 0] = 0  # every query keeps a key
    expected = naive_window_attention(q, k, v, d ** -0.5, bias, mask)
    whole = tmsa.attend(q, k, v, d ** -0.5, bias, mask)
    monkeypatch.setattr(tmsa, "ATTENTION_CHUNK_LOGITS", 7 * heads * t * t)
    calls = []
    real = tmsa._attend_windows
    monkeypatch.setattr(tmsa, "_attend_windows", lambda q, *a: calls.append(q.shape[0]) or real(q, *a))
    chunked = tmsa.attend(q, k, v, d ** -0.5, bias, mask)
    assert calls == [7, 5]
    torch.testing.assert_close(whole, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunked, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 2])
def test_vrt_output_does_not_depend_on_the_chunk_size(monkeypatch, batch):
    torch.manual_seed(0)
    net = build_network({"type": "VRT", **VRT.tiny_config}).eval()
    x = torch.rand(batch, *VRT.tiny_input_shape[1:])
    with torch.no_grad():
        whole = net(x)
        monkeypatch.setattr(tmsa, "ATTENTION_CHUNK_LOGITS", 3 * 2 * 32 * 32)  # 3 windows of 32 tokens
        chunked = net(x)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)

