"""VRT: golden parity (network and the official tiled test_video), checkpoints, behaviour."""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from helpers import VENDORED_PARITY, golden_view, parity_cases, torch_threads
from vsrt.archs import build_network
from vsrt.archs.flow.spynet import SpyNet
from vsrt.archs.vrt import tmsa
from vsrt.archs.vrt.inference import test_video as vrt_test_video
from vsrt.archs.vrt.vrt_arch import OFFICIAL_CONFIGS, VRT, conv_1x3x3

VENDORED = VENDORED_PARITY / "vrt"
CASES = [pytest.param(path, id=case_id) for case_id, path in parity_cases("vrt")]


def load_case(path: Path) -> tuple[dict, VRT]:
    case = torch.load(path, map_location="cpu", weights_only=True)
    model = VRT(**case["kwargs"])
    model.load_state_dict(case["state_dict"], strict=True)
    return case, model.eval()


def tiny(seed: int = 0, **overrides) -> VRT:
    torch.manual_seed(seed)
    return VRT(**{**VRT.tiny_config, **overrides}).eval()


def clip(t: int = 2, c: int = 3, h: int = 40, w: int = 40, seed: int = 1) -> torch.Tensor:
    return torch.rand(1, t, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("path", CASES)
def test_parity_with_official_fixture(path: Path) -> None:
    case, model = load_case(path)
    assert_matches_case(run_case(case, model), case)


@pytest.mark.parametrize("path", CASES)
def test_parity_on_two_threads(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On two CPU threads the two SpyNet passes run side by side, and so do the two halves of the per-frame
    tail and the chunks of window attention, alternately (``vsrt.archs.layers.threads``; chunks made small
    here so that every fixture has enough of them): the same fixtures."""
    case, model = load_case(path)
    spynet_threads, attention_threads = [], []
    if model.pa_frames:
        original = model.spynet.forward_pyramid
        monkeypatch.setattr(model.spynet, "forward_pyramid",
                            lambda *args: spynet_threads.append(threading.get_ident()) or original(*args))
    monkeypatch.setattr(tmsa, "CPU_CHUNK_TOKENS", 64)
    monkeypatch.setattr(tmsa, "MIN_CHUNKS_SIDE_BY_SIDE", 2)
    attend_project = tmsa.MutualSelfAttention._attend_project
    monkeypatch.setattr(tmsa.MutualSelfAttention, "_attend_project", lambda *args: attention_threads.append(
        threading.get_ident()) or attend_project(*args))
    with torch_threads(2):
        assert_matches_case(run_case(case, model), case)
    if model.pa_frames:
        assert len(set(spynet_threads)) == 2
    assert len(set(attention_threads)) == 2


def run_case(case: dict, model: VRT) -> torch.Tensor:
    with torch.no_grad():
        if case.get("procedure"):  # the official tiled/chunked main_test_vrt.test_video
            args = SimpleNamespace(**case["forward_kwargs"])
            return vrt_test_video(case["inputs"]["lq"], model, args)
        return model(*case["inputs"].values(), **case["forward_kwargs"])


def assert_matches_case(out: torch.Tensor, case: dict) -> None:
    want = case["outputs"]["out"]
    out = golden_view(out, case)
    assert out.shape == want.shape
    err = (out - want).abs()
    assert bool((err <= case["atol"] + case["rtol"] * want.abs()).all()), f"max abs err {err.max():.3g}"


def test_computed_buffers_equal_the_official_ones() -> None:
    """relative_position_index, position_bias and SpyNet mean/std are rebuilt bit for bit."""
    for path in sorted(VENDORED.glob("*.pt")):
        case = torch.load(path, map_location="cpu", weights_only=True)
        model = VRT(**case["kwargs"])
        state = model.state_dict()
        saved = [name for name, _ in model.named_buffers() if name in state]  # non-persistent ones are not
        assert any(name.endswith("relative_position_index") for name in saved)
        for name in saved:
            assert torch.equal(state[name], case["state_dict"][name]), f"{path.stem}: {name}"


@pytest.mark.parametrize("task", ["001_VRT_videosr_bi_REDS_6frames", "002_VRT_videosr_bi_REDS_16frames",
                                  "003_VRT_videosr_bi_Vimeo_7frames", "005_VRT_videodeblurring_DVD",
                                  "008_VRT_videodenoising_DAVIS", "009_VRT_videofi_Vimeo_4frames"])
def test_official_configs_have_official_sizes(task: str) -> None:
    """Parameter and state-dict key counts of the released models (fact sheet, section 2)."""
    expected = {"001": (30_676_435, 1666, 124), "002": (35_134_783, 1666, 124), "003": (32_577_991, 1666, 124),
                "005": (18_320_007, 1526, 116), "008": (18_320_871, 1526, 116), "009": (9_943_387, 1354, 114)}
    with torch.device("meta"):
        model = VRT(**OFFICIAL_CONFIGS[task])
    params = sum(p.numel() for p in model.parameters())
    state = model.state_dict()
    buffers = sum(1 for name, _ in model.named_buffers() if name in state)  # the checkpoint's buffers
    assert (params, len(state), buffers) == expected[task[:3]]


def test_state_dict_round_trip_and_repeatable_forward() -> None:
    model, clone = tiny(seed=0), tiny(seed=1)
    clone.load_state_dict(model.state_dict(), strict=True)
    x = clip()
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, 2, 3, 160, 160)
        assert torch.equal(out, model(x))  # nothing on self changes during forward
        assert torch.equal(out, clone(x))


@pytest.mark.parametrize(("overrides", "in_shape", "out_shape"), [
    ({"upscale": 1}, (1, 3, 3, 40, 48), (1, 3, 3, 40, 48)),
    ({"upscale": 1, "nonblind_denoising": True}, (1, 2, 4, 40, 40), (1, 2, 3, 40, 40)),
    ({"upscale": 2, "pa_frames": 4}, (1, 3, 3, 40, 40), (1, 3, 3, 80, 80)),
    ({"upscale": 1, "pa_frames": 0, "img_size": [2, 32, 32]}, (1, 2, 3, 32, 32), (1, 1, 3, 32, 32)),
    ({"upscale": 1, "pa_frames": 0, "out_chans": 6, "img_size": [2, 32, 32]}, (1, 2, 3, 32, 32), (1, 2, 3, 32, 32)),
])
def test_task_heads_output_shapes_and_skip_paths(overrides: dict, in_shape: tuple, out_shape: tuple) -> None:
    """With ``conv_last`` zeroed only each head's skip path is left, which has a closed form: the LR frames
    (restoration), their bilinear x2 upsampling (SR) or the clip's per-channel mean (interpolation)."""
    model = tiny(**overrides)
    x = torch.rand(in_shape, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = model(x)
        torch.nn.init.zeros_(model.conv_last.weight)
        torch.nn.init.zeros_(model.conv_last.bias)
        skip = model(x)
    assert out.shape == out_shape and torch.isfinite(out).all()
    n, t, _, h, w = in_shape
    lq = x[:, :, :3]
    if not model.pa_frames:  # frame interpolation: (n, k, 3, h, w), every frame the mean colour
        want = lq.mean(dim=(1, 3, 4), keepdim=True).expand(out_shape)
    elif model.upscale == 1:
        want = lq
    else:
        frames = F.interpolate(lq.flatten(0, 1), scale_factor=model.upscale, mode="bilinear", align_corners=False)
        want = frames.view(n, t, 3, h * model.upscale, w * model.upscale)
    torch.testing.assert_close(skip, want, rtol=0, atol=1e-6)
    assert (out - skip).abs().mean() > 1e-3  # the network body contributes


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    config = dict(VRT.tiny_config, upscale=1, depths=[3, 1, 1, 1, 1, 1, 1, 2], drop_path_rate=0.1)
    plain = VRT(**config).train()
    checkpointed = VRT(**config, use_checkpoint_attn=True, use_checkpoint_ffn=True,
                       no_checkpoint_attn_blocks=[7], no_checkpoint_ffn_blocks=[1]).train()
    checkpointed.load_state_dict(plain.state_dict())
    assert checkpointed.stage1.residual_group1.blocks[1].use_checkpoint_attn
    assert not checkpointed.stage8[1].residual_group.blocks[0].use_checkpoint_attn
    assert not checkpointed.stage2.residual_group2.blocks[0].use_checkpoint_ffn
    x, target = clip(seed=2), torch.rand(1, 2, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    grads = []
    for model in (plain, checkpointed):
        torch.manual_seed(7)  # same drop-path draws (checkpointing replays the RNG state)
        loss = (model(x) - target).abs().mean()
        loss.backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 100
    for key in grads[0]:
        torch.testing.assert_close(grads[1][key], grads[0][key], rtol=1e-5, atol=1e-7, msg=key)


def test_spynet_path_is_only_read_by_load_spynet(tmp_path: Path) -> None:
    model = VRT(**VRT.tiny_config, spynet_path=str(tmp_path / "missing.pth"))  # no file access
    spynet = SpyNet()
    for p in spynet.parameters():
        torch.nn.init.normal_(p)
    torch.save({"params": spynet.state_dict()}, tmp_path / "spynet.pth")
    model.load_spynet(tmp_path / "spynet.pth")
    for key, value in spynet.state_dict().items():
        assert torch.equal(model.spynet.state_dict()[key], value), key
    with pytest.raises(FileNotFoundError):
        model.load_spynet()


def test_registry_builds_and_rejects_typos() -> None:
    model = build_network({"type": "VRT", **copy.deepcopy(VRT.tiny_config)})
    assert isinstance(model, VRT)
    with pytest.raises(TypeError, match="Did you mean 'pa_frames'"):
        build_network({"type": "VRT", "pa_frame": 2})


def test_bad_inputs_give_clear_errors() -> None:
    with pytest.raises(ValueError, match="pa_frames=6 needs at least 4 frames"):
        tiny(pa_frames=6, deformable_groups=6, embed_dims=[12] * 8)(clip(t=3))
    with pytest.raises(ValueError, match="multiples of 8"):
        tiny()(clip(h=42))


@pytest.mark.parametrize(("overrides", "shape", "message"), [
    ({}, (1, 4, 3, 16, 16), r"\(1, 4, 3, 16, 16\).*multiples of 8 .* at least 32x32"),
    ({}, (1, 2, 3, 40, 24), "at least 32x32"),
    ({}, (1, 2, 3, 36, 40), "multiples of 8"),
    ({}, (1, 1, 3, 40, 40), "pa_frames=2 needs at least 2 frames"),
    ({}, (1, 2, 2, 40, 40), "c must be 3"),
    ({"nonblind_denoising": True, "upscale": 1}, (1, 2, 3, 40, 40), "c must be 4"),
    ({"upscale": 1, "pa_frames": 0, "img_size": [2, 32, 32]}, (1, 3, 3, 32, 32), r"t == img_size\[0\] == 2"),
])
def test_unsupported_input_shapes_are_rejected_up_front(overrides: dict, shape: tuple, message: str) -> None:
    model = tiny(**overrides)
    with pytest.raises(ValueError, match=message) as info:
        model(torch.rand(shape))
    assert "TileConfig.size_multiple" in str(info.value)


def test_smallest_supported_inputs_still_run() -> None:
    """The rule rejects only what fails: 32x32 (8 x window 4) runs; without mutual blocks 8x8 does."""
    assert tiny().min_size == (32, 32)
    with torch.no_grad():
        assert tiny()(torch.rand(1, 2, 3, 32, 40)).shape == (1, 2, 3, 128, 160)
        no_mutual = tiny(upscale=1, depths=[1] * 8)
        assert no_mutual.min_size == (8, 8)
        assert no_mutual(torch.rand(1, 2, 3, 16, 24)).shape == (1, 2, 3, 16, 24)
    with torch.device("meta"):
        official = VRT(**OFFICIAL_CONFIGS["002_VRT_videosr_bi_REDS_16frames"])
    assert official.min_size == (64, 64)


def test_per_frame_conv_equals_conv3d() -> None:
    """conv_1x3x3 keeps nn.Conv3d's parameters and computes the same as F.conv3d."""
    torch.manual_seed(0)
    conv = conv_1x3x3(5, 7)
    assert {k: tuple(v.shape) for k, v in conv.state_dict().items()} == {"weight": (7, 5, 1, 3, 3), "bias": (7,)}
    x = torch.rand(2, 5, 3, 8, 6)  # (n, c, d, h, w)
    want = torch.nn.functional.conv3d(x, conv.weight, conv.bias, padding=(0, 1, 1))
    torch.testing.assert_close(conv(x), want, rtol=1e-5, atol=1e-6)


class _SmoothFlowNet:
    """SpyNet stand-in: a smooth, spatially varying flow for every frame pair (frames carry their index)."""

    def forward_pyramid(self, ref: torch.Tensor, supp: torch.Tensor, scales) -> list[torch.Tensor]:
        out = []
        for s in scales:
            h, w = ref.shape[-2] // s, ref.shape[-1] // s
            ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
            pair = (2 * ref[:, 0, 0, 0] + supp[:, 0, 0, 0]).view(-1, 1, 1)  # (b, 1, 1) which frames
            flow_x = 3.0 * torch.sin(2 * torch.pi * (xs + 0.3 * ys) + pair)
            flow_y = 2.5 * torch.cos(2 * torch.pi * (ys - 0.2 * xs) + 0.7 * pair)
            out.append(torch.stack([flow_x, flow_y], dim=1) / s)  # (b, 2, h, w)
        return out


def test_multi_frame_flows_are_compositions_of_the_one_frame_flows():
    """pa_frames 4/6: warping with the flow to t+k (t-k) equals warping step by step with the one-frame
    flows (up to bilinear resampling), in both directions, at full and half resolution."""
    from vsrt.archs.flow.warp import flow_warp
    from vsrt.archs.vrt.flows import FLOW_SCALES, spynet_flows

    d, h, w = 5, 48, 48
    frames = torch.arange(d, dtype=torch.float32).view(1, d, 1, 1, 1).expand(1, d, 3, h, w).contiguous()
    backward, forward = spynet_flows(_SmoothFlowNet(), frames, pa_frames=6)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    errors = []

    def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:  # (1, c, h, w), (1, 2, h, w)
        return flow_warp(img, flow.permute(0, 2, 3, 1))

    for scale, back, fwd in list(zip(FLOW_SCALES, backward, forward))[:2]:  # coarser: too few pixels
        hs, ws = h // scale, w // scale
        img = torch.stack([torch.sin(8 * xs + 5 * ys), torch.cos(6 * xs - 8 * ys)])[None]  # smooth (1, 2, h, w)
        img = F.interpolate(img, size=(hs, ws), mode="bilinear", align_corners=True)
        inner = (..., slice(10 // scale, -(10 // scale)), slice(10 // scale, -(10 // scale)))
        for k in (1, 2):  # distance k + 1 from distance k and distance 1
            for t in range(d - k - 1):
                # backward: t -> t+k+1 = (t -> t+k) then (t+k -> t+k+1)
                direct = warp(img, back[k][:, t])
                chained = warp(warp(img, back[0][:, t + k]), back[k - 1][:, t])
                errors.append(float((direct - chained)[inner].abs().max()))
                # forward: t+k+1 -> t = (t+k+1 -> t+1) then (t+1 -> t)
                direct = warp(img, fwd[k][:, t])
                chained = warp(warp(img, fwd[0][:, t]), fwd[k - 1][:, t + 1])
                errors.append(float((direct - chained)[inner].abs().max()))
    assert max(errors) < 0.07  # measured 0.045; a composition in the wrong order or of the wrong frames: > 0.14
