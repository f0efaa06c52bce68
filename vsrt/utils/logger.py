"""Logging: the ``vsrt`` root logger, BasicSR-style iteration lines, tensorboard."""

from __future__ import annotations

import datetime
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

from vsrt.utils.dist import get_dist_info

LOGGER_NAME = "vsrt"
_configured: set[str] = set()


def get_root_logger(log_file: str | None = None, log_level: int = logging.INFO) -> logging.Logger:
    """The ``vsrt`` logger; ranks other than 0 only log errors.

    A file handler is added the first time a ``log_file`` is given.
    """
    logger = logging.getLogger(LOGGER_NAME)
    rank, _ = get_dist_info()
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(log_level if rank == 0 else logging.ERROR)
    if log_file is not None and rank == 0 and log_file not in _configured:
        file_handler = logging.FileHandler(log_file, "a")  # two starts in the same second share the name
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
        logger.addHandler(file_handler)
        _configured.add(log_file)
    return logger


def close_log_files() -> None:
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            logger.removeHandler(handler)
    _configured.clear()


class AvgTimer:
    """Mean duration over the last ``window`` intervals."""

    def __init__(self, window: int = 200) -> None:
        self.intervals: deque[float] = deque(maxlen=window)
        self.last = time.time()

    def tick(self) -> None:
        now = time.time()
        self.intervals.append(now - self.last)
        self.last = now

    def restart(self) -> None:
        self.last = time.time()

    @property
    def mean(self) -> float:
        return sum(self.intervals) / len(self.intervals) if self.intervals else 0.0


class MessageLogger:
    """Writes ``[name..][epoch:  3, iter:  12,300, lr:(2.000e-04,)] [eta: ..., time (data): ...] l_pix: ...``."""

    def __init__(self, opt: dict[str, Any], start_iter: int = 0, tb_logger: Any = None) -> None:
        self.exp_name = opt["name"]
        self.max_iters = opt["train"]["total_iter"]
        self.tb_logger = tb_logger
        self.start_iter = start_iter
        self.start_time = time.time()
        self.logger = get_root_logger()

    def __call__(self, log: dict[str, Any]) -> None:
        epoch, current_iter = log.pop("epoch"), log.pop("iter")
        lrs = log.pop("lrs")
        message = (f"[{self.exp_name[:5]}..][epoch:{epoch:3d}, iter:{current_iter:8,d}, lr:("
                   + "".join(f"{lr:.3e}," for lr in lrs) + ")] ")
        if "time" in log:
            iter_time, data_time = log.pop("time"), log.pop("data_time")
            elapsed = time.time() - self.start_time
            per_iter = elapsed / max(current_iter - self.start_iter, 1)
            eta = datetime.timedelta(seconds=int(per_iter * (self.max_iters - current_iter)))
            message += f"[eta: {eta}, time (data): {iter_time:.3f} ({data_time:.3f})] "
        for key, value in log.items():
            message += f"{key}: {value:.4e} "
            if self.tb_logger is not None:
                tag = f"losses/{key}" if key.startswith("l_") else key
                self.tb_logger.add_scalar(tag, value, current_iter)
        self.logger.info(message)


def init_tb_logger(log_dir: str) -> Any:
    from torch.utils.tensorboard import SummaryWriter  # optional dependency

    return SummaryWriter(log_dir=log_dir)


class ScalarWriter:
    """``add_scalar(tag, value, step)`` to tensorboard and/or a Weights & Biases run; ``close()`` both."""

    def __init__(self, tensorboard: Any = None, wandb_run: Any = None) -> None:
        self.tensorboard = tensorboard
        self.wandb_run = wandb_run

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if self.tensorboard is not None:
            self.tensorboard.add_scalar(tag, value, step)
        if self.wandb_run is not None:
            self.wandb_run.log({tag: value}, step=step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()


def _wandb_options(opt: dict[str, Any]) -> dict[str, Any]:
    """``logger.wandb`` when it names a project (BasicSR: ``project: ~`` means no wandb), else {}."""
    wandb_opt = (opt.get("logger") or {}).get("wandb") or {}
    return wandb_opt if wandb_opt.get("project") is not None else {}


def check_scalar_loggers(opt: dict[str, Any]) -> None:
    """Fail before any work when ``logger.wandb.project`` is set and the wandb package is missing."""
    import importlib.util

    project = _wandb_options(opt).get("project")
    if project is not None and importlib.util.find_spec("wandb") is None:
        raise ImportError(f"logger.wandb.project is '{project}' but the wandb package is not installed: "
                          "pip install wandb (WANDB_MODE=offline logs without an account), or set "
                          "logger.wandb.project: ~")


def init_scalar_loggers(opt: dict[str, Any], resuming: bool = False) -> ScalarWriter | None:
    """Tensorboard (``logger.use_tb_logger``, in ``path.tb_logger``) and wandb (``logger.wandb``) on rank 0.

    None when neither is asked for, on other ranks, and for ``debug`` runs (as BasicSR).
    ``logger.wandb``: ``project``, ``entity``, ``resume_id`` (continue that wandb run) and ``mode``
    (``online`` | ``offline`` | ``disabled``; ``WANDB_MODE`` works too). wandb files go in the experiment
    folder, with the run's id in ``wandb_id``: a resumed training run without ``resume_id`` continues it.
    """
    logger_opt = opt.get("logger") or {}
    wandb_opt = _wandb_options(opt)
    if get_dist_info()[0] != 0 or "debug" in opt["name"] or not (logger_opt.get("use_tb_logger") or wandb_opt):
        return None
    tensorboard = init_tb_logger(opt["path"]["tb_logger"]) if logger_opt.get("use_tb_logger") else None
    run = None
    if wandb_opt:
        check_scalar_loggers(opt)
        import wandb

        id_file = Path(opt["path"]["experiments_root"]) / "wandb_id"
        resume_id = wandb_opt.get("resume_id")
        if resume_id is None and resuming and id_file.is_file():
            resume_id = id_file.read_text(encoding="utf-8").strip() or None
        run = wandb.init(project=wandb_opt["project"], entity=wandb_opt.get("entity"), name=opt["name"],
                         config=opt, id=resume_id, resume="allow" if resume_id else None,
                         mode=wandb_opt.get("mode"), dir=opt["path"]["experiments_root"])
        if getattr(run, "id", None):
            id_file.write_text(str(run.id), encoding="utf-8")
        get_root_logger().info("wandb run %s (project %s)", getattr(run, "id", "?"), wandb_opt["project"])
    return ScalarWriter(tensorboard, run)
