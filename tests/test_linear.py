"""vsrt.archs.layers.linear: oneDNN's fused linear (+ GELU) for CPU float32 inference, F.linear otherwise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vsrt.archs.layers.linear import linear, onednn_linear_applies

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")


def weights(cin: int = 12, cout: int = 20, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(cout, cin, generator=g, dtype=dtype), torch.randn(cout, generator=g, dtype=dtype)


@needs_onednn
@pytest.mark.parametrize("gelu", [False, True])
@pytest.mark.parametrize("shape", [(7, 12), (2, 5, 5, 12), "slice", "transposed"])
def test_onednn_path_equals_f_linear(shape, gelu):
    w, b = weights()
    g = torch.Generator().manual_seed(1)
    if shape == "slice":  # the query tokens of stacked windows: a non-contiguous view
        x = torch.randn(3, 30, 12, generator=g)[:, 20:]
    elif shape == "transposed":
        x = torch.randn(4, 12, 9, generator=g).transpose(1, 2)
    else:
        x = torch.randn(*shape, generator=g)
    with torch.no_grad():
        assert onednn_linear_applies(x, w, b)
        got = linear(x, w, b, gelu=gelu)
        want = F.linear(x.double(), w.double(), b.double())
        want = F.gelu(want) if gelu else want
    assert got.shape == want.shape and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=0)


@pytest.mark.parametrize("case", ["grad", "autocast", "float64", "no_bias", "flags_off"])
def test_fallbacks(case):
    w, b = weights(dtype=torch.float64 if case == "float64" else torch.float32)
    x = torch.randn(6, 12, dtype=w.dtype)
    if case == "grad":
        w.requires_grad_(True)
    if case == "no_bias":
        b = None
    context = {"autocast": torch.autocast("cpu", dtype=torch.bfloat16),
               "flags_off": torch.backends.mkldnn.flags(enabled=False)}.get(case)
    with context if context is not None else torch.enable_grad():
        assert not onednn_linear_applies(x, w, b)
        out = linear(x, w, b, gelu=True)
        assert torch.equal(out, F.gelu(F.linear(x, w, b)))
    if case == "grad":  # training: the standard op and its gradient
        out.sum().backward()
        assert w.grad is not None and w.grad.shape == w.shape


def test_flop_counter_sees_the_standard_op():
    """Inside FlopCounterMode (the benchmark scripts' GFLOP columns) the product is counted."""
    from torch.utils.flop_counter import FlopCounterMode

    w, b = weights()
    x = torch.randn(6, 12)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        linear(x, w, b)
    assert counter.get_total_flops() == 2 * 6 * 12 * 20
