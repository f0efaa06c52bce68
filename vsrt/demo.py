"""The README's main command: train a tiny BasicVSR on synthetic clips and compare with bicubic.

``python -m vsrt demo`` writes a few synthetic clips (moving textures and
shapes) under ``demo_output/data``, trains
``options/train/BasicVSR/train_BasicVSR_demo_cpu.yml`` on CPU, and prints the
held-out clip's PSNR/SSIM for bicubic (MATLAB ``imresize``) and the network.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

DEMO_OPTIONS = Path(__file__).resolve().parents[1] / "options" / "train" / "BasicVSR" / "train_BasicVSR_demo_cpu.yml"


def make_demo_data(root: Path, num_train_clips: int = 8, num_frames: int = 12, size: int = 64) -> None:
    """Synthetic ``size`` x ``size`` training clips and one held-out clip (not seen in training)."""
    from vsrt.utils.synthetic import write_clip_folders

    if not (root / "train").exists():
        write_clip_folders(root / "train", [f"clip_{i:03d}" for i in range(num_train_clips)],
                           num_frames, size, size, seed=0)
    if not (root / "heldout").exists():
        write_clip_folders(root / "heldout", ["heldout_000"], 8, size, size, seed=1000)


def bicubic_scores(dataset: Any, metric_opts: dict[str, Any]) -> dict[str, float]:
    """Clip-mean metrics of MATLAB-bicubic x``scale`` upsampling on every clip of ``dataset``."""
    import numpy as np

    from vsrt.metrics import calculate_metric
    from vsrt.utils import imresize, tensor2img

    totals = {name: [] for name in metric_opts}
    for index in range(len(dataset)):
        data = dataset[index]
        frame_scores = {name: [] for name in metric_opts}
        for lq, gt in zip(data["lq"], data["gt"]):
            upscaled = imresize(lq, dataset.scale).clamp(0, 1)  # (c, H, W) tensor in, tensor out
            sr_img, gt_img = tensor2img(upscaled), tensor2img(gt)
            for name, opt in metric_opts.items():
                frame_scores[name].append(calculate_metric({"img": sr_img, "img2": gt_img}, opt))
        for name in metric_opts:
            totals[name].append(float(np.mean(frame_scores[name])))
    return {name: float(np.mean(values)) for name, values in totals.items()}


def run_demo(workdir: Path, total_iter: int | None = None, extra: list[str] = ()) -> dict[str, dict[str, float]]:
    """Train the demo model in ``workdir``; return ``{'bicubic': ..., 'BasicVSR': ...}`` scores."""
    import logging
    import os

    from vsrt import train
    from vsrt.data import build_dataset
    from vsrt.options import load_options
    from vsrt.utils.logger import LOGGER_NAME

    workdir.mkdir(parents=True, exist_ok=True)
    previous = Path.cwd()
    os.chdir(workdir.parent if workdir.name == "demo_output" else workdir)
    try:
        make_demo_data(Path("demo_output") / "data")
        overrides = list(extra)
        if total_iter is not None:
            overrides.append(f"train.total_iter={total_iter}")
        experiment = train.main(["-opt", str(DEMO_OPTIONS), *(["--force_yml", *overrides] if overrides else [])])
        opt, _ = load_options(DEMO_OPTIONS, is_train=False, overrides=overrides)
        val_dataset = build_dataset(opt["datasets"]["val"])
        metrics = opt["val"]["metrics"]
        from vsrt.models import build_model

        opt["path"]["pretrain_network_g"] = str(Path(experiment) / "models" / "net_g_latest.pth")
        opt["val"]["pbar"] = False
        model = build_model(opt)
        logger = logging.getLogger(LOGGER_NAME)
        level = logger.level
        logger.setLevel(logging.WARNING)  # training already logged this validation; score it quietly
        try:
            network = model.validation(val_dataset, current_iter=0)
        finally:
            logger.setLevel(level)
        baseline = bicubic_scores(val_dataset, metrics)
    finally:
        os.chdir(previous)
    return {"bicubic": baseline, opt["network_g"]["type"]: network}


def choose_threads(requested: int | None) -> int:
    """``--threads``, else ``OMP_NUM_THREADS`` when set, else one per usable core (the demo's data
    loading runs in the main process, ``num_worker_per_gpu: 0``)."""
    import os

    from vsrt.utils.cpu import default_num_threads

    if requested is not None:
        return requested
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    return default_num_threads(num_workers=0)


def main(argv: list[str] | None = None) -> None:
    from vsrt import program_name

    parser = argparse.ArgumentParser(prog=program_name("demo", "python -m vsrt.demo"), description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=".", help="folder that receives demo_output/ (default: .)")
    parser.add_argument("--iters", type=int, default=None,
                        help="training iterations (default: the option file's, 400)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: OMP_NUM_THREADS if set, else one per core this process may use)")
    args = parser.parse_args(argv)
    if args.iters is not None and args.iters < 1:
        parser.error(f"--iters must be >= 1, got {args.iters}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    threads = choose_threads(args.threads)
    import torch

    torch.set_num_threads(threads)
    from vsrt.options import load_yaml
    from vsrt.utils.cpu import busy_cores, usable_cores

    iterations = args.iters or load_yaml(DEMO_OPTIONS)["train"]["total_iter"]
    print(f"vsrt demo: {iterations} iterations of a tiny BasicVSR on {threads} CPU thread(s) ({usable_cores()} "
          f"usable core(s), load average {busy_cores():.1f}); every 20 iterations the log's [eta: ...] says "
          "how long training has left (about 3-4 minutes on an idle machine)", flush=True)
    start = time.perf_counter()
    scores = run_demo(Path(args.workdir).resolve() / "demo_output", args.iters)
    names = list(next(iter(scores.values())))
    print("\nHeld-out synthetic clip, x4, RGB, crop 0")
    print(f"{'method':<12}" + "".join(f"{n:>10}" for n in names))
    for method, values in scores.items():
        print(f"{method:<12}" + "".join(f"{values[n]:>10.4f}" for n in names))
    gain = scores["BasicVSR"]["psnr"] - scores["bicubic"]["psnr"]
    print(f"\nBasicVSR - bicubic: {gain:+.2f} dB PSNR ({(time.perf_counter() - start) / 60:.1f} min in all)")

if __name__ == "__main__":
    main()
