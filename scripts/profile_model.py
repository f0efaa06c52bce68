"""Parameters, FLOPs, latency and peak memory of one network at a stated input size.

    python scripts/profile_model.py --model mia_vsr_reds --frames 16 --size 64 64 --device cuda --header
    python scripts/profile_model.py --opt options/test/X.yml --frames 7 --size 64 112 --device cpu

Prints one markdown table row (``--header`` adds the header), so the README's efficiency table is
made by running this once per model. What is measured, exactly:

* params: ``sum(p.numel())`` over the network's parameters (buffers excluded), in millions.
* FLOPs: one forward pass on a ``(1, frames, 3, h, w)`` input counted by
  ``torch.utils.flop_counter.FlopCounterMode``: 2 FLOPs per multiply-add of matmul / conv /
  attention (SDPA) kernels; element-wise ops, norms, ``grid_sample`` and interpolation are not
  counted. Papers usually report "FLOPs" = multiply-adds (MACs), i.e. half of this number; both
  are printed (G = 1e9, T = 1e12).
* latency: ``--warmup`` untimed passes, then the median of ``--runs`` timed passes; on CUDA each
  pass is bracketed by ``torch.cuda.synchronize``. The whole clip, in ms.
* peak memory: CUDA ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (the
  tensors PyTorch allocated, weights and input included, not the caching allocator's reserve).
  CPU: the peak growth of the process's resident set size during the first forward pass (before
  warm-up and FLOP counting, so freed pages are not silently reused), over the RSS just before it
  (weights and input excluded), sampled every millisecond from ``/proc/self/statm``
  by a background thread; where that file does not exist (not Linux), the growth of
  ``resource.getrusage(...).ru_maxrss`` instead, which only shows memory above the earlier peak of
  the process (a lower bound). The output says which one was used.

``--train`` profiles one training step instead: the network in train mode, forward with gradients
and backward of the output's mean (FLOPs then count both passes; no optimizer step). ``--set
KEY=VALUE`` changes one ``network_g`` entry (a YAML literal), e.g. ``--set use_checkpoint=false``
to see what activation checkpointing saves:

    python scripts/profile_model.py --model psrt_recurrent_reds --frames 8 --size 64 64 --train
    python scripts/profile_model.py --model psrt_recurrent_reds --frames 8 --size 64 64 --train \
        --set use_checkpoint=false

Weights are not needed (random initialisation gives the same cost); ``--weights`` is accepted.
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vsrt.inference.loading import LoadedModel, load_model, network_from_options, pick_device
from vsrt.inference.runner import autocast_context
from vsrt.models.runtime import RuntimeSettings, apply_backend_settings
from vsrt.options import parse_literal
from vsrt.utils.compile import CompileSettings, compile_network
from vsrt.zoo import get_preset

HEADER = ("| model | input (t×h×w) | device | precision | params (M) | FLOPs (G, 2/MAC) | MACs (G) "
          "| latency (ms, median) | peak memory (MiB) |\n|---|---|---|---|---|---|---|---|---|")


def make_pass(net: torch.nn.Module, lq: torch.Tensor, device: torch.device, precision: str,
              train: bool = False) -> Callable[[], None]:
    """One inference pass (no gradients) or, with ``train``, one forward + backward of the mean output."""
    if not train:
        def infer() -> None:
            with torch.no_grad(), autocast_context(device, precision):
                net(lq)

        return infer

    def train_step() -> None:
        net.zero_grad(set_to_none=True)
        with autocast_context(device, precision):
            out = net(lq)
        out.float().mean().backward()

    return train_step


def count_flops(net: torch.nn.Module, lq: torch.Tensor, device: torch.device, precision: str,
                train: bool = False) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        make_pass(net, lq, device, precision, train)()
    return int(counter.get_total_flops())


def _current_rss() -> int | None:
    """Resident set size in bytes from /proc/self/statm, or None where it does not exist."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def cpu_peak_memory(forward: object) -> tuple[float, str]:
    """Peak RSS growth (MiB) during ``forward()`` and how it was measured."""
    before = _current_rss()
    if before is None:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        forward()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss) / 1024, "cpu ru_maxrss growth"
    peak, done = [before], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _current_rss() or 0)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        forward()
    finally:
        done.set()
        sampler.join()
    peak[0] = max(peak[0], _current_rss() or 0)
    return (peak[0] - before) / 2**20, "cpu RSS growth sampled every 1 ms"


def time_forward(net: torch.nn.Module, lq: torch.Tensor, device: torch.device, precision: str,
                 warmup: int, runs: int, train: bool = False) -> tuple[float, float, str]:
    """Median latency (ms), peak memory (MiB) and how the memory was measured."""
    forward = make_pass(net, lq, device, precision, train)
    cuda = device.type == "cuda"
    if not cuda:
        memory, how = cpu_peak_memory(forward)
    for _ in range(warmup):
        forward()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(runs):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        forward()
        if cuda:
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    if cuda:
        return statistics.median(times), torch.cuda.max_memory_allocated(device) / 2**20, "cuda max_memory_allocated"
    return statistics.median(times), memory, how


def load_network_for_profiling(args: argparse.Namespace, device: torch.device) -> LoadedModel:
    """The network of ``--opt`` / ``--model`` with the ``--set`` overrides applied to its ``network_g``."""
    if not args.overrides:
        return load_model(opt=args.opt, model=args.model, weights=args.weights, device=device,
                          load_weights=args.weights is not None, allow_download=False)
    if args.model is not None:
        label, network_g = args.model, copy.deepcopy(get_preset(args.model).network_g)
    else:
        label, network_g = Path(args.opt).stem, network_from_options(args.opt)[0]
    for assignment in args.overrides:
        key, sep, text = assignment.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set '{assignment}': expected KEY=VALUE")
        network_g[key.strip()] = parse_literal(text)  # as --force_yml: YAML literals, 2e-4 a float
    loaded = load_model(network_g=network_g, weights=args.weights, device=device,
                        load_weights=args.weights is not None, allow_download=False)
    loaded.label = label
    return loaded


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--opt", help="option file (its network_g)")
    source.add_argument("--model", help="zoo preset name")
    parser.add_argument("--weights", help="optional checkpoint")
    parser.add_argument("--frames", type=int, default=7)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"), help="LQ frame size")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the network's blocks (inductor); the warm-up runs absorb the compile")
    parser.add_argument("--no-tf32", dest="tf32", action="store_false",
                        help="full-precision fp32 matmuls and convolutions on CUDA (default: TF32)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--header", action="store_true", help="print the markdown table header first")
    parser.add_argument("--train", action="store_true", help="profile a training step (forward + backward)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change a network_g entry (YAML literal); repeatable")
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    loaded = load_network_for_profiling(args, device)
    net = loaded.net.train(args.train)
    in_chans = 4 if loaded.spec.nonblind_denoising else 3
    frames = loaded.spec.num_frame or args.frames
    lq = torch.rand(1, frames, in_chans, *args.size, device=device)
    params = sum(p.numel() for p in net.parameters())
    # counted eagerly, before compiling: the counter is a dispatch mode and the FLOPs do not change
    flops = count_flops(net, lq, device, args.precision, args.train)
    apply_backend_settings(RuntimeSettings(tf32=args.tf32), device)
    if args.compile:
        compile_network(net, CompileSettings())
    latency, memory, memory_kind = time_forward(net, lq, device, args.precision, args.warmup, args.runs,
                                                args.train)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    label = " ".join([loaded.label, *args.overrides] + (["(train step)"] if args.train else [])
                     + (["compiled"] if args.compile else []))
    row = (f"| {label} | {frames}×{args.size[0]}×{args.size[1]} | {device_name} | {args.precision} "
           f"| {params / 1e6:.2f} | {flops / 1e9:.1f} | {flops / 2e9:.1f} | {latency:.1f} | {memory:.0f} |")
    if args.header:
        print(HEADER)
    print(row)
    print(f"<!-- FLOPs: torch.utils.flop_counter.FlopCounterMode; memory: {memory_kind}; "
          f"median of {args.runs} runs after {args.warmup} warm-up; torch {torch.__version__} -->")
    return row


if __name__ == "__main__":
    main()
