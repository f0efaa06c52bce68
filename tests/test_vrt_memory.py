"""VRT inference memory: attention in bounded chunks of windows, same values."""

from __future__ import annotations

import pytest
import torch

from vsrt.archs import build_network
from vsrt.archs.layers import dcn
from vsrt.archs.layers.execution import force_sync_free
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
    """Windows run sample by sample in chunks (2 windows a chunk, nW = 4, n = 3), each with its own mask;
    the leading all-zero-mask windows (``num_unmasked``) run without one, in a chunk of their own."""
    g = torch.Generator().manual_seed(0)
    n, nw, heads, t, d = 3, 4, 2, 6, 5
    q, k, v = (torch.randn(n * nw, heads, t, d, generator=g) for _ in range(3))
    bias = torch.randn(heads, t, t, generator=g)
    mask = torch.where(torch.rand(nw, t, t, generator=g) < 0.3, -100.0, 0.0)
    mask[:, :, 0] = 0  # every query keeps a key
    mask[0] = 0  # window order of window_index: the unmasked window first
    expected = naive_window_attention(q, k, v, d ** -0.5, bias, mask)
    whole = tmsa.attend(q, k, v, d ** -0.5, bias, mask)
    monkeypatch.setattr(tmsa, "ATTENTION_CHUNK_LOGITS", 2 * heads * t * t)
    calls = []
    real = tmsa.scaled_dot_product
    monkeypatch.setattr(tmsa, "scaled_dot_product",
                        lambda q, k, v, m, s: calls.append((q.shape[0], m.shape[0])) or real(q, k, v, m, s))
    chunked = tmsa.attend(q, k, v, d ** -0.5, bias, mask, num_unmasked=1)
    assert calls == [(1, 1), (2, 2), (1, 1)] * n  # (windows, mask windows): the unmasked one takes the bias alone
    torch.testing.assert_close(whole, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunked, expected, rtol=1e-5, atol=1e-5)
    out = torch.zeros(n * nw, t, 2 * heads * d)  # written in place, into a view of a wider buffer
    tmsa.attend(q, k, v, d ** -0.5, bias, mask, num_unmasked=1, out=out[:, :, heads * d:])
    assert torch.equal(out[:, :, heads * d:], chunked) and not out[:, :, :heads * d].any()


@pytest.mark.parametrize("batch", [1, 2])
def test_vrt_output_does_not_depend_on_the_chunk_size(monkeypatch, batch):
    """Whole tile vs CPU inference chunks of 64 tokens (window attention, MLPs, pa_fuse, the upsampler
    frame by frame), 3-window attention chunks and one image per deformable convolution call; with
    gradients (no chunks at all, torchvision's deform_conv2d) the same values too."""
    torch.manual_seed(0)
    net = build_network({"type": "VRT", **VRT.tiny_config}).eval()
    x = torch.rand(batch, *VRT.tiny_input_shape[1:])
    with torch.no_grad():
        monkeypatch.setattr(tmsa, "CPU_CHUNK_TOKENS", 10**9)
        monkeypatch.setattr(dcn, "CPU_COLUMN_FLOATS", 10**12)
        whole = net(x)
        monkeypatch.setattr(tmsa, "CPU_CHUNK_TOKENS", 64)  # also the upsampler: one frame at a time
        monkeypatch.setattr(dcn, "CPU_COLUMN_FLOATS", 1)  # one image per deformable convolution call
        images = []
        real_deform = dcn.sampled_deform_conv2d  # eval on the CPU: the grid_sample path
        monkeypatch.setattr(dcn, "sampled_deform_conv2d",
                            lambda x, *a, **k: images.append(x.shape[0]) or real_deform(x, *a, **k))
        monkeypatch.setattr(tmsa, "ATTENTION_CHUNK_LOGITS", 3 * 2 * 32 * 32)  # 3 windows of 32 tokens
        runs = []
        real = tmsa.MutualSelfAttention._attend_project
        monkeypatch.setattr(tmsa.MutualSelfAttention, "_attend_project",
                            lambda self, w, *a: runs.append(w.shape[0]) or real(self, w, *a))
        chunked = net(x)
    assert max(runs) == 2 and len(runs) > 2 * 14  # 64-token chunks of 32-token windows in every block
    assert set(images) == {1} and len(images) == 14 * batch  # 7 stages x 2 directions x (t - 1) frames
    with_grad = net(x).detach()
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)
    torch.testing.assert_close(with_grad, whole, rtol=0, atol=1e-6)


def test_inference_chunks_only_on_the_gathered_cpu_path():
    x = torch.zeros(1)
    with torch.no_grad():
        assert tmsa.inference_chunk(x, 384) == tmsa.CPU_CHUNK_TOKENS // 384
        with force_sync_free():
            assert tmsa.inference_chunk(x, 384) is None  # GPU: one launch for all windows
    assert tmsa.inference_chunk(x, 384) is None  # gradients: the whole-tile graph


@pytest.mark.parametrize("size", [(9, 13), (2, 5)])
def test_cpu_deformable_sampling_equals_torchvision(size):
    """The grid_sample path of CPU inference against torchvision's modulated deform_conv2d: several offset
    groups, two convolution groups, offsets far enough to leave the frame on every side."""
    from torchvision.ops import deform_conv2d

    torch.manual_seed(0)
    h, w = size
    x = torch.randn(2, 12, h, w)
    offset = torch.randn(2, 2 * 9 * 4, h, w) * 4  # 4 offset groups
    mask = torch.rand(2, 9 * 4, h, w)
    weight, bias = torch.randn(6, 6, 3, 3), torch.randn(6)  # 12 input channels: 2 convolution groups
    with torch.no_grad():
        assert dcn.sampled_deform_conv_applies(x, weight, padding=1)
        out = dcn.sampled_deform_conv2d(x, offset, weight, bias, mask)
        want = deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    torch.testing.assert_close(out, want, rtol=0, atol=2e-5)
    x.requires_grad_(True)
    assert not dcn.sampled_deform_conv_applies(x, weight, padding=1)  # training keeps torchvision
    with torch.no_grad():
        assert not dcn.sampled_deform_conv_applies(x, weight, padding=0)  # not a same-size convolution
        assert not dcn.sampled_deform_conv_applies(x[..., :1], weight, padding=1)  # a single column
        assert not dcn.sampled_deform_conv_applies(x.double(), weight.double(), padding=1)
