"""vsrt.data core: BasicSR parity of the data functions, transforms, sampler, builders."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import decode_core_fixture, parity_folders
from vsrt.data import (
    EnlargedSampler,
    augment,
    build_dataloader,
    build_dataset,
    duf_downsample,
    generate_frame_indices,
    generate_gaussian_kernel,
    mod_crop,
    paired_random_crop,
    worker_init_fn,
)

REPO = Path(__file__).resolve().parents[1]
VENDORED = REPO / "tests" / "fixtures" / "parity" / "core"
FUNCTIONS = {
    "duf_downsample": duf_downsample,
    "generate_frame_indices": generate_frame_indices,
    "generate_gaussian_kernel": generate_gaussian_kernel,
    "mod_crop": mod_crop,
}


def _parity_cases():
    cases = []
    for tag, folder in parity_folders("core"):
        for name in FUNCTIONS:
            path = folder / f"{name}.pt"
            if path.is_file():
                for case in torch.load(path, weights_only=True):
                    cases.append(pytest.param(name, case, id=f"{tag}:{case['id']}"))
    return cases


@pytest.mark.parametrize("name, case", _parity_cases())
def test_core_fixture_parity(name, case):
    got = FUNCTIONS[name](*decode_core_fixture(case["args"]), **decode_core_fixture(case.get("kwargs", {})))
    want = decode_core_fixture(case["result"])
    tol = {"rtol": 1e-6, "atol": 1e-6, **case.get("tol", {})}
    if isinstance(want, list):
        assert got == want
    elif isinstance(want, torch.Tensor):
        assert got.dtype == want.dtype and got.shape == want.shape
        torch.testing.assert_close(got, want, **tol)
    else:
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape
        if want.dtype.kind in "biu":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, **tol)


def test_vendored_fixtures_present():
    assert all((VENDORED / f"{name}.pt").is_file() for name in FUNCTIONS)


def test_frame_indices_rejects_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        generate_frame_indices(0, 10, 4)
    with pytest.raises(ValueError, match="padding"):
        generate_frame_indices(0, 10, 5, padding="zeros")


def test_duf_downsample_is_a_strided_gaussian_blur():
    """out[i, j] = sum_ab K[a, b] x[s*i + a - 6, s*j + b - 6] (13x13 kernel, sigma 0.4 s) away from the
    borders; a constant clip stays constant (reflect padding, unit-sum kernel)."""
    x = torch.rand(2, 3, 3, 32, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for scale in (4, 2):
        out = duf_downsample(x, scale=scale)
        assert out.shape == (2, 3, 3, 32 // scale, 48 // scale)
        kernel = torch.from_numpy(generate_gaussian_kernel(13, 0.4 * scale))
        first = -(-6 // scale)  # the first output whose 13x13 window lies inside the frame
        for i in range(first, (32 - 7) // scale + 1):
            for j in range(first, (48 - 7) // scale + 1):
                patch = x[..., scale * i - 6:scale * i + 7, scale * j - 6:scale * j + 7]
                torch.testing.assert_close(out[..., i, j], (patch * kernel).sum(dim=(-2, -1)), rtol=0, atol=1e-12)
    flat = torch.full((3, 1, 16, 20), 0.3)
    torch.testing.assert_close(duf_downsample(flat, scale=4), torch.full((3, 1, 4, 5), 0.3), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- transforms


def _replicate(lq: np.ndarray, scale: int) -> np.ndarray:
    return np.kron(lq, np.ones((scale, scale, 1), dtype=lq.dtype))


def test_paired_random_crop_aligns_lq_and_gt():
    rng = np.random.default_rng(0)
    lqs = [rng.random((10, 12, 3)).astype(np.float32) for _ in range(3)]
    gts = [_replicate(lq, 4) for lq in lqs]
    random.seed(1)
    gt_crops, lq_crops = paired_random_crop(gts, lqs, 16, 4)
    assert lq_crops[0].shape == (4, 4, 3) and gt_crops[0].shape == (16, 16, 3)
    for lq, gt in zip(lq_crops, gt_crops):
        np.testing.assert_array_equal(_replicate(lq, 4), gt)
    # the draws are python's random: top first, then left
    random.seed(1)
    top, left = random.randint(0, 10 - 4), random.randint(0, 12 - 4)
    np.testing.assert_array_equal(lq_crops[1], lqs[1][top:top + 4, left:left + 4])


def test_paired_random_crop_keeps_rows_and_columns_apart():
    """Non-square frames, many draws: the GT corner is ``scale`` times the LQ corner, row for row."""
    lq = np.random.default_rng(1).random((9, 15, 3)).astype(np.float32)
    gt = _replicate(lq, 2)
    for seed in range(20):
        random.seed(seed)
        gt_crop, lq_crop = paired_random_crop(gt, lq, 8, 2)
        np.testing.assert_array_equal(_replicate(lq_crop, 2), gt_crop)


def test_paired_random_crop_tensors_and_errors():
    lq, gt = torch.rand(3, 8, 8), torch.rand(3, 32, 32)
    gt_crop, lq_crop = paired_random_crop(gt, lq, 16, 4)
    assert gt_crop.shape == (3, 16, 16) and lq_crop.shape == (3, 4, 4)
    with pytest.raises(ValueError, match="not 4x"):
        paired_random_crop(torch.rand(3, 30, 32), lq, 16, 4, gt_path="clip/0001.png")
    with pytest.raises(ValueError, match="smaller than the patch"):
        paired_random_crop(gt, lq, 64, 4)


def _expected_transform(img, hflip, vflip, rot90):
    if hflip:
        img = img[:, ::-1]
    if vflip:
        img = img[::-1]
    if rot90:
        img = img.transpose(1, 0, 2)
    return img


def test_augment_same_draw_for_all_frames_and_every_combination_occurs():
    rng = np.random.default_rng(0)
    frames = [rng.random((6, 5, 3)).astype(np.float32) for _ in range(4)]
    originals = [f.copy() for f in frames]
    seen = set()
    for seed in range(64):
        random.seed(seed)
        out, status = augment(frames, hflip=True, rotation=True, return_status=True)
        seen.add(status)
        for src, got in zip(frames, out):
            np.testing.assert_array_equal(got, _expected_transform(src, *status))
            assert got.flags["C_CONTIGUOUS"]
    assert len(seen) == 8
    for frame, original in zip(frames, originals):  # inputs are not modified
        np.testing.assert_array_equal(frame, original)


def test_augment_draws_like_basicsr():
    random.seed(3)
    draws = [random.random() < 0.5 for _ in range(3)]
    random.seed(3)
    _, status = augment([np.zeros((2, 2, 3))], hflip=True, rotation=True, return_status=True)
    assert list(status) == draws
    random.seed(3)  # without rotation only the hflip draw is taken
    _, status = augment([np.zeros((2, 2, 3))], hflip=True, rotation=False, return_status=True)
    assert status == (draws[0], False, False)


def test_augment_flows_follow_the_geometry():
    flow = np.zeros((4, 6, 2), dtype=np.float32)
    flow[..., 0], flow[..., 1] = 1.0, 2.0  # dx, dy
    for seed in range(32):
        random.seed(seed)
        status = (random.random() < 0.5, random.random() < 0.5, random.random() < 0.5)
        random.seed(seed)
        _, out = augment([np.zeros((4, 6, 3))], True, True, flows=[flow])
        dx, dy = (-1.0 if status[0] else 1.0), (-2.0 if status[1] else 2.0)
        if status[2]:
            dx, dy = dy, dx
        assert out.shape == ((6, 4, 2) if status[2] else (4, 6, 2))
        assert np.all(out[..., 0] == dx) and np.all(out[..., 1] == dy)


# ----------------------------------------------------------------------------- sampler and loader


def test_enlarged_sampler_partitions_across_ranks():
    dataset = list(range(10))
    samplers = [EnlargedSampler(dataset, num_replicas=2, rank=r, ratio=3) for r in range(2)]
    per_rank = [list(s) for s in samplers]
    assert all(len(indices) == len(s) == 15 for indices, s in zip(per_rank, samplers))
    # ranks interleave one epoch-seeded permutation of range(30), taken modulo the dataset size
    g = torch.Generator()
    g.manual_seed(0)
    full = [i % 10 for i in torch.randperm(30, generator=g).tolist()]
    assert per_rank[0] == full[0::2] and per_rank[1] == full[1::2]
    counts = np.bincount(per_rank[0] + per_rank[1], minlength=10)
    assert np.all(counts == 3)
    samplers[0].set_epoch(1)
    assert list(samplers[0]) != per_rank[0]
    assert list(samplers[0]) == list(samplers[0])


def test_enlarged_sampler_pads_uneven_sizes():
    samplers = [EnlargedSampler(list(range(5)), 2, r) for r in range(2)]
    assert [len(s) for s in samplers] == [3, 3]
    assert set(list(samplers[0]) + list(samplers[1])) == set(range(5))


def test_build_dataloader_train_and_val_settings():
    dataset = torch.utils.data.TensorDataset(torch.arange(20.0))
    opt = {"phase": "train", "batch_size_per_gpu": 3, "num_worker_per_gpu": 0, "pin_memory": False}
    sampler = EnlargedSampler(dataset, 1, 0)
    loader = build_dataloader(dataset, opt, num_gpu=2, sampler=sampler, seed=7)
    assert loader.batch_size == 6 and loader.drop_last and loader.sampler is sampler
    assert len(loader) == 20 // 6
    loader = build_dataloader(dataset, opt, num_gpu=2, dist=True, seed=7)
    assert loader.batch_size == 3
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)  # shuffled without a sampler
    val = build_dataloader(dataset, {"phase": "val", "batch_size_per_gpu": 8, "num_worker_per_gpu": 4})
    assert val.batch_size == 1 and val.num_workers == 0
    assert isinstance(val.sampler, torch.utils.data.SequentialSampler)
    with pytest.raises(ValueError, match="phase"):
        build_dataloader(dataset, {"phase": "predict"})


def test_worker_init_fn_seeds_numpy_and_random():
    worker_init_fn(1, num_workers=4, rank=2, seed=10)
    got = (random.random(), np.random.rand())
    random.seed(4 * 2 + 1 + 10)
    np.random.seed(4 * 2 + 1 + 10)
    assert got == (random.random(), np.random.rand())


def test_build_dataset_unknown_type_suggests():
    with pytest.raises(KeyError, match="REDSRecurrentDataset"):
        build_dataset({"type": "REDSRecurentDataset", "name": "x"})
