"""Seconds per frame and peak memory of every architecture, optionally side by side with the official code.

    python scripts/benchmark.py                                        # REDS LR 180x320, fp32, every row
    python scripts/benchmark.py --device cpu --size 64 64 --frames 4 --precision fp32 bf16
    python scripts/benchmark.py --only psrt vrt6 --compile             # compiled and eager rows
    python scripts/benchmark.py --official-ref .perf/ref --official-helper .perf/official.py --repeat 2

Rows (official REDS configurations; the zoo presets): BasicVSR, PSRT-recurrent, MIA-VSR in each mask mode
(and without masks), IIA-VSR, VRT (6-frame REDS model through the tiled ``test_video`` with the official
REDS tiles [40, 128, 128], overlap [2, 20, 20]) and SAVSR (7 frames -> the centre frame at x4). Each row
runs per ``--precision`` and, with ``--compile``, both eager and compiled.

What is measured, exactly:

* every measurement is a fresh subprocess (``scripts/benchmark_run.py``), so runs do not share caches,
  allocator pools or imports: it builds the network, loads the row's weights with ``strict=True`` (the
  first process of a row writes its seeded random initialisation, so official and vsrt see the same weights), runs
  ``--warmup`` untimed passes and ``--runs`` timed ones on the same clip (uint8, a smooth random image
  panned one pixel per frame, or ``--clip``), under ``torch.no_grad`` and, for bf16 / fp16,
  ``torch.autocast``;
* s/frame: the median over all timed passes of all rounds, divided by the output frames; on a CPU also
  the process CPU time per frame (all threads), which a machine shared with other jobs disturbs less
  than the wall clock (with ``--threads 1`` it is the wall time an idle machine would give);
* peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (weights and input included); on CPU the peak
  growth of the resident set size over the RSS just before the first pass, sampled every millisecond
  during the warm-up passes (during all passes with ``--warmup 0``: the sampling thread slows what it
  watches, a two-thread run by up to a fifth) (weights and input excluded;
  ``profile_model.cpu_peak_memory``), or with ``--live-tensors`` the peak
  bytes of live tensors made during the passes (exact and repeatable, but it slows every operation);
  the median over rounds;
* ``--official-ref DIR`` (the official checkouts, laid out as ``official.py`` of the shared perf tools
  says) adds the official code on the same weights and clip. Official and vsrt runs are interleaved:
  each of the ``--repeat`` rounds runs every row's official process, then its vsrt process.
  ``official.py`` is found from ``--official-helper`` (a file), else ``DIR/official.py``, else
  ``DIR/../official.py``. BasicVSR's official side is BasicSR's ``basicvsr_arch`` from ``DIR/BasicSR``.

Output: a markdown table on stdout, one JSON line per process in ``--jsonl`` and the table in
``--markdown`` if given. ``--tiny`` uses each architecture's tiny test configuration (for tests).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
from benchmark_run import load_official_helper, measure  # noqa: E402 - the measurement of one process

REPO_ROOT = SCRIPTS.parent
PRECISIONS = ("fp32", "bf16", "fp16")
TINY_BASICVSR = {"num_feat": 8, "num_block": 1}


class Row(NamedTuple):  # a NamedTuple, not a dataclass: tests import this script without sys.modules
    """One table row: a vsrt network (and its official counterpart, if any)."""

    key: str  # what --only selects
    label: str
    preset: str  # zoo preset of the official REDS configuration
    weights_group: str  # rows of one group share weights (same state-dict keys)
    protocol: str = "clip"  # 'clip' (t -> t), 'vrt' (tiled test_video), 'savsr' (num_frame -> 1 at x4)
    official: str | None = None  # builder in official.py ('basicvsr': BasicSR, see _official_network)
    changes: dict[str, Any] | None = None  # network_g entries changed (None: removed)
    mask_execution: str | None = None  # MIA-VSR mask mode


ROWS = (
    Row("basicvsr", "BasicVSR", "basicvsr_reds", "basicvsr", official="basicvsr"),
    Row("psrt", "PSRT-recurrent", "psrt_recurrent_reds", "psrt", official="psrt_recurrent"),
    Row("mia", "MIA-VSR, masks gathered", "mia_vsr_reds", "mia", official="mia_vsr", mask_execution="gather"),
    Row("mia-dense", "MIA-VSR, masks dense", "mia_vsr_reds", "mia", official="mia_vsr", mask_execution="dense"),
    Row("mia-nomask", "MIA-VSR, use_mask=False", "mia_vsr_reds", "mia-nomask", changes={"use_mask": False}),
    Row("iia", "IIA-VSR", "mia_vsr_reds", "iia", official="iia_vsr", changes={"type": "IIAVSR", "use_mask": None}),
    Row("vrt6", "VRT x4, 6 frames, tiled", "vrt_x4_reds_6f", "vrt6", protocol="vrt", official="vrt"),
    Row("savsr", "SAVSR x4, 7 -> 1", "savsr_vimeo", "savsr", protocol="savsr", official="savsr"),
)


def row_network(row: Row, tiny: bool) -> dict[str, Any]:
    """The row's ``network_g`` (REDS configuration, or the architecture's tiny one)."""
    from vsrt.registry import ARCH_REGISTRY
    from vsrt.zoo import get_preset

    network_g = dict(get_preset(row.preset).network_g)
    for key, value in (row.changes or {}).items():
        if value is None:
            network_g.pop(key, None)
        else:
            network_g[key] = value
    if tiny:
        cls = ARCH_REGISTRY.get(network_g["type"])
        keep = {k: network_g[k] for k in ("type", "use_mask") if k in network_g}
        network_g = {**keep, **dict(getattr(cls, "tiny_config", TINY_BASICVSR))}
    return network_g


# ---------------------------------------------------------------- the table (parent process)

def make_clip(frames: int, size: tuple[int, int], seed: int = 0) -> Any:
    """uint8 ``(1, frames, 3, h, w)``: a smooth random image panned by one pixel per frame."""
    import torch
    import torch.nn.functional as F

    h, w = size
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(h // 8, 2), max((w + frames) // 8, 2), generator=generator)
    image = F.interpolate(coarse, size=(h, w + frames), mode="bicubic", align_corners=False).clamp(0, 1)
    clip = torch.stack([image[..., i:i + w] for i in range(frames)], dim=1)
    return (clip * 255).round().to(torch.uint8)


def run_child(spec: dict[str, Any], in_process: bool, timeout: float) -> dict[str, Any]:
    """One measurement, in a fresh subprocess unless ``in_process`` (tests only)."""
    if in_process:
        try:
            return measure(spec)
        except Exception as error:  # noqa: BLE001 - reported in the table, as a failed subprocess is
            return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), str(SCRIPTS),
                                                                       os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.run([sys.executable, str(SCRIPTS / "benchmark_run.py"), json.dumps(spec)],
                              capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {proc.returncode}: {tail[0][:300]}"}
    return json.loads(lines[-1])


def plan(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Every process to run, in order: per round, per row, the official run (once per weights group and
    precision) just before the vsrt runs that it is compared with."""
    rows = [row for row in ROWS if not args.only or row.key in args.only]
    compile_settings = (False, True) if args.compile else (False,)
    specs = []
    for round_index in range(args.repeat):
        official_done = set()
        for row in rows:
            network_g = row_network(row, args.tiny)
            frames = {"clip": args.frames, "vrt": args.vrt_frames, "savsr": network_g.get("num_frame", 7)}
            common = {"row": row.key, "round": round_index, "network_g": network_g, "protocol": row.protocol,
                      "official": row.official, "mask_execution": row.mask_execution,
                      "weights": str(work / f"{row.weights_group}{'_tiny' if args.tiny else ''}.pt"),
                      "clip": str(work / "clip.pt"), "frames": frames[row.protocol], "size": list(args.size),
                      "device": args.device, "threads": args.threads, "warmup": args.warmup, "runs": args.runs,
                      "official_ref": args.official_ref, "official_helper": args.official_helper,
                      "live_tensors": args.live_tensors}
            for precision in args.precision:
                if (args.official_ref and row.official and args.impl != "vsrt"
                        and (row.official, precision) not in official_done):
                    official_done.add((row.official, precision))
                    specs.append({**common, "impl": "official", "precision": precision, "compile": False})
                for compiled in compile_settings if args.impl != "official" else ():
                    specs.append({**common, "impl": "vsrt", "precision": precision, "compile": compiled})
    return specs


def summarise(results: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """One entry per (row, precision, compile): medians over rounds, with its official reference."""
    rows = [row for row in ROWS if not args.only or row.key in args.only]

    def collect(impl: str, name: str, precision: str, compiled: bool):
        """vsrt runs of row ``name``, or official runs of builder ``name`` (shared by the MIA rows)."""
        picked = [r for r in results if r["impl"] == impl and r["precision"] == precision
                  and r["compile"] == compiled and r["row" if impl == "vsrt" else "official"] == name]
        ok = [r for r in picked if "error" not in r]
        if not ok:
            return None, (picked[0]["error"] if picked else None)
        times = [t / r["frames_out"] for r in ok for t in r["times"]]
        cpu_times = [t / r["frames_out"] for r in ok for t in r["cpu_times"]]
        kept = [r["kept"] for r in ok if r.get("kept") is not None]
        return {"s_per_frame": statistics.median(times), "cpu_s_per_frame": statistics.median(cpu_times),
                "peak_mib": statistics.median(r["peak_mib"] for r in ok),
                "kept": statistics.median(kept) if kept else None, "runs": len(times)}, None

    summary = []
    for row in rows:
        for precision in args.precision:
            for compiled in ((False, True) if args.compile else (False,)):
                vsrt, vsrt_error = collect("vsrt", row.key, precision, compiled)
                official, official_error = (None, None)
                if row.official:
                    official, official_error = collect("official", row.official, precision, False)
                label = row.label
                modes = {r.get("mask_execution") for r in results if r["impl"] == "vsrt" and r["row"] == row.key
                         and r["compile"] == compiled and r["precision"] == precision and "error" not in r}
                if row.mask_execution and modes and modes != {row.mask_execution}:
                    label += f" (ran {', '.join(sorted(map(str, modes)))})"
                summary.append({"kind": "row", "row": row.key, "label": label, "precision": precision,
                                "compile": compiled, "vsrt": vsrt, "official": official,
                                "errors": {k: v for k, v in (("vsrt", vsrt_error), ("official", official_error))
                                           if v}})
    return summary


def markdown(summary: list[dict[str, Any]], results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The summary as a markdown table, with a comment line saying how it was measured."""
    def seconds(entry: dict[str, Any] | None, error: str | None) -> str:
        return "failed" if error else "-" if entry is None else f"{entry['s_per_frame']:.3f}"

    def mib(entry: dict[str, Any] | None) -> str:
        return "-" if entry is None else f"{entry['peak_mib']:.0f}"

    def cpu_time(official: dict[str, Any] | None, vsrt: dict[str, Any] | None) -> str:
        if vsrt is None:
            return "-"
        if official is None:
            return f"- / {vsrt['cpu_s_per_frame']:.3f}"
        return (f"{official['cpu_s_per_frame']:.3f} / {vsrt['cpu_s_per_frame']:.3f} "
                f"({official['cpu_s_per_frame'] / vsrt['cpu_s_per_frame']:.2f}x)")

    cpu = not args.device.startswith("cuda")  # process CPU time: a fairer clock on a shared CPU
    lines = ["| model | precision | compile | official s/frame | vsrt s/frame | vsrt vs official "
             "| peak MiB official / vsrt | MIA kept ratio |" + (" CPU time s/frame official / vsrt |" if cpu else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if cpu else "")]
    for s in summary:
        official, vsrt = s["official"], s["vsrt"]
        ratio = f"{official['s_per_frame'] / vsrt['s_per_frame']:.2f}x" if official and vsrt else "-"
        kept = f"{vsrt['kept']:.3f}" if vsrt and vsrt["kept"] is not None else "-"
        lines.append(f"| {s['label']} | {s['precision']} | {'yes' if s['compile'] else 'no'} "
                     f"| {seconds(official, s['errors'].get('official'))} "
                     f"| {seconds(vsrt, s['errors'].get('vsrt'))} | {ratio} | {mib(official)} / {mib(vsrt)} "
                     f"| {kept} |" + (f" {cpu_time(official, vsrt)} |" if cpu else ""))
    ok = [r for r in results if "error" not in r]
    device = ok[0]["device_name"] if ok else args.device
    versions = f"torch {ok[0]['torch']}, {ok[0]['threads']} threads" if ok else ""
    memory = ok[0]["memory"] if ok else ""
    if args.from_jsonl:  # describe the merged records, not this command's (unused) run options
        first = ok[0] if ok else {"size": args.size, "frames": args.frames}
        rounds = max(Counter((r["row"], r["impl"], r["precision"], r["compile"]) for r in ok).values(), default=0)
        method = (f"LR {first['size'][0]}x{first['size'][1]}, {first['frames']} frames; medians over up to {rounds} "
                  f"round(s) merged from {', '.join(Path(name).name for name in args.from_jsonl)}")
    else:
        method = (f"LR {args.size[0]}x{args.size[1]}, {args.frames} frames (VRT {args.vrt_frames}); median of "
                  f"{args.runs} timed pass(es) after {args.warmup} warm-up x {args.repeat} round(s), "
                  f"{'all in one process' if args.in_process else 'one process per run'}"
                  f"{', official and vsrt interleaved' if args.official_ref else ''}")
    tiny = "; tiny configurations" if args.tiny else ""
    lines.append(f"<!-- {device}, {versions}; {method}; memory: {memory}{tiny} -->")
    for s in summary:
        for impl, error in s["errors"].items():
            lines.append(f"<!-- {s['label']} {s['precision']} {impl}: {error} -->")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=[row.key for row in ROWS], help="rows to run (default: all)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--size", type=int, nargs=2, default=(180, 320), metavar=("H", "W"), help="LR frame size")
    parser.add_argument("--frames", type=int, default=8, help="frames of the recurrent models' clip")
    parser.add_argument("--vrt-frames", type=int, default=12, help="frames through VRT's tiled test_video")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["fp32"])
    parser.add_argument("--compile", action="store_true",
                        help="also run every row compiled (vsrt.utils.compile; keep --warmup >= 1 so the "
                        "compilation is not timed)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--runs", type=int, default=2, help="timed passes per process")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (official and vsrt interleaved in each)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    parser.add_argument("--official-ref", help="folder holding the official checkouts (official.py layout)")
    parser.add_argument("--official-helper", help="path of the shared perf tools' official.py")
    parser.add_argument("--clip", help="uint8 tensor (1, T, 3, H, W) saved with torch.save (default: synthetic)")
    parser.add_argument("--jsonl", help="append one JSON line per process and per table row here")
    parser.add_argument("--markdown", help="write the table here too")
    parser.add_argument("--tiny", action="store_true", help="the architectures' tiny test configurations")
    parser.add_argument("--live-tensors", action="store_true",
                        help="CPU memory as the peak bytes of live tensors (exact, but slows every operation)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per process")
    parser.add_argument("--impl", choices=("both", "official", "vsrt"), default="both",
                        help="run only one side (e.g. to complete a table with --from-jsonl)")
    parser.add_argument("--from-jsonl", nargs="+", metavar="FILE",
                        help="make the table from these --jsonl files of earlier runs instead of running")
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process (tests; memory then includes earlier runs)")
    args = parser.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if "fp16" in args.precision and not args.device.startswith("cuda"):
        parser.error("--precision fp16 needs --device cuda (use bf16 on a CPU)")
    if min(args.repeat, args.runs, args.frames, args.vrt_frames, *args.size) < 1 or args.warmup < 0:
        parser.error("--repeat, --runs, --frames, --vrt-frames and --size must be positive, --warmup >= 0")
    if args.impl == "official" and not args.official_ref:
        parser.error("--impl official needs --official-ref")
    if args.in_process and args.official_ref:
        parser.error("--in-process cannot run the official code (its repositories clash within one process)")
    if args.official_ref:
        if not Path(args.official_ref).is_dir():
            parser.error(f"--official-ref {args.official_ref}: no such folder")
        load_official_helper(args.official_ref, args.official_helper)  # a clear error now, not per process
        sys.modules.pop("official", None)
    return args


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    if args.from_jsonl:
        results = [json.loads(line) for name in args.from_jsonl for line in Path(name).read_text().splitlines()
                   if line.strip() and '"kind"' not in line]
        args.only = args.only or [row.key for row in ROWS if any(r["row"] == row.key for r in results)]
    else:
        results = run_all(args)
    summary = summarise(results, args)
    table = markdown(summary, results, args)
    print(table)
    if args.jsonl:
        with open(args.jsonl, "a") as handle:
            for line in summary:
                handle.write(json.dumps(line) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    return table


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every planned process, one after the other; their results (JSON lines as they end)."""
    import torch

    with tempfile.TemporaryDirectory(prefix="vsrt_benchmark_") as tmp:
        work = Path(tmp)
        if args.clip:
            clip = torch.load(args.clip, weights_only=True)
            if clip.dtype != torch.uint8 or clip.dim() != 5:
                raise SystemExit(f"--clip {args.clip}: expected a uint8 (1, T, 3, H, W) tensor, "
                                 f"got {clip.dtype} {tuple(clip.shape)}")
        else:
            clip = make_clip(max(args.frames, args.vrt_frames, 7), tuple(args.size))
        torch.save(clip, work / "clip.pt")
        results = []
        for spec in plan(args, work):
            start = time.perf_counter()
            result = {"row": spec["row"], "impl": spec["impl"], "precision": spec["precision"],
                      "compile": spec["compile"], "official": spec["official"] if spec["impl"] == "official"
                      else None, "round": spec["round"]} | run_child(spec, args.in_process, args.timeout)
            results.append(result)
            if args.jsonl:  # as it comes, so an interrupted run keeps what it measured
                with open(args.jsonl, "a") as handle:
                    handle.write(json.dumps(result) + "\n")
            shown = result.get("error") or f"{result['s_per_frame']:.3f} s/frame, {result['peak_mib']:.0f} MiB"
            print(f"[{time.perf_counter() - start:6.1f} s] {spec['row']} {spec['impl']} {spec['precision']}"
                  f"{' compiled' if spec['compile'] else ''}: {shown}", file=sys.stderr, flush=True)
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    main()
