"""Every shipped option file starts: one training iteration (train files) or one test run (test files) on
generated data laid out where the file expects it.

The data comes from the file itself: each ``datasets`` block gets clips at its ``dataroot_gt`` /
``dataroot_lq`` (folders or LMDBs, as its ``io_backend`` says) and, for Vimeo-90K, its list file. Files
whose data is the demo's (``demo_output/data``) get exactly what ``python -m vsrt demo`` writes and run
with their network as shipped. Official recipes get a tiny network of the same family and small patches.
The seven recipes of ``test_official_recipes_run.py`` (which train and validate) are not repeated here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from test_official_recipes_run import (
    RECIPES,
    TINY_SAVSR,
    TINY_TRANSFORMER,
    TINY_VRT,
    TINY_VRT_VFI,
    TINY_VRT_X1,
)

from helpers import REPO_ROOT, load_data_script, make_clips
from vsrt import test as vsrt_test
from vsrt import train
from vsrt.archs import build_network
from vsrt.archs.flow.spynet import SpyNet
from vsrt.demo import make_demo_data
from vsrt.options import load_yaml

COVERED_BY_RECIPE_TEST = {REPO_ROOT / "options" / "train" / recipe for recipe, *_ in RECIPES}
OPTION_FILES = sorted(p for p in (REPO_ROOT / "options").rglob("*.yml") if p not in COVERED_BY_RECIPE_TEST)
GT_SIZE = 32  # GT frames and training patches; LQ frames are GT_SIZE / scale


def relative(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT / "options"))


def uses_demo_data(opt: dict[str, Any]) -> bool:
    return all(str(d.get("dataroot_gt", "")).startswith("demo_output/") for d in opt["datasets"].values())


def tiny_network(network_g: dict[str, Any]) -> dict[str, Any]:
    """A tiny network of the same family and task (scale, input channels, flow alignment kept)."""
    kind = network_g["type"]
    if kind == "VRT":
        if network_g.get("upscale", 4) != 1:  # channels and deformable groups: multiples of the aligned neighbours
            neighbours = max(1, network_g.get("pa_frames", 2) // 2)
            if neighbours == 3:  # REDS 16 frames: pa_frames 6
                return {**TINY_VRT, "embed_dims": [12] * 13, "deformable_groups": 6}
            return TINY_VRT
        return TINY_VRT_VFI if network_g.get("pa_frames", 2) == 0 else TINY_VRT_X1
    if kind in ("MIAVSR", "BasicRecurrentSwin", "PSRTRecurrent", "IIAVSR"):
        return TINY_TRANSFORMER
    if kind == "SAVSR":
        return TINY_SAVSR
    if kind == "BasicVSR":
        return {"num_feat": 8, "num_block": 1}
    raise AssertionError(f"no tiny configuration for {kind}: add one here")


def write_clips(root: Path, names: list[str], frames: int, size: int, vimeo: bool, seed: int) -> None:
    """``root/<name>/<%08d>.png`` (``im1.png ...`` for Vimeo septuplets); ``name`` may be ``00001/0001``."""
    for i, name in enumerate(names):
        parent, leaf = (root / name).parent, (root / name).name
        make_clips(parent, [leaf], num_frames=frames, size=size, seed=seed + i)
        if vimeo:
            for index, frame in enumerate(sorted((parent / leaf).iterdir()), start=1):
                frame.rename(frame.with_name(f"im{index}.png"))


def make_dataset(phase: str, dataset: dict[str, Any], scale: int, tmp: Path) -> list[str]:
    """Write the data of one ``datasets`` block; returns the ``--force_yml`` overrides it needs."""
    kind = dataset["type"]
    vimeo = "Vimeo" in kind
    reds = kind == "REDSRecurrentDataset"
    names = ["00001/0001", "00001/0002"] if vimeo else ["000", "001", "002"] if reds else ["clip_a", "clip_b"]
    frames = 7 if vimeo else 5
    lmdb = (dataset.get("io_backend") or {}).get("type") == "lmdb"
    overrides = []
    # arbitrary-scale test sets crop the GT to whole LQ pixels at every scale (x3.9: a multiple of 39 px)
    gt_size = 2 * GT_SIZE if kind.startswith("AS") else GT_SIZE
    roots = [("gt", dataset.get("dataroot_gt"), gt_size)]
    if dataset.get("dataroot_lq") and dataset.get("dataroot_lq") != dataset.get("dataroot_gt"):
        roots.append(("lq", dataset["dataroot_lq"], GT_SIZE // scale))
    listing = None
    if vimeo and dataset.get("meta_info_file"):
        listing = Path(dataset["meta_info_file"])
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("\n".join(names) + "\n")
    if dataset.get("scales"):  # arbitrary-scale test sets: two of the file's scales, one of them asymmetric
        overrides.append(f"datasets.{phase}.scales=[4, [1.5, 3.8]]")
    if reds:
        meta = tmp / f"meta_info_{phase}.txt"
        meta.write_text("".join(f"{n} {frames} ({GT_SIZE},{GT_SIZE},3)\n" for n in names))
        overrides.append(f"datasets.{phase}.meta_info_file={meta}")
    for side, root, size in roots:
        target = tmp / "raw" / phase / side if lmdb else Path(root)
        write_clips(target, names, frames, size, vimeo, seed=len(side) * 10)
        if lmdb:
            args = ["--dataset", "Vimeo90K" if vimeo else "REDS", "--input", str(target), "--output", root]
            assert load_data_script("create_lmdb").main(args + (["--list", str(listing)] if listing else [])) == 0
    return overrides


def prepare(path: Path, tmp: Path) -> list[str]:
    """Write the file's data (and SpyNet / pretrained weights it names); return its overrides."""
    opt = load_yaml(path)
    is_train = path.parent.parent.name == "train"
    demo = uses_demo_data(opt)
    overrides: list[str] = []
    network_g = dict(opt["network_g"])
    if not demo:
        network_g.update(tiny_network(network_g))
        overrides += [f"network_g.{key}={json.dumps(value)}" for key, value in tiny_network(network_g).items()]
    if demo:
        make_demo_data(Path("demo_output") / "data")
    else:
        scale = int(opt.get("scale") or 1) if network_g["type"] != "SAVSR" else 1
        for phase, dataset in opt["datasets"].items():
            overrides += make_dataset(phase, dataset, scale, tmp)
    if network_g.get("spynet_path"):
        Path(network_g["spynet_path"]).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"params": SpyNet().state_dict()}, network_g["spynet_path"])
    if is_train:
        train_set = opt["datasets"]["train"]
        if not demo:
            overrides += ["datasets.train.gt_size=32", "datasets.train.batch_size_per_gpu=1",
                          "datasets.train.dataset_enlarge_ratio=1"]
            if train_set.get("lq_size"):
                overrides.append("datasets.train.lq_size=8")
            if (train_set.get("num_frame") or 0) > 3 and "Vimeo" not in train_set["type"]:
                frames = 3 if network_g["type"] != "VRT" else 4 if network_g.get("pa_frames", 2) >= 6 else 2
                overrides.append(f"datasets.train.num_frame={frames}")
        overrides += ["train.total_iter=1", "val.val_freq=~", "logger.print_freq=1",
                      "logger.use_tb_logger=false", "datasets.train.num_worker_per_gpu=0"]
    pretrained = (opt.get("path") or {}).get("pretrain_network_g")
    if pretrained or not is_train:  # a random stand-in for the released (or earlier-stage) weights
        checkpoint = Path(pretrained or tmp / "random.pth")
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save({"params": build_network(network_g).state_dict()}, checkpoint)
        overrides += [f"path.pretrain_network_g={checkpoint}", "path.param_key_g=params"]
    return overrides


@pytest.mark.parametrize("path", OPTION_FILES, ids=relative)
def test_option_file_starts(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the files' data paths are relative, as in BasicSR
    overrides = prepare(path, tmp_path)
    if path.parent.parent.name == "train":
        root = Path(train.main(["-opt", str(path), "--force_yml", *overrides]))
        log = next(root.glob("train_*.log")).read_text()
        assert "iter:       1" in log, log[-2000:]
        assert (root / "models" / "net_g_latest.pth").is_file()
    else:
        report = vsrt_test.main(["-opt", str(path), "--force_yml", *overrides])
        averages = [value for dataset in report.values() for value in dataset["average"].values()]
        assert averages and all(torch.isfinite(torch.tensor(averages))), report
