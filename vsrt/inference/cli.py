"""Command lines of the benchmark scripts ``inference_reds.py`` and ``inference_vimeo90k.py``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vsrt.inference.datasets import (
    PROTOCOLS,
    REDS4_CLIPS,
    BenchmarkClip,
    LQFromGT,
    Protocol,
    folder_clips,
    vimeo_clips,
    vimeo_interpolation_clips,
)

DATASET_DEFAULTS = {
    "vimeo90k": {"gt_root": "datasets/vimeo90k/vimeo_septuplet/sequences",
                 "lq_root": "datasets/vimeo90k/vimeo_septuplet_matlabLRx4/sequences",
                 "meta_file": "datasets/vimeo90k/vimeo_septuplet/sep_testlist.txt"},
    "vid4": {"gt_root": "datasets/Vid4/GT", "lq_root": "datasets/Vid4/BIx4"},
    "udm10": {"gt_root": "datasets/UDM10/GT", "lq_root": "datasets/UDM10/BDx4"},
}
# VRT README commands per test set (``--tile T P P --tile_overlap To Po Po``); other sets get the
# defaults of main_test_vrt.py. Zoo presets may override them per dataset.
VRT_DEFAULT_TILES = {"temporal_chunk": 40, "temporal_overlap": 2, "tile": 128, "tile_overlap": 20}
VRT_DATASET_TILES = {
    "reds4": VRT_DEFAULT_TILES,
    "vid4": {"temporal_chunk": 32, "temporal_overlap": 2, "tile": 128, "tile_overlap": 20},
    "udm10": {"temporal_chunk": 32, "temporal_overlap": 2, "tile": 128, "tile_overlap": 20},
    "vimeo90k": {"temporal_chunk": 8, "temporal_overlap": 0, "tile": 0, "tile_overlap": 0},
}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Model, device, precision and tiling options shared by the scripts and ``vsrt upscale``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--opt", help="option file whose network_g (and path.pretrain_network_g) is used")
    source.add_argument("--model", help="zoo preset name (python -m vsrt zoo list)")
    parser.add_argument("--weights", help="checkpoint file (loaded with strict=True)")
    parser.add_argument("--no-download", action="store_true", help="never download a preset's checkpoint")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scale", help="output scale of arbitrary-scale networks: S or S_H,S_W (height, width)")
    size.add_argument("--target-size", metavar="H,W",
                      help="output frame size H,W or HxW instead of --scale: an arbitrary-scale network "
                      "runs each video or clip at scale H/h, W/w; a fixed-scale network accepts only its own "
                      "output size (benchmarks: the GT size)")
    parser.add_argument("--noise-sigma", type=float, help="noise level (0-255) for non-blind denoisers")
    tiles = parser.add_argument_group("tiling (default: the model's official protocol)")
    tiles.add_argument("--chunk", type=int, help="frames per temporal chunk (0: whole clip)")
    tiles.add_argument("--chunk-overlap", type=int, help="frames shared by neighbouring chunks")
    tiles.add_argument("--tile", type=int, nargs="+", metavar="PX", help="spatial tile size in LQ pixels: S or H W")
    tiles.add_argument("--tile-overlap", type=int, nargs="+", metavar="PX", help="overlap of tiles: O or OH OW")


def add_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--output", help="results folder (default results/<model>_<dataset>)")
    parser.add_argument("--save-images", action="store_true", help="also write the scored output frames")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _pair(values: Sequence[int] | None) -> Any:
    if values is None:
        return None
    if len(values) not in (1, 2):
        raise SystemExit(f"error: expected one or two sizes, got {list(values)}")
    return values[0] if len(values) == 1 else tuple(values)


def resolve_tiles(args: argparse.Namespace, loaded: Any, dataset: str) -> dict[str, Any]:
    """Flags given on the command line, else the preset's official tiling for ``dataset``,
    else the architecture's default (VRT: the README's settings per test set; others: whole clips)."""
    if loaded.preset is not None and dataset in loaded.preset.tiling:
        tiles = dict(loaded.preset.tiling[dataset])
    elif loaded.spec.kind == "window":
        tiles = dict(VRT_DATASET_TILES.get(dataset, VRT_DEFAULT_TILES))
    else:
        tiles = {"temporal_chunk": 0, "temporal_overlap": 0, "tile": 0, "tile_overlap": 0}
    flags = {"temporal_chunk": args.chunk, "temporal_overlap": args.chunk_overlap,
             "tile": _pair(args.tile), "tile_overlap": _pair(args.tile_overlap)}
    tiles.update({k: v for k, v in flags.items() if v is not None})
    return tiles


def build_runner(args: argparse.Namespace, dataset: str) -> tuple[Any, Any]:
    """Load the network and wrap it in a :class:`ClipRunner` configured from ``args``."""
    from vsrt.archs.scale import parse_size
    from vsrt.archs.tiling import TileConfig
    from vsrt.inference.loading import load_model, pick_device
    from vsrt.inference.runner import ClipRunner
    from vsrt.inference.spec import resolve_scale

    target_size = parse_size(args.target_size) if args.target_size is not None else None
    device = pick_device(args.device)
    loaded = load_model(opt=args.opt, model=args.model, weights=args.weights, device=device,
                        allow_download=not args.no_download)
    scale = resolve_scale(loaded.net, loaded.spec, args.scale)
    tiles = TileConfig(size_multiple=loaded.spec.size_multiple, **resolve_tiles(args, loaded, dataset))
    runner = ClipRunner(loaded.net, loaded.spec, device, args.precision, tiles, scale, args.noise_sigma,
                        target_size)
    return loaded, runner


def published_scores(loaded: Any, dataset: str, scale: Any) -> list[dict[str, Any]]:
    if loaded.preset is None:
        return []
    from dataclasses import asdict

    from vsrt.archs.scale import as_scale_pair

    def same_scale(published: Any) -> bool:
        if published is None or scale is None:
            return published is None and scale is None
        return as_scale_pair(published) == as_scale_pair(scale)

    return [asdict(s) for s in loaded.preset.scores if s.dataset == dataset and same_scale(s.scale)]


def run_benchmark(args: argparse.Namespace, dataset: str, clips_for: Any,
                  protocol: Protocol | Callable[[Any], Protocol]) -> dict[str, Any]:
    """Load, evaluate, print the table and write ``metrics.csv`` / ``metrics.json``; return the JSON dict.

    ``protocol`` may depend on the network: a function of the :class:`ClipRunner`.
    """
    import json

    from vsrt.inference.evaluate import evaluate, format_table, write_reports

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    loaded, runner = build_runner(args, dataset)
    if not isinstance(protocol, Protocol):
        protocol = protocol(runner)
    clips, lq_from_gt = clips_for(runner)
    out_dir = Path(args.output or f"results/{loaded.label}_{dataset}")
    save_dir = out_dir / "images" if args.save_images else None
    scores = evaluate(runner, clips, protocol, lq_from_gt, save_dir, progress=not args.quiet)
    print(f"{loaded.label} on {dataset} ({protocol.channel}, crop_border {protocol.crop_border}"
          f"{', centre frame only' if protocol.centre_frame_only else ''}):")
    print(format_table(scores, protocol))
    per_clip_scale = loaded.spec.arbitrary_scale and runner.target_size is not None  # no published score
    published = [] if per_clip_scale else \
        published_scores(loaded, dataset, runner.scale if loaded.spec.arbitrary_scale else None)
    for s in published:
        print(f"published: {s['psnr']:.2f} / {s['ssim'] if s['ssim'] is not None else '-'} ({s['source']})")
    tiles = runner.tiles
    info = {"model": loaded.label, "arch": loaded.spec.arch, "weights": str(loaded.weights) if loaded.weights else None,
            "checksum_verified": loaded.checksum_verified, "dataset": dataset,
            "protocol": {"channel": protocol.channel, "crop_border": protocol.crop_border,
                         "centre_frame_only": protocol.centre_frame_only, "image": "tensor2img uint8",
                         "averaging": "mean over frames per clip, then mean over clips"},
            "settings": {"device": str(runner.device), "precision": args.precision,
                         "scale": "target / LQ size per clip" if per_clip_scale else runner.scale,
                         "target_size": list(runner.target_size) if runner.target_size else None,
                         "temporal_chunk": tiles.temporal_chunk,
                         "temporal_overlap": tiles.temporal_overlap, "tile": list(tiles.tile),
                         "tile_overlap": list(tiles.tile_overlap), "noise_sigma": args.noise_sigma,
                         "lq": "from GT" if lq_from_gt is not None else "LQ folder"},
            "published": published}
    csv_path, json_path = write_reports(scores, out_dir, info)
    print(f"wrote {csv_path} and {json_path}")
    return json.loads(json_path.read_text())


def _lq_rule(args: argparse.Namespace, runner: Any, lq_root_given: bool) -> LQFromGT | None:
    """When the LQ frames are made from the GT: denoisers always, arbitrary-scale nets without an LQ folder."""
    if runner.spec.nonblind_denoising:
        return LQFromGT(noise_sigma=args.noise_sigma)
    if runner.spec.arbitrary_scale and (args.lq_from_gt or not lq_root_given):
        if runner.target_size is not None:
            raise ValueError("--target-size needs LQ frames (--lq-root): the LQ made from the GT "
                             "(--lq-from-gt, the default of arbitrary-scale networks without --lq-root) "
                             "is defined by --scale")
        return LQFromGT(scale=runner.scale, mode=args.downsample_mode)
    return None


def run_script(main: Any, argv: list[str] | None = None) -> None:
    """Run a script's ``main``; expected failures (missing data, bad options, checksum) become one
    ``error:`` line and exit status 2 instead of a traceback."""
    import sys

    from vsrt.zoo import ChecksumError

    try:
        main(argv)
    except (FileNotFoundError, ValueError, KeyError, ChecksumError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) and err.args else err}", file=sys.stderr)
        raise SystemExit(2) from None


def main_reds(argv: list[str] | None = None) -> dict[str, Any]:
    """``inference_reds.py``: REDS4 (clips 000, 011, 015, 020), RGB PSNR/SSIM on every frame."""
    parser = argparse.ArgumentParser(description=main_reds.__doc__)
    add_benchmark_arguments(parser)
    parser.add_argument("--gt-root", default="datasets/REDS4/GT")
    parser.add_argument("--lq-root", default="datasets/REDS4/sharp_bicubic")
    parser.add_argument("--clips", nargs="+", default=list(REDS4_CLIPS))
    args = parser.parse_args(argv)

    def clips_for(runner: Any) -> tuple[list[BenchmarkClip], LQFromGT | None]:
        _refuse_interpolation(runner, "REDS4")
        return folder_clips(args.gt_root, args.lq_root, args.clips), None

    return run_benchmark(args, "reds4", clips_for, PROTOCOLS["reds4"])


def _refuse_interpolation(runner: Any, dataset: str) -> None:
    if runner.spec.kind == "interpolation":
        raise ValueError(f"{runner.spec.arch} (pa_frames=0) interpolates frames; it is benchmarked on "
                         f"Vimeo-90K-T (inference_vimeo90k.py --dataset vimeo90k), not on {dataset}")


def main_vimeo(argv: list[str] | None = None) -> dict[str, Any]:
    """``inference_vimeo90k.py``: Vimeo-90K-T (centre frame), Vid4 or UDM10 (all frames); Y PSNR/SSIM.
    A frame-interpolation network (VRT task 009) is scored on Vimeo-90K-T's im4 from the GT frames
    im1, im3, im5, im7, on RGB."""
    parser = argparse.ArgumentParser(description=main_vimeo.__doc__)
    add_benchmark_arguments(parser)
    parser.add_argument("--dataset", default="vimeo90k", choices=tuple(DATASET_DEFAULTS))
    parser.add_argument("--gt-root")
    parser.add_argument("--lq-root")
    parser.add_argument("--meta-file", help="Vimeo-90K-T list (sep_testlist.txt or BasicSR meta info)")
    parser.add_argument("--lq-from-gt", action="store_true",
                        help="arbitrary-scale models: make the LQ from the GT at --scale (default without --lq-root)")
    parser.add_argument("--downsample-mode", default="torch", choices=("torch", "core"))
    args = parser.parse_args(argv)
    defaults = DATASET_DEFAULTS[args.dataset]
    gt_root = args.gt_root or defaults["gt_root"]

    def clips_for(runner: Any) -> tuple[list[BenchmarkClip], LQFromGT | None]:
        lq_root = args.lq_root or defaults["lq_root"]
        if runner.spec.kind == "interpolation":
            if args.dataset != "vimeo90k":
                _refuse_interpolation(runner, args.dataset)
            return vimeo_interpolation_clips(gt_root, args.meta_file or defaults["meta_file"]), None
        if args.dataset == "vimeo90k":
            if args.lq_from_gt or runner.spec.nonblind_denoising:
                raise SystemExit("error: Vimeo-90K-T is scored on its LQ septuplets; LQ-from-GT is for folders")
            return vimeo_clips(gt_root, lq_root, args.meta_file or defaults["meta_file"]), None
        rule = _lq_rule(args, runner, args.lq_root is not None)
        return folder_clips(gt_root, None if rule is not None else lq_root), rule

    def protocol_for(runner: Any) -> Protocol:
        interpolating = runner.spec.kind == "interpolation" and args.dataset == "vimeo90k"
        return PROTOCOLS["vimeo90k_interpolation" if interpolating else args.dataset]

    return run_benchmark(args, args.dataset, clips_for, protocol_for)
