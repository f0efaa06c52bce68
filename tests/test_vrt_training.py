"""VRT inside vsrt: clip-to-clip training, chunked / tiled validation and testing, the KAIR datasets.

The committed tiny option files run unchanged from a temporary working directory that holds
synthetic clips where ``python -m vsrt demo`` writes them (``demo_output/data``).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from helpers import REPO_ROOT, make_clips, tiny_train_options, write_options
from vsrt import test as vsrt_test
from vsrt import train
from vsrt.archs import build_network
from vsrt.archs.tiling import TileConfig, tiled_inference
from vsrt.data import build_dataset
from vsrt.metrics import calculate_metric
from vsrt.models import build_model
from vsrt.models.video_recurrent_model import tile_config_from_options
from vsrt.options import load_options
from vsrt.utils import tensor2img
from vsrt.utils.checkpoint import load_network
from vsrt.utils.synthetic import make_clip

TINY_TRAIN = REPO_ROOT / "options" / "train" / "VRT" / "train_VRT_tiny_cpu.yml"
TINY_DENOISING = REPO_ROOT / "options" / "train" / "VRT" / "train_VRT_tiny_denoising_cpu.yml"
TINY_TEST = REPO_ROOT / "options" / "test" / "VRT" / "test_VRT_tiny_cpu.yml"


@pytest.fixture
def demo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with ``demo_output/data/{train,heldout}`` clips (96x96 GT)."""
    data = tmp_path / "demo_output" / "data"
    make_clips(data / "train", ["a", "b"], num_frames=4, size=96, seed=0)
    make_clips(data / "heldout", ["h"], num_frames=3, size=96, seed=100)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ----------------------------------------------------------------------------- end to end


def test_tiny_vrt_trains_on_cpu(demo_dir: Path) -> None:
    root = Path(train.main(["-opt", str(TINY_TRAIN), "--force_yml", "val.val_freq=~"]))
    log = next(root.glob("train_*.log")).read_text()
    losses = [float(v) for v in re.findall(r"l_pix: (\S+)", log)]
    assert len(losses) == 20
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    assert (root / "models" / "net_g_latest.pth").is_file()


def expected_scores(opt: dict, tiles: TileConfig | None) -> dict[str, float]:
    """Clip-mean metrics computed here with :func:`tiled_inference` (or one forward pass)."""
    net = build_network(opt["network_g"]).eval()
    load_network(net, opt["path"]["pretrain_network_g"], "params")
    dataset = build_dataset(opt["datasets"]["test"])
    totals = {name: 0.0 for name in opt["val"]["metrics"]}
    for item in (dataset[i] for i in range(len(dataset))):
        with torch.no_grad():
            lq = item["lq"][None]
            out = (net(lq) if tiles is None else tiled_inference(net, lq, net.upscale, tiles))[0]
        for name, metric_opt in opt["val"]["metrics"].items():
            frames = [calculate_metric({"img": tensor2img(o), "img2": tensor2img(g)}, metric_opt)
                      for o, g in zip(out, item["gt"])]
            totals[name] += float(np.mean(frames)) / len(dataset)
    return totals


@pytest.mark.parametrize("overrides, tiles", [
    ([], TileConfig(temporal_chunk=2, temporal_overlap=1, tile=40, tile_overlap=8, size_multiple=(2, 4, 4))),
    (["val.tile.tile=[48,48]"], TileConfig(temporal_chunk=2, temporal_overlap=1, tile=48, tile_overlap=8,
                                           size_multiple=(2, 4, 4))),
    (["val.tile=~"], None),
], ids=["committed", "force_yml_tile", "untiled"])
def test_vsrt_test_with_tiling_equals_tiled_inference(demo_dir: Path, overrides: list[str],
                                                       tiles: TileConfig | None) -> None:
    opt, _ = load_options(TINY_TEST, is_train=False, overrides=overrides)
    checkpoint = Path(opt["path"]["pretrain_network_g"])
    checkpoint.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save({"params": build_network(opt["network_g"]).state_dict()}, checkpoint)

    args = ["-opt", str(TINY_TEST)] + (["--force_yml", *overrides] if overrides else [])
    report = vsrt_test.main(args)
    got = report["synthetic_heldout"]["average"]
    assert got == pytest.approx(expected_scores(opt, tiles), rel=1e-12)
    written = json.loads((demo_dir / "results" / "test_VRT_tiny_cpu" / "metrics.json").read_text())
    assert written["synthetic_heldout"]["average"] == got


def test_tile_block_from_the_command_line() -> None:
    opt, _ = load_options(TINY_TEST, is_train=False, root=REPO_ROOT, overrides=[
        "val.tile={temporal_chunk: 0, tile: [48, 40], tile_overlap: [16, 8]}"])
    assert tile_config_from_options(opt["val"]["tile"], opt["network_g"]) == TileConfig(
        tile=(48, 40), tile_overlap=(16, 8), size_multiple=(2, 4, 4))


def test_tiny_denoising_vrt_trains_a_step_with_the_noise_level_map(demo_dir: Path) -> None:
    opt, _ = load_options(TINY_DENOISING, is_train=True)
    item = build_dataset(opt["datasets"]["train"])[0]
    assert item["lq"].shape == (2, 4, 40, 40) and item["gt"].shape == (2, 3, 40, 40)
    level = item["lq"][:, 3]
    assert torch.all(level == level.flatten()[0]) and 0 <= float(level.flatten()[0]) <= 50 / 255

    torch.manual_seed(0)
    model = build_model(opt)
    assert model.net_g.conv_first.in_channels == 3 * 9 + 1  # image + 2 x 4 warped reads + level map
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    model.feed_data(default_collate([item]))
    model.optimize_parameters(current_iter=1)
    assert np.isfinite(model.log_dict["l_pix"])
    after = model.net_g.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "conv_first.weight" in changed and "conv_last.weight" in changed
    assert not any("spynet" in k or "pa_deform" in k for k in changed)  # frozen by fix_flow

    opt["val"]["tile"] = {"temporal_chunk": 0}  # whole clips, padded to the window: one forward pass
    val_set = build_dataset(opt["datasets"]["val"])
    scores = model.validation(val_set, current_iter=1)
    # the same score computed here: the trained network on each noisy clip (level map included), padded to
    # the window as the validation protocol says, PSNR per frame, mean over frames and clips
    tiles = tile_config_from_options(opt["val"]["tile"], opt["network_g"])
    clip_means = []
    for item in (val_set[i] for i in range(len(val_set))):
        with torch.no_grad():
            out = tiled_inference(model.net_g.eval(), item["lq"][None], model.net_g.upscale, tiles)[0]
        clip_means.append(np.mean([calculate_metric({"img": tensor2img(o), "img2": tensor2img(g)},
                                                    opt["val"]["metrics"]["psnr"]) for o, g in zip(out, item["gt"])]))
    assert scores["psnr"] == pytest.approx(float(np.mean(clip_means)), rel=1e-9, abs=1e-9)


def test_gradient_checkpointing_options_train_like_plain_backprop(demo_dir: Path) -> None:
    grads = []
    for use_checkpoint in (True, False):
        opt, _ = load_options(TINY_DENOISING, is_train=True, overrides=[
            f"network_g.use_checkpoint_attn={use_checkpoint}", f"network_g.use_checkpoint_ffn={use_checkpoint}"])
        torch.manual_seed(0)
        model = build_model(opt)
        random.seed(0)
        torch.manual_seed(0)
        model.feed_data(default_collate([build_dataset(opt["datasets"]["train"])[0]]))
        model.optimize_parameters(current_iter=1)
        grads.append({n: p.grad for n, p in model.net_g.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 50
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], rtol=1e-4, atol=1e-7, msg=name)


# ----------------------------------------------------------------------------- model.infer options


def tiny_recurrent_model(tmp_path: Path, **val: object):
    opt = tiny_train_options(tmp_path)
    opt["val"].update(val)
    opt, _ = load_options(write_options(tmp_path / "o.yml", opt), is_train=False, root=tmp_path)
    return build_model(opt)


def test_infer_tiling_is_opt_in_for_recurrent_models(tmp_path: Path) -> None:
    lq = torch.rand(1, 3, 3, 20, 16, generator=torch.Generator().manual_seed(0))
    untiled = tiny_recurrent_model(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(untiled.infer(lq), untiled.net_g.eval()(lq), rtol=0, atol=0)
    block = {"temporal_chunk": 2, "temporal_overlap": 1, "tile": [12, 16], "tile_overlap": [4, 4]}
    tiled = tiny_recurrent_model(tmp_path, tile=block)
    tiled.net_g.load_state_dict(untiled.net_g.state_dict())
    want = tiled_inference(untiled.net_g, lq, 4, TileConfig(**block))
    torch.testing.assert_close(tiled.infer(lq), want, rtol=0, atol=0)


def test_infer_pad_seq_repeats_the_last_frame_and_drops_its_output(tmp_path: Path) -> None:
    model = tiny_recurrent_model(tmp_path, pad_seq=True)
    lq = torch.rand(1, 3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    out = model.infer(lq)
    with torch.no_grad():
        want = model.net_g.eval()(torch.cat([lq, lq[:, -1:]], dim=1))[:, :3]
    assert out.shape == (1, 3, 3, 64, 64)
    torch.testing.assert_close(out, want, rtol=0, atol=0)


@pytest.mark.parametrize("block, message", [
    ({"tiles": [64, 64]}, "unknown key 'tiles'. Did you mean 'tile'"),
    ({"tile": [40, 128, 128]}, "tile must be .* temporal_chunk"),
    ({"temporal_chunk": 4, "temporal_overlap": 4}, "temporal_overlap .* must be smaller"),
    ([40, 128, 128], "val.tile must be a mapping"),
])
def test_bad_tile_options_are_clear_errors(tmp_path: Path, block: object, message: str) -> None:
    model = tiny_recurrent_model(tmp_path, tile=block)
    with pytest.raises((ValueError, TypeError), match=message):
        model.infer(torch.rand(1, 2, 3, 16, 16))


# ----------------------------------------------------------------------------- datasets


def write_frames(folder: Path, frames: list[np.ndarray], names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in zip(frames, names):
        cv2.imwrite(str(folder / name), frame)


@pytest.fixture
def deblur_data(tmp_path: Path) -> Path:
    """GoPro-like pairs (same size, KAIR names ``000047.png``...); the LQ is the inverted GT."""
    names = [f"{i:06d}.png" for i in range(47, 52)]
    for clip, seed in (("c0", 0), ("c1", 1)):
        sharp = make_clip(5, 48, 40, seed=seed)
        write_frames(tmp_path / "train_GT" / clip, sharp, names)
        write_frames(tmp_path / "train_GT_blurred" / clip, [255 - f for f in sharp], names)
    return tmp_path


def paired_options(root: Path, **changes: object) -> dict:
    return {"name": "GoPro", "type": "PairedVideoTrainDataset", "dataroot_gt": str(root / "train_GT"),
            "dataroot_lq": str(root / "train_GT_blurred"), "scale": 1, "num_frame": 3, "gt_size": 32,
            "use_hflip": True, "use_rot": True, **changes}


@pytest.mark.parametrize("with_meta", [False, True], ids=["folders", "kair_meta_file"])
def test_paired_dataset_crops_lq_and_gt_alike_at_scale_1(deblur_data: Path, with_meta: bool) -> None:
    changes = {}
    if with_meta:
        meta = deblur_data / "meta.txt"
        meta.write_text("c0 5 (48,40,3) 000047\nc1 5 (48,40,3) 000047\n")
        changes = {"meta_info_file": str(meta), "filename_tmpl": "06d", "filename_ext": "png"}
    dataset = build_dataset(paired_options(deblur_data, **changes))
    assert len(dataset) == 10
    for index in range(len(dataset)):
        random.seed(index)
        item = dataset[index]
        assert item["lq"].shape == item["gt"].shape == (3, 3, 32, 32)
        torch.testing.assert_close(item["lq"], 1 - item["gt"], rtol=0, atol=1e-6)
    assert dataset[7]["key"] == "c1/000049"


def test_paired_dataset_partition_and_errors(deblur_data: Path) -> None:
    train_set = build_dataset(paired_options(deblur_data, val_partition=["c1"]))
    held_out = build_dataset(paired_options(deblur_data, val_partition=["c1"], test_mode=True))
    assert set(train_set.frames) == {"c0"} and set(held_out.frames) == {"c1"}
    with pytest.raises(ValueError, match="clip c0 has 5 frames, fewer than num_frame"):
        build_dataset(paired_options(deblur_data, num_frame=6))
    with pytest.raises(KeyError, match="needs 'meta_info_file' to read an LMDB"):
        build_dataset(paired_options(deblur_data, dataroot_gt=str(deblur_data / "gt.lmdb"),
                                     dataroot_lq=str(deblur_data / "lq.lmdb"), io_backend={"type": "lmdb"}))


def test_denoising_train_dataset_draws_one_level_per_sample(deblur_data: Path) -> None:
    opt = {**paired_options(deblur_data, sigma_min=10, sigma_max=50), "type": "VideoDenoisingTrainDataset"}
    del opt["dataroot_lq"]
    dataset = build_dataset(opt)
    levels = []
    for index in range(6):
        random.seed(index)
        torch.manual_seed(index)
        item = dataset[index]
        level = float(item["lq"][0, 3, 0, 0])
        noise = item["lq"][:, :3] - item["gt"]
        assert 10 / 255 <= level <= 50 / 255 and torch.all(item["lq"][:, 3] == level)
        assert abs(float(noise.std()) - level) < 0.05 * level
        levels.append(level)
    assert len(set(levels)) == 6
    with pytest.raises(KeyError, match="sigma_max"):
        build_dataset({k: v for k, v in opt.items() if k != "sigma_max"})


def test_denoising_test_dataset_has_the_official_fixed_noise(deblur_data: Path) -> None:
    dataset = build_dataset({"name": "Set8", "type": "VideoDenoisingTestDataset",
                             "dataroot_gt": str(deblur_data / "train_GT"), "sigma": 30})
    item = dataset[1]
    assert item["folder"] == "c1" and item["lq"].shape == (5, 4, 48, 40)
    torch.manual_seed(0)  # main_test_vrt.py / KAIR VideoRecurrentTestDataset, for every clip
    noise_level = torch.ones((1, 1, 1, 1)) * (30 / 255.0)
    noisy = item["gt"] + torch.normal(mean=0, std=noise_level.expand_as(item["gt"]))
    torch.testing.assert_close(item["lq"][:, :3], noisy, rtol=0, atol=0)
    assert torch.all(item["lq"][:, 3] == noise_level.flatten())


def test_vimeo_septuplets_padded_to_eight_frames(tmp_path: Path) -> None:
    gt = make_clip(7, 64, 64, seed=3)
    write_frames(tmp_path / "gt" / "00001" / "0001", gt, [f"im{i}.png" for i in range(1, 8)])
    write_frames(tmp_path / "lq" / "00001" / "0001", [cv2.resize(f, (16, 16), interpolation=cv2.INTER_AREA)
                                                      for f in gt], [f"im{i}.png" for i in range(1, 8)])
    (tmp_path / "sep_trainlist.txt").write_text("00001/0001\n")
    dataset = build_dataset({"name": "Vimeo90K", "type": "VideoRecurrentTrainVimeoDataset", "scale": 4,
                             "dataroot_gt": str(tmp_path / "gt"), "dataroot_lq": str(tmp_path / "lq"),
                             "meta_info_file": str(tmp_path / "sep_trainlist.txt"), "num_frame": 7,
                             "gt_size": 32, "pad_sequence": True, "random_reverse": True,
                             "use_hflip": True, "use_rot": True})
    item = dataset[0]
    assert item["lq"].shape == (8, 3, 8, 8) and item["gt"].shape == (8, 3, 32, 32)
    assert torch.equal(item["lq"][7], item["lq"][6]) and torch.equal(item["gt"][7], item["gt"][6])
