"""Datasets, samplers and loaders.

Every ``*_dataset.py`` module below this package registers its datasets into
:data:`vsrt.registry.DATASET_REGISTRY` when the package is imported.
``build_dataset`` and ``build_dataloader`` keep BasicSR's signatures and
semantics; ``prefetch_mode`` is mapped onto DataLoader options by
:func:`vsrt.train.prefetch_options`.
"""

from __future__ import annotations

import copy
import logging
import random
import sys
from functools import partial
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from vsrt.data.data_sampler import EnlargedSampler
from vsrt.data.data_util import (
    degrade_frames,
    duf_downsample,
    generate_frame_indices,
    generate_gaussian_kernel,
    read_img_seq,
)
from vsrt.data.file_client import FileClient
from vsrt.data.transforms import augment, mod_crop, paired_random_crop
from vsrt.registry import DATASET_REGISTRY, import_modules, registered_attributes
from vsrt.utils.dist import get_dist_info

__all__ = [
    "DATASET_REGISTRY", "EnlargedSampler", "FileClient", "augment", "build_dataloader", "build_dataset",
    "degrade_frames", "duf_downsample", "generate_frame_indices", "generate_gaussian_kernel", "mod_crop",
    "paired_random_crop", "read_img_seq",
]

import_modules(sys.modules[__name__], "_dataset")
__getattr__, __dir__ = registered_attributes(DATASET_REGISTRY, sys.modules[__name__])  # vsrt.data.REDSRecurrentDataset

logger = logging.getLogger(__name__)


def build_dataset(dataset_opt: dict[str, Any]) -> Dataset:
    """``DATASET_REGISTRY.get(opt['type'])(opt)``: the whole (copied) option dict is passed."""
    if "type" not in dataset_opt:
        raise KeyError(f"Dataset options need a 'type' key (one of {', '.join(DATASET_REGISTRY.keys())})")
    dataset_opt = copy.deepcopy(dataset_opt)
    dataset = DATASET_REGISTRY.get(dataset_opt["type"])(dataset_opt)
    logger.info("Dataset [%s] - %s is built.", type(dataset).__name__, dataset_opt.get("name"))
    return dataset


def worker_init_fn(worker_id: int, num_workers: int, rank: int, seed: int) -> None:
    """Seed numpy and ``random`` of a loader worker with ``num_workers * rank + worker_id + seed``."""
    worker_seed = num_workers * rank + worker_id + seed
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def build_dataloader(dataset: Dataset, dataset_opt: dict[str, Any], num_gpu: int = 1, dist: bool = False,
                     sampler: Sampler | None = None, seed: int | None = None) -> DataLoader:
    """A DataLoader with BasicSR's settings for ``dataset_opt['phase']``.

    train: ``batch_size_per_gpu`` / ``num_worker_per_gpu`` (times ``num_gpu``
    without DDP), ``drop_last``, shuffling only when no sampler is given,
    per-worker seeding when ``seed`` is given. val / test: batch 1, no workers,
    in order. ``pin_memory`` and ``persistent_workers`` come from the options.
    """
    if "phase" not in dataset_opt:
        raise KeyError("build_dataloader needs dataset_opt['phase'] (train, val or test); "
                       "vsrt.options sets it from the datasets.<phase> key")
    phase = dataset_opt["phase"]
    rank, _ = get_dist_info()
    if phase == "train":
        multiplier = 1 if dist or num_gpu == 0 else num_gpu
        batch_size = dataset_opt["batch_size_per_gpu"] * multiplier
        num_workers = dataset_opt.get("num_worker_per_gpu", 0) * multiplier
        loader_args = {"dataset": dataset, "batch_size": batch_size, "shuffle": sampler is None,
                           "num_workers": num_workers, "sampler": sampler, "drop_last": True}
        if seed is not None:
            loader_args["worker_init_fn"] = partial(worker_init_fn, num_workers=num_workers, rank=rank, seed=seed)
    elif phase in ("val", "test"):
        num_workers = 0
        loader_args = {"dataset": dataset, "batch_size": 1, "shuffle": False, "num_workers": 0}
    else:
        raise ValueError(f"Dataset phase '{phase}' is not one of train, val, test")
    loader_args["pin_memory"] = dataset_opt.get("pin_memory", False)
    # torch refuses persistent workers without workers
    loader_args["persistent_workers"] = bool(dataset_opt.get("persistent_workers", False)) and num_workers > 0
    return DataLoader(**loader_args)

