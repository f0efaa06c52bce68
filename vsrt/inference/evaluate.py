"""Score a network on benchmark clips and report the results (table, CSV, JSON).

Convention (BasicSR; docs/metrics.md): every scored output frame goes through ``tensor2img``
(clamp to [0, 1], RGB -> BGR, x255, round, uint8) and is compared with the GT PNG by
``calculate_psnr`` / ``calculate_ssim`` (RGB or Y channel, ``crop_border``); frame scores are
averaged per clip, then clip means are averaged over clips. With ``temporal=True`` each clip also gets
tOF and the warping error (``vsrt.metrics.temporal``; flow on the GT, ``crop_border``), one value per clip.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsrt.inference.datasets import BenchmarkClip, LQFromGT, Protocol, read_lq
from vsrt.inference.runner import ClipRunner
from vsrt.metrics import calculate_psnr, calculate_ssim, calculate_tof, calculate_warping_error
from vsrt.utils import imwrite, tensor2img


@dataclass
class ClipScore:
    clip: str
    frames: int
    psnr: float
    ssim: float
    seconds: float
    per_frame: list[dict[str, Any]] = field(default_factory=list)
    tof: float | None = None  # temporal metrics of the whole clip, when asked for
    warping_error: float | None = None

TEMPORAL_KEYS = ("tof", "warping_error")


def score_frame(output: np.ndarray, gt: np.ndarray, protocol: Protocol) -> tuple[float, float]:
    """PSNR and SSIM of one uint8 BGR output frame against its GT."""
    if output.shape != gt.shape:
        raise ValueError(f"output {output.shape} and GT {gt.shape} differ in size")
    kwargs = {"crop_border": protocol.crop_border, "test_y_channel": protocol.test_y_channel}
    return float(calculate_psnr(output, gt, **kwargs)), float(calculate_ssim(output, gt, **kwargs))


def pad_to_frames(lq: torch.Tensor, frames: int) -> torch.Tensor:
    """Repeat the last frame of ``(t, c, h, w)`` up to ``frames`` (VRT's Vimeo-90K-T ``pad_sequence``)."""
    if lq.shape[0] >= frames:
        return lq
    return torch.cat([lq, lq[-1:].expand(frames - lq.shape[0], -1, -1, -1)], dim=0)


def evaluate_clip(runner: ClipRunner, clip: BenchmarkClip, protocol: Protocol,
                  lq_from_gt: LQFromGT | None = None, save_dir: Path | None = None,
                  temporal: bool = False) -> ClipScore:
    gt_images = clip.read_gt()
    target = runner.target_size
    if target is not None and gt_images[0].shape[:2] != tuple(target):
        raise ValueError(f"clip {clip.name}: --target-size {target[0]}x{target[1]} differs from its GT size "
                         f"{gt_images[0].shape[0]}x{gt_images[0].shape[1]}; benchmark outputs are scored "
                         "against the GT, so the target must be the GT size")
    if clip.lq_paths is None:
        if lq_from_gt is None:
            raise ValueError(f"clip {clip.name}: no LQ frames and no rule to make them from the GT")
        lq, gt_images = lq_from_gt.make(gt_images)
    else:
        lq = read_lq(clip)
    if protocol.centre_frame_only:
        lq = pad_to_frames(lq, runner.spec.vimeo_num_frames)
    if runner.device.type == "cuda":
        torch.cuda.synchronize(runner.device)
    start = time.perf_counter()
    outputs = runner(lq, clip.scored)  # (len(scored), c, H, W)
    if runner.device.type == "cuda":
        torch.cuda.synchronize(runner.device)
    seconds = time.perf_counter() - start
    per_frame, images = [], []
    for output, gt, name in zip(outputs, gt_images, clip.output_names):
        image = tensor2img(output)
        if save_dir is not None:
            imwrite(image, save_dir / clip.name.replace("/", "_") / f"{name}.png")
        psnr, ssim = score_frame(image, gt, protocol)
        per_frame.append({"frame": name, "psnr": psnr, "ssim": ssim})
        images.append(image)
    score = ClipScore(clip.name, len(per_frame), float(np.mean([f["psnr"] for f in per_frame])),
                      float(np.mean([f["ssim"] for f in per_frame])), seconds, per_frame)
    if temporal:
        if len(images) < 2:
            raise ValueError(f"clip {clip.name}: temporal metrics need at least 2 scored frames, got {len(images)}")
        gts = gt_images[:len(images)]
        score.tof = calculate_tof(images, gts, crop_border=protocol.crop_border)
        score.warping_error = calculate_warping_error(images, gts, crop_border=protocol.crop_border)
    return score


def evaluate(runner: ClipRunner, clips: Sequence[BenchmarkClip], protocol: Protocol,
             lq_from_gt: LQFromGT | None = None, save_dir: Path | None = None,
             progress: bool = True, temporal: bool = False) -> list[ClipScore]:
    from tqdm import tqdm

    return [evaluate_clip(runner, clip, protocol, lq_from_gt, save_dir, temporal)
            for clip in tqdm(clips, desc=protocol.dataset, unit="clip", disable=not progress)]


def average(scores: Sequence[ClipScore]) -> dict[str, float]:
    """Mean of the clip means (not frame-weighted); tOF / warping error when the clips have them."""
    mean = {"psnr": float(np.mean([s.psnr for s in scores])), "ssim": float(np.mean([s.ssim for s in scores]))}
    if scores and scores[0].tof is not None:
        mean.update({key: float(np.mean([getattr(s, key) for s in scores])) for key in TEMPORAL_KEYS})
    return mean


def format_table(scores: Sequence[ClipScore], protocol: Protocol, max_rows: int = 50) -> str:
    """Per-clip rows (at most ``max_rows``; all are in the CSV) and the average."""
    mean = average(scores)
    temporal = "tof" in mean
    width = 68 if temporal else 48
    header = f"{'clip':<16} {'frames':>6} {'PSNR':>8} {'SSIM':>7} {'sec':>7}"
    lines = [header + (f" {'tOF':>7} {'E_warp':>11}" if temporal else ""), "-" * width]
    shown = scores if len(scores) <= max_rows else []
    for s in shown:
        row = f"{s.clip:<16} {s.frames:>6} {s.psnr:>8.4f} {s.ssim:>7.4f} {s.seconds:>7.2f}"
        lines.append(row + (f" {s.tof:>7.4f} {s.warping_error:>11.7f}" if temporal else ""))
    if not shown:
        lines.append(f"({len(scores)} clips: see the CSV for each)")
    summary = f"{'average':<16} {sum(s.frames for s in scores):>6} {mean['psnr']:>8.4f} {mean['ssim']:>7.4f}"
    if temporal:
        summary += f" {'':>7} {mean['tof']:>7.4f} {mean['warping_error']:>11.7f}"
    summary += f"   ({protocol.channel}, crop {protocol.crop_border}, {len(scores)} clips)"
    lines += ["-" * width, summary]
    if temporal:
        lines.append("tOF: pixels of flow difference (TecoGAN); E_warp: masked MSE on [0, 1], flow on the GT "
                     "(docs/metrics.md); lower is better")
    return "\n".join(lines)


def write_reports(scores: Sequence[ClipScore], out_dir: Path, info: dict[str, Any]) -> tuple[Path, Path]:
    """``metrics.csv`` (one row per clip + average) and ``metrics.json`` (everything) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mean = average(scores)
    temporal = list(TEMPORAL_KEYS) if "tof" in mean else []
    csv_path, json_path = out_dir / "metrics.csv", out_dir / "metrics.json"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip", "frames", "psnr", "ssim", "seconds", *temporal])
        for s in scores:
            writer.writerow([s.clip, s.frames, f"{s.psnr:.6f}", f"{s.ssim:.6f}", f"{s.seconds:.3f}",
                             *(f"{getattr(s, key):.9f}" for key in temporal)])
        writer.writerow(["average", sum(s.frames for s in scores), f"{mean['psnr']:.6f}", f"{mean['ssim']:.6f}",
                         f"{sum(s.seconds for s in scores):.3f}", *(f"{mean[key]:.9f}" for key in temporal)])
    clips = [{k: v for k, v in asdict(s).items() if k not in TEMPORAL_KEYS or temporal} for s in scores]
    report = {**info, "average": mean, "clips": clips}
    json_path.write_text(json.dumps(report, indent=2))
    return csv_path, json_path
