"""SAVSR: golden parity with the official code, scale handling, state dict and fixed defects."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from helpers import VENDORED_PARITY, golden_view, parity_cases, record_nnpack_calls, torch_threads
from vsrt.archs import build_network
from vsrt.archs.layers import nnpack_conv
from vsrt.archs.layers.execution import force_sync_free
from vsrt.archs.savsr import sr_size
from vsrt.archs.savsr_arch import SAVSR, branch_frame_indices

VENDORED = VENDORED_PARITY / "savsr"
CASES = [pytest.param(path, id=case_id) for case_id, path in parity_cases("savsr")]

TINY = {"num_feat": 16, "num_frame": 5, "slid_win": 3, "fusion_win": 3, "w1_num_block": 2, "w2_num_block": 1,
        "n_resgroups": 1, "n_resblocks": 1}


def load_case(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def build_case_model(case: dict) -> SAVSR:
    model = SAVSR(**case["kwargs"])
    model.load_state_dict(case["state_dict"], strict=True)
    return model.eval()


def assert_close_to_case(out: torch.Tensor, case: dict) -> None:
    want = case["outputs"]["out"]
    out = golden_view(out, case)
    assert out.shape == want.shape
    err = (out.double() - want.double()).abs()
    assert bool((err <= case["atol"] + case["rtol"] * want.double().abs()).all()), f"max err {err.max():.3g}"


def tiny_model(seed: int = 0, **overrides) -> SAVSR:
    torch.manual_seed(seed)
    model = SAVSR(**{**TINY, **overrides})
    with torch.no_grad():  # non-trivial BN statistics so that eval mode differs from the defaults
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("path", CASES)
def test_parity_with_set_scale(path: Path) -> None:
    """The official call order: ``set_scale((s_h, s_w))`` then ``forward(x)``."""
    case = load_case(path)
    model = build_case_model(case)
    model.set_scale(tuple(case["forward_kwargs"]["__set_scale__"]))
    with torch.no_grad():
        out = model(*case["inputs"].values())
    assert_close_to_case(out, case)


@pytest.mark.parametrize("path", CASES)
def test_parity_with_branches_side_by_side(path: Path) -> None:
    """On two CPU threads the two level-1 branches run at once, one on a helper thread: the same output,
    every hidden state in its place."""
    case = load_case(path)
    model = build_case_model(case)
    threads_seen = {}
    for name in ("f2p_win", "p2f_win"):
        getattr(model, name).register_forward_hook(
            lambda *_, name=name: threads_seen.setdefault(name, set()).add(threading.get_ident()))
    with torch.no_grad(), torch_threads(2):
        out = model(case["inputs"]["x"], scale=tuple(case["forward_kwargs"]["__set_scale__"]))
    assert len(threads_seen["f2p_win"]) == len(threads_seen["p2f_win"]) == 1
    assert threads_seen["f2p_win"] != threads_seen["p2f_win"]
    assert_close_to_case(out, case)


@pytest.mark.skipif(not torch._nnpack_available(), reason="PyTorch built without NNPACK")
@pytest.mark.parametrize("path", CASES)
def test_parity_through_winograd(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 3x3 convolution through the CPU Winograd path (the fixtures' frames are smaller than the size
    from which it is used by default): still the official output within the fixture's tolerance."""
    monkeypatch.setattr(nnpack_conv, "MIN_PIXELS", {3: 1, 7: 1})
    calls = record_nnpack_calls(monkeypatch)
    case = load_case(path)
    model = build_case_model(case)
    with torch.no_grad():
        out = model(case["inputs"]["x"], scale=tuple(case["forward_kwargs"]["__set_scale__"]))
    num_3x3 = sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) for m in model.modules())
    assert len(calls) >= num_3x3
    assert_close_to_case(out, case)


@pytest.mark.parametrize("scale", [(4.0, 4.0), (2.7, 2.7), (1.5, 3.8), (2.9, 1.9)], ids=str)
def test_scale_heads_on_distinct_coordinates_equal_the_full_grid(scale) -> None:
    """The CPU runs STAUpsample's embedding on the distinct (rel_h, rel_w) values and indexes them out;
    the sync-free path runs it on every HR pixel, as officially."""
    model = tiny_model()
    like = torch.rand(1, 16, 13, 17)
    out_size = sr_size(13, 17, scale)
    with torch.no_grad():
        gathered = model.upsample.scale_heads(out_size, scale, like)
        with force_sync_free():
            full = model.upsample.scale_heads(out_size, scale, like)
    for got, want in zip(gathered, full, strict=True):
        assert got.shape == want.shape and got.shape[-2:] == out_size
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_parity_with_scale_argument() -> None:
    case = load_case(min(VENDORED.glob("*.pt")))
    model = build_case_model(case)
    with torch.no_grad():
        out = model(case["inputs"]["x"], scale=tuple(case["forward_kwargs"]["__set_scale__"]))
    assert_close_to_case(out, case)
    assert model.scale == (4.0, 4.0), "forward must not change the stored scale"


def test_official_config_state_dict() -> None:
    model = SAVSR()
    state = model.state_dict()
    assert len(state) == 791
    assert sum(p.numel() for p in model.parameters()) == 18_890_044
    assert sum(b.numel() for b in model.buffers()) == 820
    assert state["f2p_win.blocks.1.osconv.weight"].shape == (8, 64, 192, 3, 3)
    assert state["h_win.0.blocks.0.osconv.attention.fc.weight"].shape == (20, 320, 1, 1)
    assert state["upsample.weight_compress"].shape == (4, 8, 64, 1, 1)
    assert "f2p_win.blocks.0.conv1.weight" in state and "adapt.3.mask.12.running_var" in state


def test_state_dict_round_trip() -> None:
    source, target = tiny_model(seed=0), tiny_model(seed=1)
    target.load_state_dict(source.state_dict(), strict=True)
    x = torch.rand(1, 5, 3, 8, 10)
    with torch.no_grad():
        assert torch.equal(source(x, scale=2.5), target(x, scale=2.5))


@pytest.mark.parametrize("scale", [2, 3.5, (1.5, 3.8)], ids=["x2", "x3.5", "x1.5_x3.8"])
def test_tiny_forward(scale) -> None:
    model = tiny_model()
    x = torch.rand(2, 5, 3, 9, 10)
    with torch.no_grad():
        out = model(x, scale=scale)
        model.set_scale(scale)
        out_set = model(x)
    assert out.shape == (2, 3, *sr_size(9, 10, scale))
    assert torch.isfinite(out).all()
    assert torch.equal(out, out_set)


def test_output_size_rounds_half_to_even() -> None:
    assert sr_size(11, 15, 1.5) == (16, 22)  # 16.5 -> 16, 22.5 -> 22
    assert sr_size(11, 13, 3.5) == (38, 46)  # 38.5 -> 38, 45.5 -> 46
    assert sr_size(14, 18, 2) == (28, 36)
    model = tiny_model()
    with torch.no_grad():
        assert model(torch.rand(1, 5, 3, 11, 13), scale=3.5).shape == (1, 3, 38, 46)
        assert model(torch.rand(1, 5, 3, 11, 15), scale=(1.5, 1.5)).shape == (1, 3, 16, 22)


def test_float64_forward() -> None:
    model = tiny_model()
    x = torch.rand(1, 5, 3, 7, 9)
    with torch.no_grad():
        out32 = model(x, scale=(1.5, 3.8))
        out64 = model.double()(x.double(), scale=(1.5, 3.8))
    assert out64.dtype == torch.float64
    assert (out64 - out32.double()).abs().max() < 1e-5


def test_train_mode_batch_of_one() -> None:
    model = tiny_model().train()
    out = model(torch.rand(1, 5, 3, 6, 6), scale=(2, 3))
    out.mean().backward()
    assert model.tail.weight.grad is not None


def test_rejects_wrong_frame_count_and_tiny_frames() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="num_frame=5"):
        model(torch.rand(1, 7, 3, 8, 8), scale=2)
    with pytest.raises(ValueError, match="2x2"):
        model(torch.rand(1, 5, 3, 1, 8), scale=2)


@pytest.mark.parametrize("config", [(7, 3, 5, 0), (7, 3, 3, 0), (9, 3, 3, 0), (7, 3, 3, 1), (11, 3, 5, 1),
                                    (5, 3, 5, 0), (7, 5, 5, 1)])
def test_accepts_configs_that_run_officially(config) -> None:
    """They build and run at an asymmetric scale, and the centre frame's output reads the first frame too."""
    num_frame, slid_win, fusion_win, interval = config
    torch.manual_seed(0)
    model = SAVSR(num_feat=16, num_frame=num_frame, slid_win=slid_win, fusion_win=fusion_win, interval=interval,
                  w1_num_block=1, w2_num_block=1, n_resgroups=1, n_resblocks=1).eval()
    x = torch.rand(1, num_frame, 3, 6, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x, scale=(2, 1.5))
        first_changed = x.clone()
        first_changed[:, 0] = 1 - first_changed[:, 0]
        changed = model(first_changed, scale=(2, 1.5))
    assert out.shape == (1, 3, 12, 10)  # round-half-even of (12, 10.5)
    assert not torch.equal(changed, out)


@pytest.mark.parametrize("config", [(7, 5, 5, 0), (7, 5, 3, 0), (9, 3, 5, 0), (11, 3, 5, 0)])
def test_rejects_configs_that_crash_officially(config) -> None:
    num_frame, slid_win, fusion_win, interval = config
    with pytest.raises(ValueError):
        SAVSR(num_feat=16, num_frame=num_frame, slid_win=slid_win, fusion_win=fusion_win, interval=interval)


def test_branch_frame_indices() -> None:
    assert branch_frame_indices(7, 1) == ([0, 2, 3, 4, 6], [0, 1, 3, 5, 6])
    assert branch_frame_indices(9, 1) == ([1, 3, 4, 5, 7], [0, 2, 4, 6, 8])
    assert branch_frame_indices(5, 0) == ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4])


def test_scale_arguments() -> None:
    model = tiny_model()
    model.set_scale(3)
    assert model.scale == (3.0, 3.0)
    with pytest.raises(TypeError):
        model.set_scale("x4")
    with pytest.raises(ValueError):
        model.set_scale((2, -1))


def test_build_from_registry() -> None:
    model = build_network({"type": "SAVSR", **TINY})
    assert isinstance(model, SAVSR)
