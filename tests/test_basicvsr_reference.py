"""BasicVSR (no official fixture exists) against a naive reference written here from the paper's design.

SpyNet is replaced by a fixed, input-dependent flow of several pixels, so that the warps move features
far enough to reach the borders; the reference warps with an explicit bilinear interpolation (zeros
outside the frame, pixel coordinates), not with ``flow_warp``/``grid_sample``.
"""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import record_nnpack_calls, torch_threads
from vsrt.archs import build_network
from vsrt.archs.flow.warp import flow_warp


class FixedFlow(nn.Module):
    """``(ref, supp) -> (n, 2, h, w)`` flow in pixels; depends on the order of its arguments."""

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        offset = torch.tensor([1.25, -0.6], dtype=ref.dtype).view(1, 2, 1, 1)
        return 6.0 * (ref[:, :2] - supp[:, 1:]) + offset


def naive_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``x (n, c, h, w)`` sampled at ``(row + dy, col + dx)``: bilinear, zero outside the frame."""
    n, c, h, w = x.shape
    rows = torch.arange(h, dtype=x.dtype).view(1, h, 1) + flow[:, 1]  # (n, h, w)
    cols = torch.arange(w, dtype=x.dtype).view(1, 1, w) + flow[:, 0]
    out = torch.zeros_like(x)
    for corner_row in (rows.floor(), rows.floor() + 1):
        for corner_col in (cols.floor(), cols.floor() + 1):
            weight = (1 - (rows - corner_row).abs()) * (1 - (cols - corner_col).abs())
            inside = (corner_row >= 0) & (corner_row <= h - 1) & (corner_col >= 0) & (corner_col <= w - 1)
            index = (corner_row.clamp(0, h - 1) * w + corner_col.clamp(0, w - 1)).long()
            values = x.reshape(n, c, h * w).gather(2, index.view(n, 1, h * w).expand(n, c, h * w))
            out += values.view(n, c, h, w) * (weight * inside).unsqueeze(1)
    return out


def reference_basicvsr(net: nn.Module, lqs: torch.Tensor) -> torch.Tensor:
    """Backward then forward propagation with warped features, fusion, x4 pixel-shuffle head + bilinear skip."""
    n, t, _, h, w = lqs.shape
    lrelu = nn.LeakyReLU(0.1)
    frames = [lqs[:, i] for i in range(t)]
    backward, feat = [None] * t, lqs.new_zeros(n, net.num_feat, h, w)
    for i in reversed(range(t)):
        if i < t - 1:  # frame i+1's features, warped onto frame i
            feat = naive_warp(feat, net.spynet(frames[i], frames[i + 1]))
        feat = net.backward_trunk(torch.cat([frames[i], feat], dim=1))
        backward[i] = feat
    outputs, feat = [], lqs.new_zeros(n, net.num_feat, h, w)
    for i in range(t):
        if i > 0:  # frame i-1's features, warped onto frame i
            feat = naive_warp(feat, net.spynet(frames[i], frames[i - 1]))
        feat = net.forward_trunk(torch.cat([frames[i], feat], dim=1))
        fused = lrelu(net.fusion(torch.cat([backward[i], feat], dim=1)))
        out = lrelu(F.pixel_shuffle(net.upconv1(fused), 2))
        out = lrelu(F.pixel_shuffle(net.upconv2(out), 2))
        out = net.conv_last(lrelu(net.conv_hr(out)))
        outputs.append(out + F.interpolate(frames[i], scale_factor=4, mode="bilinear", align_corners=False))
    return torch.stack(outputs, dim=1)


def test_naive_warp_agrees_with_flow_warp_on_whole_pixel_shifts():
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64)
    flow = torch.zeros(1, 2, 5, 6, dtype=torch.float64)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # sample 2 columns right, 1 row up
    expected = torch.zeros_like(x)
    expected[:, :, 1:, :4] = x[:, :, :4, 2:]
    torch.testing.assert_close(naive_warp(x, flow), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(flow_warp(x, flow.permute(0, 2, 3, 1)), expected, rtol=0, atol=1e-12)


def test_flow_warp_equals_the_naive_bilinear_warp():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 9, 11, dtype=torch.float64)
    flow = 4 * torch.randn(2, 2, 9, 11, dtype=torch.float64)  # many samples fall outside the frame
    torch.testing.assert_close(flow_warp(x, flow.permute(0, 2, 3, 1)), naive_warp(x, flow),
                               rtol=1e-10, atol=1e-10)


def test_basicvsr_equals_the_naive_reference():
    net, lqs = reference_case(frames=4)
    with torch.no_grad():
        torch.testing.assert_close(net(lqs), reference_basicvsr(net, lqs), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("frames", [2, 5])
def test_side_by_side_on_two_threads_equals_the_naive_reference(frames):
    """On two CPU threads the propagations run at once, then each thread fuses and upsamples half of the
    frames (``vsrt.archs.layers.threads``): the same clip, each frame in its place."""
    net, lqs = reference_case(frames)
    with torch.no_grad():
        want = reference_basicvsr(net, lqs)
    threads_of = {}
    for name in ("backward_trunk", "forward_trunk", "fusion"):
        getattr(net, name).register_forward_hook(
            lambda *_, name=name: threads_of.setdefault(name, set()).add(threading.get_ident()))
    with torch.no_grad(), torch_threads(2):
        out = net(lqs)
    torch.testing.assert_close(out, want, rtol=1e-9, atol=1e-9)
    assert len(threads_of["backward_trunk"]) == len(threads_of["forward_trunk"]) == 1
    assert threads_of["backward_trunk"] != threads_of["forward_trunk"]
    assert len(threads_of["fusion"]) == 2


def reference_case(frames: int) -> tuple[nn.Module, torch.Tensor]:
    """A float64 BasicVSR with large random weights and the fixed flow, and a clip ``(1, frames, 3, 12, 12)``."""
    torch.manual_seed(0)
    net = build_network({"type": "BasicVSR", "num_feat": 8, "num_block": 1}).double().eval()
    net.spynet = FixedFlow()
    with torch.no_grad():
        for param in net.parameters():  # random weights large enough that every path matters
            param.copy_(torch.randn_like(param) * 0.2)
    return net, torch.rand(1, frames, 3, 12, 12, dtype=torch.float64)


@pytest.mark.skipif(not torch._nnpack_available(), reason="PyTorch built without NNPACK")
def test_float32_inference_takes_nnpack_and_stays_at_float32_noise(monkeypatch):
    """CPU float32 eval runs the trunks' and the head's 3x3 convolutions through Winograd and SpyNet's 7x7
    ones through NNPACK's FFT. The clip's error against float64 stays near that of the direct path."""
    torch.manual_seed(0)
    net = build_network({"type": "BasicVSR", "num_feat": 16, "num_block": 2}).eval()
    lqs = torch.rand(1, 3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    calls = record_nnpack_calls(monkeypatch)
    with torch.no_grad():
        want = net.double()(lqs.double())
        out = net.float()(lqs)
        with torch.backends.nnpack.flags(enabled=False):
            direct = net(lqs)
    trunks = 3 * 2 * (1 + 2 * 2)  # frames x trunks x (input conv + two per residual block)
    head = 3 * 4  # frames x (upconv1, upconv2, conv_hr, conv_last)
    spynet = 2 * 3 * 5  # both directions x levels of at least 8x8 (32, 16, 8) x convolutions per level
    assert len(calls) == trunks + head + spynet
    assert not torch.equal(out, direct), "the NNPACK path was not taken"
    assert out.is_contiguous()
    direct_err, err = ((x.double() - want).abs().max().item() for x in (direct, out))
    assert err < max(4 * direct_err, 1e-6), (err, direct_err)
