"""``python -m vsrt export``: write an ONNX or ``.pt2`` file of a network, checked against eager.

    python -m vsrt export --model BasicVSR_REDS --format onnx --frames 8 --size 64 64 -o basicvsr.onnx
    python -m vsrt export --opt options/test/X.yml --weights net.pth --format pt2 --frames 6 --size 64 64 -o x.pt2

The file is written under a temporary name, run on a fresh random clip (ONNX Runtime on the CPU,
``torch.export.load`` for pt2) and compared with the eager network on the same clip; it gets its
final name only when the largest difference is within ``--tolerance``. MIA-VSR's files also output
the kept-token fractions of every masked block, which must equal eager's.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from vsrt.inference.arguments import HelpFormatter

logger = logging.getLogger("vsrt")
DEFAULT_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vsrt export", formatter_class=HelpFormatter,
                                     description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="zoo preset name (python -m vsrt zoo list)")
    source.add_argument("--opt", help="option file whose network_g (and pretrain_network_g) to export")
    parser.add_argument("--weights", help="checkpoint (default: the preset's or the option file's)")
    parser.add_argument("--no-download", action="store_true", help="never download a preset's weights")
    parser.add_argument("--format", choices=("onnx", "pt2"), help="default: from the output's suffix")
    parser.add_argument("--frames", type=int, required=True, help="clip length the graph takes")
    parser.add_argument("--size", type=int, nargs=2, required=True, metavar=("H", "W"),
                        help="LR frame size the graph takes (larger frames are tiled by the runtime)")
    parser.add_argument("--scale", help="SAVSR: the scale to fix in the graph, e.g. 4, 3.5 or 2x3 (default 4)")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="weights and input type")
    parser.add_argument("--dynamic", action="store_true",
                        help="symbolic frame height and width: refused, with the reason, by every current "
                        "architecture (each computes sizes from the frame size in Python)")
    parser.add_argument("--tolerance", type=float,
                        help="largest |exported - eager| accepted (default 1e-4 fp32, 2e-2 fp16)")
    parser.add_argument("--optimize", action="store_true",
                        help="ONNX: run onnxscript's graph optimiser too (folds the constant index arithmetic; "
                        "slow on large graphs, and ONNX Runtime folds it anyway when it loads the file)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    parser.add_argument("-o", "--output", required=True, help="output file (.onnx or .pt2)")
    return parser


def check_arguments(args: argparse.Namespace) -> str:
    """The format; errors for bad arguments, before torch is imported."""
    from vsrt.zoo import check_preset_name

    check_preset_name(args.model)
    suffix = Path(args.output).suffix.lower().lstrip(".")
    fmt = args.format or suffix
    if fmt not in ("onnx", "pt2"):
        raise ValueError(f"-o {args.output}: give a .onnx or .pt2 file name, or --format")
    if suffix != fmt:
        raise ValueError(f"-o {args.output}: a {fmt} file must end in .{fmt}")
    for flag, path in (("--opt", args.opt), ("--weights", args.weights)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{flag}: file not found: {path}")
    if args.frames < 1 or min(args.size) < 1:
        raise ValueError(f"--frames {args.frames} --size {args.size[0]} {args.size[1]}: must be positive")
    if args.tolerance is not None and args.tolerance <= 0:
        raise ValueError(f"--tolerance {args.tolerance}: must be positive")
    output = Path(args.output)
    if output.exists() and not args.force:
        raise FileExistsError(f"{output} exists: give --force to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(output.parent, os.W_OK):
        raise PermissionError(f"{output.parent} is not writable")
    return fmt


def export(args: argparse.Namespace) -> dict[str, Any]:
    """Run the command; returns what it printed as a dict (file, differences)."""
    fmt = check_arguments(args)
    import torch

    from vsrt.export.graph import (
        ExportInfo,
        check_input_shape,
        exportable,
        fixed_size_reason,
        trace,
        write_onnx,
        write_pt2,
    )
    from vsrt.export.verify import verify
    from vsrt.inference.loading import load_model
    from vsrt.inference.spec import resolve_scale
    from vsrt.publish import publish

    if fmt == "onnx":
        from vsrt.export.graph import require

        require("onnx", "onnxscript", "onnxruntime")  # before minutes of tracing
    loaded = load_model(opt=args.opt, model=args.model, weights=args.weights, allow_download=not args.no_download)
    spec, arch, size = loaded.spec, loaded.network_g["type"], (args.size[0], args.size[1])
    check_input_shape(spec, arch, args.frames, size)
    scale = resolve_scale(loaded.net, spec, args.scale)
    pair = (float(scale[0]), float(scale[1])) if spec.arbitrary_scale else None
    channels = 3 + int(spec.nonblind_denoising)
    dtype = torch.float16 if args.precision == "fp16" else torch.float32
    net = loaded.net.to(dtype)
    wrapper = exportable(net, spec, pair, args.frames)
    tolerance = args.tolerance or DEFAULT_TOLERANCE[args.precision]
    info = ExportInfo(arch=arch, label=loaded.label, spec=dataclasses.asdict(spec), frames=args.frames,
                      channels=channels, size=size, scale=pair, precision=args.precision,
                      outputs=["output", "kept_fraction"] if wrapper.with_masks else ["output"],
                      tolerance=tolerance, network_g=loaded.network_g)
    example = torch.rand(info.input_shape(), generator=torch.Generator().manual_seed(0)).to(dtype)
    logger.info("tracing %s (%d frames of %dx%d, %s)", loaded.label, args.frames, *size, args.precision)
    if args.dynamic:
        raise ValueError(f"{arch} cannot be exported with a dynamic frame size: {fixed_size_reason(arch)}. Export "
                         "one --size without --dynamic; vsrt upscale --backend onnxruntime tiles larger frames")
    try:
        program = trace(wrapper, example)
    except RuntimeError as err:
        if args.precision != "fp16":
            raise
        raise ValueError(f"{arch} cannot be traced in fp16 ({str(err).splitlines()[0][:160]}): its flow estimation "
                         "and warping stay fp32 by design (fp16 sampling positions move pixels). Export fp32; "
                         "a runtime may still run the rest in fp16 (TensorRT --fp16)") from err
    output = Path(args.output)
    handle, tmp_name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.stem}.", suffix=f".tmp.{fmt}")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        logger.info("writing %s", fmt.upper())
        if fmt == "onnx":
            write_onnx(program, info, str(tmp), optimize=args.optimize)
        else:
            write_pt2(program, info, str(tmp))
        logger.info("checking the exported file against the eager network on a fresh clip")
        result = verify(tmp, wrapper, info)
        if result["max_abs_diff"] > tolerance or not result.get("kept_equal", True):
            raise ValueError(f"the exported {fmt} differs from eager by {result['max_abs_diff']:.3g} (tolerance "
                             f"{tolerance:g}){'' if result.get('kept_equal', True) else ' and keeps other tokens'}"
                             f": not written")
        publish(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    result["file"] = str(output)
    kept = "; kept tokens identical" if "kept_equal" in result else ""
    print(f"wrote {output} ({fmt}, {arch}, {args.frames} frames of {size[0]}x{size[1]} LR, "
          f"{args.precision}); max |exported - eager| = {result['max_abs_diff']:.3g} (tolerance {tolerance:g})"
          f"{kept}")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return export(args)
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError, ImportError, KeyError) as err:
        print(f"vsrt export: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
