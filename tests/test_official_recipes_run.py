"""The official training recipes run as shipped, on tiny data laid out where they expect it.

Each recipe is used unchanged except for what makes it tiny (network width and depth, clip and patch
size, iteration count, workers) and the REDS meta file (the shipped one lists the full dataset). Its
relative data paths, LMDB backends, val partition, SpyNet checkpoint path, model type (fp16 falls back
to fp32 on CPU), scheduler, EMA, fix_flow and validation all take part, as for a researcher who runs
``bash dist_train.sh 8 options/train/...yml`` after preparing the data as the file's header says.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import REPO_ROOT, load_data_script, make_clips
from vsrt import train
from vsrt.archs.flow.spynet import SpyNet

SPYNET = Path("experiments/pretrained_models/flownet/spynet_sintel_final-3d2a1287.pth")
TINY_TRANSFORMER = {"mid_channels": 8, "embed_dim": 12, "depths": [1], "num_heads": [2]}
TINY_VRT = {"img_size": [2, 32, 32], "window_size": [2, 4, 4], "depths": [1] * 13,
            "indep_reconsts": [11, 12], "embed_dims": [8] * 7 + [12] * 6, "num_heads": [2] * 13,
            "deformable_groups": 2}
# restoration (x1) VRTs have 11 stages; the recipes' activation checkpointing lists stay as they are
TINY_VRT_X1 = {**TINY_VRT, "depths": [1] * 11, "indep_reconsts": [9, 10], "embed_dims": [8] * 7 + [12] * 4,
               "num_heads": [2] * 11}
TINY_VRT_VFI = {**TINY_VRT_X1, "img_size": [4, 32, 32], "window_size": [4, 4, 4], "indep_reconsts": []}
TINY_SAVSR = {"num_feat": 16, "w1_num_block": 1, "w2_num_block": 1, "n_resgroups": 1, "n_resblocks": 1}


def _overrides(prefix: str, values: dict) -> list[str]:
    return [f"{prefix}.{key}={json.dumps(value)}" for key, value in values.items()]


def make_reds(root: Path) -> Path:
    """REDS-style GT/LQ LMDBs (training clips 001, 002) and REDS4-style val folders (clip 000)."""
    create_lmdb, generate_lr = load_data_script("create_lmdb"), load_data_script("generate_lr")
    make_clips(root / "raw" / "train_sharp", ["001", "002"], num_frames=5, size=32, seed=0)
    make_clips(root / "datasets" / "REDS4" / "GT", ["000"], num_frames=3, size=32, seed=1)
    generate_lr.main(["--input", str(root / "raw" / "train_sharp"), "--output", str(root / "raw" / "bicubic")])
    generate_lr.main(["--input", str(root / "datasets" / "REDS4" / "GT"),
                      "--output", str(root / "datasets" / "REDS4" / "sharp_bicubic")])
    for folder, name in (("train_sharp", "train_sharp_with_val"), ("bicubic", "train_sharp_bicubic_with_val")):
        assert create_lmdb.main(["--dataset", "REDS", "--input", str(root / "raw" / folder),
                                 "--output", str(root / "datasets" / "REDS" / f"{name}.lmdb")]) == 0
    meta = root / "meta_info_REDS_tiny.txt"
    meta.write_text("000 5 (32,32,3)\n001 5 (32,32,3)\n002 5 (32,32,3)\n")  # 000 is REDS4: held out
    return meta


def make_vimeo(root: Path) -> Path:
    """Vimeo-style 7-frame LMDBs with a sep_trainlist.txt, and Vid4-style val folders."""
    create_lmdb, generate_lr = load_data_script("create_lmdb"), load_data_script("generate_lr")
    for seq in ("00001/0001", "00001/0002"):
        make_clips(root / "raw" / "sequences" / seq.split("/")[0], [seq.split("/")[1]], num_frames=7, size=32,
                   seed=int(seq[-1]))
        for i, frame in enumerate(sorted((root / "raw" / "sequences" / seq).iterdir()), start=1):
            frame.rename(frame.with_name(f"im{i}.png"))
    generate_lr.main(["--input", str(root / "raw" / "sequences"), "--output", str(root / "raw" / "lr")])
    listing = root / "datasets" / "vimeo90k" / "vimeo_septuplet" / "sep_trainlist.txt"
    listing.parent.mkdir(parents=True)
    listing.write_text("00001/0001\n00001/0002\n")
    for folder, name in (("sequences", "vimeo90k_train_GT7frames"), ("lr", "vimeo90k_train_LR7frames")):
        assert create_lmdb.main(["--dataset", "Vimeo90K", "--input", str(root / "raw" / folder), "--list",
                                 str(listing), "--output", str(root / "datasets" / "vimeo90k" / f"{name}.lmdb")]) == 0
    make_clips(root / "datasets" / "Vid4" / "GT", ["calendar"], num_frames=5, size=32, seed=3)
    generate_lr.main(["--input", str(root / "datasets" / "Vid4" / "GT"),
                      "--output", str(root / "datasets" / "Vid4" / "BIx4")])
    return listing


def make_vimeo_interpolation(root: Path) -> Path:
    """GT septuplets as an LMDB for training and as folders (with sep_testlist.txt) for validation."""
    listing = make_vimeo(root)
    sequences = root / "datasets" / "vimeo90k" / "vimeo_septuplet" / "sequences"
    (root / "raw" / "sequences").rename(sequences)
    (listing.parent / "sep_testlist.txt").write_text("00001/0002\n")
    assert load_data_script("create_lmdb").main([
        "--dataset", "Vimeo90K", "--input", str(sequences), "--list", str(listing),
        "--output", str(root / "datasets" / "vimeo90k" / "vimeo90k_train_GT_all.lmdb")]) == 0
    return listing


def make_gopro(root: Path) -> None:
    """Sharp/blurred clip folders for training (GoPro) and validation (GoPro11)."""
    for split, names in (("train", ["GOPR0372_07_00", "GOPR0374_11_00"]), ("test", ["GOPR0384_11_00"])):
        base = root / "datasets" / ("GoPro" if split == "train" else "GoPro11")
        make_clips(base / f"{split}_GT", names, num_frames=4, size=32, seed=len(split))
        make_clips(base / f"{split}_GT_blurred", names, num_frames=4, size=32, seed=7 + len(split))


def make_davis(root: Path) -> None:
    """Clean clip folders for denoising: DAVIS (training) and Set8 (validation, noise added on the fly)."""
    make_clips(root / "datasets" / "DAVIS" / "JPEGImages" / "480p", ["bear", "boat"], num_frames=4, size=32, seed=5)
    make_clips(root / "datasets" / "Set8", ["hypersmooth"], num_frames=3, size=32, seed=6)


def write_spynet(root: Path) -> None:
    torch.manual_seed(0)
    (root / SPYNET).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": SpyNet().state_dict()}, root / SPYNET)


# (recipe, data layout, tiny network_g, clip length, scheduler length key)
RECIPES = [
    ("PSRT/train_PSRT_REDS_16frames_600K.yml", "reds", TINY_TRANSFORMER, 3, "periods=[2]"),
    ("MIAVSR/train_MIAVSR_Vimeo90K_14frames_300K.yml", "vimeo", TINY_TRANSFORMER, -1, "periods=[2]"),
    ("VRT/train_VRT_videosr_REDS_6frames.yml", "reds", TINY_VRT, 2, "T_0=2"),
    ("VRT/train_VRT_deblur_GoPro.yml", "gopro", TINY_VRT_X1, 2, "T_0=2"),
    ("VRT/train_VRT_denoise_DAVIS.yml", "davis", TINY_VRT_X1, 2, "T_0=2"),
    ("SAVSR/train_SAVSR_Vimeo90K_asBI.yml", "vimeo", TINY_SAVSR, 7, "periods=[1,1,1,1]"),
    ("VRT/train_VRT_vfi_Vimeo90K.yml", "vimeo_interpolation", TINY_VRT_VFI, None, "T_0=2"),
]
MAKE_DATA = {"reds": make_reds, "vimeo": make_vimeo, "gopro": make_gopro, "davis": make_davis,
             "vimeo_interpolation": make_vimeo_interpolation}


@pytest.mark.parametrize(("recipe", "data", "network", "num_frame", "period"), RECIPES,
                         ids=[Path(r[0]).stem for r in RECIPES])
def test_official_recipe_trains_and_validates(recipe, data, network, num_frame, period, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the recipes' data paths are relative, as in BasicSR
    write_spynet(tmp_path)
    meta = MAKE_DATA[data](tmp_path)
    overrides = [
        *_overrides("network_g", network),
        *([f"datasets.train.meta_info_file={meta}"] if meta else []),
        *(["datasets.train.lq_size=8"] if network is TINY_SAVSR else []),
        *([f"datasets.train.num_frame={num_frame}"] if num_frame is not None else []),
        "datasets.train.gt_size=32", "datasets.train.num_worker_per_gpu=0",
        "datasets.train.batch_size_per_gpu=1", "datasets.train.dataset_enlarge_ratio=1",
        "train.total_iter=2", f"train.scheduler.{period}",
        "val.val_freq=2", "logger.print_freq=1", "logger.save_checkpoint_freq=2", "logger.use_tb_logger=false",
    ]
    root = Path(train.main(["-opt", str(REPO_ROOT / "options" / "train" / recipe), "--force_yml", *overrides]))
    log = next(root.glob("train_*.log")).read_text()
    assert "iter:       2" in log and "Validation" in log
    scores = [float(line.split(":")[1]) for line in log.splitlines() if line.strip().startswith("# psnr")]
    assert scores and all(np.isfinite(scores))
    state = torch.load(root / "models" / "net_g_2.pth", map_location="cpu", weights_only=True)
    ema = yaml.safe_load((REPO_ROOT / "options" / "train" / recipe).read_text())["train"].get("ema_decay", 0)
    assert sorted(state) == (["params", "params_ema"] if ema > 0 else ["params"])
    if "spynet_path" not in yaml.safe_load((REPO_ROOT / "options" / "train" / recipe).read_text())["network_g"]:
        return
    spynet = {k.removeprefix("spynet."): v for k, v in state["params"].items() if k.startswith("spynet.")}
    reference = torch.load(tmp_path / SPYNET, weights_only=True)["params"]
    # the recipe's spynet_path was loaded, and fix_flow (5000 or -1) kept SpyNet frozen for both iterations
    assert spynet.keys() == reference.keys()
    assert all(torch.equal(spynet[k], reference[k]) for k in reference)
