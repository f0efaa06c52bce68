"""vsrt.archs.layers.nnpack_conv: NNPACK CPU path of 3x3 (Winograd) and 7x7 (FFT) convolutions, and its fallbacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from helpers import record_nnpack_calls, torch_threads
from vsrt.archs import ARCH_REGISTRY
from vsrt.archs.layers import nnpack_conv
from vsrt.archs.layers.nnpack_conv import Conv2d, conv2d, nnpack_applies
from vsrt.archs.layers.patch_align import ResidualSwinGroup
from vsrt.archs.layers.upsample import pixel_shuffle

needs_nnpack = pytest.mark.skipif(not torch._nnpack_available(), reason="PyTorch built without NNPACK")


def make_conv(cin: int = 16, cout: int = 8, **kwargs) -> tuple[nn.Conv2d, Conv2d]:
    torch.manual_seed(0)
    reference = nn.Conv2d(cin, cout, 3, **{"stride": 1, "padding": 1, **kwargs})
    fast = Conv2d(cin, cout, 3, **{"stride": 1, "padding": 1, **kwargs})
    fast.load_state_dict(reference.state_dict(), strict=True)
    return reference, fast


@needs_nnpack
def test_winograd_path_matches_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    reference, fast = make_conv(16, 8)
    x = torch.randn(2, 16, 33, 40)  # odd sizes, batch of two
    calls = record_nnpack_calls(monkeypatch)
    with torch.no_grad():
        out = fast(x)
        want = F.conv2d(x.double(), reference.weight.double(), reference.bias.double(), padding=1)
    assert len(calls) == 1
    assert out.shape == want.shape == (2, 8, 33, 40)
    # float32 rounding of the transform: far below any visible change, far above a wrong result
    assert (out.double() - want).abs().max() < 2e-5 * want.abs().max()
    assert not torch.equal(out, reference(x).detach()), "the Winograd path was not taken"


@pytest.mark.parametrize("case", ["grad", "autocast", "small", "stride", "groups", "padding", "float64",
                                  "flags_off", "reflect"])
def test_fallbacks_are_the_standard_convolution(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = {"stride": {"stride": 2}, "groups": {"groups": 2}, "padding": {"padding": 0},
              "reflect": {"padding_mode": "reflect"}}.get(case, {})
    reference, fast = make_conv(16, 8, **kwargs)
    x = torch.randn(1, 16, 8 if case == "small" else 32, 32)
    if case == "float64":
        reference, fast, x = reference.double(), fast.double(), x.double()
    calls = record_nnpack_calls(monkeypatch)
    with torch.no_grad():
        want = reference(x)
    if case == "grad":
        out = fast(x)  # parameters require grad: the graph and backward of the direct convolution
        assert out.grad_fn is not None
    elif case == "autocast":
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out, want = fast(x), reference(x)
        assert out.dtype == torch.bfloat16
    elif case == "flags_off":
        with torch.no_grad(), torch.backends.nnpack.flags(enabled=False):
            out = fast(x)
    else:
        with torch.no_grad():
            out = fast(x)
    assert len(calls) == 0
    assert torch.equal(out, want)


def test_nnpack_applies_needs_enough_pixels_and_cpu_float32() -> None:
    weight = torch.randn(8, 16, 3, 3)
    with torch.no_grad():
        side = int(nnpack_conv.MIN_PIXELS[3] ** 0.5)
        assert nnpack_applies(torch.randn(1, 16, side, side), weight, padding=1) == torch._nnpack_available()
        assert not nnpack_applies(torch.randn(1, 16, side - 1, side), weight, padding=1)
        assert not nnpack_applies(torch.randn(1, 16, side, side, dtype=torch.float16), weight, padding=1)
        assert not nnpack_applies(torch.randn(16, side, side), weight, padding=1)  # unbatched input
        assert not nnpack_applies(torch.randn(1, 16, side, side), torch.randn(8, 16, 5, 5), padding=1)


def test_same_state_dict_as_nn_conv2d() -> None:
    reference, fast = make_conv(4, 6)
    assert list(fast.state_dict()) == list(reference.state_dict()) == ["weight", "bias"]
    assert isinstance(fast, nn.Conv2d)


@needs_nnpack
def test_export_keeps_the_standard_convolution() -> None:
    _, fast = make_conv(16, 8)
    with torch.no_grad():
        program = torch.export.export(fast.eval(), (torch.randn(1, 16, 32, 32),))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert not any("nnpack" in target for target in targets)
    assert any("conv" in target for target in targets)


@needs_nnpack
def test_first_convolution_of_a_fresh_process() -> None:
    """NNPACK must be initialised before its first convolution (it fails otherwise)."""
    code = ("import torch; from vsrt.archs.layers.nnpack_conv import Conv2d; conv = Conv2d(8, 8, 3, 1, 1)\n"
            "with torch.no_grad(): print(tuple(conv(torch.randn(1, 8, 32, 32)).shape))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 8, 32, 32)"


def test_flop_counter_sees_the_convolution() -> None:
    _, fast = make_conv(16, 8)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fast(torch.randn(1, 16, 32, 32))
    assert counter.get_total_flops() == 2 * 16 * 8 * 9 * 32 * 32


@needs_nnpack
def test_functional_conv2d_bias_free(monkeypatch: pytest.MonkeyPatch) -> None:
    x, weight = torch.randn(1, 16, 32, 32), torch.randn(8, 16, 3, 3)
    calls = record_nnpack_calls(monkeypatch)
    with torch.no_grad():
        out = conv2d(x, weight, None, padding=1)
    assert len(calls) == 1
    want = F.conv2d(x.double(), weight.double(), padding=1)
    assert (out.double() - want).abs().max() < 2e-5 * want.abs().max()


@needs_nnpack
def test_7x7_convolution_takes_the_fft_path_and_is_as_accurate_as_the_direct_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SpyNet's 7x7 convolutions (padding 3) go through NNPACK too."""
    torch.manual_seed(0)
    reference = nn.Conv2d(8, 32, 7, 1, 3)
    fast = Conv2d(8, 32, 7, 1, 3)
    fast.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 8, 17, 24)
    calls = record_nnpack_calls(monkeypatch)
    with torch.no_grad():
        out, direct = fast(x), reference(x)
        want = F.conv2d(x.double(), reference.weight.double(), reference.bias.double(), padding=3)
    assert len(calls) == 1
    assert not torch.equal(out, direct), "the NNPACK path was not taken"
    direct_err = (direct.double() - want).abs().max()
    assert (out.double() - want).abs().max() < 3 * direct_err + 1e-7
    with torch.no_grad():  # a 7x7 kernel with another padding is not a same-size convolution: direct
        assert not nnpack_applies(x, fast.weight, padding=1)


@needs_nnpack
@pytest.mark.parametrize("kernel", [3, 7])
def test_large_convolutions_run_in_bands_with_the_same_result(kernel: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the scratch budget the rows are cut into bands; each band's halo rows make the seams exact
    (a band that read no halo would see zeros there: errors of the size of the output itself)."""
    torch.manual_seed(1)
    x = torch.randn(1, 6, 41, 37)
    weight, bias = torch.randn(5, 6, kernel, kernel), torch.randn(5)
    rows_per_band = 7
    per_row = nnpack_conv.SCRATCH_BYTES_PER_PIXEL_CHANNEL * x.shape[-1] * (6 + 5)
    monkeypatch.setattr(nnpack_conv, "SCRATCH_BUDGET", rows_per_band * per_row)
    assert nnpack_conv.band_rows(x, 5) == rows_per_band
    calls = record_nnpack_calls(monkeypatch)
    with torch.no_grad():
        out = conv2d(x, weight, bias, padding=kernel // 2)
    want = F.conv2d(x.double(), weight.double(), bias.double(), padding=kernel // 2)
    assert len(calls) == -(-41 // rows_per_band)  # 6 bands
    assert out.shape == want.shape
    assert (out.double() - want).abs().max() < 2e-5 * want.abs().max()


@needs_nnpack
def test_nnpack_runs_on_the_calling_thread_and_leaves_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """With two threads NNPACK's pool and the OpenMP team would fight over the cores (docs/performance.md,
    "Two threads"): each NNPACK call sees one intra-op thread, and the caller's count is back afterwards,
    also when the call fails."""
    seen: list[int] = []
    original = torch._nnpack_spatial_convolution

    def recorded(*args: object) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return original(*args)

    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", recorded)
    with torch_threads(2):
        x, weight = torch.randn(1, 4, 32, 32), torch.randn(5, 4, 3, 3)
        with torch.no_grad():
            out = conv2d(x, weight, padding=1)
        assert seen == [1] and torch.get_num_threads() == 2
        torch.testing.assert_close(out, F.conv2d(x, weight, padding=1), rtol=0, atol=1e-3)  # Winograd rounding
        monkeypatch.setattr(torch, "_nnpack_spatial_convolution", lambda *args: 1 / 0)
        with pytest.raises(ZeroDivisionError), torch.no_grad():
            conv2d(x, weight, padding=1)
        assert torch.get_num_threads() == 2


@needs_nnpack
def test_nnpack_only_on_as_many_threads_as_it_pays() -> None:
    """oneDNN's direct convolution uses every thread, NNPACK one: on 2 threads a single 3x3 image and 7x7
    batches keep NNPACK, a 3x3 batch (NNPACK's slower batched algorithm) goes direct; above
    NNPACK_MAX_THREADS everything goes direct; on one thread everything takes NNPACK."""
    image, batch = torch.randn(1, 4, 32, 32), torch.randn(3, 4, 32, 32)
    w3, w7 = torch.randn(5, 4, 3, 3), torch.randn(5, 4, 7, 7)
    with torch.no_grad():
        with torch_threads(1):
            assert nnpack_applies(batch, w3, padding=1) and nnpack_applies(batch, w7, padding=3)
        with torch_threads(2):
            assert nnpack_applies(image, w3, padding=1) and nnpack_applies(batch, w7, padding=3)
            assert not nnpack_applies(batch, w3, padding=1)
        with torch_threads(nnpack_conv.NNPACK_MAX_THREADS + 1):
            assert not nnpack_applies(image, w3, padding=1) and not nnpack_applies(image, w7, padding=3)


def test_band_rows_bound_the_scratch() -> None:
    x = torch.empty(1, 64, 720, 1280)  # 64 -> 64 channels at 720p: about 1.1 GB unbanded
    rows = nnpack_conv.band_rows(x, 64)
    assert 1 <= rows < 720
    assert rows * 1280 * 128 * nnpack_conv.SCRATCH_BYTES_PER_PIXEL_CHANNEL <= nnpack_conv.SCRATCH_BUDGET
    assert nnpack_conv.band_rows(torch.empty(1, 64, 64, 64), 64) == 64  # small frames: one call


@pytest.mark.parametrize("factor", [2, 3])
def test_pixel_shuffle_is_torchs_exactly(factor: int) -> None:
    """The heads' reshape-and-permute pixel shuffle (faster than PyTorch's NCHW kernel on the CPU)."""
    x = torch.randn(2, 5 * factor * factor, 6, 7)
    out = pixel_shuffle(x, factor)
    assert torch.equal(out, F.pixel_shuffle(x, factor))
    assert out.is_contiguous()


@needs_nnpack
@pytest.mark.parametrize("arch", ["BasicRecurrentSwin", "MIAVSR", "IIAVSR"])
def test_recurrent_transformers_take_winograd_in_the_steps_but_not_in_the_head(
        arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every propagation step's 3x3 convolutions (the groups' convs, ``conv_after_body``) and the x4 head's
    ``upconv1`` / ``upconv2`` go through NNPACK; ``conv_hr`` and ``conv_last`` keep the direct convolution:
    Winograd in the whole head moved the ``psrt_recurrent_t5`` fixture output 1.05e-5 from the official
    (tolerance 1e-5); in the steps and the two upsampling convs at most 1.3e-6 on every fixture."""
    net_class = ARCH_REGISTRY.get(arch)
    torch.manual_seed(0)
    net = net_class(**net_class.tiny_config).eval()
    embed = net_class.tiny_config["embed_dim"]
    shapes = record_nnpack_calls(monkeypatch)
    with torch.no_grad():
        net(torch.rand(1, 2, 3, 32, 32))
    convs_3x3 = [s for s in shapes if s[-1] == 3]
    groups = len(net_class.tiny_config["depths"])
    steps = [s for s in convs_3x3 if s == (embed, embed, 3, 3)]
    assert len(steps) == 4 * 2 * (groups + 1)  # 4 branches x 2 steps x (groups + conv_after_body)
    mid = net_class.tiny_config["mid_channels"]
    head = (tuple(net.upconv1.weight.shape), tuple(net.upconv2.weight.shape))
    assert head == ((4 * mid, mid, 3, 3), (256, mid, 3, 3))
    assert sorted(s for s in convs_3x3 if s != (embed, embed, 3, 3)) == sorted(2 * head)  # 2 frames
    assert set(convs_3x3).isdisjoint({tuple(net.conv_hr.weight.shape), tuple(net.conv_last.weight.shape)})


@needs_nnpack
@pytest.mark.parametrize("frames", [None, 3])
def test_residual_group_sum_keeps_the_tokens_channels_last(frames: int | None) -> None:
    """NNPACK returns NCHW; the group's sum must still come out channels-last and contiguous (a sum in the
    conv's layout made every later LayerNorm and window gather of the step several times slower)."""
    torch.manual_seed(0)
    group = ResidualSwinGroup([], dim=8)
    x = torch.randn(1, *(() if frames is None else (frames,)), 40, 40, 8)
    with torch.no_grad():
        out = group(x)
        frames_nchw = x.reshape(-1, 40, 40, 8).permute(0, 3, 1, 2)
        want = x + F.conv2d(frames_nchw, group.conv.weight, group.conv.bias, padding=1).permute(0, 2, 3, 1).reshape(
            x.shape)
    assert out.is_contiguous()
    assert torch.allclose(out, want, atol=1e-4)
