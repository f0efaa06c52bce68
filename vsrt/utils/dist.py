"""Process groups: torchrun and SLURM initialisation, rank queries, rank-0 only calls.

``--launcher pytorch``: ``torchrun`` sets ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` /
``MASTER_PORT`` (``dist_train.sh``, or the rendezvous flags for several nodes).
``--launcher slurm``: one task per GPU started by ``srun`` (``scripts/slurm_train.sh``); rank, local
rank and world size come from ``SLURM_PROCID`` / ``SLURM_LOCALID`` / ``SLURM_NTASKS``, the master
address is the first host of ``SLURM_NODELIST`` (``SLURM_JOB_NODELIST``), the port is ``MASTER_PORT``,
else the option file's ``dist_params.port``, else 29500.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist

DEFAULT_PORT = 29500
LAUNCHERS = ("none", "pytorch", "slurm")


def _pick_backend(backend: str | None) -> str:
    return backend or ("nccl" if torch.cuda.is_available() else "gloo")


def init_dist(backend: str | None = None) -> str:
    """Join the process group that ``torchrun`` describes through env variables.

    NCCL on CUDA machines, gloo otherwise (also for CPU-only runs on a GPU box
    when ``backend='gloo'`` is given). The device follows ``LOCAL_RANK``,
    which is right on multi-node runs (``RANK % ngpu`` is not), modulo the
    visible devices: a SLURM task given one GPU (``--gpus-per-task=1``) sees
    it as ``cuda:0`` whatever its local rank (as ``vsrt.models.base_model``).
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise RuntimeError("--launcher pytorch needs RANK/WORLD_SIZE: start with torchrun "
                           "(bash dist_train.sh NPROC CONFIG)")
    backend = _pick_backend(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    dist.init_process_group(backend=backend)
    return backend


def expand_nodelist(nodelist: str) -> list[str]:
    """Host names of a SLURM node list, e.g. ``'node[01-03,07],gpu7'`` -> ``node01 node02 node03 node07
    gpu7`` (zero padding kept; several bracket groups in one name, ``'r[1-2]n[1-2]'``, expand to all
    combinations). The fallback for machines without ``scontrol``."""
    names: list[str] = []
    for item in re.split(r",(?![^\[]*\])", nodelist.strip()):  # commas outside brackets
        expanded = [""]
        for text, ranges in re.findall(r"([^\[]*)(?:\[([^\]]*)\])?", item):
            options = [text]
            if ranges:
                options = [text + value for value in _expand_ranges(ranges, nodelist)]
            expanded = [head + option for head in expanded for option in options]
        names.extend(expanded)
    if not names or any(not name for name in names):
        raise ValueError(f"cannot read the SLURM node list {nodelist!r}")
    return names


def _expand_ranges(ranges: str, nodelist: str) -> list[str]:
    values = []
    for part in ranges.split(","):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"cannot read the SLURM node list {nodelist!r} (range {part!r})")
        width = len(first)
        values.extend(f"{number:0{width}d}" for number in range(int(first), int(last or first) + 1))
    return values


def first_host(nodelist: str) -> str:
    """The first host of a node list: ``scontrol show hostnames`` where SLURM is installed, else
    :func:`expand_nodelist`."""
    scontrol = shutil.which("scontrol")
    if scontrol:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            hosts = subprocess.run([scontrol, "show", "hostnames", nodelist], capture_output=True, text=True,
                                   check=True, timeout=30).stdout.split()
            if hosts:
                return hosts[0]
    return expand_nodelist(nodelist)[0]


def slurm_environment(port: int | None = None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` / ``MASTER_PORT`` for this SLURM task.

    An existing ``MASTER_ADDR`` / ``MASTER_PORT`` wins (a job script may choose them); the port is
    otherwise ``port`` (``dist_params.port``), else 29500.
    """
    env = os.environ if environ is None else environ
    missing = [key for key in ("SLURM_PROCID", "SLURM_NTASKS") if key not in env]
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if missing or not nodelist:
        raise RuntimeError(f"--launcher slurm needs {', '.join(missing or ['SLURM_NODELIST'])}: start each task "
                           "with srun (see scripts/slurm_train.sh)")
    return {"RANK": env["SLURM_PROCID"], "WORLD_SIZE": env["SLURM_NTASKS"],
            "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
            "MASTER_ADDR": env.get("MASTER_ADDR") or first_host(nodelist),
            "MASTER_PORT": env.get("MASTER_PORT") or str(port or DEFAULT_PORT)}


def init_slurm(backend: str | None = None, port: int | None = None) -> str:
    """Join the process group of the tasks of this SLURM job step (one task per GPU)."""
    os.environ.update(slurm_environment(port))
    return init_dist(backend)


@contextlib.contextmanager
def process_group(launcher: str, dist_params: dict[str, Any] | None = None) -> Iterator[None]:
    """Join the process group of ``launcher`` (``pytorch``: torchrun, ``slurm``: srun) and leave it on
    the way out; ``dist_params`` are the option file's (``backend``, ``port``).

    Leaving explicitly matters: a gloo/NCCL group still alive at interpreter
    shutdown can abort the process ("terminate called without an active
    exception") after all the work is done. On a clean exit the ranks meet at
    a barrier first, so nobody tears down while another still communicates;
    on an error they leave at once (a barrier could wait forever).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"--launcher {launcher!r}: expected one of {', '.join(LAUNCHERS)}")
    if launcher == "none":
        yield
        return
    params = dist_params or {}
    if launcher == "slurm":
        init_slurm(params.get("backend"), params.get("port"))
    else:
        init_dist(params.get("backend"))
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
