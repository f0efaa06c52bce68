"""Command lines of the benchmark scripts ``inference_reds.py`` and ``inference_vimeo90k.py``.

Arguments, data folders and the output folder are checked before torch is imported
(:mod:`vsrt.inference.arguments`): a typo, a missing folder, an unwritable or already used output folder
is an error at once, not after the model is loaded or the evaluation has run.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsrt.inference.arguments import (
    HelpFormatter,
    check_inputs,
    data_label,
    dataset_of_option_file,
    experiment_name,
    option_file_data,
    prepare_output,
)
from vsrt.inference.protocols import PROTOCOLS, REDS4_CLIPS, Protocol

if TYPE_CHECKING:
    from vsrt.inference.datasets import BenchmarkClip, LQFromGT

REDS4_DEFAULTS = {"gt_root": "datasets/REDS4/GT", "lq_root": "datasets/REDS4/sharp_bicubic"}
DATASET_DEFAULTS = {
    "vimeo90k": {"gt_root": "datasets/vimeo90k/vimeo_septuplet/sequences",
                 "lq_root": "datasets/vimeo90k/vimeo_septuplet_matlabLRx4/sequences",
                 "meta_file": "datasets/vimeo90k/vimeo_septuplet/sep_testlist.txt"},
    "vid4": {"gt_root": "datasets/Vid4/GT", "lq_root": "datasets/Vid4/BIx4"},
    "udm10": {"gt_root": "datasets/UDM10/GT", "lq_root": "datasets/UDM10/BDx4"},
}
# LQ folders for networks trained on BD degradation (Gaussian blur, x4 subsampling), e.g. vrt_x4_vimeo_bd
BD_LQ_ROOTS = {"vimeo90k": "datasets/vimeo90k/vimeo_septuplet_BDLRx4/sequences", "vid4": "datasets/Vid4/BDx4",
               "udm10": "datasets/UDM10/BDx4"}
# VRT README commands per test set (``--tile T P P --tile_overlap To Po Po``); other sets get the
# defaults of main_test_vrt.py. Zoo presets may override them per dataset.
VRT_DEFAULT_TILES = {"temporal_chunk": 40, "temporal_overlap": 2, "tile": 128, "tile_overlap": 20}
VRT_DATASET_TILES = {
    "reds4": VRT_DEFAULT_TILES,
    "vid4": {"temporal_chunk": 32, "temporal_overlap": 2, "tile": 128, "tile_overlap": 20},
    "udm10": {"temporal_chunk": 32, "temporal_overlap": 2, "tile": 128, "tile_overlap": 20},
    "vimeo90k": {"temporal_chunk": 8, "temporal_overlap": 0, "tile": 0, "tile_overlap": 0},
}


def add_model_arguments(parser: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    """Model, device, precision and tiling options shared by the scripts and ``vsrt upscale``; returns the
    ``--opt`` / ``--model`` group (``vsrt upscale`` adds ``--onnx`` to it)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--opt", help="option file whose network_g (and path.pretrain_network_g) is used; "
                        "your own trained model: --opt its training option file --weights its net_g_*.pth")
    source.add_argument("--model", help="zoo preset name (python -m vsrt zoo list)")
    parser.add_argument("--weights", help="checkpoint file, loaded with strict=True (default: the option "
                        "file's path.pretrain_network_g, or the preset's file in the torch hub cache)")
    parser.add_argument("--no-download", action="store_true", help="never download a preset's checkpoint")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when available)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"),
                        help="autocast precision (fp16 needs CUDA)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the network's blocks (vsrt.utils.compile; the first clip of each "
                        "size takes longer)")
    parser.add_argument("--no-tf32", dest="tf32", action="store_false",
                        help="full-precision fp32 matmuls and convolutions on CUDA (default: TF32 tensor cores)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scale", help="output scale of arbitrary-scale networks: S or S_H,S_W (height, width) "
                      "(default: the network's own scale)")
    size.add_argument("--target-size", metavar="H,W",
                      help="output frame size H,W or HxW instead of --scale: an arbitrary-scale network "
                      "runs each video or clip at scale H/h, W/w; a fixed-scale network accepts only its own "
                      "output size (benchmarks: the GT size)")
    parser.add_argument("--noise-sigma", type=float,
                        help="noise level (0-255) for non-blind denoisers (required by them; no default)")
    tiles = parser.add_argument_group("tiling (default: the model's official protocol)")
    tiles.add_argument("--chunk", type=int, help="frames per temporal chunk (0: whole clip)")
    tiles.add_argument("--chunk-overlap", type=int, help="frames shared by neighbouring chunks")
    tiles.add_argument("--tile", type=int, nargs="+", metavar="PX", help="spatial tile size in LQ pixels: S or H W")
    tiles.add_argument("--tile-overlap", type=int, nargs="+", metavar="PX", help="overlap of tiles: O or OH OW")
    return source


def add_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--output", help="results folder (default: results/<experiment>/<dataset>, the "
                        "experiment being the option file's name or the zoo preset)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite the results (metrics, images) already in the results folder")
    parser.add_argument("--save-images", action="store_true",
                        help="also write the scored output frames (PNG) under <results folder>/images")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--temporal-metrics", action="store_true",
                        help="also score each clip's temporal consistency: tOF and the warping error "
                        "(docs/metrics.md; protocols that score whole clips only)")


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
                        target_size, compile=args.compile, tf32=args.tf32)
    return loaded, runner


def check_temporal_metrics(args: argparse.Namespace, protocol: Protocol) -> None:
    if getattr(args, "temporal_metrics", False) and protocol.centre_frame_only:
        raise SystemExit(f"error: --temporal-metrics needs whole clips, but {protocol.dataset} is scored on the "
                         "centre frame only")


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
                  protocol: Protocol | Callable[[Any], Protocol], out_dir: Path, label: str) -> dict[str, Any]:
    """Load, evaluate, print the table and write ``metrics.csv`` / ``metrics.json`` into ``out_dir`` (already
    checked by :func:`prepare_output`); return the JSON dict. ``label`` names the data in the table.

    ``protocol`` may depend on the network: a function of the :class:`ClipRunner`.
    """
    import json

    from vsrt.inference.evaluate import evaluate, format_table, write_reports

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    if isinstance(protocol, Protocol):
        check_temporal_metrics(args, protocol)  # before the network is loaded
    loaded, runner = build_runner(args, dataset)
    if not isinstance(protocol, Protocol):
        protocol = protocol(runner)
        check_temporal_metrics(args, protocol)
    clips, lq_from_gt = clips_for(runner, loaded)
    save_dir = out_dir / "images" if args.save_images else None
    scores = evaluate(runner, clips, protocol, lq_from_gt, save_dir, progress=not args.quiet,
                      temporal=args.temporal_metrics)
    print(f"{loaded.label} on {label} ({protocol.channel}, crop_border {protocol.crop_border}"
          f"{', centre frame only' if protocol.centre_frame_only else ''}):")
    print(format_table(scores, protocol))
    if save_dir is not None:
        print_saved_images(save_dir, scores)
    per_clip_scale = loaded.spec.arbitrary_scale and runner.target_size is not None  # no published score
    published = [] if per_clip_scale else \
        published_scores(loaded, dataset, runner.scale if loaded.spec.arbitrary_scale else None)
    for s in published:
        print(f"published: {s['psnr']:.2f} / {s['ssim'] if s['ssim'] is not None else '-'} ({s['source']})")
    tiles = runner.tiles
    info = {"model": loaded.label, "arch": loaded.spec.arch, "weights": str(loaded.weights) if loaded.weights else None,
            "checksum_verified": loaded.checksum_verified, "dataset": dataset, "data": label,
            "images": str(save_dir) if save_dir is not None else None,
            "protocol": {"channel": protocol.channel, "crop_border": protocol.crop_border,
                         "centre_frame_only": protocol.centre_frame_only, "image": "tensor2img uint8",
                         "averaging": "mean over frames per clip, then mean over clips",
                         "temporal": "tof: TecoGAN tOF (Farneback), warping_error: masked MSE on [0, 1], flow on "
                         "the GT; one value per clip" if args.temporal_metrics else None},
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


def print_saved_images(save_dir: Path, scores: Sequence[Any], max_rows: int = 20) -> None:
    """Where the output frames went: one line per clip folder (at most ``max_rows``)."""
    folders = [save_dir / s.clip.replace("/", "_") for s in scores]
    print(f"saved {sum(s.frames for s in scores)} output frames (PNG) under {save_dir}:")
    for folder, s in list(zip(folders, scores))[:max_rows]:
        print(f"  {folder}/ ({s.frames} frame{'s' if s.frames != 1 else ''})")
    if len(folders) > max_rows:
        print(f"  ... and {len(folders) - max_rows} more clip folders")


def _lq_rule(args: argparse.Namespace, runner: Any, lq_root_given: bool) -> LQFromGT | None:
    """When the LQ frames are made from the GT: denoisers always, arbitrary-scale nets without an LQ folder."""
    from vsrt.inference.datasets import LQFromGT

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

    try:
        main(argv)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        if isinstance(err, RuntimeError):  # only a checksum mismatch or a refused checkpoint is expected
            from vsrt.zoo import ChecksumError

            safe_load = sys.modules.get("vsrt.utils.safe_load")  # loaded with the weights
            refused = safe_load is not None and isinstance(err, safe_load.CheckpointError)
            if not (isinstance(err, ChecksumError) or refused):
                raise
        print(f"error: {err.args[0] if isinstance(err, KeyError) and err.args else err}", file=sys.stderr)
        raise SystemExit(2) from None


def reds_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python inference_reds.py", description=main_reds.__doc__,
                                     formatter_class=HelpFormatter)
    add_benchmark_arguments(parser)
    parser.add_argument("--gt-root", help=f"GT clip folders (default: the option file's dataroot_gt, else "
                        f"{REDS4_DEFAULTS['gt_root']})")
    parser.add_argument("--lq-root", help=f"LQ clip folders (default: the option file's dataroot_lq, else "
                        f"{REDS4_DEFAULTS['lq_root']})")
    parser.add_argument("--clips", nargs="+", default=list(REDS4_CLIPS), help="clip folders to score")
    return parser


def main_reds(argv: list[str] | None = None) -> dict[str, Any]:
    """``inference_reds.py``: REDS4 (clips 000, 011, 015, 020), RGB PSNR/SSIM on every frame."""
    args = reds_parser().parse_args(argv)
    check_inputs(args, {}, {})
    from_options = option_file_data(args.opt)
    gt_root = args.gt_root or from_options.get("gt_root") or REDS4_DEFAULTS["gt_root"]
    lq_root = args.lq_root or from_options.get("lq_root") or REDS4_DEFAULTS["lq_root"]
    check_inputs(args, {"--gt-root": gt_root, "--lq-root": lq_root}, {})
    for clip in args.clips:
        check_inputs(args, {f"--clips {clip} (GT)": str(Path(gt_root) / clip),
                            f"--clips {clip} (LQ)": str(Path(lq_root) / clip)}, {})
    out_dir = prepare_output(args.output or Path("results") / experiment_name(args) / "reds4", args.force)
    label = data_label("reds4", gt_root, REDS4_DEFAULTS["gt_root"])

    def clips_for(runner: Any, loaded: Any) -> tuple[list[BenchmarkClip], LQFromGT | None]:
        from vsrt.inference.datasets import folder_clips

        _refuse_interpolation(runner, "REDS4")
        return folder_clips(gt_root, lq_root, args.clips), None

    return run_benchmark(args, "reds4", clips_for, PROTOCOLS["reds4"], out_dir, label)


def _refuse_interpolation(runner: Any, dataset: str) -> None:
    if runner.spec.kind == "interpolation":
        raise ValueError(f"{runner.spec.arch} (pa_frames=0) interpolates frames; it is benchmarked on "
                         f"Vimeo-90K-T (inference_vimeo90k.py --dataset vimeo90k), not on {dataset}")


def vimeo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python inference_vimeo90k.py",
                                     description=main_vimeo.__doc__, formatter_class=HelpFormatter)
    add_benchmark_arguments(parser)
    parser.add_argument("--dataset", choices=tuple(DATASET_DEFAULTS),
                        help="test set (default: the option file's test set, else vimeo90k)")
    parser.add_argument("--gt-root", help="GT folder (default: the option file's dataroot_gt, else the "
                        "test set's folder under datasets/, e.g. datasets/Vid4/GT)")
    parser.add_argument("--lq-root", help="LQ folder (default: the option file's dataroot_lq, else the test "
                        "set's BI folder, or its BD folder for a BD zoo model, e.g. datasets/Vid4/BIx4)")
    parser.add_argument("--meta-file", help="Vimeo-90K-T list, sep_testlist.txt or BasicSR meta info (default: "
                        "the option file's meta_info_file, else " + DATASET_DEFAULTS["vimeo90k"]["meta_file"] + ")")
    parser.add_argument("--lq-from-gt", action="store_true",
                        help="arbitrary-scale models: make the LQ from the GT at --scale (default without --lq-root)")
    parser.add_argument("--downsample-mode", default="torch", choices=("torch", "core"),
                        help="how --lq-from-gt downsamples: torch (antialiased bicubic, SAVSR's) or core "
                        "(MATLAB imresize)")
    return parser


def main_vimeo(argv: list[str] | None = None) -> dict[str, Any]:
    """``inference_vimeo90k.py``: Vimeo-90K-T (centre frame), Vid4 or UDM10 (all frames); Y PSNR/SSIM.
    A frame-interpolation network (VRT task 009) is scored on Vimeo-90K-T's im4 from the GT frames
    im1, im3, im5, im7, on RGB."""
    args = vimeo_parser().parse_args(argv)
    check_inputs(args, {}, {})
    from_options = option_file_data(args.opt)
    dataset = args.dataset or dataset_of_option_file(from_options) or "vimeo90k"
    if args.dataset is None and args.opt is not None and dataset_of_option_file(from_options) is None \
            and from_options.get("gt_root"):
        raise ValueError(f"{args.opt}: cannot tell which test set {from_options['gt_root']} is; give --dataset")
    same_set = dataset_of_option_file(from_options) == dataset
    defaults = DATASET_DEFAULTS[dataset]
    gt_root = args.gt_root or (from_options.get("gt_root") if same_set else None) or defaults["gt_root"]
    meta_file = args.meta_file or (from_options.get("meta_file") if same_set else None) or defaults.get("meta_file")
    check_inputs(args, {"--gt-root": gt_root}, {"--meta-file": meta_file if dataset == "vimeo90k" else None})
    out_dir = prepare_output(args.output or Path("results") / experiment_name(args) / dataset, args.force)
    label = data_label(dataset, gt_root, defaults["gt_root"])

    lq_root_given = args.lq_root or (from_options.get("lq_root") if same_set else None)  # str or None

    def lq_root_for(loaded: Any) -> str:
        if lq_root_given:
            return lq_root_given
        bd = loaded.preset is not None and loaded.preset.degradation == "BD"
        return BD_LQ_ROOTS[dataset] if bd else defaults["lq_root"]

    def clips_for(runner: Any, loaded: Any) -> tuple[list[BenchmarkClip], LQFromGT | None]:
        from vsrt.inference.datasets import folder_clips, vimeo_clips, vimeo_interpolation_clips

        lq_root = lq_root_for(loaded)
        if runner.spec.kind == "interpolation":
            if dataset != "vimeo90k":
                _refuse_interpolation(runner, dataset)
            return vimeo_interpolation_clips(gt_root, meta_file), None
        if dataset == "vimeo90k":
            if args.lq_from_gt or runner.spec.nonblind_denoising:
                raise ValueError("Vimeo-90K-T is scored on its LQ septuplets; LQ-from-GT is for folders")
            return vimeo_clips(gt_root, lq_root, meta_file), None
        rule = _lq_rule(args, runner, bool(lq_root_given))
        return folder_clips(gt_root, None if rule is not None else lq_root), rule

    def protocol_for(runner: Any) -> Protocol:
        interpolating = runner.spec.kind == "interpolation" and dataset == "vimeo90k"
        return PROTOCOLS["vimeo90k_interpolation" if interpolating else dataset]

    return run_benchmark(args, dataset, clips_for, protocol_for, out_dir, label)
