"""scripts/data_preparation: create_lmdb, generate_lr and regroup_reds_dataset on tiny trees."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest
import torch

from helpers import load_data_script
from vsrt.data import build_dataset, duf_downsample
from vsrt.utils import imresize


def write_hr_clips(root: Path, clips=("000", "001"), num_frames=8, size=32, seed=0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for clip in clips:
        (root / clip).mkdir(parents=True)
        for i in range(num_frames):
            path = root / clip / f"{i:08d}.png"
            cv2.imwrite(str(path), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
            paths.append(path)
    return paths


def test_generate_lr_bi_and_bd(tmp_path):
    generate_lr = load_data_script("generate_lr")
    frames = write_hr_clips(tmp_path / "GT", num_frames=2)
    hr = cv2.imread(str(frames[1])).astype(np.float32)
    assert generate_lr.main(["--input", str(tmp_path / "GT"), "--output", str(tmp_path / "BI"), "--mode", "BI"]) == 0
    lr = cv2.imread(str(tmp_path / "BI" / "000" / "00000001.png"))
    np.testing.assert_array_equal(lr, np.clip(np.round(imresize(hr, 0.25)), 0, 255).astype(np.uint8))
    assert generate_lr.main(["--input", str(tmp_path / "GT"), "--output", str(tmp_path / "BD"), "--mode", "BD",
                             "--scale", "2"]) == 0
    lr = cv2.imread(str(tmp_path / "BD" / "000" / "00000001.png"))
    want = duf_downsample(torch.from_numpy(hr).permute(2, 0, 1)[None], scale=2)[0].permute(1, 2, 0).numpy()
    assert lr.shape == (16, 16, 3)
    np.testing.assert_array_equal(lr, np.clip(np.round(want), 0, 255).astype(np.uint8))
    assert len(list((tmp_path / "BD").rglob("*.png"))) == 4


def test_generate_lr_refuses_sizes_not_divisible(tmp_path):
    generate_lr = load_data_script("generate_lr")
    (tmp_path / "GT" / "a").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "GT" / "a" / "0.png"), np.zeros((30, 32, 3), np.uint8))
    args = ["--input", str(tmp_path / "GT"), "--output", str(tmp_path / "LR")]
    assert generate_lr.main(args) == 1
    assert generate_lr.main(args + ["--mod-crop"]) == 0
    assert cv2.imread(str(tmp_path / "LR" / "a" / "0.png")).shape == (7, 8, 3)


def test_create_lmdb_layout_and_round_trip(tmp_path):
    create_lmdb, generate_lr = load_data_script("create_lmdb"), load_data_script("generate_lr")
    write_hr_clips(tmp_path / "GT")
    generate_lr.main(["--input", str(tmp_path / "GT"), "--output", str(tmp_path / "LQ")])
    for sub in ("GT", "LQ"):
        assert create_lmdb.main(["--dataset", "REDS", "--input", str(tmp_path / sub),
                                 "--output", str(tmp_path / f"{sub}.lmdb"), "--n-thread", "2"]) == 0
    meta = (tmp_path / "GT.lmdb" / "meta_info.txt").read_text().splitlines()
    assert meta[0] == "000/00000000.png (32,32,3) 1" and len(meta) == 16
    assert sorted(p.name for p in (tmp_path / "GT.lmdb").iterdir()) == ["data.mdb", "lock.mdb", "meta_info.txt"]
    with lmdb.open(str(tmp_path / "LQ.lmdb"), readonly=True, lock=False) as env, env.begin() as txn:
        value = txn.get(b"001/00000005")
    lq = cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(lq, cv2.imread(str(tmp_path / "LQ" / "001" / "00000005.png")))

    (tmp_path / "meta.txt").write_text("000 8 (32,32,3)\n001 8 (32,32,3)\n")
    opt = {"name": "rt", "type": "REDSRecurrentDataset", "scale": 4, "meta_info_file": str(tmp_path / "meta.txt"),
           "val_partition": [], "num_frame": 4, "gt_size": 16, "interval_list": [1], "use_hflip": True,
           "use_rot": True, "random_reverse": True}
    disk = build_dataset({**opt, "dataroot_gt": str(tmp_path / "GT"), "dataroot_lq": str(tmp_path / "LQ"),
                          "io_backend": {"type": "disk"}})
    packed = build_dataset({**opt, "dataroot_gt": str(tmp_path / "GT.lmdb"), "dataroot_lq": str(tmp_path / "LQ.lmdb"),
                            "io_backend": {"type": "lmdb"}})
    assert len(disk) == len(packed) == 16
    for index in (0, 7, 15):
        random.seed(index)
        a = disk[index]
        random.seed(index)
        b = packed[index]
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])


def test_create_lmdb_refuses_existing_target_and_cleans_up(tmp_path):
    create_lmdb = load_data_script("create_lmdb")
    write_hr_clips(tmp_path / "GT", clips=("000",), num_frames=2)
    args = ["--dataset", "folder", "--input", str(tmp_path / "GT"), "--output", str(tmp_path / "out.lmdb")]
    assert create_lmdb.main(args) == 0
    stamp = (tmp_path / "out.lmdb" / "data.mdb").stat().st_mtime_ns
    assert create_lmdb.main(args) == 1  # exists
    assert (tmp_path / "out.lmdb" / "data.mdb").stat().st_mtime_ns == stamp
    assert create_lmdb.main(args + ["--force", "--compress-level", "9"]) == 0
    assert (tmp_path / "out.lmdb" / "meta_info.txt").read_text().splitlines()[0] == "000/00000000.png (32,32,3) 9"
    assert create_lmdb.main(["--dataset", "folder", "--input", str(tmp_path / "GT"),
                             "--output", str(tmp_path / "out.db")]) == 1  # must end in .lmdb
    (tmp_path / "GT" / "000" / "00000001.png").write_bytes(b"broken")
    assert create_lmdb.main(["--dataset", "folder", "--input", str(tmp_path / "GT"),
                             "--output", str(tmp_path / "new.lmdb")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["GT", "out.lmdb"]  # no temporary folder left


def test_write_lmdb_grows_a_full_map(tmp_path):
    from vsrt.data.lmdb_util import collect_items, write_lmdb

    write_hr_clips(tmp_path / "GT", clips=("000", "001", "002"), num_frames=8, size=64)
    items = collect_items("REDS", tmp_path / "GT")
    assert write_lmdb(items, tmp_path / "GT.lmdb", map_size=32 * 1024) == 24  # ~12 KiB PNGs: must grow
    with lmdb.open(str(tmp_path / "GT.lmdb"), readonly=True, lock=False) as env, env.begin() as txn:
        assert env.stat()["entries"] == 24
        assert len(txn.get(b"002/00000007")) > 10000


def test_create_lmdb_vimeo_keys(tmp_path):
    create_lmdb = load_data_script("create_lmdb")
    for seq in ("00001/0001", "00001/0002"):
        (tmp_path / "seq" / seq).mkdir(parents=True)
        for n in range(1, 8):
            cv2.imwrite(str(tmp_path / "seq" / seq / f"im{n}.png"), np.full((8, 8, 3), n, np.uint8))
    (tmp_path / "list.txt").write_text("00001/0002\n")
    assert create_lmdb.main(["--dataset", "Vimeo90K", "--input", str(tmp_path / "seq"),
                             "--output", str(tmp_path / "all.lmdb")]) == 0
    keys = [line.split(".")[0] for line in (tmp_path / "all.lmdb" / "meta_info.txt").read_text().splitlines()]
    assert len(keys) == 14 and keys[:2] == ["00001/0001/im1", "00001/0001/im2"]
    assert create_lmdb.main(["--dataset", "Vimeo90K", "--input", str(tmp_path / "seq"), "--list",
                             str(tmp_path / "list.txt"), "--center-only", "--output", str(tmp_path / "c.lmdb")]) == 0
    assert (tmp_path / "c.lmdb" / "meta_info.txt").read_text() == "00001/0002/im4.png (8,8,3) 1\n"


def test_regroup_reds(tmp_path, capsys):
    regroup = load_data_script("regroup_reds_dataset")
    for sub in ("train_sharp", "train_sharp_bicubic/X4"):
        (tmp_path / sub / "000").mkdir(parents=True)
    for sub in ("val_sharp", "val_sharp_bicubic/X4"):
        for clip in ("000", "029"):
            (tmp_path / sub / clip).mkdir(parents=True)
            (tmp_path / sub / clip / "00000000.png").write_bytes(b"x")
    assert regroup.main(["--root", str(tmp_path), "--dry-run"]) == 0
    assert "copy" in capsys.readouterr().out and not (tmp_path / "train_sharp" / "240").exists()
    assert regroup.main(["--root", str(tmp_path)]) == 0
    for sub in ("train_sharp", "train_sharp_bicubic/X4"):
        assert sorted(p.name for p in (tmp_path / sub).iterdir()) == ["000", "240", "269"]
        assert (tmp_path / sub / "269" / "00000000.png").is_file()
    assert regroup.main(["--train", str(tmp_path / "train_sharp"), "--val", str(tmp_path / "val_sharp")]) == 1
    with pytest.raises(SystemExit):
        regroup.main(["--train", str(tmp_path / "train_sharp")])
