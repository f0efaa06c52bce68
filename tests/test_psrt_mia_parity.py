"""PSRT-recurrent, MIA-VSR and IIA-VSR: golden parity, state dicts and behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import golden_view, parity_cases, torch_threads
from vsrt.archs import build_network
from vsrt.archs.flow.warp import patch_align_warp
from vsrt.archs.iia_vsr_arch import IIAVSR
from vsrt.archs.layers import attention, execution, recurrent
from vsrt.archs.layers.attention import WindowAttention3D
from vsrt.archs.layers.window import (
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from vsrt.archs.mia_vsr_arch import MIAVSR
from vsrt.archs.psrt_recurrent_arch import BasicRecurrentSwin

FAMILIES = {"psrt_recurrent": BasicRecurrentSwin, "mia_vsr": MIAVSR, "iia_vsr": IIAVSR}
CASES = [pytest.param(family, path, id=case_id) for family in FAMILIES for case_id, path in parity_cases(family)]


def build_case_model(family: str, case: dict) -> torch.nn.Module:
    kwargs = dict(case["kwargs"])
    if family == "iia_vsr":  # the fixtures record the released code's frame order
        kwargs["official_release_order"] = True
    model = FAMILIES[family](**kwargs)
    model.load_state_dict(case["state_dict"], strict=True)
    return model.eval()


def tiny(cls: type, seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return cls(**{**cls.tiny_config, **overrides}).eval()


def clip(n: int = 1, t: int = 3, h: int = 16, w: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("family", "path"), CASES)
def test_parity_with_official_fixture(family: str, path: Path) -> None:
    check_fixture(family, path)


@pytest.mark.parametrize(("family", "path"), [case for case in CASES if case.values[0] != "psrt_recurrent"])
def test_parity_on_two_threads_through_matmul_attention(family: str, path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """On several CPU threads MIA-VSR / IIA-VSR attend through matrix products instead of SDPA's fused kernel
    (and NNPACK runs on one thread): the same fixtures, tolerances and MIA keep fractions hold."""
    calls = []
    original = attention.matmul_attention
    monkeypatch.setattr(attention, "matmul_attention", lambda *args: calls.append(1) or original(*args))
    with torch_threads(2):
        check_fixture(family, path)
    assert calls


def check_fixture(family: str, path: Path) -> None:
    """The fixture's model and inputs give its output within its tolerance (and MIA-VSR its keep fractions)."""
    case = torch.load(path, map_location="cpu", weights_only=True)
    model = build_case_model(family, case)
    with torch.no_grad():
        if family == "mia_vsr":
            out, masks = model(*case["inputs"].values(), return_masks=True)
        else:
            out, masks = model(*case["inputs"].values()), None
    want = case["outputs"]["out"]
    out = golden_view(out, case)
    assert out.shape == want.shape
    err = (out.double() - want.double()).abs().max().item()
    assert err <= case["atol"], f"max abs err {err:.3g} > atol {case['atol']}"
    assert (masks is not None) == bool(family == "mia_vsr" and case["kwargs"].get("use_mask", True))
    if masks is not None:  # kept fraction per [branch, step >= 1, block]
        got = torch.tensor([[[float(v) for v in step] for step in branch[1:]] for branch in masks])
        torch.testing.assert_close(got, case["aux"]["keep_fraction"].float(), atol=1e-6, rtol=0)


def test_official_configs_have_official_key_counts() -> None:
    """Parameter and key counts of the official configurations (fact sheets, section 3)."""
    official = {"window_size": [3, 8, 8], "embed_dim": 120, "mid_channels": 64}
    for cls, depth, params, keys in ((BasicRecurrentSwin, 3, 13_366_943, 1154), (MIAVSR, 4, 16_596_719, 1690),
                                     (IIAVSR, 4, 16_585_103, 1498)):
        model = cls(depths=[6] * depth, num_heads=[6] * depth, **official)
        assert sum(p.numel() for p in model.parameters()) == params, cls.__name__
        assert len(model.state_dict()) == keys, cls.__name__


def test_default_window_size_tuple_builds_and_runs() -> None:
    """The official default (a tuple) crashes PSRT's forward; here lists and tuples both work."""
    for window in ((3, 8, 8), [3, 4, 4]):
        model = tiny(BasicRecurrentSwin, window_size=window)
        as_list = tiny(BasicRecurrentSwin, window_size=list(window))
        as_list.load_state_dict(model.state_dict())
        with torch.no_grad():
            out = model(clip(t=2))
            assert out.shape == (1, 2, 3, 64, 64)
            torch.testing.assert_close(as_list(clip(t=2)), out, atol=0, rtol=0)


@pytest.mark.parametrize("cls", [BasicRecurrentSwin, MIAVSR, IIAVSR])
def test_state_dict_round_trip(cls: type) -> None:
    model, other = tiny(cls, seed=0), tiny(cls, seed=1)
    other.load_state_dict(model.state_dict(), strict=True)
    lqs = clip()
    with torch.no_grad():
        torch.testing.assert_close(other(lqs), model(lqs), atol=0, rtol=0)
    keys = set(model.state_dict())
    block = "patch_align.forward_2.layers.0.residual_group.blocks.1."
    assert {block + "attn.relative_position_index", block + "mlp.fc2.weight", "spynet.mean",
            "patch_align.backward_1.conv_first_feat.weight", "conv_before_upsample.weight"} <= keys
    assert (block + "attn.predmask.rnn.weight" in keys) == (cls is MIAVSR)


@pytest.mark.parametrize(("name", "cls"), [("BasicRecurrentSwin", BasicRecurrentSwin),
                                         ("PSRTRecurrent", BasicRecurrentSwin), ("MIAVSR", MIAVSR),
                                         ("IIAVSR", IIAVSR)])
def test_tiny_forward_through_registry(name: str, cls: type) -> None:
    """The registry builds the named class with every option given (same weights -> same output)."""
    kwargs = {"mid_channels": 8, "embed_dim": 12, "depths": [2], "num_heads": [2]}
    torch.manual_seed(0)
    model = build_network({"type": name, **kwargs}).eval()
    torch.manual_seed(0)
    direct = cls(**kwargs).eval()
    assert type(model) is cls
    with torch.no_grad():
        out = model(clip(t=3, h=16, w=20))
        torch.testing.assert_close(out, direct(clip(t=3, h=16, w=20)), atol=0, rtol=0)
    assert out.shape == (1, 3, 3, 64, 80)


def test_mia_masks_in_eval_and_training() -> None:
    model = tiny(MIAVSR)
    lqs = clip(t=3)
    with torch.no_grad():
        out, masks = model(lqs, return_masks=True)
    assert out.shape == (1, 3, 3, 64, 64)
    assert len(masks) == 4 and all(len(branch) == 3 for branch in masks)
    assert masks[0][0] == [None, None]  # first step of a branch: every token computed
    assert all(0.0 <= float(v) <= 1.0 for branch in masks for step in branch[1:] for v in step)

    model.train()
    out, masks = model(lqs, return_masks=True)
    kept = torch.stack([v for branch in masks for step in branch[1:] for v in step])
    (out.mean() + kept.mean()).backward()  # straight-through: the sparsity term reaches the predictor
    grad = model.patch_align["forward_2"].layers[0].residual_group.blocks[0].attn.predmask.rnn.weight.grad
    assert grad is not None and grad.abs().sum() > 0

    assert tiny(MIAVSR, use_mask=False)(lqs, return_masks=True)[1] is None
    assert tiny(IIAVSR)(lqs, return_masks=True)[1] is None


def test_mia_eval_batch_of_two_equals_two_single_runs() -> None:
    model = tiny(MIAVSR)
    lqs = torch.cat([clip(seed=1), clip(seed=2)])
    with torch.no_grad():
        both, masks = model(lqs, return_masks=True)
        singles = torch.cat([model(lqs[:1]), model(lqs[1:])])
    torch.testing.assert_close(both, singles, atol=1e-5, rtol=0)
    assert any(float(v) < 1 for branch in masks for step in branch[1:] for v in step)  # some tokens skipped


@pytest.mark.parametrize("cls", [BasicRecurrentSwin, MIAVSR, IIAVSR])
def test_cpu_cache_gives_the_same_output(cls: type) -> None:
    model = tiny(cls)
    cached = tiny(cls, cpu_cache_length=2)
    cached.load_state_dict(model.state_dict())
    lqs = clip(t=4)
    with torch.no_grad():
        torch.testing.assert_close(cached(lqs), model(lqs), atol=1e-6, rtol=0)


def test_mirror_extended_clip_uses_flipped_flows_without_changing_output(monkeypatch) -> None:
    model = tiny(MIAVSR)
    half = clip(t=2)
    lqs = torch.cat([half, half.flip(1)], dim=1)
    assert recurrent.is_mirror_extended(lqs) and not recurrent.is_mirror_extended(clip(t=4))
    with torch.no_grad():
        out = model(lqs)
        monkeypatch.setattr(recurrent, "is_mirror_extended", lambda lqs: False)
        torch.testing.assert_close(model(lqs), out, atol=1e-5, rtol=0)


def test_iia_paper_design_is_mia_without_masks() -> None:
    mia = tiny(MIAVSR, use_mask=False)
    iia = tiny(IIAVSR, seed=3)
    iia.load_state_dict({k: v for k, v in mia.state_dict().items() if ".predmask." not in k}, strict=True)
    lqs = clip(t=4)
    released = tiny(IIAVSR, official_release_order=True)
    released.load_state_dict(iia.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(iia(lqs), mia(lqs), atol=0, rtol=0)
        assert not torch.allclose(released(lqs), iia(lqs), atol=1e-6, rtol=0)  # another frame order


def test_float64_models_run() -> None:
    """The official patch warp is float32-only; here a float64 model stays float64."""
    model = tiny(MIAVSR)
    with torch.no_grad():
        out32 = model(clip(t=3))
        out = model.double()(clip(t=3).double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, out32.double(), atol=1e-5, rtol=0)  # same computation, more precision


def test_patch_align_warp_moves_patches_by_their_rounded_mean_flow() -> None:
    x = torch.arange(2 * 3 * 16 * 20, dtype=torch.float64).view(2, 3, 16, 20)
    flow = torch.zeros(2, 2, 16, 20, dtype=torch.float64)
    flow[:, 0] = 1.3  # dx rounds to 1
    flow[:, 1, :8] = -2.2  # dy of the top patches rounds to -2
    out = patch_align_warp(x, flow)
    assert out.dtype == torch.float64
    assert torch.equal(out[:, :, 8:, :19], x[:, :, 8:, 1:])  # bottom rows: one column left
    assert torch.equal(out[:, :, 2:8, :19], x[:, :, :6, 1:])  # top rows: also two rows down
    assert (out[:, :, :2] == 0).all() and (out[..., 19] == 0).all()  # from outside: zeros
    torch.testing.assert_close(patch_align_warp(x.float(), flow.float()), out.float(), atol=0, rtol=0)


def test_window_helpers() -> None:
    x = torch.randn(2, 4, 8, 12, 5)
    windows = window_partition(x, (2, 4, 4))
    assert windows.shape == (2 * 2 * 2 * 3, 32, 5)
    assert torch.equal(window_reverse(windows, (2, 4, 4), 2, (4, 8, 12)), x)
    index = relative_position_index((3, 4, 4))
    assert index.shape == (48, 48) and index.min() == 0 and index.max() == 5 * 7 * 7 - 1
    assert relative_position_index((3, 4, 4), query_frame=0).max() < 3 * 7 * 7


def naive_shifted_window_mask(padded: tuple, window: tuple, shift: tuple) -> torch.Tensor:
    """Swin's region ids built token by token: along each axis, 0 before ``size - window``, 1 before
    ``size - shift``, 2 after; windows and their tokens in raster order; -100 between different regions."""
    def region(coord: int, size: int, win: int, sh: int) -> int:
        return 0 if coord < size - win else 1 if coord < size - sh else 2

    grids = [range(0, size, win) for size, win in zip(padded, window)]
    masks = []
    for d0 in grids[0]:
        for h0 in grids[1]:
            for w0 in grids[2]:
                ids = [tuple(region(c, *axis) for c, axis in zip((d, h, w), zip(padded, window, shift)))
                       for d in range(d0, d0 + window[0]) for h in range(h0, h0 + window[1])
                       for w in range(w0, w0 + window[2])]
                masks.append([[0.0 if a == b else -100.0 for b in ids] for a in ids])
    return torch.tensor(masks)


def test_shifted_window_mask_region_ids() -> None:
    # 4x4 grid, 2x2 windows, shift 1: rows/columns fall in regions [0, 0, 1, 2]
    mask = shifted_window_mask((1, 4, 4), (1, 2, 2), (1, 1, 1))
    pairs = torch.tensor([[0, -100, 0, -100], [-100, 0, -100, 0], [0, -100, 0, -100], [-100, 0, -100, 0]])
    assert torch.equal(mask[0], torch.zeros(4, 4))  # top-left window: one region
    assert torch.equal(mask[1], pairs.float())  # columns 2 | 3: regions alternate along the row
    rows = torch.tensor([[0, 0, -100, -100], [0, 0, -100, -100], [-100, -100, 0, 0], [-100, -100, 0, 0]])
    assert torch.equal(mask[2], rows.float())  # rows 2 | 3: regions split the column pairs
    assert torch.equal(mask[3], torch.full((4, 4), -100.0).fill_diagonal_(0))  # four regions
    for padded, window, shift in (((3, 8, 8), (3, 4, 4), (3, 2, 2)), ((6, 8, 12), (3, 4, 4), (1, 2, 2)),
                                  ((4, 6, 6), (2, 3, 3), (1, 1, 2))):
        want = naive_shifted_window_mask(padded, window, shift)
        assert torch.equal(shifted_window_mask(padded, window, shift), want), (padded, window, shift)


@pytest.mark.parametrize("chunk_tokens", [3072, 48 * 3])  # all windows at once; chunks of 3 windows
def test_forward_kept_equals_dense_attention_rows(monkeypatch: pytest.MonkeyPatch, chunk_tokens: int) -> None:
    monkeypatch.setattr(execution, "CPU_ATTENTION_CHUNK_TOKENS", chunk_tokens)
    torch.manual_seed(0)
    attn = WindowAttention3D(12, (3, 4, 4), 2, last_frame_queries=True)
    windows = torch.randn(2 * 4, 48, 12)  # 2 samples x 4 windows
    fallback = torch.randn(8, 16, 12)
    keep = torch.rand(8, 16) < 0.4
    keep[1] = False  # a window without kept tokens
    keep[2] = True  # a fully kept window
    keep[5, :3], keep[5, 3:] = False, True  # kept rows not at the start
    keep[6] = True  # a fully kept window of the second sample
    mask = shifted_window_mask((3, 8, 8), (3, 4, 4), (3, 2, 2))[:, -16:]
    # windows whose mask is all zero first (window_index's order): those may read the bias alone
    unmasked = (mask == 0).flatten(1).all(1)
    ordered = mask[torch.argsort((~unmasked).to(torch.uint8), stable=True)]
    num_unmasked = int(unmasked.sum())
    assert 0 < num_unmasked < len(unmasked)
    for m, u in ((None, 0), (mask, 0), (ordered, num_unmasked)):
        for bucket in (8, 1, 16):  # 2 rows a step; the whole window; every row count its own batch
            got = attn.forward_kept(windows, keep, fallback, m, u, bucket=bucket)
            torch.testing.assert_close(got, torch.where(keep.unsqueeze(-1), attn(windows, m, u), fallback),
                                       atol=1e-6, rtol=0)
    assert torch.equal(attn.forward_kept(windows, torch.zeros_like(keep), fallback, mask), fallback)


def test_skipping_masked_attention_rows_keeps_the_output() -> None:
    model = tiny(MIAVSR)
    lqs = torch.cat([clip(t=4, seed=1), clip(t=4, seed=2)])
    with torch.no_grad():
        skipped, masks = model(lqs, return_masks=True)
        model.mask_execution = "dense"  # every token computed, kept ones selected
        torch.testing.assert_close(model(lqs), skipped, atol=1e-5, rtol=0)
    assert 0 < min(float(v) for branch in masks for step in branch[1:] for v in step) < 1
