"""Copy the REDS validation clips into the training folder as clips 240-269 (BasicSR's layout).

    python scripts/data_preparation/regroup_reds_dataset.py --root datasets/REDS [--dry-run] [--move]
    python scripts/data_preparation/regroup_reds_dataset.py --train datasets/REDS/train_sharp \\
        --val datasets/REDS/val_sharp

With ``--root``, both ``val_sharp -> train_sharp`` and
``val_sharp_bicubic/X4 -> train_sharp_bicubic/X4`` are regrouped. The
``official`` validation partition (``val_partition: official``) then selects
clips 240-269 and ``meta_info_REDS_GT.txt`` lists all 270. Nothing is copied
when a target clip already exists.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

FIRST_VAL_INDEX = 240  # REDS has 240 training clips, 000-239
ROOT_PAIRS = (("train_sharp", "val_sharp"), ("train_sharp_bicubic/X4", "val_sharp_bicubic/X4"))


def plan_regroup(train_dir: Path, val_dir: Path) -> list[tuple[Path, Path]]:
    """(validation clip, new training clip) pairs; raises before anything is copied if one is impossible."""
    for folder in (train_dir, val_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"Folder not found: {folder}")
    plan = []
    for clip in sorted(p for p in val_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not clip.name.isdigit():
            raise ValueError(f"Unexpected validation clip name '{clip.name}' in {val_dir} (expected 000-029)")
        target = train_dir / f"{int(clip.name) + FIRST_VAL_INDEX:03d}"
        if target.exists():
            raise FileExistsError(f"{target} already exists (regrouped before?); nothing was copied")
        plan.append((clip, target))
    if not plan:
        raise ValueError(f"No clip folders in {val_dir}")
    return plan


def regroup(train_dir: Path, val_dir: Path, dry_run: bool = False, move: bool = False) -> list[tuple[Path, Path]]:
    plan = plan_regroup(train_dir, val_dir)
    for source, target in plan:
        print(f"{'move' if move else 'copy'} {source} -> {target}" + (" (dry run)" if dry_run else ""))
        if dry_run:
            continue
        if move:
            shutil.move(str(source), str(target))
        else:
            shutil.copytree(source, target)
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, help="REDS folder holding train_sharp, val_sharp, ...")
    parser.add_argument("--train", type=Path, help="training folder (instead of --root)")
    parser.add_argument("--val", type=Path, help="validation folder (instead of --root)")
    parser.add_argument("--dry-run", action="store_true", help="only print what would be done")
    parser.add_argument("--move", action="store_true", help="move instead of copy")
    args = parser.parse_args(argv)
    if (args.root is None) == (args.train is None or args.val is None):
        parser.error("give either --root, or both --train and --val")
    pairs = ([(args.root / t, args.root / v) for t, v in ROOT_PAIRS] if args.root is not None
             else [(args.train, args.val)])
    try:
        for train_dir, val_dir in pairs:  # check every pair before touching any
            plan_regroup(train_dir, val_dir)
        for train_dir, val_dir in pairs:
            regroup(train_dir, val_dir, args.dry_run, args.move)
    except (OSError, ValueError) as err:
        print(f"regroup_reds_dataset: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
