"""The part of every model that is not specific to a task.

A model owns ``net_g`` (plus an EMA copy), its optimiser and schedules, the
precision policy, and the checkpoint/training-state files. BasicSR's vocabulary
is kept (``params``/``params_ema``, ``param_key_g``, ``strict_load_g``,
``ema_decay``, ``warmup_iter``); device, DDP and autocast live here and never in
the architectures.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vsrt.archs import build_network
from vsrt.data.resumable import capture_rng_state, restore_rng_state
from vsrt.models import lr_scheduler as vsrt_schedulers
from vsrt.models.precision import resolve_precision
from vsrt.models.runtime import apply_backend_settings, can_fuse, runtime_settings
from vsrt.models.train_log import TrainLog
from vsrt.utils.checkpoint import atomic_save, load_network, unwrap_model
from vsrt.utils.dist import get_dist_info
from vsrt.utils.logger import get_root_logger
from vsrt.utils.safe_load import read_checkpoint


def pick_device(num_gpu: int) -> torch.device:
    if num_gpu == 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        get_root_logger().warning("num_gpu is %s but CUDA is not available: running on CPU", num_gpu)
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())


def build_optimizer(param_groups: list[dict[str, Any]], optim_opt: dict[str, Any]) -> torch.optim.Optimizer:
    """``torch.optim.<type>(param_groups, **rest)``, with the option key named on error.

    Adam, AdamW, SGD, ... get ``fused=True`` when every parameter is a floating-point CUDA tensor
    and the options set neither ``fused`` nor ``foreach`` (one kernel for the whole update; with a
    GradScaler it also skips the host-device synchronisation of the inf check).
    """
    optim_opt = dict(optim_opt)
    name = optim_opt.pop("type", None)
    cls = getattr(torch.optim, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ValueError(f"train.optim_g.type '{name}' is not an optimizer in torch.optim")
    params = [p for group in param_groups for p in group["params"]]
    if "fused" not in optim_opt and "foreach" not in optim_opt and can_fuse(cls, params):
        optim_opt["fused"] = True
    try:
        return cls(param_groups, **optim_opt)
    except TypeError as err:
        raise TypeError(f"train.optim_g: {err}") from err


def build_scheduler(optimizer: torch.optim.Optimizer, sched_opt: dict[str, Any]) -> Any:
    """A vsrt (BasicSR) schedule, else one from ``torch.optim.lr_scheduler``."""
    sched_opt = dict(sched_opt)
    name = sched_opt.pop("type", None)
    if name == "MultiStepLR":  # BasicSR maps this name to the restart version
        name = "MultiStepRestartLR"
    cls = getattr(vsrt_schedulers, str(name), None) or getattr(torch.optim.lr_scheduler, str(name), None)
    if cls is None:
        raise ValueError(f"train.scheduler.type '{name}' is neither a vsrt nor a torch scheduler")
    try:
        return cls(optimizer, **sched_opt)
    except TypeError as err:
        raise TypeError(f"train.scheduler: {err}") from err


class BaseModel:
    """Network, weights, optimisation and checkpoints; subclasses define the task."""

    default_precision = "fp32"
    flow_param_keywords: tuple[str, ...] = ("spynet", "deform")

    def __init__(self, opt: dict[str, Any]) -> None:
        self.opt = opt
        self.is_train = bool(opt.get("is_train", False))
        self.rank, self.world_size = get_dist_info()
        self.device = pick_device(int(opt.get("num_gpu", 0)))
        self.precision = resolve_precision(opt.get("precision") or self.default_precision, self.device)
        self.runtime = runtime_settings(opt)  # compile, tf32, cudnn_benchmark
        apply_backend_settings(self.runtime, self.device)
        self.logger = get_root_logger()
        self.net_g: nn.Module = build_network(opt["network_g"]).to(self.device)
        self.net_g_ema: nn.Module | None = None
        self.optimizers: list[torch.optim.Optimizer] = []
        self.schedulers: list[Any] = []
        # the last step's values (0-d device tensors, or floats); get_current_log() averages them
        self.log_dict: dict[str, Any] = {}
        self.train_log = TrainLog()
        self._load_initial_weights()
        if self.is_train:
            self.init_training_settings()
        if self.runtime.compile is not None:  # last: after the EMA copy and the DDP wrapper
            self.compile_networks()

    def compile_networks(self) -> None:
        """``compile:``: compile the blocks of ``net_g`` (and its EMA copy), see :mod:`vsrt.utils.compile`."""
        from vsrt.utils.compile import compile_network

        count = compile_network(unwrap_model(self.net_g), self.runtime.compile)
        if self.net_g_ema is not None:
            compile_network(self.net_g_ema, self.runtime.compile)
        self.logger.info("torch.compile (%s): %d block methods of %s", self.runtime.compile, count,
                         type(unwrap_model(self.net_g)).__name__)

    # ------------------------------------------------------------ weights
    def _load_initial_weights(self) -> None:
        path_opt = self.opt.get("path") or {}
        pretrained = path_opt.get("pretrain_network_g")
        net = unwrap_model(self.net_g)
        if pretrained:
            param_key = path_opt.get("param_key_g", "params")
            load_network(net, pretrained, param_key, strict=path_opt.get("strict_load_g", True))
            self.logger.info("Loaded %s [%s] into net_g", pretrained, param_key)
            return
        spynet_path = (self.opt["network_g"] or {}).get("spynet_path")
        if spynet_path and hasattr(net, "load_spynet"):
            if not Path(spynet_path).is_file():
                raise FileNotFoundError(
                    f"network_g.spynet_path: {spynet_path} not found. Put BasicSR's "
                    "spynet_sintel_final-3d2a1287.pth there, or set spynet_path: ~ to start SpyNet "
                    "from random weights.")
            read_checkpoint(spynet_path, "network_g.spynet_path")  # a refused or damaged file: an error naming it
            net.load_spynet(spynet_path)
            self.logger.info("Loaded SpyNet weights from %s", spynet_path)

    # ----------------------------------------------------------- training
    def init_training_settings(self) -> None:
        train_opt = self.opt["train"]
        self.net_g.train()
        decay = float(train_opt.get("ema_decay", 0) or 0)
        if decay > 0:
            self.ema_decay = decay
            self.net_g_ema = copy.deepcopy(unwrap_model(self.net_g)).eval()
            pretrained = (self.opt.get("path") or {}).get("pretrain_network_g")
            if pretrained:
                load_network(self.net_g_ema, pretrained, "params_ema",
                             strict=self.opt["path"].get("strict_load_g", True))
            for param in self.net_g_ema.parameters():
                param.requires_grad_(False)
        self.setup_optimizers()
        self.setup_schedulers()
        self.scaler = self.precision.grad_scaler()
        self.net_g = self.wrap_distributed(self.net_g)

    def wrap_distributed(self, net: nn.Module) -> nn.Module:
        if self.world_size == 1:
            return net
        find_unused = bool(self.opt.get("find_unused_parameters", False))
        if self.opt["train"].get("fix_flow") and not find_unused:
            # freezing SpyNet mid-run leaves parameters without gradients
            self.logger.info("fix_flow is set: DDP runs with find_unused_parameters=True")
            find_unused = True
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused,
                                       static_graph=bool(self.opt.get("use_static_graph", False)))

    def setup_optimizers(self) -> None:
        train_opt = self.opt["train"]
        optim_opt = dict(train_opt["optim_g"])
        flow_lr_mul = float(train_opt.get("flow_lr_mul", 1) or 1)
        named = list(unwrap_model(self.net_g).named_parameters())
        if flow_lr_mul == 1:
            groups = [{"params": [p for _, p in named]}]
        else:
            is_flow = [any(k in name for k in self.flow_param_keywords) for name, _ in named]
            lr = float(optim_opt["lr"])
            groups = [{"params": [p for (_, p), f in zip(named, is_flow) if not f], "lr": lr},
                      {"params": [p for (_, p), f in zip(named, is_flow) if f], "lr": lr * flow_lr_mul}]
        self.optimizer_g = build_optimizer(groups, optim_opt)
        self.optimizers = [self.optimizer_g]

    def setup_schedulers(self) -> None:
        sched_opt = self.opt["train"].get("scheduler")
        if sched_opt:
            self.schedulers = [build_scheduler(opt, sched_opt) for opt in self.optimizers]

    def update_learning_rate(self, current_iter: int, warmup_iter: int = -1) -> None:
        """Step the schedules (from iteration 2 on), then apply linear warm-up."""
        if current_iter > 1:
            for scheduler in self.schedulers:
                scheduler.step()
        if current_iter < warmup_iter:
            for optimizer in self.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * current_iter / warmup_iter

    def get_current_learning_rate(self) -> list[float]:
        return [group["lr"] for group in self.optimizers[0].param_groups]

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.net_g_ema is None:
            return
        params = dict(unwrap_model(self.net_g).named_parameters())
        for name, ema_param in self.net_g_ema.named_parameters():
            ema_param.mul_(self.ema_decay).add_(params[name].detach(), alpha=1 - self.ema_decay)

    def train_step(self, batches: Sequence[dict[str, Any]], current_iter: int) -> None:
        """One optimizer step from ``len(batches)`` micro-batches (``train.accumulate_grad``).

        Each micro-batch's loss is divided by their number, so N micro-batches of ``b`` samples
        update the weights as one batch of ``N * b`` would (for networks without batch statistics).
        Under DDP the gradients are all-reduced only in the last micro-step's backward (``no_sync``
        around the others, forward included, as DDP requires).
        """
        for index, batch in enumerate(batches):
            self.feed_data(batch)
            last = index == len(batches) - 1
            no_sync = getattr(self.net_g, "no_sync", None)  # DistributedDataParallel
            with contextlib.nullcontext() if last or no_sync is None else no_sync():
                self.optimize_parameters(current_iter, micro_step=index, micro_steps=len(batches))

    def backward(self, loss: torch.Tensor, current_iter: int) -> None:
        """Backward of ``loss`` (scaled under fp16).

        A non-finite loss is not tested here (that would synchronise host and device every step):
        :class:`~vsrt.models.train_log.TrainLog` records it and stops training at the next log or
        checkpoint, naming the iteration.
        """
        self.scaler.scale(loss).backward()

    def step_optimizer(self, loss: torch.Tensor, current_iter: int) -> None:
        """Backward (scaled under fp16), optional clipping, optimizer step, EMA."""
        self.backward(loss, current_iter)
        self.optimizer_step()

    def optimizer_step(self) -> None:
        """Optional clipping of the accumulated gradients, optimizer step, EMA."""
        clip = self.opt["train"].get("grad_clip")
        if clip:
            self.scaler.unscale_(self.optimizer_g)
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), float(clip))
        self.scaler.step(self.optimizer_g)
        self.scaler.update()
        self.update_ema()

    # -------------------------------------------------------- checkpoints
    def save(self, epoch: int, current_iter: int, batch_in_epoch: int = 0) -> None:
        """Write ``net_g_<iter>.pth`` then ``<iter>.state`` (rank 0 only, atomically).

        ``current_iter == -1`` writes ``net_g_latest.pth`` and no state. Every process calls it:
        a non-finite loss since the last log raises FloatingPointError first (no checkpoint of
        diverged weights).
        """
        self.train_log.check()
        if self.rank != 0:
            return
        label = "latest" if current_iter == -1 else str(current_iter)
        checkpoint = {"params": _cpu_state(unwrap_model(self.net_g))}
        if self.net_g_ema is not None:
            checkpoint["params_ema"] = _cpu_state(self.net_g_ema)
        atomic_save(checkpoint, Path(self.opt["path"]["models"]) / f"net_g_{label}.pth")
        if current_iter == -1:
            return
        state = {
            "epoch": epoch, "iter": current_iter, "batch_in_epoch": batch_in_epoch,
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "scaler": self.scaler.state_dict(), "rng": capture_rng_state(),
        }
        atomic_save(state, Path(self.opt["path"]["training_states"]) / f"{current_iter}.state")

    def resume_training(self, state: dict[str, Any]) -> None:
        if len(state["optimizers"]) != len(self.optimizers):
            raise ValueError("training state has a different number of optimizers")
        if len(state["schedulers"]) != len(self.schedulers):
            raise ValueError("training state has a different number of schedulers")
        for optimizer, saved in zip(self.optimizers, state["optimizers"]):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(saved)
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if "rng" in state:
            restore_rng_state(state["rng"])

    def get_current_log(self) -> dict[str, float]:
        """Averages of the logged values since the last call (over processes too), as floats.

        The only host-device synchronisation of the training log; every process must call it.
        Entries of :attr:`log_dict` that are not tensors (SAVSR's scale) are the last step's.
        """
        log = self.train_log.read()
        log.update({k: v for k, v in self.log_dict.items() if not isinstance(v, torch.Tensor)})
        return log


def _cpu_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}
