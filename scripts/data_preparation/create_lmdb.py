"""Pack an image tree into a BasicSR-compatible LMDB.

    python scripts/data_preparation/create_lmdb.py --dataset REDS \\
        --input datasets/REDS/train_sharp --output datasets/REDS/train_sharp_with_val.lmdb
    python scripts/data_preparation/create_lmdb.py --dataset Vimeo90K \\
        --input datasets/vimeo90k/vimeo_septuplet/sequences \\
        --list datasets/vimeo90k/vimeo_septuplet/sep_trainlist.txt --output datasets/vimeo90k/train_GT.lmdb

Layout (what vsrt's and BasicSR's readers expect): ``data.mdb``, ``lock.mdb`` and
``meta_info.txt`` with one line ``<key>.png (h,w,c) <compression level>`` per
image; values are PNG bytes (``cv2.imencode``); keys are the paths relative to
``--input`` without extension: ``000/00000000`` (REDS), ``00001/0001/im4``
(Vimeo90K), ``clip/frame`` (folder).

Differences from BasicSR's ``create_lmdb.py``: paths come from the command
line; for Vimeo90K all seven frames are stored by default (``--center-only``
keeps only ``im4``, BasicSR's GT behaviour), which the recurrent datasets need;
the LMDB is written to a temporary folder and renamed when complete, so an
interrupted run leaves no half-written database; the map grows when full.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    from vsrt.data.lmdb_util import DATASETS, collect_items, write_lmdb
except ImportError:  # run from a checkout without installing vsrt
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from vsrt.data.lmdb_util import DATASETS, collect_items, write_lmdb


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=DATASETS,
                        help="REDS: <clip>/<frame>.png; Vimeo90K: <clip>/<seq>/im<n>.png; folder: any image tree")
    parser.add_argument("--input", required=True, type=Path, help="folder the keys are relative to")
    parser.add_argument("--output", required=True, type=Path, help="target folder, ending in .lmdb")
    parser.add_argument("--list", type=Path, default=None,
                        help="Vimeo90K: sep_trainlist.txt / sep_testlist.txt (default: every septuplet found)")
    parser.add_argument("--center-only", action="store_true", help="Vimeo90K: store im4 only (BasicSR's GT LMDB)")
    parser.add_argument("--compress-level", type=int, default=1, choices=range(10), metavar="0-9",
                        help="PNG compression level (default 1)")
    parser.add_argument("--multiprocess", action="store_true", help="read and encode images in worker processes")
    parser.add_argument("--n-thread", type=int, default=None,
                        help="worker processes (implies --multiprocess; default: all CPUs)")
    parser.add_argument("--force", action="store_true", help="replace an existing output")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if (args.list is not None or args.center_only) and args.dataset != "Vimeo90K":
        raise SystemExit("--list and --center-only apply to --dataset Vimeo90K only")
    n_thread = 1
    if args.multiprocess or args.n_thread is not None:
        n_thread = args.n_thread or os.cpu_count() or 1
    try:
        items = collect_items(args.dataset, args.input, args.list, args.center_only)
        count = write_lmdb(items, args.output, args.compress_level, n_thread, args.force)
    except (OSError, ValueError) as err:
        print(f"create_lmdb: error: {err}", file=sys.stderr)
        return 1
    print(f"Wrote {count} images to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
