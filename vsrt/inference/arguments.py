"""Argument and path checks of the benchmark scripts that run before torch is imported (which takes
seconds): a missing file or folder, an unwritable or already used results folder is an error at once,
not after the model is loaded or the evaluation has run. Light: no torch, no numpy."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from vsrt.inference.protocols import DATASET_TITLES


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every default; an argument whose default depends on others (None) says it in its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or isinstance(action.default, bool):
            return action.help or ""
        return super()._get_help_string(action)


def experiment_name(args: argparse.Namespace) -> str:
    """The zoo preset, or the ``name`` of the option file (its stem when it has none)."""
    if args.model is not None:
        return args.model
    from vsrt.options import load_yaml

    return str(load_yaml(args.opt).get("name") or Path(args.opt).stem)


def option_file_data(opt_path: str | None) -> dict[str, Any]:
    """``dataroot_gt``, ``dataroot_lq``, ``meta_info_file`` and ``type`` of the option file's first test
    (or val) set of benchmark clips (GT and LQ folders, a Vimeo-90K-T list, or GT folders for the
    arbitrary-scale protocol): the data an option file names is what the scripts use unless told otherwise.
    Sets whose LQ is made on the fly (``VideoFolderDataset``, denoising) are not benchmark data."""
    if opt_path is None:
        return {}
    from vsrt.options import load_yaml

    benchmark_types = ("VideoRecurrentTestDataset", "VideoTestVimeo90KDataset", "ASVideoTestDataset")
    for key, dataset in (load_yaml(opt_path).get("datasets") or {}).items():
        if key.split("_")[0] in ("test", "val") and isinstance(dataset, dict) \
                and dataset.get("type") in benchmark_types:
            return {"gt_root": dataset.get("dataroot_gt"), "lq_root": dataset.get("dataroot_lq"),
                    "meta_file": dataset.get("meta_info_file"), "type": dataset.get("type")}
    return {}


def check_inputs(args: argparse.Namespace, folders: dict[str, str | None], files: dict[str, str | None]) -> None:
    """Files named on the command line exist (before any slow import): ``--opt``, ``--weights``, data;
    ``--model`` names a zoo preset."""
    from vsrt.zoo import check_preset_name

    check_preset_name(getattr(args, "model", None))
    for flag, path in (("--opt", args.opt), ("--weights", args.weights), *files.items()):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{flag}: file not found: {path}")
    for flag, path in folders.items():
        if path is not None and not Path(path).is_dir():
            raise FileNotFoundError(f"{flag}: folder not found: {path}")


def prepare_output(folder: str | Path, force: bool) -> Path:
    """Create the results folder and prove it writable now, not after the evaluation; refuse to overwrite
    earlier results without ``--force``."""
    folder = Path(folder)
    existing = [folder / name for name in ("metrics.csv", "metrics.json", "images") if (folder / name).exists()]
    if existing and not force:
        raise FileExistsError(f"{folder} already holds results ({', '.join(p.name for p in existing)}): "
                              "give --force to overwrite them, or another --output")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write_test_"):
            pass
    except OSError as err:
        raise PermissionError(f"results folder {folder} is not writable: {err.strerror or err}") from None
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"results folder {folder} is not writable")
    return folder


def data_label(dataset: str, gt_root: str | Path, standard_root: str) -> str:
    """What the table calls the data: the test set's name for its standard folder, else the folder."""
    title = DATASET_TITLES.get(dataset, dataset)
    if Path(gt_root).resolve() == Path(standard_root).resolve():
        return title
    return f"{gt_root} (scored as {title})"


def dataset_of_option_file(data: dict[str, Any]) -> str | None:
    """The benchmark an option file's test set is (Vimeo-90K-T by its dataset type, Vid4 / UDM10 by folder)."""
    if data.get("type") == "VideoTestVimeo90KDataset":
        return "vimeo90k"
    root = str(data.get("gt_root") or "").lower()
    return next((name for name in ("vid4", "udm10") if name in root), None)
