#!/usr/bin/env python
"""How much work do MIA-VSR's token masks save? Kept ratio, time, peak memory and FLOPs.

Three eval modes on the same weights and clip:
  full        use_mask off: every token computed (IIA-VSR-like);
  dense       masks on, ``mask_execution='dense'``: every token computed, the kept ones
              selected with torch.where (no host-device synchronisation; the CUDA default);
  gather      masks on, ``mask_execution='gather'``: kept tokens gathered into dense
              batches, attention rows, proj and MLP of kept tokens only (the CPU default).
(The official code computes every attention row and the proj + MLP of kept tokens only.)
Each mode runs in two fresh subprocesses. The first measures peak memory (CPU: growth of
the peak RSS during the first forward, with glibc's mmap threshold lowered so that freed
tensors leave the RSS; CUDA: torch.cuda.max_memory_allocated), the mask statistics and the
FLOPs (torch.utils.flop_counter on the operations actually run: whole network, and the
four transformers alone). The second, with the default allocator (a lowered threshold
costs page faults: the gathered mode takes twice as long under it), measures time (wall
and process CPU time; prefer the CPU time on a busy machine with --threads 1): the median
of --repeat forwards after a warm-up one.

    python scripts/benchmark_masking.py                          # a parity fixture if found
    python scripts/benchmark_masking.py --fixture path/to/mia_vsr_case.pt
    python scripts/benchmark_masking.py --random --depths 6 6 --frames 4 --size 64 64
    python scripts/benchmark_masking.py --checkpoint MIAVSR_REDS_x4.pth --frames 8 --size 180 320

A fixture gives real mask decisions of a tiny model (embed_dim 24, about 45% kept);
--random gives the official width with random weights (the masks are arbitrary, only
their amount matters: --mask-bias 0 keeps about half); --checkpoint the real thing, on a
synthetic panned clip.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vsrt.archs.mia_vsr_arch import MIAVSR  # noqa: E402  (after the sys.path line)

MODES = ("full", "dense", "gather")
FIXTURE_NAMES = ("mia_vsr_t5_64x64_d2.pt", "mia_vsr_t3_64x68.pt")
OFFICIAL_CONFIG = {"mid_channels": 64, "embed_dim": 120,
                   "window_size": [3, 8, 8]}


def default_fixture() -> Path | None:
    for folder in (ROOT.parent / "shared" / "parity" / "mia_vsr", ROOT / "tests" / "fixtures" / "parity" / "mia_vsr"):
        for name in FIXTURE_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def synthetic_clip(frames: int, size: tuple[int, int]) -> torch.Tensor:
    """A smooth random image panned by one pixel per frame: ``(1, t, 3, h, w)``."""
    h, w = size
    coarse = torch.rand(1, 3, max(h // 8, 2), max((w + frames) // 8, 2), generator=torch.Generator().manual_seed(0))
    image = F.interpolate(coarse, size=(h, w + frames), mode="bicubic", align_corners=False).clamp(0, 1)
    return torch.stack([image[..., i:i + w] for i in range(frames)], dim=1)


def build(args: argparse.Namespace) -> tuple[MIAVSR, torch.Tensor]:
    """Model (eval) and LR clip from a checkpoint, random official-width weights or a fixture."""
    if args.checkpoint or args.random:
        config = dict(OFFICIAL_CONFIG, depths=args.depths, num_heads=[6] * len(args.depths))
        torch.manual_seed(0)
        model = MIAVSR(**config)
        if args.checkpoint:
            state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
            state = state.get("params_ema", state.get("params", state))
            model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
        else:  # random weights: the predictor bias sets how many tokens are kept (0 -> about half)
            for name, param in model.named_parameters():
                if name.endswith("predmask.rnn.bias"):
                    param.data.fill_(args.mask_bias)
        return model.eval(), synthetic_clip(args.frames, args.size)
    fixture = Path(args.fixture) if args.fixture else default_fixture()
    if fixture is None:
        raise SystemExit("no MIA-VSR parity fixture found; pass --fixture, --checkpoint or --random")
    case = torch.load(fixture, map_location="cpu", weights_only=True)
    model = MIAVSR(**case["kwargs"])
    model.load_state_dict(case["state_dict"], strict=True)
    return model.eval(), case["inputs"]["lqs"]


def measure(args: argparse.Namespace) -> dict:
    """Run one mode in this process and return its numbers."""
    torch.set_num_threads(args.threads)
    model, lqs = build(args)
    device = torch.device(args.device)
    model, lqs = model.to(device), lqs.to(device)
    model.use_mask = args.mode != "full"
    model.mask_execution = "dense" if args.mode == "full" else args.mode
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        if args.part == "time":
            model(lqs)  # warm-up
            times, cpu_times = [], []
            for _ in range(args.repeat):
                sync()
                start, cpu_start = time.perf_counter(), time.process_time()
                model(lqs)
                sync()
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
            return {"time_s": statistics.median(times), "cpu_s": statistics.median(cpu_times)}
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        out, masks = model(lqs, return_masks=True)  # first call: peak memory, mask statistics
        peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
                else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024)
        kept = [float(v) for branch in masks or [] for step in branch for v in step if v is not None]
        with FlopCounterMode(display=False) as counter:
            model(lqs)
        flops = counter.get_flop_counts()
        transformer = sum(sum(ops.values()) for name, ops in flops.items()
                          if name.startswith("MIAVSR.patch_align.") and name.count(".") == 2)
    return {"mode": args.mode, "kept_ratio": statistics.mean(kept) if kept else 1.0, "peak_bytes": peak,
            "flops_total": counter.get_total_flops(), "flops_transformers": transformer,
            "clip": list(lqs.shape), "out_sum": float(out.double().sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixture", help="MIA-VSR parity fixture (config, weights, clip)")
    parser.add_argument("--checkpoint", help="official MIA-VSR checkpoint (official width, --depths)")
    parser.add_argument("--random", action="store_true", help="random weights of the official width")
    parser.add_argument("--depths", type=int, nargs="+", default=[6, 6, 6, 6])
    parser.add_argument("--mask-bias", type=float, default=0.0, help="predictor bias with --random")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--part", choices=("memory", "time"), help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure(args)))
        return
    results = []
    for mode in MODES:
        result = {}
        for part in ("memory", "time"):
            # memory: large blocks straight from mmap, so that the peak RSS follows live tensors
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"} if part == "memory" else None
            child = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--mode", mode, "--part", part],
                                   capture_output=True, text=True, check=True, env=env)
            result.update(json.loads(child.stdout.strip().splitlines()[-1]))
        results.append(result)
    print(f"clip {results[0]['clip']}, device {args.device}, threads {args.threads}, repeat {args.repeat}")
    print(f"{'mode':9s} {'kept':>6s} {'time s':>8s} {'cpu s':>8s} {'peak MiB':>9s} {'GFLOPs':>8s} "
          f"{'transformer GFLOPs':>19s}")
    for r in results:
        print(f"{r['mode']:9s} {r['kept_ratio']:6.3f} {r['time_s']:8.3f} {r['cpu_s']:8.3f} "
              f"{r['peak_bytes'] / 2**20:9.1f} "
              f"{r['flops_total'] / 1e9:8.3f} {r['flops_transformers'] / 1e9:19.3f}")
    diff = abs(results[1]["out_sum"] - results[2]["out_sum"])
    print(f"|sum(dense) - sum(gather)| = {diff:.3g} (same masks, same result up to float rounding)")


if __name__ == "__main__":
    main()
