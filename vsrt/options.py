"""BasicSR-style YAML options: safe loading, validation, overrides, paths.

The vocabulary is BasicSR's (``name``, ``model_type``, ``datasets``,
``network_g``, ``path``, ``train``, ``val``, ``logger``, ``dist_params``).
Differences from BasicSR:

* YAML is read with a *safe* loader that still understands ``!!float``,
  ``~`` and ``!!python/tuple`` (official SAVSR files use it); ``2e-4`` without a
  dot is read as a float, not a string.
* ``--force_yml a.b=value`` values are YAML literals; nothing is ``eval``-ed.
* Unknown keys in the framework's sections are errors that name the key, the
  file and the closest valid key.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml

from vsrt.option_values import ALLOW_IMPORTS_ENV, OptionError, check_training_options, check_values
from vsrt.option_values import allowed_imports as allowed_imports  # re-exported: vsrt.options.allowed_imports

# --------------------------------------------------------------------- loading


class OptionLoader(yaml.SafeLoader):
    """Safe YAML loader + python tuples + exponent floats without a dot."""


def _construct_tuple(loader: yaml.SafeLoader, node: yaml.Node) -> tuple:
    return tuple(loader.construct_sequence(node, deep=True))


OptionLoader.add_constructor("tag:yaml.org,2002:python/tuple", _construct_tuple)
OptionLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Option file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        try:
            data = yaml.load(handle, Loader=OptionLoader)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: invalid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_literal(text: str) -> Any:
    """A command-line value as a YAML literal (``1e-4`` -> float, ``~`` -> None)."""
    return yaml.load(text, Loader=OptionLoader)


# ---------------------------------------------------------------------- schema

ANY = None  # a section whose keys are free (constructor kwargs, metric names, ...)

SCHEMA: dict[str, Any] = {
    "name": ANY, "model_type": ANY, "scale": ANY, "num_gpu": ANY, "manual_seed": ANY,
    "find_unused_parameters": ANY, "use_static_graph": ANY, "precision": ANY,
    # how the model runs (vsrt.models.runtime): torch.compile, TF32, cuDNN autotuning
    "compile": ANY, "tf32": ANY, "cudnn_benchmark": ANY,
    "imports": ANY, "datasets": ANY, "network_g": ANY,
    # filled in by load_options
    "is_train": ANY, "opt_path": ANY,
    "path": {
        "pretrain_network_g": ANY, "param_key_g": ANY, "strict_load_g": ANY,
        "resume_state": ANY, "experiments_root": ANY, "results_root": ANY,
        "ignore_resume_networks": ANY, "models": ANY, "training_states": ANY,
        "log": ANY, "visualization": ANY, "tb_logger": ANY,
    },
    "train": {
        "ema_decay": ANY, "optim_g": ANY, "scheduler": ANY, "total_iter": ANY,
        "warmup_iter": ANY, "fix_flow": ANY, "flow_lr_mul": ANY, "pixel_opt": ANY,
        "perceptual_opt": ANY, "grad_clip": ANY, "sparsity_opt": ANY,
        "sparsity_target": ANY, "accumulate_grad": ANY,
    },
    "val": {
        "val_freq": ANY, "save_img": ANY, "suffix": ANY, "pbar": ANY, "flip_seq": ANY,
        "center_frame_only": ANY, "metrics": ANY, "tile": ANY, "pad_seq": ANY,
    },
    "logger": {
        "print_freq": ANY, "save_checkpoint_freq": ANY, "use_tb_logger": ANY,
        "wandb": {"project": ANY, "entity": ANY, "resume_id": ANY, "mode": ANY},
    },
    "dist_params": {"backend": ANY, "port": ANY},
}

# Keys of a ``datasets.<phase>`` block (the union over vsrt's datasets).
DATASET_KEYS = {
    "name", "type", "phase", "scale", "dataroot_gt", "dataroot_lq", "dataroot_flow",
    "meta_info_file", "val_partition", "test_mode", "io_backend", "num_frame", "gt_size",
    "interval_list", "random_reverse", "use_hflip", "use_rot", "flip_sequence",
    "num_worker_per_gpu", "batch_size_per_gpu", "dataset_enlarge_ratio", "prefetch_mode",
    "pin_memory", "persistent_workers", "num_prefetch_queue", "use_shuffle", "cache_data",
    "padding", "filename_tmpl", "filename_ext", "degradation", "dataroot",
    "downsampling_mode", "scale_list", "scales", "lq_size", "init_int_scale",
    "single_scale_ft", "sigma", "color", "mod_crop",
    # arbitrary-scale (SAVSR) datasets; official key names
    "downsample_mode", "max_scale", "CL_train_set", "only_sy_scale", "scale_h_list", "scale_w_list",
    "use_arbitrary_scale_downsampling", "downsampling_scale",
    # VRT (KAIR) datasets: random noise levels of non-blind denoising, Vimeo 7 -> 8 frames, VFI frame step
    "sigma_min", "sigma_max", "pad_sequence", "temporal_scale",
}

# Keys that BasicSR-derived official option files carry but vsrt reads under
# another name; accepted with a notice instead of an error.
RENAMED_KEYS = {("train", "parsity_target"): ("train", "sparsity_target")}

REQUIRED = ("name", "model_type", "network_g")


def _unknown(key: str, valid: list[str], where: str, source: str) -> OptionError:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return OptionError(f"{source}: unknown key '{where}{key}'.{hint}")


def validate(opt: dict[str, Any], source: str = "<options>") -> list[str]:
    """Check ``opt`` against :data:`SCHEMA`; return notices about renamed keys."""
    notices: list[str] = []
    for key in REQUIRED:
        if key not in opt:
            raise OptionError(f"{source}: required key '{key}' is missing")
    for key, value in opt.items():
        if key not in SCHEMA:
            raise _unknown(key, list(SCHEMA), "", source)
        section = SCHEMA[key]
        if section is ANY or value is None:
            continue
        if not isinstance(value, dict):
            raise OptionError(f"{source}: '{key}' must be a mapping, got {value!r}")
        for sub in list(value):
            if (key, sub) in RENAMED_KEYS:
                new_section, new_key = RENAMED_KEYS[(key, sub)]
                notices.append(f"{source}: '{key}.{sub}' is read as '{new_section}.{new_key}'")
                opt[new_section].setdefault(new_key, value.pop(sub))
            elif sub not in section:
                raise _unknown(sub, list(section), f"{key}.", source)
            elif isinstance(section[sub], dict) and value[sub] is not None:  # e.g. logger.wandb
                if not isinstance(value[sub], dict):
                    raise OptionError(f"{source}: '{key}.{sub}' must be a mapping, got {value[sub]!r}")
                for leaf in value[sub]:
                    if leaf not in section[sub]:
                        raise _unknown(leaf, list(section[sub]), f"{key}.{sub}.", source)
    if not isinstance(opt["network_g"], dict) or "type" not in opt["network_g"]:
        raise OptionError(f"{source}: 'network_g' needs a 'type' key")
    for phase, dataset_opt in (opt.get("datasets") or {}).items():
        if phase.split("_")[0] not in ("train", "val", "test"):
            raise OptionError(f"{source}: dataset phase 'datasets.{phase}' must start with "
                              "train, val or test")
        if not isinstance(dataset_opt, dict):
            raise OptionError(f"{source}: 'datasets.{phase}' must be a mapping, got {dataset_opt!r}")
        for sub in dataset_opt:
            if sub not in DATASET_KEYS:
                raise _unknown(sub, sorted(DATASET_KEYS), f"datasets.{phase}.", source)
    check_values(opt, source)
    return notices


# ------------------------------------------------------------------ overrides


def apply_override(opt: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` (BasicSR's ``a:b:c=value`` also works) in place.

    Every parent key must exist; the leaf may be new (the schema then checks it).
    """
    if "=" not in assignment:
        raise OptionError(f"--force_yml '{assignment}': expected KEY=VALUE")
    key_path, text = assignment.split("=", 1)
    keys = re.split(r"[.:]", key_path.strip())
    node = opt
    for depth, key in enumerate(keys[:-1]):
        if not isinstance(node, dict) or key not in node:
            where = ".".join(keys[: depth + 1])
            raise OptionError(f"--force_yml '{assignment}': no option '{where}'")
        node = node[key]
        if node is None:
            node = {}
    if not isinstance(node, dict):
        raise OptionError(f"--force_yml '{assignment}': '{'.'.join(keys[:-1])}' is not a mapping")
    node[keys[-1]] = parse_literal(text)


# ------------------------------------------------------------------- parsing


def parse_args(is_train: bool, argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of ``vsrt.train`` / ``vsrt.test``. Light (no torch): a bad argument, a missing
    or invalid option file, a bad ``--force_yml`` or an unknown option key exits at once with a usage
    error, before the slow imports."""
    from vsrt import program_name

    command = "train" if is_train else "test"
    parser = argparse.ArgumentParser(
        prog=program_name(command, f"python -m vsrt.{command}"),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a vsrt model from an option file." if is_train
        else "Test a vsrt model on the datasets of an option file.")
    parser.add_argument("-opt", "--opt", required=True, help="path to the option YAML file")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none",
                        help="'pytorch' when started by torchrun (dist_train.sh), 'slurm' for one srun task per "
                        "GPU (scripts/slurm_train.sh)")
    if is_train:
        parser.add_argument("--auto_resume", action="store_true",
                            help="resume from the newest training state of this experiment")
    parser.add_argument("--debug", action="store_true", help="debug mode: frequent logs and checks")
    parser.add_argument("--allow_imports", "--allow-imports", action="store_true",
                        help=f"let the option file's 'imports:' import modules outside vsrt (runs their code; "
                        f"only for option files you trust; {ALLOW_IMPORTS_ENV}=1 does the same)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0,
                        help=argparse.SUPPRESS)  # set by the deprecated torch.distributed.launch
    parser.add_argument("--force_yml", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override options, e.g. train.total_iter=100 val.val_freq=~")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the network's blocks (the option file's 'compile: true'; a "
                        "'compile:' mapping in the file is kept)")
    if not is_train:
        parser.add_argument("--scale", default=None, metavar="S | S_H,S_W",
                            help="test at this scale, e.g. 2.5 or 1.5,3.8 (height, width); arbitrary-scale "
                            "networks only, a fixed-scale network accepts only its own factor")
    args = parser.parse_args(argv)
    try:
        opt = load_yaml(args.opt)
        for assignment in args.force_yml:
            apply_override(opt, assignment)
        validate(opt, str(args.opt))
        if is_train:
            check_training_options(opt, str(args.opt))
        allowed_imports({**opt, "opt_path": str(args.opt)}, args.allow_imports)
    except (OSError, ValueError) as err:  # OptionError is a ValueError
        parser.error(str(err))
    args.dist_params = dict(opt.get("dist_params") or {})  # the launcher needs them before the options load
    return args


def resolve_num_gpu(value: Any) -> int:
    import torch  # local: keep `import vsrt.options` light

    if value == "auto":
        return torch.cuda.device_count()
    if value is None:
        return 0
    return int(value)


def finalize(opt: dict[str, Any], is_train: bool, root: str | Path | None = None) -> dict[str, Any]:
    """Fill derived entries: dataset phases, scale, experiment/result folders."""
    root = Path(root or os.getcwd())
    opt["is_train"] = is_train
    opt["num_gpu"] = resolve_num_gpu(opt.get("num_gpu", "auto"))
    for key, dataset_opt in (opt.get("datasets") or {}).items():
        dataset_opt["phase"] = key.split("_")[0]
        if "scale" in opt:
            dataset_opt.setdefault("scale", opt["scale"])
        for data_key in ("dataroot_gt", "dataroot_lq", "dataroot", "meta_info_file"):
            if isinstance(dataset_opt.get(data_key), str):
                dataset_opt[data_key] = os.path.expanduser(dataset_opt[data_key])
    path = opt.setdefault("path", {}) or {}
    opt["path"] = path
    for key, value in list(path.items()):
        if isinstance(value, str) and ("resume_state" in key or "pretrain_network" in key):
            path[key] = os.path.expanduser(value)
    if is_train:
        base = Path(path.get("experiments_root") or root / "experiments")
        run_root = base / opt["name"]
        path.update(experiments_root=str(run_root), models=str(run_root / "models"),
                    training_states=str(run_root / "training_states"), log=str(run_root),
                    visualization=str(run_root / "visualization"),
                    tb_logger=str(run_root / "tb_logger"))  # inside the experiment, not the current folder
        if "debug" in opt["name"]:
            if opt.get("val"):
                opt["val"]["val_freq"] = 8
            opt.setdefault("logger", {}).update(print_freq=1, save_checkpoint_freq=8,
                                                use_tb_logger=False)
    else:
        base = Path(path.get("results_root") or root / "results")
        run_root = base / opt["name"]
        path.update(results_root=str(run_root), log=str(run_root),
                    visualization=str(run_root / "visualization"))
    return opt


def load_options(opt_path: str | Path, is_train: bool, overrides: list[str] = (),
                 debug: bool = False, root: str | Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """Load, override, validate and finalise an option file.

    Returns ``(opt, notices)``; notices are messages to log (renamed keys).
    """
    opt = load_yaml(opt_path)
    for assignment in overrides:
        apply_override(opt, assignment)
    if debug and not str(opt.get("name", "")).startswith("debug_"):
        opt["name"] = f"debug_{opt.get('name', '')}"
    notices = validate(opt, str(opt_path))
    if is_train:
        check_training_options(opt, str(opt_path))
    opt["opt_path"] = str(opt_path)
    return finalize(opt, is_train, root), notices


def dict2str(opt: dict[str, Any], indent: int = 1) -> str:
    """Readable nested listing of an option dict, for logs."""
    lines = []
    for key, value in opt.items():
        if isinstance(value, dict):
            lines.append(" " * (indent * 2) + f"{key}:[")
            lines.append(dict2str(value, indent + 1))
            lines.append(" " * (indent * 2) + "]")
        else:
            lines.append(" " * (indent * 2) + f"{key}: {value}")
    return "\n".join(lines)


def copy_options(opt: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(opt)
