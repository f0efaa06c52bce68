"""Values of options: types, ranges and combinations that the key schema cannot express, and ``imports:``.

Light (no torch), so that :func:`vsrt.options.parse_args` can report a bad value before the slow
imports. Every error names the key and the option file. What needs the architecture classes
(``network_g`` against its constructor, the scale) is in :mod:`vsrt.option_checks`.
"""

from __future__ import annotations

import os
from typing import Any


class OptionError(ValueError):
    """An option file or override that vsrt cannot accept."""


# (section, key) -> smallest accepted value of an integer option; None: any integer.
# YAML's ``!!float 5e3`` (as official files write frequencies) is accepted as the integer 5000.
INTEGER_OPTIONS: dict[tuple[str, str], int | None] = {
    ("train", "total_iter"): 1, ("train", "accumulate_grad"): 1, ("train", "warmup_iter"): None,
    ("logger", "print_freq"): 1, ("logger", "save_checkpoint_freq"): 1, ("val", "val_freq"): 1,
    ("dist_params", "port"): 1,
}
NUMBER_OPTIONS = {("train", "ema_decay"), ("train", "flow_lr_mul"), ("train", "grad_clip")}
DATASET_INTEGER_OPTIONS: dict[str, int | None] = {
    "gt_size": 1, "lq_size": 1, "num_frame": None, "batch_size_per_gpu": 1, "num_worker_per_gpu": 0,
    "dataset_enlarge_ratio": 1, "num_prefetch_queue": 1,
}
# Networks a training state holds weights for (``path.ignore_resume_networks`` entries).
RESUMABLE_NETWORKS = ("network_g",)
DIST_BACKENDS = ("nccl", "gloo", "mpi")
WANDB_MODES = ("online", "offline", "disabled")


def as_integer(value: Any, where: str, minimum: int | None = None) -> int:
    """``value`` as an int (an integral float such as ``!!float 5e3`` too), else an error naming ``where``."""
    integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not integral:
        raise OptionError(f"{where}: expected an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise OptionError(f"{where}: must be >= {minimum}, got {value!r}")
    return int(value)


def check_values(opt: dict[str, Any], source: str = "<options>") -> None:
    """Types and ranges of the framework's scalar options, each error naming the key and ``source``."""
    for (section, key), minimum in INTEGER_OPTIONS.items():
        value = (opt.get(section) or {}).get(key)
        if value is not None:
            as_integer(value, f"{source}: {section}.{key}", minimum)
    for section, key in NUMBER_OPTIONS:
        value = (opt.get(section) or {}).get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise OptionError(f"{source}: {section}.{key}: expected a number, got {value!r}")
    decay = (opt.get("train") or {}).get("ema_decay")
    if decay is not None and not 0 <= decay < 1:
        raise OptionError(f"{source}: train.ema_decay: must be in [0, 1) (0: no EMA copy), got {decay!r}")
    seed = opt.get("manual_seed")
    if seed is not None:
        as_integer(seed, f"{source}: manual_seed")
    for phase, dataset_opt in (opt.get("datasets") or {}).items():
        for key, minimum in DATASET_INTEGER_OPTIONS.items():
            if dataset_opt.get(key) is not None:
                as_integer(dataset_opt[key], f"{source}: datasets.{phase}.{key}", minimum)
        if dataset_opt.get("use_shuffle") is False and phase.startswith("train"):
            raise OptionError(f"{source}: datasets.{phase}.use_shuffle: false is not supported: the training "
                              "sampler always shuffles, with a seed per epoch (which exact resuming relies on)")
        if dataset_opt.get("dataroot_flow") is not None:
            raise OptionError(f"{source}: datasets.{phase}.dataroot_flow: no vsrt dataset or network reads "
                              "precomputed optical flow (the networks estimate flow themselves); remove the "
                              "key or set it to ~")
    ignored = (opt.get("path") or {}).get("ignore_resume_networks")
    if ignored is not None:
        names = [ignored] if isinstance(ignored, str) else ignored
        if not isinstance(names, (list, tuple)) or any(n not in RESUMABLE_NETWORKS for n in names):
            raise OptionError(f"{source}: path.ignore_resume_networks: expected a list of "
                              f"{', '.join(RESUMABLE_NETWORKS)}, got {ignored!r}")
    mode = ((opt.get("logger") or {}).get("wandb") or {}).get("mode")
    if mode is not None and mode not in WANDB_MODES:
        raise OptionError(f"{source}: logger.wandb.mode: {mode!r} is not one of {', '.join(WANDB_MODES)}")
    backend = (opt.get("dist_params") or {}).get("backend")
    if backend is not None and backend not in DIST_BACKENDS:
        raise OptionError(f"{source}: dist_params.backend: {backend!r} is not one of {', '.join(DIST_BACKENDS)}")


def check_training_options(opt: dict[str, Any], source: str = "<options>") -> None:
    """What a training run needs beyond :func:`validate`: a train section with ``total_iter`` and
    ``optim_g``, and a ``datasets.train`` block."""
    train_opt = opt.get("train")
    if not isinstance(train_opt, dict):
        raise OptionError(f"{source}: training needs a 'train' section (total_iter, optim_g, pixel_opt, ...)")
    for key in ("total_iter", "optim_g"):
        if train_opt.get(key) is None:
            raise OptionError(f"{source}: required key 'train.{key}' is missing")
    if not isinstance(train_opt["optim_g"], dict) or "type" not in train_opt["optim_g"]:
        raise OptionError(f"{source}: train.optim_g needs a 'type' (a torch.optim class), got "
                          f"{train_opt['optim_g']!r}")
    if not (opt.get("datasets") or {}).get("train"):
        raise OptionError(f"{source}: training needs a 'datasets.train' block")


# ------------------------------------------------------------------- imports

ALLOW_IMPORTS_ENV = "VSRT_ALLOW_IMPORTS"


def allowed_imports(opt: dict[str, Any], allow: bool = False) -> list[str]:
    """The modules of ``imports:``, once the user has allowed running their code.

    Importing a module runs it, so an option file that names one outside vsrt is refused unless
    ``--allow_imports`` is given or ``VSRT_ALLOW_IMPORTS=1`` is set (vsrt's own modules are always allowed).
    """
    names = opt.get("imports") or []
    names = [names] if isinstance(names, str) else names
    source = opt.get("opt_path", "<options>")
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise OptionError(f"{source}: imports: expected a list of module names, got {names!r}")
    outside = [n for n in names if n != "vsrt" and not n.startswith("vsrt.")]
    if outside and not (allow or os.environ.get(ALLOW_IMPORTS_ENV) == "1"):
        raise OptionError(f"{source}: imports: {', '.join(outside)} would run the code of these modules. "
                          f"Pass --allow_imports (or set {ALLOW_IMPORTS_ENV}=1) if you trust this option file.")
    return names
