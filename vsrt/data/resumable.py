"""Exactly resumable data order and augmentation.

Each training sample gets its own seed, a pure function of
``(manual_seed, epoch, rank, position in the epoch)``. The random crop, flips
and interval draws of a sample therefore do not depend on how many workers
loaded it, nor on whether the run was interrupted: a resumed run skips the
positions it has already trained on and sees exactly the same batches as an
uninterrupted one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def sample_seed(seed: int, epoch: int, rank: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank, position]).generate_state(1)[0])


class SeededSampler(Sampler):
    """Wraps an epoch-aware index sampler; yields ``(index, sample_seed)`` pairs."""

    def __init__(self, sampler: Sampler, seed: int, rank: int = 0) -> None:
        self.sampler = sampler
        self.seed = seed
        self.rank = rank
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def skip_next(self, num_samples: int) -> None:
        """Leave out the first ``num_samples`` positions of the next pass (resume)."""
        self._skip = num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        skip, self._skip = self._skip, 0
        for position, index in enumerate(self.sampler):
            if position >= skip:
                yield int(index), sample_seed(self.seed, self.epoch, self.rank, position)

    def __len__(self) -> int:
        return len(self.sampler)


class SeededDataset(Dataset):
    """Calls ``dataset[index]`` with ``random``, numpy and torch seeded per sample.

    The global generators are restored afterwards, so the training loop's own
    random stream (dropout, drop path, Gumbel noise) is untouched.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


def capture_rng_state() -> dict[str, Any]:
    """The training loop's generators, in a form ``torch.load(weights_only=True)`` accepts."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    np_state = np.random.get_state()
    state["numpy"] = (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:])
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(state["python"][:1]) + (tuple(state["python"][1]),) + tuple(state["python"][2:]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
