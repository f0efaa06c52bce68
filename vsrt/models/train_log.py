"""Training scalars (losses, kept-token ratio) summed on the device and read once per logging interval.

Reading a CUDA tensor on the host (``float(loss)``, ``loss.item()``, ``if not torch.isfinite(loss)``)
waits until every queued kernel has run, so the GPU idles while Python prepares the next step. A
training step therefore only adds its values to running sums (device tensors, no synchronisation);
:meth:`TrainLog.read` turns the sums into averages since the previous read with one host-device
synchronisation (and, under DDP, one all-reduce), at the logging interval only.

A non-finite value stops training with an error naming the first iteration that had one. On the CPU,
where reading a value costs nothing, that is at once (a step on diverged weights can crash the CPU
``grid_sample`` backward); on a GPU the iteration is recorded on the device with ``torch.where`` and
the error comes at the next read or :meth:`TrainLog.check` (which the model calls before writing a
checkpoint), so a few steps may run on diverged weights in between.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist

from vsrt.utils.dist import all_reduce_sum, get_dist_info


class TrainLog:
    """Running sums of named 0-d tensors (one :meth:`add` per optimizer step).

    ``check_every_step``: test finiteness in every :meth:`add` (a host read); default: on the CPU only.
    """

    def __init__(self, check_every_step: bool | None = None) -> None:
        self.check_every_step = check_every_step
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.first_non_finite: torch.Tensor | None = None  # 0-d int64, -1 while every value was finite

    def add(self, values: Mapping[str, Any], current_iter: int) -> None:
        """Add the tensor entries of ``values`` (others, e.g. SAVSR's scale, are not averaged)."""
        tensors = {k: v.detach().float().reshape(()) for k, v in values.items() if isinstance(v, torch.Tensor)}
        if not tensors:
            return
        for key, value in tensors.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
        self.steps += 1
        finite = torch.isfinite(torch.stack(list(tensors.values()))).all()
        if self.first_non_finite is None:
            self.first_non_finite = torch.full((), -1, dtype=torch.int64, device=finite.device)
        unset = self.first_non_finite < 0
        self.first_non_finite = torch.where(~finite & unset, current_iter, self.first_non_finite)
        if self.check_every_step or (self.check_every_step is None and finite.device.type == "cpu"):
            self.check(collective=False)

    def check(self, collective: bool = True) -> None:
        """Raise FloatingPointError if a value since the last read was not finite (one sync).

        ``collective``: under DDP, every process calls it and gets the earliest iteration of any.
        """
        if self.first_non_finite is None:
            return
        first = self.first_non_finite.to(torch.float64)
        first = torch.where(first < 0, math.inf, first)
        if collective and get_dist_info()[1] > 1:  # the earliest over processes
            dist.all_reduce(first, op=dist.ReduceOp.MIN)
        first = float(first)
        if math.isfinite(first):
            averages = {k: float(v) / max(self.steps, 1) for k, v in self.sums.items()}
            bad = ", ".join(f"{k}={v}" for k, v in averages.items() if not math.isfinite(v)) or "all finite here"
            raise FloatingPointError(
                f"Non-finite loss ({bad}) at iteration {int(first)}: training stopped. "
                "Lower the learning rate, check the data, or use precision fp32/bf16.")

    def read(self) -> dict[str, float]:
        """Averages over the steps since the last read (and over processes), then reset."""
        self.check()
        if not self.sums:
            return {}
        names = list(self.sums)
        values = torch.stack([self.sums[k] for k in names]) / self.steps
        values = all_reduce_sum(values) / get_dist_info()[1]
        self.sums, self.steps = {}, 0
        return dict(zip(names, values.tolist()))
