"""SAVSR end to end: arbitrary-scale data, the ASVSRModel, mixed-scale training and multi-scale validation."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from helpers import REPO_ROOT, make_clips, parity_folders, set_options, write_options
from vsrt import train
from vsrt.archs import ARCH_REGISTRY, check_network_options
from vsrt.archs.savsr_arch import SAVSR
from vsrt.data import build_dataset
from vsrt.data.arbitrary_scale import arbitrary_scale_downsample
from vsrt.data.as_test_dataset import OFFICIAL_TEST_SCALES
from vsrt.data.as_train_dataset import (
    OFFICIAL_TRAIN_SCALES,
    SYMMETRIC_TRAIN_SCALES,
    ScaleCurriculum,
    make_scaled_batch,
)
from vsrt.data.resumable import SeededDataset
from vsrt.models import build_model
from vsrt.options import load_options, load_yaml

TINY_OPTIONS = REPO_ROOT / "options" / "train" / "SAVSR" / "train_SAVSR_tiny_cpu.yml"


def resize_cases(pipeline: str) -> list[Path]:
    paths = [path for _, folder in parity_folders("savsr_resize") for path in sorted(folder.glob("*.pt"))]
    return [p for p in paths if torch.load(p, weights_only=True)["pipeline"] == pipeline]


def tiny_options(tmp_path: Path, **changes) -> dict:
    """The committed tiny config, pointed at synthetic clips under ``tmp_path``."""
    data = tmp_path / "data"
    if not data.exists():
        make_clips(data / "train", ["a", "b"], num_frames=8, size=64, seed=0)
        make_clips(data / "val", ["v"], num_frames=6, size=48, seed=100)
    opt = load_yaml(TINY_OPTIONS)
    opt["datasets"]["train"]["dataroot_gt"] = str(data / "train")
    opt["datasets"]["val"]["dataroot_gt"] = str(data / "val")
    opt["path"]["experiments_root"] = str(tmp_path / "experiments")
    return set_options(opt, changes)


# ----------------------------------------------------------------------------- end to end


def test_tiny_savsr_trains_at_mixed_scales_and_validates_at_three_scales(tmp_path):
    opt_path = write_options(tmp_path / "tiny.yml", tiny_options(tmp_path))
    opt, _ = load_options(opt_path, is_train=False, root=tmp_path)
    torch.manual_seed(opt["manual_seed"])  # the untrained weights must not depend on earlier tests
    untrained = build_model(opt)
    val_set = build_dataset(opt["datasets"]["val"])
    before = untrained.validation(val_set, current_iter=0)

    root = Path(train.main(["-opt", str(opt_path)]))
    log = next(root.glob("train_*.log")).read_text()
    records = re.findall(r"l_pix: (\S+) scale_h: (\S+) scale_w: (\S+)", log)
    assert len(records) == 40
    losses = [float(loss) for loss, _, _ in records]
    scales = {(float(h), float(w)) for _, h, w in records}
    assert len(scales) >= 4 and any(h != w for h, w in scales), scales  # mixed, also asymmetric
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5]), losses

    summary = log.split("Validation synthetic_val at 3 scale(s)")[-1]
    after = {k: float(v) for k, v in re.findall(r"# (\w+_x[\d._x]+): ([\d.]+)", summary)}
    assert set(after) == {f"{m}_{t}" for m in ("psnr_y", "ssim_y") for t in ("x2.0", "x3.5", "x1.5_x3.8")}
    assert set(before) == set(after)
    for tag in ("x2.0", "x3.5", "x1.5_x3.8"):
        assert after[f"psnr_y_{tag}"] > before[f"psnr_y_{tag}"] + 1, (before, after)
    assert 0 < after["ssim_y_x3.5"] < 1


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    changes = {"train.total_iter": 12, "logger.save_checkpoint_freq": 4, "val.val_freq": None}
    opt_path = write_options(tmp_path / "tiny.yml", tiny_options(tmp_path, **changes))
    reference = Path(train.main(["-opt", str(opt_path), "--force_yml", "name=reference"]))
    train.main(["-opt", str(opt_path), "--force_yml", "name=resumed", "train.total_iter=4"])
    resumed = Path(train.main(["-opt", str(opt_path), "--force_yml", "name=resumed", "--auto_resume"]))
    expected = torch.load(reference / "models" / "net_g_latest.pth", weights_only=True)["params"]
    got = torch.load(resumed / "models" / "net_g_latest.pth", weights_only=True)["params"]
    for name, value in expected.items():
        assert torch.equal(got[name], value), name
    scales = [logged_scales(root) for root in (reference, resumed)]
    assert [scales[0][i] for i in range(5, 13)] == [scales[1][i] for i in range(5, 13)]


def test_scale_curriculum_follows_the_training_epochs(tmp_path):
    changes = {"train.total_iter": 8, "datasets.train.dataset_enlarge_ratio": 2, "val.val_freq": None,
               "datasets.train.CL_train_set": [3, 0, 1], "logger.save_checkpoint_freq": 100}
    root = Path(train.main(["-opt", str(write_options(tmp_path / "cl.yml", tiny_options(tmp_path, **changes)))]))
    scales = {it: (float(h), float(w)) for it, (h, w) in logged_scales(root).items()}  # 2 iterations per epoch
    assert scales[1] == scales[2] == (4.0, 4.0)  # epoch 0: x4 only
    assert {scales[3][0], scales[4][0]} <= {2.0, 3.0, 4.0} and scales[3][0] == scales[3][1]  # epoch 1: integers
    assert any(not h.is_integer() or h != w for h, w in (scales[i] for i in range(5, 9))), scales  # the list


def logged_scales(root: Path) -> dict[int, tuple[str, str]]:
    """Iteration -> the batch scale logged for it, over every log file of a run."""
    pattern = r"iter:\s*([\d,]+),.*?scale_h: (\S+) scale_w: (\S+)"
    logs = "".join(path.read_text() for path in root.glob("train_*.log"))
    return {int(it.replace(",", "")): (h, w) for it, h, w in re.findall(pattern, logs)}


@pytest.mark.parametrize("name", ["train/SAVSR/train_SAVSR_Vimeo90K_asBI.yml", "train/SAVSR/train_SAVSR_tiny_cpu.yml",
                                  "test/SAVSR/test_SAVSR_Vid4_asBI.yml", "test/SAVSR/test_SAVSR_UDM10_asBI.yml"])
def test_committed_options_load_and_follow_the_official_protocol(name, tmp_path):
    opt, _ = load_options(REPO_ROOT / "options" / name, is_train=name.startswith("train"), root=tmp_path)
    network = dict(opt["network_g"])
    check_network_options(ARCH_REGISTRY.get(network.pop("type")), network)
    for dataset in opt["datasets"].values():
        for key in ("dataroot_gt", "meta_info_file"):
            assert not Path(dataset.get(key) or "x").is_absolute(), (name, key)
    if name.startswith("test"):
        scales = [tuple(map(float, s)) if isinstance(s, list) else (float(s), float(s))
                  for s in opt["datasets"]["test"]["scales"]]
        assert sorted(scales) == sorted(OFFICIAL_TEST_SCALES)


# ----------------------------------------------------------------------------- training data


def test_official_scale_lists():
    assert len(OFFICIAL_TRAIN_SCALES) == 60 and len(SYMMETRIC_TRAIN_SCALES) == 30
    assert SYMMETRIC_TRAIN_SCALES[0] == (1.1, 1.1) and SYMMETRIC_TRAIN_SCALES[-1] == (4.0, 4.0)
    assert OFFICIAL_TRAIN_SCALES[30:35] == ((1.5, 2.0), (1.5, 2.5), (1.5, 3.0), (1.5, 3.5), (1.5, 4.0))
    assert len(OFFICIAL_TEST_SCALES) == 42 and (2.95, 3.75) in OFFICIAL_TEST_SCALES


def test_curriculum_follows_the_epoch():
    curriculum = ScaleCurriculum.from_options({"CL_train_set": [240, 3, 5], "init_int_scale": True}, "t")

    def draws(epoch: int) -> set:
        return {curriculum.draw(epoch) for _ in range(300)}

    assert draws(0) == draws(13) == {(4.0, 4.0)}  # the curriculum wins over init_int_scale
    assert draws(4) == draws(245 - 230) == {(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)}
    assert len(draws(7)) > 30 and draws(7) <= set(OFFICIAL_TRAIN_SCALES)
    assert len(draws(240)) > 30 and any(h != w for h, w in draws(241))

    integer_first = ScaleCurriculum.from_options({"init_int_scale": True, "only_sy_scale": True}, "t")
    assert {integer_first.draw(0) for _ in range(100)} == {(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)}
    assert {integer_first.draw(1) for _ in range(300)} <= set(SYMMETRIC_TRAIN_SCALES)
    fixed = ScaleCurriculum.from_options({"single_scale_ft": True, "scale": [2, 3.5]}, "t")
    assert fixed.draw(9) == (2.0, 3.5)
    own = ScaleCurriculum.from_options({"scale_h_list": [1.5, 2], "scale_w_list": [3.8, 2]}, "t")
    assert {own.draw(3) for _ in range(50)} == {(1.5, 3.8), (2.0, 2.0)}
    with pytest.raises(ValueError, match="not both"):
        ScaleCurriculum.from_options({"scale_list": [2], "scale_h_list": [2], "scale_w_list": [2]}, "t")
    with pytest.raises(ValueError, match="three integers"):
        ScaleCurriculum.from_options({"CL_train_set": [240, 3]}, "t")


def write_vimeo(root: Path, keys: list[str], size: tuple[int, int] = (56, 72)) -> Path:
    rng = np.random.default_rng(0)
    for key in keys:
        (root / "sequences" / key).mkdir(parents=True)
        for n in range(1, 8):
            cv2.imwrite(str(root / "sequences" / key / f"im{n}.png"), rng.integers(0, 256, (*size, 3), np.uint8))
    (root / "sep_trainlist.txt").write_text("\n".join(keys) + "\n")
    return root


def test_vimeo_items_and_one_scale_per_batch(tmp_path):
    root = write_vimeo(tmp_path / "vimeo", ["00001/0001", "00001/0002", "00002/0001"])
    dataset = build_dataset({"name": "v", "type": "ASVimeo90KDataset", "phase": "train",
                             "dataroot_gt": str(root / "sequences"), "meta_info_file": str(root / "sep_trainlist.txt"),
                             "io_backend": {"type": "disk"}, "num_frame": 7, "lq_size": 12, "random_reverse": True,
                             "use_hflip": True, "use_rot": True, "CL_train_set": [240, 3, 5]})
    dataset.set_epoch(8)
    seeded = SeededDataset(dataset)
    item = seeded[(1, 1234)]
    assert item["gt"].shape == (7, 3, 48, 48) and item["key"] == "00001/0002"
    again = seeded[(1, 1234)]
    assert all(torch.equal(item[k], again[k]) for k in ("gt", "scale", "crop"))  # a pure function of the seed

    batch = default_collate([seeded[(i, 100 + i)] for i in range(3)])
    scale = tuple(batch["scale"][0].tolist())
    lq, gt = make_scaled_batch(batch["gt"], scale, batch["crop"][0].tolist(), lq_size=12)
    assert lq.shape == (3, 7, 3, 12, 12)
    assert gt.shape == (3, 7, 3, round(12 * scale[0]), round(12 * scale[1]))
    with pytest.raises(ValueError, match="raise max_scale"):
        make_scaled_batch(batch["gt"], (4.5, 4.5), (0, 0), lq_size=12)


@pytest.mark.parametrize("path", resize_cases("train_collate"), ids=lambda p: p.stem)
def test_training_batch_matches_the_official_collate(path):
    case = torch.load(path, weights_only=True)
    frames = case["src_uint8_bgr"].numpy()[..., ::-1].astype(np.float32) / 255  # (t, H0, W0, 3) RGB
    gt = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))[None]  # (1, t, 3, H0, W0)
    lq, patch = make_scaled_batch(gt, case["scale"], (0.0, 0.0), case["sizes"]["lq_size"], case["mode"])
    assert torch.equal(patch[0], case["input"])  # the official fixture keeps the top-left patch
    assert (lq[0] - case["output"]).abs().max() <= case["atol"]


def test_folder_dataset_items(tmp_path):
    make_clips(tmp_path / "clips", ["a"], num_frames=6, size=40)
    dataset = build_dataset({"name": "f", "type": "ASVideoFolderDataset", "dataroot_gt": str(tmp_path / "clips"),
                             "num_frame": 5, "lq_size": 10, "scale_list": [[1.5, 3.8]], "phase": "train"})
    item = SeededDataset(dataset)[(0, 7)]
    assert item["gt"].shape == (5, 3, 40, 40) and item["scale"].tolist() == [1.5, 3.8]
    with pytest.raises(ValueError, match="exceeds max_scale"):
        build_dataset({"name": "f", "type": "ASVideoFolderDataset", "dataroot_gt": str(tmp_path / "clips"),
                       "num_frame": 5, "lq_size": 10, "max_scale": 2, "scale_list": [3]})


# ----------------------------------------------------------------------------- test data


@pytest.mark.parametrize("path", resize_cases("test"), ids=lambda p: p.stem)
def test_test_dataset_matches_the_official_test_pipeline(path, tmp_path):
    case = torch.load(path, weights_only=True)
    clip = tmp_path / "GT" / "clip"
    clip.mkdir(parents=True)
    for index, frame in enumerate(case["src_uint8_bgr"].numpy()):
        cv2.imwrite(str(clip / f"{index:08d}.png"), frame)
    dataset = build_dataset({"name": "t", "type": "ASVideoTestDataset", "dataroot_gt": str(tmp_path / "GT"),
                             "downsampling_scale": case["scale"], "downsampling_mode": case["mode"],
                             "use_arbitrary_scale_downsampling": True})
    item = dataset[0]
    assert torch.equal(item["gt"], case["input"])
    assert (item["lq"] - case["output"]).abs().max() <= case["atol"]


def test_test_dataset_scales_and_views(tmp_path):
    make_clips(tmp_path / "GT", ["x", "y"], num_frames=3, size=48)
    dataset = build_dataset({"name": "Vid4", "type": "ASVideoTestDataset", "dataroot_gt": str(tmp_path / "GT"),
                             "scales": [2, [1.5, 3.8]], "cache_data": True})
    assert dataset.scales == [(2.0, 2.0), (1.5, 3.8)] and len(dataset) == 2
    view = dataset.at_scale((1.5, 3.8))
    assert view.scale == (1.5, 3.8) and dataset.scale == (2.0, 2.0) and view.opt is not dataset.opt
    item = view[1]
    assert item["folder"] == "y" and item["gt"].shape == (3, 3, 48, 38) and item["lq"].shape == (3, 3, 32, 10)
    expected = arbitrary_scale_downsample(item["gt"], (1.5, 3.8), "torch")
    assert torch.equal(item["lq"], expected)
    with pytest.raises(ValueError, match="use_arbitrary_scale_downsampling"):
        build_dataset({"name": "v", "type": "ASVideoTestDataset", "dataroot_gt": str(tmp_path / "GT"), "scale": 2,
                       "use_arbitrary_scale_downsampling": False})
    with pytest.raises(KeyError, match="scales"):
        build_dataset({"name": "v", "type": "ASVideoTestDataset", "dataroot_gt": str(tmp_path / "GT")})


# ----------------------------------------------------------------------------- model


def test_sliding_window_inference_and_batch_scale(tmp_path):
    opt, _ = load_options(write_options(tmp_path / "o.yml", tiny_options(tmp_path)), is_train=True, root=tmp_path)
    model = build_model(opt)
    net = model.net_g.eval()
    clip = torch.rand(1, 4, 3, 10, 12)
    out = model.infer(clip, scale=(1.5, 3.8))
    assert out.shape == (1, 4, 3, 15, 46)
    with torch.no_grad():  # frame 0 is made from the reflected window [2, 1, 0, 1, 2]
        first = net(clip[:, [2, 1, 0, 1, 2]], scale=(1.5, 3.8))
        last = net(clip[:, [1, 2, 3, 2, 1]], scale=(1.5, 3.8))
    assert torch.equal(out[:, 0], first) and torch.equal(out[:, 3], last)
    with pytest.raises(ValueError, match="too short"):
        model.infer(clip[:, :2], scale=2)

    gt = torch.rand(2, 5, 3, 48, 48)
    model.feed_data({"gt": gt, "scale": torch.tensor([[2.5, 2.5], [4.0, 1.5]], dtype=torch.float64),
                     "crop": torch.zeros(2, 2, dtype=torch.float64)})
    assert model.scale == (2.5, 2.5) and model.lq.shape == (2, 5, 3, 12, 12)
    assert torch.equal(model.gt, gt[:, 2, :, :30, :30])
    model.optimize_parameters(current_iter=1)
    assert model.log_dict["scale_h"] == 2.5 and np.isfinite(model.log_dict["l_pix"])


def test_ema_network_follows_batchnorm_statistics(tmp_path):
    opt, _ = load_options(write_options(tmp_path / "o.yml", tiny_options(tmp_path, **{"train.ema_decay": 0.9})),
                          is_train=True, root=tmp_path)
    model = build_model(opt)
    model.feed_data({"gt": torch.rand(2, 5, 3, 48, 48), "scale": torch.full((2, 2), 2.0, dtype=torch.float64),
                     "crop": torch.zeros(2, 2, dtype=torch.float64)})
    model.optimize_parameters(current_iter=1)
    trained = dict(model.net_g.named_buffers())
    stats = [name for name in trained if name.endswith("running_mean")]
    assert stats and not torch.equal(trained[stats[0]], torch.zeros_like(trained[stats[0]]))
    for name, buffer in model.net_g_ema.named_buffers():
        assert torch.equal(buffer, trained[name]), name
    assert model.network_for_test() is model.net_g_ema


def test_model_rejects_a_fixed_scale_network(tmp_path):
    opt = tiny_options(tmp_path)
    opt["network_g"] = {"type": "BasicVSR", "num_feat": 8, "num_block": 1, "spynet_path": None}
    opt, _ = load_options(write_options(tmp_path / "o.yml", opt), is_train=False, root=tmp_path)
    with pytest.raises(ValueError, match="needs an arbitrary-scale network.*BasicVSR"):
        build_model(opt)


def test_savsr_declares_arbitrary_scale_and_a_fast_tiny_config():
    assert SAVSR.arbitrary_scale is True
    net = SAVSR(**SAVSR.tiny_config).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 5, 3, 8, 8), scale=(1.5, 3.8)).shape == (1, 3, 12, 30)
