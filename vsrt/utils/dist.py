"""Process-group helpers: torchrun initialisation, rank queries, rank-0 only calls."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist


def init_dist(backend: str | None = None) -> str:
    """Join the process group that ``torchrun`` describes through env variables.

    NCCL on CUDA machines, gloo otherwise (also for CPU-only runs on a GPU box
    when ``backend='gloo'`` is given). The device follows ``LOCAL_RANK``,
    which is right on multi-node runs (``RANK % ngpu`` is not).
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise RuntimeError("--launcher pytorch needs RANK/WORLD_SIZE: start with torchrun "
                           "(bash dist_train.sh NPROC CONFIG)")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    return backend


@contextlib.contextmanager
def process_group(launcher: str) -> Iterator[None]:
    """Join the torchrun process group for ``launcher == 'pytorch'`` and leave it on the way out.

    Leaving explicitly matters: a gloo/NCCL group still alive at interpreter
    shutdown can abort the process ("terminate called without an active
    exception") after all the work is done. On a clean exit the ranks meet at
    a barrier first, so nobody tears down while another still communicates;
    on an error they leave at once (a barrier could wait forever).
    """
    if launcher != "pytorch":
        yield
        return
    init_dist()
    try:
        yield
        barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def get_dist_info() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return get_dist_info()[0] == 0


def master_only(func: Callable) -> Callable:
    """Run ``func`` on rank 0 only (returns None elsewhere)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if is_main_process():
            return func(*args, **kwargs)
        return None

    return wrapper


def barrier() -> None:
    if get_dist_info()[1] > 1:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if get_dist_info()[1] > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if get_dist_info()[1] == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]
