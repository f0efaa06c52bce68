"""BasicSR's learning-rate schedules with restarts (``train.scheduler.type``).

Both step once per training iteration. Their state dicts hold only plain
python values, so a training state saved with ``torch.save`` loads back with
``torch.load(weights_only=True)``.

Differences from BasicSR: built on ``torch.optim.lr_scheduler.LRScheduler``
(``_LRScheduler`` is deprecated); milestones are stored as a ``dict`` instead
of a ``collections.Counter``; stepping a cosine schedule past the sum of its
periods raises a clear ``ValueError`` (BasicSR fails with a ``TypeError``).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class MultiStepRestartLR(LRScheduler):
    """Step decay with warm restarts.

    At a restart iteration the lr of each group becomes ``initial_lr *
    restart_weight``; at a milestone it is multiplied by ``gamma`` (once per
    time the milestone is listed); otherwise it is unchanged. The default
    restart at iteration 0 sets the initial lr.
    """

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 restarts: Sequence[int] = (0,), restart_weights: Sequence[float] = (1,),
                 last_epoch: int = -1) -> None:
        if len(restarts) != len(restart_weights):
            raise ValueError(f"MultiStepRestartLR: {len(restarts)} restarts but "
                             f"{len(restart_weights)} restart_weights")
        self.milestones: dict[int, int] = {}  # iteration -> how many times it is listed
        for milestone in milestones:
            self.milestones[int(milestone)] = self.milestones.get(int(milestone), 0) + 1
        self.gamma = gamma
        self.restarts = list(restarts)
        self.restart_weights = list(restart_weights)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch in self.restarts:
            weight = self.restart_weights[self.restarts.index(self.last_epoch)]
            return [group["initial_lr"] * weight for group in groups]
        if self.last_epoch not in self.milestones:
            return [group["lr"] for group in groups]
        decay = self.gamma ** self.milestones[self.last_epoch]
        return [group["lr"] * decay for group in groups]


class CosineAnnealingRestartLR(LRScheduler):
    """Cosine annealing in consecutive periods, restarting at a lower peak.

    Within period ``i`` (starting at iteration ``start_i``) the lr is
    ``eta_min + w_i * 0.5 * (base_lr - eta_min) * (1 + cos(pi * (it - start_i) / period_i))``.
    The last iteration of a period gives exactly ``eta_min``; the restart
    takes effect one iteration later. Example: ``periods=[10, 10, 10]``,
    ``restart_weights=[1, 0.5, 0.5]``.
    """

    def __init__(self, optimizer: Optimizer, periods: Sequence[int],
                 restart_weights: Sequence[float] = (1,), eta_min: float = 0,
                 last_epoch: int = -1) -> None:
        if len(periods) != len(restart_weights):
            raise ValueError(f"CosineAnnealingRestartLR: {len(periods)} periods but "
                             f"{len(restart_weights)} restart_weights")
        self.periods = list(periods)
        self.restart_weights = list(restart_weights)
        self.eta_min = eta_min
        self.cumulative_period = list(itertools.accumulate(self.periods))  # period ends
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        # the period whose end is the first one >= last_epoch (an end belongs to its period)
        index = bisect.bisect_left(self.cumulative_period, self.last_epoch)
        if index == len(self.periods):
            raise ValueError(f"CosineAnnealingRestartLR stepped to iteration {self.last_epoch}, "
                             f"past the end of its periods (total {self.cumulative_period[-1]})")
        start = 0 if index == 0 else self.cumulative_period[index - 1]
        weight = self.restart_weights[index]
        progress = (self.last_epoch - start) / self.periods[index]
        return [self.eta_min + weight * 0.5 * (base_lr - self.eta_min) * (1 + math.cos(math.pi * progress))
                for base_lr in self.base_lrs]
