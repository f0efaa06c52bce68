"""Training entry point: ``python -m vsrt.train -opt options/train/....yml``.

Single process on CPU or one GPU, or one process per device under ``torchrun``
(``bash dist_train.sh NPROC CONFIG``). Resuming (``--auto_resume`` or
``path.resume_state``) continues the exact trajectory of an uninterrupted run:
same batches (see :mod:`vsrt.data.resumable`), same random stream, same weights.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

from vsrt.options import dict2str, parse_args

if __name__ == "__main__":  # `python -m vsrt.train`: argument errors before the slow imports below
    parse_args(is_train=True)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from vsrt.experiment import clean_temporary_checkpoints, find_resume_state, prepare_folders, use_resumed_weights
from vsrt.option_checks import load_checked_options
from vsrt.utils.dist import barrier, broadcast_object, get_dist_info, process_group
from vsrt.utils.logger import (
    LOGGER_NAME,
    AvgTimer,
    MessageLogger,
    check_scalar_loggers,
    close_log_files,
    get_root_logger,
    init_scalar_loggers,
)


def set_random_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def prefetch_options(dataset_opt: dict[str, Any], num_workers: int, uses_gpu: bool) -> dict[str, Any]:
    """DataLoader arguments for BasicSR's ``prefetch_mode`` / ``num_prefetch_queue`` / ``pin_memory``.

    ``cpu``: each worker keeps ``num_prefetch_queue`` batches ready (BasicSR's background queue);
    ``cuda``: batches come in pinned memory, so ``feed_data``'s non-blocking copies overlap with
    compute (BasicSR's CUDA prefetcher; ``pin_memory`` is implied). Neither changes the batches.
    """
    mode = dataset_opt.get("prefetch_mode")
    pin_memory = bool(dataset_opt.get("pin_memory", False))
    options: dict[str, Any] = {}
    if mode not in (None, "cpu", "cuda"):
        raise ValueError(f"datasets.train.prefetch_mode: {mode!r} is not one of ~ (none), cpu, cuda")
    if mode == "cpu":
        queue = int(dataset_opt.get("num_prefetch_queue", 1))
        if queue < 1:
            raise ValueError(f"datasets.train.num_prefetch_queue must be >= 1, got {queue}")
        if num_workers > 0:
            options["prefetch_factor"] = queue
        else:
            logging.getLogger(LOGGER_NAME).warning("prefetch_mode: cpu has no effect with num_worker_per_gpu: 0")
    if mode == "cuda":
        if uses_gpu:
            pin_memory = True
        else:
            logging.getLogger(LOGGER_NAME).warning("prefetch_mode: cuda needs a GPU; ignored on this run")
    return {"pin_memory": pin_memory and uses_gpu, **options}


def build_train_loader(opt: dict[str, Any], seed: int) -> tuple[Any, Any, int]:
    """Loader, its sampler, and iterations per epoch for ``datasets.train``."""
    from vsrt.data import EnlargedSampler, build_dataset
    from vsrt.data.resumable import SeededDataset, SeededSampler

    dataset_opt = opt["datasets"]["train"]
    rank, world_size = get_dist_info()
    dataset = build_dataset(dataset_opt)
    ratio = int(dataset_opt.get("dataset_enlarge_ratio", 1))
    sampler = SeededSampler(EnlargedSampler(dataset, world_size, rank, ratio), seed, rank)
    per_device = max(opt["num_gpu"], 1) if world_size == 1 else 1
    batch_size = int(dataset_opt.get("batch_size_per_gpu", 1)) * per_device
    num_workers = int(dataset_opt.get("num_worker_per_gpu", 0)) * per_device
    loader = DataLoader(
        SeededDataset(dataset), batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        drop_last=True, persistent_workers=bool(dataset_opt.get("persistent_workers", False)) and num_workers > 0,
        # a private generator: creating the iterator must not draw from the global stream
        generator=torch.Generator().manual_seed(seed),
        **prefetch_options(dataset_opt, num_workers, uses_gpu=opt["num_gpu"] > 0))
    if len(loader) == 0:
        raise ValueError(f"datasets.train: {len(dataset)} samples x enlarge ratio {ratio} give no full "
                         f"batch of {batch_size} per process")
    return loader, sampler, len(loader)


def build_val_datasets(opt: dict[str, Any]) -> list[Any]:
    from vsrt.data import build_dataset

    return [build_dataset(d) for k, d in (opt.get("datasets") or {}).items() if k.split("_")[0] == "val"]


def train(args: argparse.Namespace) -> str:
    """Train from the parsed command line; returns the experiment folder."""
    opt, notices = load_checked_options(args, is_train=True)
    check_scalar_loggers(opt)
    rank, world_size = get_dist_info()
    seed = opt.get("manual_seed")
    if seed is None:
        seed = broadcast_object(random.randint(1, 10000))
        opt["manual_seed"] = seed
    set_random_seed(seed + rank)

    logger = get_root_logger()  # the console until the log file exists
    clean_temporary_checkpoints(opt, logger)
    resume_path, state = find_resume_state(opt, args.auto_resume, logger)
    if state is not None:
        use_resumed_weights(opt, resume_path, state, logger)
    # the data first: a start that fails on missing data leaves the experiment folder alone
    loader, sampler, batches_per_epoch = build_train_loader(opt, seed)
    # train.accumulate_grad: one iteration (optimizer step, schedule step) takes that many batches
    accumulate = int(opt["train"].get("accumulate_grad") or 1)
    if batches_per_epoch < accumulate:
        raise ValueError(f"train.accumulate_grad: {accumulate} batches per step, but an epoch has only "
                         f"{batches_per_epoch} batches per process")
    iters_per_epoch = batches_per_epoch // accumulate  # an epoch's last batches that do not fill a step are dropped
    val_datasets = build_val_datasets(opt)
    prepare_folders(opt, resuming=state is not None)
    barrier()
    log_file = Path(opt["path"]["log"]) / f"train_{opt['name']}_{time.strftime('%Y%m%d_%H%M%S')}.log"
    logger = get_root_logger(str(log_file) if rank == 0 else None)
    for notice in notices:
        logger.warning(notice)
    logger.info("vsrt training, torch %s, %d process(es)\n%s", torch.__version__, world_size, dict2str(opt))
    port = (opt.get("dist_params") or {}).get("port")
    if args.launcher == "pytorch" and port is not None and str(int(port)) != os.environ.get("MASTER_PORT"):
        logger.warning("dist_params.port %s is not used under torchrun, which listens on MASTER_PORT=%s "
                       "(MASTER_PORT=%s bash dist_train.sh ... picks it)", port, os.environ.get("MASTER_PORT"), port)

    train_opt, logger_opt, val_opt = opt["train"], opt.get("logger") or {}, opt.get("val") or {}
    total_iter = int(train_opt["total_iter"])
    total_epochs = math.ceil(total_iter / iters_per_epoch)
    logger.info("Training: %d iterations per epoch (%d batch(es) each), %d epochs, %d iterations",
                iters_per_epoch, accumulate, total_epochs, total_iter)

    from vsrt.models import build_model

    model = build_model(opt)
    start_epoch, current_iter, skip_batches = 0, 0, 0
    if state is not None:
        model.resume_training(state)
        start_epoch, current_iter = state["epoch"], state["iter"]
        skip_batches = state.get("batch_in_epoch", 0)
        logger.info("Resumed from %s: epoch %d, iteration %d", resume_path, start_epoch, current_iter)
    tb_logger = init_scalar_loggers(opt, resuming=state is not None)  # tensorboard and/or wandb (rank 0)

    message_logger = MessageLogger(opt, current_iter, tb_logger)
    data_timer, iter_timer = AvgTimer(), AvgTimer()
    warmup_iter = int(train_opt.get("warmup_iter", -1))
    print_freq = int(logger_opt.get("print_freq", 100))
    save_freq = int(logger_opt.get("save_checkpoint_freq", 5000))
    val_freq = val_opt.get("val_freq")
    validated_at = None  # the final validation is skipped when the last iteration already validated
    try:
        for epoch in range(start_epoch, total_epochs + 1):
            sampler.set_epoch(epoch)
            if hasattr(loader.dataset, "set_epoch"):  # epoch-based curricula (SAVSR scales)
                loader.dataset.set_epoch(epoch)
            if skip_batches:
                sampler.skip_next(skip_batches * loader.batch_size)
            first_batch, skip_batches = skip_batches, 0
            data_timer.restart()
            iter_timer.restart()
            micro_batches = []
            for batch_in_epoch, batch in enumerate(loader, start=first_batch + 1):
                micro_batches.append(batch)
                if len(micro_batches) < accumulate:
                    continue
                data_timer.tick()
                current_iter += 1
                if current_iter > total_iter:
                    break
                model.update_learning_rate(current_iter, warmup_iter)
                model.train_step(micro_batches, current_iter)
                micro_batches = []
                iter_timer.tick()
                if current_iter % print_freq == 0:
                    message_logger({"epoch": epoch, "iter": current_iter,
                                    "lrs": model.get_current_learning_rate(),
                                    "time": iter_timer.mean, "data_time": data_timer.mean,
                                    **model.get_current_log()})
                if current_iter % save_freq == 0:
                    logger.info("Saving models and training states.")
                    model.save(epoch, current_iter, batch_in_epoch)
                if val_freq and current_iter % int(val_freq) == 0:
                    for dataset in val_datasets:
                        model.validation(dataset, current_iter, tb_logger, val_opt.get("save_img", False))
                    validated_at = current_iter
                data_timer.restart()
                iter_timer.restart()
            if current_iter > total_iter:
                break
        logger.info("End of training. Saving the latest model.")
        model.save(-1, -1)  # raises first if a loss since the last log was not finite
    except FloatingPointError as err:
        logger.error(str(err))
        raise SystemExit(1) from err
    current_iter = min(current_iter, total_iter)  # the loop stops one past the last iteration
    if val_freq and validated_at != current_iter:
        for dataset in val_datasets:
            model.validation(dataset, current_iter, tb_logger, val_opt.get("save_img", False))
    if tb_logger is not None:
        tb_logger.close()
    close_log_files()
    return opt["path"]["experiments_root"]


def main(argv: list[str] | None = None) -> str:
    args = parse_args(is_train=True, argv=argv)
    with process_group(args.launcher, args.dist_params):
        try:
            return train(args)
        finally:
            close_log_files()  # also after a failed start, so a later run in this process logs only to its file


if __name__ == "__main__":
    main()
