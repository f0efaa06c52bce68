"""vsrt.data datasets on tiny generated clips: disk vs LMDB, geometry, errors, custom video folders."""

from __future__ import annotations

import itertools
import pickle
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from helpers import load_data_script
from vsrt.data import EnlargedSampler, build_dataloader, build_dataset, duf_downsample, file_client
from vsrt.data.resumable import SeededDataset, SeededSampler
from vsrt.data.video_io import read_video, write_video
from vsrt.utils import imresize

SCALE = 4


def make_frame(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random uint8 BGR frame (smooth so that video codecs keep it close)."""
    coarse = rng.integers(64, 192, (h // 16 + 2, w // 16 + 2, 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def write_reds_like(root: Path, clips=("000", "001"), num_frames=8, size=32, seed=0) -> dict:
    """GT/<clip>/%08d.png (size x size) and LQ (size/4, replicated so GT == kron(LQ)), plus meta file."""
    rng = np.random.default_rng(seed)
    for clip in clips:
        for i in range(num_frames):
            lq = rng.integers(0, 256, (size // SCALE, size // SCALE, 3), dtype=np.uint8)
            gt = np.kron(lq, np.ones((SCALE, SCALE, 1), dtype=np.uint8))
            for sub, img in (("GT", gt), ("LQ", lq)):
                (root / sub / clip).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / sub / clip / f"{i:08d}.png"), img)
    meta = root / "meta.txt"
    meta.write_text("".join(f"{c} {num_frames} ({size},{size},3)\n" for c in clips))
    return {"gt": root / "GT", "lq": root / "LQ", "meta": meta}


def reds_opt(paths: dict, **overrides) -> dict:
    opt = {
        "name": "tiny", "type": "REDSRecurrentDataset", "phase": "train", "scale": SCALE,
        "dataroot_gt": str(paths["gt"]), "dataroot_lq": str(paths["lq"]), "meta_info_file": str(paths["meta"]),
        "val_partition": "REDS4", "test_mode": False, "io_backend": {"type": "disk"}, "num_frame": 3,
        "gt_size": 16, "interval_list": [1, 2], "random_reverse": True, "use_hflip": True, "use_rot": True,
    }
    opt.update(overrides)
    return opt


@pytest.fixture()
def reds(tmp_path):
    return write_reds_like(tmp_path)


def _samples(dataset, seed: int, n: int) -> list[dict]:
    random.seed(seed)
    return [dataset[i % len(dataset)] for i in range(n)]


# ----------------------------------------------------------------------------- REDS


def test_reds_partition_shapes_and_alignment(reds):
    train = build_dataset(reds_opt(reds))
    assert len(train) == 8 and all(k.startswith("001/") for k in train.keys)  # 000 is a REDS4 clip
    test = build_dataset(reds_opt(reds, test_mode=True))
    assert test.keys == [f"000/{i:08d}" for i in range(8)]
    for item in _samples(train, 0, 8):
        assert item["lq"].shape == (3, 3, 4, 4) and item["gt"].shape == (3, 3, 16, 16)
        assert item["lq"].dtype == torch.float32 and 0 <= item["lq"].min() and item["lq"].max() <= 1
        # one crop and one flip/rotation for every frame and for LQ and GT alike
        expected_gt = item["lq"].repeat_interleave(SCALE, -1).repeat_interleave(SCALE, -2)
        torch.testing.assert_close(item["gt"], expected_gt, rtol=0, atol=0)


@pytest.mark.parametrize("partition, held_out", [
    ("REDS4", {"000", "011", "015", "020"}),  # the REDS4 test set of EDVR / BasicVSR / MIA-VSR papers
    ("official", {"240", "269"}),  # the official REDS validation clips 240-269, renamed as in BasicSR
    (["010", "021"], {"010", "021"}),
])
def test_reds_validation_partitions(tmp_path, partition, held_out):
    clips = ("000", "010", "011", "015", "019", "020", "021", "239", "240", "269")
    paths = write_reds_like(tmp_path, clips=clips, num_frames=3, size=16)
    clips_of = lambda dataset: {key.split("/")[0] for key in dataset.keys}  # noqa: E731
    common = {"val_partition": partition, "num_frame": 3, "interval_list": [1], "gt_size": 16}
    assert clips_of(build_dataset(reds_opt(paths, test_mode=True, **common))) == held_out
    assert clips_of(build_dataset(reds_opt(paths, **common))) == set(clips) - held_out


def test_reds_window_stays_inside_clip_and_reverses(reds):
    dataset = build_dataset(reds_opt(reds, num_frame=4, interval_list=[2], use_hflip=False, use_rot=False,
                                     gt_size=32))
    clip = [cv2.imread(str(reds["lq"] / "001" / f"{i:08d}.png"))[..., ::-1] for i in range(8)]
    frames = torch.stack([torch.from_numpy(f.copy()).permute(2, 0, 1).float() / 255 for f in clip])
    orders = set()
    for item in _samples(dataset, 1, 16):
        matched = [int(torch.argmin(((frames - f) ** 2).flatten(1).sum(1))) for f in item["lq"]]
        orders.add(matched[1] - matched[0])
        assert all(abs(b - a) == 2 for a, b in itertools.pairwise(matched)) and max(matched) <= 7
    assert orders == {2, -2}


def test_reds_frame_count_from_meta_file(tmp_path):
    paths = write_reds_like(tmp_path, clips=("001",), num_frames=5)
    dataset = build_dataset(reds_opt(paths, num_frame=5, interval_list=[1]))
    assert len(dataset) == 5
    for item in _samples(dataset, 0, 5):
        assert item["lq"].shape[0] == 5
    with pytest.raises(ValueError, match="clip 001 has 5 frames"):
        build_dataset(reds_opt(paths, num_frame=3, interval_list=[2]))


def test_reds_lmdb_equals_disk(reds, tmp_path):
    create_lmdb = load_data_script("create_lmdb")
    for sub in ("GT", "LQ"):
        assert create_lmdb.main(["--dataset", "REDS", "--input", str(reds[sub.lower()]),
                                 "--output", str(tmp_path / f"{sub}.lmdb")]) == 0
    disk = build_dataset(reds_opt(reds))
    lmdb_paths = dict(reds, gt=tmp_path / "GT.lmdb", lq=tmp_path / "LQ.lmdb")
    lmdb_set = build_dataset(reds_opt(lmdb_paths, io_backend={"type": "lmdb"}))
    assert str((tmp_path / "GT.lmdb").resolve()) not in file_client._open_envs  # opened by the first read
    for a, b in zip(_samples(disk, 5, 12), _samples(lmdb_set, 5, 12)):
        assert a["key"] == b["key"]
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
    assert str((tmp_path / "GT.lmdb").resolve()) in file_client._open_envs
    clone = pickle.loads(pickle.dumps(lmdb_set))  # what a spawned worker gets
    assert torch.equal(clone[0]["lq"][:, :, :0], lmdb_set[0]["lq"][:, :, :0]) and clone[0]["key"] == "001/00000000"


def test_reds_lmdb_in_worker_processes(reds, tmp_path):
    create_lmdb = load_data_script("create_lmdb")
    for sub in ("GT", "LQ"):
        create_lmdb.main(["--dataset", "REDS", "--input", str(reds[sub.lower()]),
                          "--output", str(tmp_path / f"{sub}.lmdb")])
    opt = reds_opt(dict(reds, gt=tmp_path / "GT.lmdb", lq=tmp_path / "LQ.lmdb"), io_backend={"type": "lmdb"},
                   batch_size_per_gpu=2, num_worker_per_gpu=2)
    dataset = build_dataset(opt)
    dataset[0]  # open the environment in the parent first: forked workers must not reuse it
    batches = list(build_dataloader(dataset, opt, seed=0))
    assert len(batches) == 4 and batches[0]["lq"].shape == (2, 3, 3, 4, 4)

    def seeded_batches(dataset_opt: dict) -> list[dict]:  # the training loop's per-sample seeding
        data = build_dataset(dataset_opt)
        sampler = SeededSampler(EnlargedSampler(data, num_replicas=1, rank=0), seed=5)
        return list(build_dataloader(SeededDataset(data), dataset_opt, sampler=sampler, seed=5))

    # LMDB read by two worker processes == the PNG folders read in this process, sample for sample
    disk_opt = reds_opt(reds, batch_size_per_gpu=2, num_worker_per_gpu=0)
    for batch, disk in zip(seeded_batches(opt), seeded_batches(disk_opt), strict=True):
        assert batch["key"] == disk["key"]
        assert torch.equal(batch["lq"], disk["lq"]) and torch.equal(batch["gt"], disk["gt"])


def test_reds_errors_name_the_data(reds, tmp_path):
    (reds["lq"] / "001" / "00000003.png").unlink()
    dataset = build_dataset(reds_opt(reds, num_frame=8, interval_list=[1], random_reverse=False))
    with pytest.raises(FileNotFoundError, match="001/00000003.png"):
        dataset[0]
    (reds["gt"] / "001" / "00000002.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="Cannot decode image .*001/00000002.png"):
        dataset[0]
    with pytest.raises(FileNotFoundError, match="meta_info_file"):
        build_dataset(reds_opt(reds, meta_info_file=str(tmp_path / "missing.txt")))
    with pytest.raises(KeyError, match="gt_size"):
        build_dataset(reds_opt(reds, gt_size=None))
    with pytest.raises(ValueError, match="val_partition"):
        build_dataset(reds_opt(reds, val_partition="REDS5"))


def test_reds_scale_mismatch(tmp_path):
    paths = write_reds_like(tmp_path, clips=("001",), num_frames=4)
    for i in range(4):
        cv2.imwrite(str(paths["lq"] / "001" / f"{i:08d}.png"), np.zeros((7, 8, 3), np.uint8))
    dataset = build_dataset(reds_opt(paths, interval_list=[1]))
    with pytest.raises(ValueError, match="not 4x the LQ size"):
        dataset[0]


def test_lmdb_missing_key_and_folder(reds, tmp_path):
    create_lmdb = load_data_script("create_lmdb")
    create_lmdb.main(["--dataset", "REDS", "--input", str(reds["gt"]), "--output", str(tmp_path / "GT.lmdb")])
    with pytest.raises(FileNotFoundError, match="nothing.lmdb"):
        build_dataset(reds_opt(dict(reds, gt=tmp_path / "GT.lmdb", lq=tmp_path / "nothing.lmdb"),
                               io_backend={"type": "lmdb"}))
    from vsrt.data.file_client import FileClient

    client = FileClient("lmdb", db_paths={"gt": tmp_path / "GT.lmdb"})
    assert client.read_image("001/00000000", "gt").shape == (32, 32, 3)
    with pytest.raises(KeyError, match="001/00000099"):
        client.get("001/00000099", "gt")


# ----------------------------------------------------------------------------- Vimeo-90K


def write_vimeo_like(root: Path, sequences=("00001/0001", "00002/0003"), size=32, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    for seq in sequences:
        for n in range(1, 8):
            lq = rng.integers(0, 256, (size // SCALE, size // SCALE, 3), dtype=np.uint8)
            for sub, img in (("GT", np.kron(lq, np.ones((SCALE, SCALE, 1), np.uint8))), ("LQ", lq)):
                (root / sub / seq).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / sub / seq / f"im{n}.png"), img)
    meta = root / "sep_list.txt"
    meta.write_text("".join(f"{s}\n" for s in sequences))
    return {"gt": root / "GT", "lq": root / "LQ", "meta": meta}


def test_vimeo_recurrent_flip_sequence_and_lmdb(tmp_path):
    paths = write_vimeo_like(tmp_path)
    opt = {"name": "vimeo", "type": "Vimeo90KRecurrentDataset", "scale": SCALE, "dataroot_gt": str(paths["gt"]),
           "dataroot_lq": str(paths["lq"]), "meta_info_file": str(paths["meta"]), "io_backend": {"type": "disk"},
           "num_frame": -1, "gt_size": 16, "interval_list": [1], "random_reverse": False, "use_hflip": True,
           "use_rot": True, "flip_sequence": True}
    dataset = build_dataset(opt)
    item = _samples(dataset, 0, 1)[0]
    assert item["key"] == "00001/0001" and item["lq"].shape == (14, 3, 4, 4) and item["gt"].shape == (14, 3, 16, 16)
    assert torch.equal(item["lq"][7:], item["lq"][:7].flip(0))
    assert torch.equal(item["gt"], item["lq"].repeat_interleave(4, -1).repeat_interleave(4, -2))
    with pytest.raises(KeyError, match="flip_sequence"):
        build_dataset({**opt, "flip_sequence": None})

    create_lmdb = load_data_script("create_lmdb")
    for sub in ("gt", "lq"):
        assert create_lmdb.main(["--dataset", "Vimeo90K", "--input", str(paths[sub]), "--list", str(paths["meta"]),
                                 "--output", str(tmp_path / f"{sub}.lmdb")]) == 0
    lmdb_set = build_dataset({**opt, "dataroot_gt": str(tmp_path / "gt.lmdb"),
                              "dataroot_lq": str(tmp_path / "lq.lmdb"), "io_backend": {"type": "lmdb"}})
    for a, b in zip(_samples(dataset, 3, 4), _samples(lmdb_set, 3, 4)):
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])


@pytest.mark.parametrize("num_frame, frames", [(1, [4]), (3, [3, 4, 5]), (5, [2, 3, 4, 5, 6]),
                                                (7, [1, 2, 3, 4, 5, 6, 7]), (-1, [1, 2, 3, 4, 5, 6, 7])])
def test_vimeo_datasets_load_the_frames_centred_on_im4(tmp_path, num_frame, frames):
    """Training and test sets both read im<k> for the ``num_frame`` frames around im4, in order."""
    paths = write_vimeo_like(tmp_path, sequences=("00001/0001",))

    def lq_frame(k: int) -> torch.Tensor:
        img = cv2.imread(str(paths["lq"] / "00001/0001" / f"im{k}.png"))[..., ::-1]
        return torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 255

    expected = torch.stack([lq_frame(k) for k in frames])
    common = {"scale": SCALE, "dataroot_gt": str(paths["gt"]), "dataroot_lq": str(paths["lq"]),
              "meta_info_file": str(paths["meta"]), "io_backend": {"type": "disk"}, "num_frame": num_frame}
    train_set = build_dataset({**common, "name": "vimeo", "type": "Vimeo90KRecurrentDataset", "gt_size": 32,
                               "interval_list": [1], "random_reverse": False, "use_hflip": False, "use_rot": False,
                               "flip_sequence": False})
    test_set = build_dataset({**common, "name": "Vimeo90K-T", "type": "VideoTestVimeo90KDataset",
                              "cache_data": False})
    torch.testing.assert_close(_samples(train_set, 0, 1)[0]["lq"], expected, rtol=0, atol=0)
    torch.testing.assert_close(test_set[0]["lq"], expected, rtol=0, atol=0)


def test_vimeo_test_dataset(tmp_path):
    paths = write_vimeo_like(tmp_path)
    opt = {"name": "Vimeo90K-T", "type": "VideoTestVimeo90KDataset", "scale": SCALE, "num_frame": 7,
           "dataroot_gt": str(paths["gt"]), "dataroot_lq": str(paths["lq"]), "meta_info_file": str(paths["meta"]),
           "io_backend": {"type": "disk"}, "cache_data": False}
    dataset = build_dataset(opt)
    item = dataset[1]
    assert item["lq"].shape == (7, 3, 8, 8) and item["gt"].shape == (3, 32, 32)
    assert item["folder"] == "vimeo90k" and item["idx"] == "1/2" and item["lq_path"].endswith("00002/0003/im4.png")
    assert torch.equal(item["gt"], item["lq"][3].repeat_interleave(4, -1).repeat_interleave(4, -2))
    assert build_dataset({**opt, "num_frame": 3})[0]["lq"].shape[0] == 3


# ----------------------------------------------------------------------------- whole-clip test sets


def test_video_recurrent_test_dataset_any_name(reds):
    opt = {"name": "MyClips", "type": "VideoRecurrentTestDataset", "scale": SCALE, "dataroot_gt": str(reds["gt"]),
           "dataroot_lq": str(reds["lq"]), "cache_data": True, "io_backend": {"type": "disk"}, "num_frame": -1}
    dataset = build_dataset(opt)
    assert len(dataset) == 2 and [dataset[i]["folder"] for i in range(2)] == ["000", "001"]
    item = dataset[1]
    assert item["lq"].shape == (8, 3, 8, 8) and item["gt"].shape == (8, 3, 32, 32)
    assert torch.equal(build_dataset({**opt, "cache_data": False})[1]["gt"], item["gt"])
    loader = build_dataloader(dataset, {"phase": "val"})
    assert next(iter(loader))["lq"].shape == (1, 8, 3, 8, 8)


def test_video_recurrent_test_dataset_errors(reds):
    opt = {"name": "Vid4", "type": "VideoRecurrentTestDataset", "scale": SCALE, "dataroot_gt": str(reds["gt"]),
           "dataroot_lq": str(reds["lq"]), "cache_data": True, "io_backend": {"type": "disk"}}
    (reds["lq"] / "002").mkdir()
    with pytest.raises(ValueError, match="No image frames .*LQ/002"):
        build_dataset(opt)
    cv2.imwrite(str(reds["lq"] / "002" / "0.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="GT/002"):
        build_dataset(opt)
    (reds["gt"] / "002").mkdir()
    with pytest.raises(ValueError, match="No image frames .*GT/002"):
        build_dataset(opt)
    (reds["lq"] / "002" / "0.png").unlink()
    for sub in ("gt", "lq"):
        (reds[sub] / "002").rmdir()
    (reds["lq"] / "001" / "00000007.png").unlink()
    with pytest.raises(ValueError, match="clip 001 has 7 LQ frames but 8 GT frames"):
        build_dataset(opt)
    cv2.imwrite(str(reds["lq"] / "001" / "00000007.png"), np.zeros((9, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="00000007.png is"):
        build_dataset(opt)
    with pytest.raises(ValueError, match="io_backend"):
        build_dataset({**opt, "io_backend": {"type": "lmdb"}})


# ----------------------------------------------------------------------------- custom video folders


def write_custom_clips(root: Path, seed=0) -> list[list[np.ndarray]]:
    """clip_a/: 6 frames of 36x32 (cropped to 32x32 for x4), clip_b.mkv: the same frames, lossless."""
    rng = np.random.default_rng(seed)
    frames = [make_frame(rng, 34, 32) for _ in range(6)]
    (root / "clip_a").mkdir(parents=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(root / "clip_a" / f"frame_{i:03d}.png"), frame)
    write_video(root / "clip_b.mkv", frames, codec="ffv1", pix_fmt="bgr0")
    return frames


def folder_opt(root: Path, **overrides) -> dict:
    opt = {"name": "custom", "type": "VideoFolderDataset", "scale": SCALE, "dataroot_gt": str(root),
           "degradation": "BI", "test_mode": True}
    opt.update(overrides)
    return opt


@pytest.mark.parametrize("degradation", ["BI", "BD"])
def test_video_folder_frames_and_lossless_video_agree(tmp_path, degradation):
    frames = write_custom_clips(tmp_path)
    dataset = build_dataset(folder_opt(tmp_path, degradation=degradation))
    assert len(dataset) == 2
    a, b = dataset[0], dataset[1]
    assert (a["folder"], b["folder"]) == ("clip_a", "clip_b")
    assert a["gt"].shape == (6, 3, 32, 32) and a["lq"].shape == (6, 3, 8, 8)
    assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["lq"], b["lq"])
    gt = np.stack([f[:32] for f in frames]).astype(np.float32)  # mod-cropped 34 -> 32 rows
    if degradation == "BI":
        want = np.stack([imresize(f, 1 / SCALE) for f in gt])
    else:
        want = duf_downsample(torch.from_numpy(gt).permute(0, 3, 1, 2), scale=SCALE).permute(0, 2, 3, 1).numpy()
    want = np.clip(np.round(want), 0, 255)[..., ::-1].transpose(0, 3, 1, 2) / 255.0
    torch.testing.assert_close(a["lq"], torch.from_numpy(want.astype(np.float32)), rtol=0, atol=1e-6)


def test_video_folder_mp4_training_crops(tmp_path):
    rng = np.random.default_rng(1)
    frames = [make_frame(rng, 32, 48) for _ in range(8)]
    write_video(tmp_path / "walk.mp4", frames, codec="libx264", options={"crf": "0"})
    decoded = read_video(tmp_path / "walk.mp4")
    assert len(decoded) == 8 and decoded[0].shape == (32, 48, 3)
    assert np.abs(decoded[3].astype(int) - frames[3]).mean() < 4  # yuv420p chroma
    opt = folder_opt(tmp_path, test_mode=False, num_frame=3, gt_size=16, interval_list=[1, 2],
                     random_reverse=True, use_hflip=True, use_rot=True, degradation="BD")
    dataset = build_dataset(opt)
    for item in _samples(dataset, 0, 6):
        assert item["lq"].shape == (3, 3, 4, 4) and item["gt"].shape == (3, 3, 16, 16)
        assert item["key"].startswith("walk/")
    cached = build_dataset({**opt, "cache_data": True})
    for a, b in zip(_samples(dataset, 2, 4), _samples(cached, 2, 4)):
        assert a["key"] == b["key"] and torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])


def test_video_folder_with_lq_clips_and_errors(tmp_path, reds):
    dataset = build_dataset(folder_opt(reds["gt"], dataroot_lq=str(reds["lq"])))
    assert dataset[1]["lq"].shape == (8, 3, 8, 8)
    with pytest.raises(FileNotFoundError, match="Clip folder not found"):
        build_dataset(folder_opt(tmp_path / "nowhere"))
    (reds["gt"] / "003").mkdir()
    with pytest.raises(ValueError, match="No image frames .*003"):
        build_dataset(folder_opt(reds["gt"]))
    (reds["gt"] / "003").rmdir()
    with pytest.raises(ValueError, match="degradation"):
        build_dataset(folder_opt(reds["gt"], degradation="BX"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="broken.mp4"):
        build_dataset(folder_opt(tmp_path / "bad"))[0]
    cv2.imwrite(str(reds["lq"] / "001" / "00000000.png"), np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match="00000001.png is \\(8, 8\\), the clip.s first frame is \\(8, 9\\)"):
        build_dataset(folder_opt(reds["gt"], dataroot_lq=str(reds["lq"])))[1]
    short = build_dataset(folder_opt(reds["gt"], test_mode=False, num_frame=9, gt_size=16))
    with pytest.raises(ValueError, match="clip 000 has 8 frames"):
        short[0]


def test_vimeo_interpolation_dataset_pairs_odd_frames_with_im4(tmp_path):
    """Inputs im1, im3, im5, im7 (reversed by random_reverse), target im4, one crop for all."""
    for seq in ("00001/0001", "00001/0002"):
        (tmp_path / "seq" / seq).mkdir(parents=True)
        for n in range(1, 8):
            frame = np.full((24, 20, 3), 30 * n, np.uint8)
            frame[0, 0] = 0  # a marker that shows where the crop was taken
            cv2.imwrite(str(tmp_path / "seq" / seq / f"im{n}.png"), frame)
    (tmp_path / "list.txt").write_text("00001/0001\n00001/0002\n")
    opt = {"name": "vfi", "type": "Vimeo90KInterpolationDataset", "dataroot_gt": str(tmp_path / "seq"),
           "meta_info_file": str(tmp_path / "list.txt"), "gt_size": 16, "scale": 1, "random_reverse": True}
    dataset = build_dataset(opt)
    orders = set()
    for seed in range(12):
        random.seed(seed)
        item = dataset[seed % 2]
        assert item["lq"].shape == (4, 3, 16, 16) and item["gt"].shape == (1, 3, 16, 16)
        levels = tuple(round(float(frame[:, 5:, 5:].mean()) * 255 / 30) for frame in item["lq"])
        orders.add(levels)
        assert round(float(item["gt"][0, :, 5:, 5:].mean()) * 255 / 30) == 4
        marker = [bool((frame[:, 0, 0] == 0).all()) for frame in (*item["lq"], item["gt"][0])]
        assert len(set(marker)) == 1  # the same crop window for inputs and target
    assert orders == {(1, 3, 5, 7), (7, 5, 3, 1)}
    with pytest.raises(ValueError, match="set scale: 1"):
        build_dataset({**opt, "scale": 4})
