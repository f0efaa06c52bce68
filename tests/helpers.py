"""Shared helpers for the tests: tiny synthetic data and option files."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import yaml

from vsrt.utils.synthetic import write_clip_folders

REPO_ROOT = Path(__file__).resolve().parents[1]
VENDORED_PARITY = REPO_ROOT / "tests" / "fixtures" / "parity"
SHARED_PARITY = REPO_ROOT.parent / "shared" / "parity"
# VSRT_NO_SHARED=1 runs the suite as a user's clone does: ../shared/parity is ignored even where it exists.
USE_SHARED_PARITY = os.environ.get("VSRT_NO_SHARED", "") in ("", "0") and SHARED_PARITY.is_dir()


def parity_folders(family: str) -> list[tuple[str, Path]]:
    """``('vendored', tests/fixtures/parity/<family>)`` and, when used, ``('shared', ../shared/parity/<family>)``."""
    folders = [("vendored", VENDORED_PARITY / family)]
    if USE_SHARED_PARITY:
        folders.append(("shared", SHARED_PARITY / family))
    return [(tag, folder) for tag, folder in folders if folder.is_dir()]


def parity_cases(family: str) -> list[tuple[str, Path]]:
    """One ``(id, path)`` per fixture file name of a network family, ``../shared``'s original first.

    A vendored file is a copy of the shared file of the same name, or a subset of it (``output_stride``,
    ``tests/fixtures/README.md``), so it runs only where ``../shared`` is absent or ignored.
    """
    cases: dict[str, tuple[str, Path]] = {}
    for tag, folder in reversed(parity_folders(family)):
        for path in sorted(folder.glob("*.pt")):
            cases.setdefault(path.name, (f"{tag}/{path.stem}", path))
    return sorted(cases.values())


def golden_view(out: torch.Tensor, case: dict[str, Any]) -> torch.Tensor:
    """``out`` reduced as the fixture's ``outputs['out']`` is: every ``output_stride``-th row and column."""
    stride = case.get("output_stride", 1)
    return out[..., ::stride, ::stride]


def make_clips(root: Path, names: list[str], num_frames: int = 6, size: int = 64, seed: int = 0) -> Path:
    return write_clip_folders(root, names, num_frames, size, size, seed=seed)


def tiny_train_options(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """A BasicVSR option dict that trains in well under a second per iteration on CPU."""
    data = tmp_path / "data"
    if not (data / "train").exists():
        make_clips(data / "train", ["a", "b"], num_frames=6, size=64, seed=0)
        make_clips(data / "val", ["v"], num_frames=4, size=64, seed=100)
    opt: dict[str, Any] = {
        "name": "tiny",
        "model_type": "VideoRecurrentModel",
        "scale": 4,
        "num_gpu": 0,
        "manual_seed": 10,
        "datasets": {
            "train": {"name": "train", "type": "VideoFolderDataset", "dataroot_gt": str(data / "train"),
                      "num_frame": 3, "gt_size": 32, "use_hflip": True, "use_rot": True,
                      "interval_list": [1], "random_reverse": True, "dataset_enlarge_ratio": 4,
                      "batch_size_per_gpu": 2, "num_worker_per_gpu": 0},
            "val": {"name": "val", "type": "VideoFolderDataset", "dataroot_gt": str(data / "val"),
                    "test_mode": True, "cache_data": True},
        },
        "network_g": {"type": "BasicVSR", "num_feat": 8, "num_block": 1, "spynet_path": None},
        "path": {"experiments_root": str(tmp_path / "experiments")},
        "train": {"ema_decay": 0.9, "optim_g": {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99]},
                  "scheduler": {"type": "CosineAnnealingRestartLR", "periods": [12],
                                "restart_weights": [1], "eta_min": 1e-5},
                  "total_iter": 12, "warmup_iter": 3, "fix_flow": 2, "flow_lr_mul": 0.5,
                  "pixel_opt": {"type": "CharbonnierLoss", "loss_weight": 1.0, "reduction": "mean"}},
        "val": {"val_freq": 1000, "save_img": False, "pbar": False,
                "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 0, "test_y_channel": False}}},
        "logger": {"print_freq": 1, "save_checkpoint_freq": 4, "use_tb_logger": False},
    }
    return set_options(opt, changes)


def set_options(opt: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Set ``{'a.b.c': value}`` entries of a nested option dict in place; returns ``opt``."""
    for key, value in changes.items():
        node = opt
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return opt


def load_script(path: Path) -> ModuleType:
    """Import a script file (``scripts/...``) as a module, so tests can call its functions."""
    spec = importlib.util.spec_from_file_location(f"vsrt_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_data_script(name: str) -> ModuleType:
    """One of ``scripts/data_preparation/<name>.py`` as a module."""
    return load_script(REPO_ROOT / "scripts" / "data_preparation" / f"{name}.py")


def write_options(path: Path, opt: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def decode_core_fixture(obj: Any) -> Any:
    """Undo the core-fixture encoding (shared/parity/core/README.md): numpy arrays, scalars, types."""
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return obj["__ndarray__"].clone().numpy()
        if "__npscalar__" in obj:
            return np.dtype(obj["__npscalar__"]).type(obj["value"])
        if "__nptype__" in obj:
            return np.dtype(obj["__nptype__"]).type
        return {key: decode_core_fixture(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(decode_core_fixture(value) for value in obj)
    return obj.clone() if isinstance(obj, torch.Tensor) else obj



_PORTS = itertools.count()


def run_launcher(script: str, *args: str) -> None:
    """``bash <repo>/<script> 2 ARGS...`` (dist_train.sh / dist_test.sh) on 2 CPU processes; fails with its output.

    Every call gets its own master port, so launcher tests can run side by side.
    """
    port = 29500 + (os.getpid() * 7 + next(_PORTS)) % 5000
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "MASTER_PORT": str(port)}
    if shutil.which("torchrun") is None:  # e.g. a venv not on PATH: torchrun through this interpreter
        env["TORCHRUN"] = f"{sys.executable} -m torch.distributed.run"
    result = subprocess.run(["bash", str(REPO_ROOT / script), "2", *args], env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads (the suite runs on one, see conftest.py), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def record_nnpack_calls(monkeypatch: Any) -> list[tuple[int, ...]]:
    """The weight shape of every NNPACK convolution (Winograd / FFT) run from now on (the list grows in place)."""
    calls: list[tuple[int, ...]] = []
    original = torch._nnpack_spatial_convolution

    def recorded(x: torch.Tensor, weight: torch.Tensor, *args: Any) -> torch.Tensor:
        calls.append(tuple(weight.shape))
        return original(x, weight, *args)

    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", recorded)
    return calls
