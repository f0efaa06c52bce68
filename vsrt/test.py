"""Testing entry point: ``python -m vsrt.test -opt options/test/....yml [--scale 2.5 | 1.5,3.8]``.

Runs every ``datasets.test*`` / ``datasets.val*`` entry, logs per-clip and
average metrics, and writes ``results/<name>/metrics.json``.

There is deliberately no ``--target-size`` here (``python -m vsrt upscale`` and the inference scripts
have one): every output frame is scored against its GT frame, so the output size is always the GT's,
and an arbitrary-scale test set makes its LQ frames from the GT at a scale. What selects a test is
therefore a scale (``--scale``), never a size.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from vsrt.options import dict2str, parse_args

# torch and the rest are imported after the command line is parsed, so that argument errors come at once


def use_scale(opt: dict[str, Any], dataset_opts: list[dict[str, Any]], scale: tuple[float, float]) -> None:
    """``--scale`` for an arbitrary-scale network: the only scale of every test set, and the default one."""
    opt["scale"] = list(scale)
    for dataset_opt in dataset_opts:
        dataset_opt.pop("downsampling_scale", None)
        dataset_opt["scales"] = [list(scale)]


def run_tests(args: argparse.Namespace) -> dict[str, Any]:
    """Test on every test/val dataset of the options; returns the metrics report."""
    import torch

    from vsrt.archs.scale import check_scale_supported, is_arbitrary_scale, parse_scale, scale_tag
    from vsrt.option_checks import load_checked_options
    from vsrt.utils.checkpoint import unwrap_model
    from vsrt.utils.dist import get_dist_info
    from vsrt.utils.logger import close_log_files, get_root_logger

    opt, notices = load_checked_options(args, is_train=False)
    torch.manual_seed(int(opt.get("manual_seed") or 0))
    rank, _ = get_dist_info()
    results_root = Path(opt["path"]["results_root"])
    if rank == 0:
        results_root.mkdir(parents=True, exist_ok=True)
    log_file = results_root / f"test_{opt['name']}_{time.strftime('%Y%m%d_%H%M%S')}.log"
    logger = get_root_logger(str(log_file) if rank == 0 else None)
    for notice in notices:
        logger.warning(notice)
    logger.info("vsrt test, torch %s\n%s", torch.__version__, dict2str(opt))

    from vsrt.data import build_dataset
    from vsrt.models import build_model

    dataset_opts = [d for key, d in (opt.get("datasets") or {}).items() if key.split("_")[0] in ("test", "val")]
    if not dataset_opts:
        raise ValueError(f"{args.opt}: no datasets.test* or datasets.val* entry to test on")
    requested_scale = parse_scale(args.scale) if args.scale is not None else None
    model = build_model(opt)
    if requested_scale is not None:
        scale = check_scale_supported(unwrap_model(model.net_g), requested_scale)
        if is_arbitrary_scale(unwrap_model(model.net_g)):
            use_scale(opt, dataset_opts, scale)
        logger.info("Testing at scale %s", scale_tag(scale))
    datasets = [build_dataset(d) for d in dataset_opts]
    save_img = bool((opt.get("val") or {}).get("save_img", False))
    report: dict[str, Any] = {}
    for dataset in datasets:
        logger.info("Testing %s (%d clips)", dataset.opt["name"], len(dataset))
        model.validation(dataset, current_iter=0, tb_logger=None, save_img=save_img)
        report[dataset.opt["name"]] = model.last_validation
    if rank == 0:
        (results_root / "metrics.json").write_text(json.dumps(report, indent=2))
        logger.info("Metrics written to %s", results_root / "metrics.json")
    close_log_files()
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(is_train=False, argv=argv)
    from vsrt.utils.dist import process_group

    with process_group(args.launcher, args.dist_params):
        return run_tests(args)


if __name__ == "__main__":
    main()
