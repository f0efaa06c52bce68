"""Make LR frames from a tree of HR clip folders: BI (MATLAB bicubic) or BD (DUF Gaussian blur).

    python scripts/data_preparation/generate_lr.py --input datasets/Vid4/GT --output datasets/Vid4/BIx4 --mode BI
    python scripts/data_preparation/generate_lr.py --input datasets/Vid4/GT --output datasets/Vid4/BDx4 --mode BD

Every image below ``--input`` becomes a PNG at the same relative path below
``--output``. BI is ``vsrt.utils.imresize`` at ``1 / scale`` (MATLAB ``imresize``
bicubic with antialiasing, as the ``BIx4`` sets were made); BD is
``vsrt.data.duf_downsample`` (13x13 Gaussian, sigma ``0.4 * scale`` = 1.6 at x4).
Both round to uint8. Frames whose size is not a multiple of the scale are an
error unless ``--mod-crop`` is given (the GT must then be mod-cropped too).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
from tqdm import tqdm

try:
    from vsrt.data.data_util import (
        DEGRADATIONS,
        IMAGE_EXTENSIONS,
        degrade_frames,
        read_image,
    )
except ImportError:  # run from a checkout without installing vsrt
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from vsrt.data.data_util import (
        DEGRADATIONS,
        IMAGE_EXTENSIONS,
        degrade_frames,
        read_image,
    )
from vsrt.data.transforms import mod_crop


def find_frames(root: Path) -> list[Path]:
    """Image files below ``root`` (any depth), sorted."""
    if not root.is_dir():
        raise FileNotFoundError(f"Input folder not found: {root}")
    frames = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                    and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not frames:
        raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) below {root}")
    return frames


def generate_lr(input_dir: Path, output_dir: Path, scale: int = 4, mode: str = "BI",
                allow_mod_crop: bool = False) -> int:
    """Write the LR version of every frame below ``input_dir``; returns the number of frames."""
    frames = find_frames(input_dir)
    for path in tqdm(frames, unit="frame", desc=f"{mode}x{scale}"):
        hr = read_image(path)
        if hr.shape[0] % scale or hr.shape[1] % scale:
            if not allow_mod_crop:
                raise ValueError(f"{path} is {hr.shape[1]}x{hr.shape[0]}, not a multiple of {scale}; "
                                 "pass --mod-crop (and mod-crop the GT the same way)")
            hr = mod_crop(hr, scale)
        (lr,) = degrade_frames([hr], scale, mode)
        target = (output_dir / path.relative_to(input_dir)).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(target), lr):
            raise OSError(f"Cannot write {target}")
    return len(frames)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, type=Path, help="HR clips: <clip>/<frame>.png, any depth")
    parser.add_argument("--output", required=True, type=Path, help="LR output folder (same layout)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--mode", choices=DEGRADATIONS, default="BI", help="BI: bicubic; BD: Gaussian blur")
    parser.add_argument("--mod-crop", action="store_true", help="crop frames to a multiple of the scale")
    args = parser.parse_args(argv)
    try:
        count = generate_lr(args.input, args.output, args.scale, args.mode, args.mod_crop)
    except (OSError, ValueError) as err:
        print(f"generate_lr: error: {err}", file=sys.stderr)
        return 1
    print(f"Wrote {count} {args.mode}x{args.scale} frames to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
