"""``EnlargedSampler``: BasicSR's distributed sampler that repeats the dataset ``ratio`` times per epoch.

Iteration-based training restarts the DataLoader once per "epoch"; enlarging
the epoch avoids restarting it every few iterations on small datasets. The
order is a pure function of the epoch (``set_epoch``), identical on every rank,
and each rank takes every ``num_replicas``-th index of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import torch
from torch.utils.data import Sampler


class EnlargedSampler(Sampler):
    """Indices ``randperm(num_samples * num_replicas) % len(dataset)`` seeded by the epoch.

    Each process takes ``rank::num_replicas`` of them.
    """

    def __init__(self, dataset: Sized, num_replicas: int, rank: int, ratio: int = 1) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.num_samples = math.ceil(len(dataset) * ratio / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.epoch)
        order = torch.randperm(self.total_size, generator=generator).tolist()
        dataset_size = len(self.dataset)
        return iter([i % dataset_size for i in order[self.rank:self.total_size:self.num_replicas]])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
