"""REDS training set for recurrent networks (BasicSR's ``REDSRecurrentDataset``).

Layout: ``dataroot_gt/<clip>/<frame:08d>.png`` and the same under
``dataroot_lq`` (``train_sharp`` and ``train_sharp_bicubic/X4`` after
``scripts/data_preparation/regroup_reds_dataset.py``), or two LMDBs keyed
``<clip>/<frame:08d>``. ``meta_info_file`` lines are ``<clip> <frame count> (h,w,c)``
(``vsrt/data/meta_info/meta_info_REDS_GT.txt``).

Same keys, random draws (interval, window start, reverse, crop, flips) and
outputs as BasicSR. Difference: a clip's frame count comes from the meta file
instead of the hard-coded 100, so clips of any length work.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from vsrt.data.data_util import crop_augment_stack, read_meta_info, require_option
from vsrt.data.file_client import build_file_client
from vsrt.registry import DATASET_REGISTRY

REDS4_CLIPS = ("000", "011", "015", "020")
OFFICIAL_VAL_CLIPS = tuple(f"{i:03d}" for i in range(240, 270))


def validation_clips(val_partition: str | list[str]) -> tuple[str, ...]:
    """Clips held out for validation: ``REDS4``, ``official`` (240-269), or an explicit list of names."""
    if isinstance(val_partition, (list, tuple)):
        return tuple(str(c) for c in val_partition)
    if val_partition == "REDS4":
        return REDS4_CLIPS
    if val_partition == "official":
        return OFFICIAL_VAL_CLIPS
    raise ValueError(f"val_partition '{val_partition}' is not 'REDS4', 'official' or a list of clip names")


def read_clip_lengths(meta_info_file: str) -> dict[str, int]:
    """``{clip: frame count}`` from a meta file with lines ``<clip> <count> (h,w,c)``."""
    lengths = {}
    for line_no, row in enumerate(read_meta_info(meta_info_file), start=1):
        if len(row) < 2 or not row[1].isdigit():
            raise ValueError(f"{meta_info_file}, line {line_no}: expected '<clip> <frame count> (h,w,c)', "
                             f"got '{' '.join(row)}'")
        lengths[row[0]] = int(row[1])
    return lengths


@DATASET_REGISTRY.register()
class REDSRecurrentDataset(Dataset):
    """Windows of ``num_frame`` consecutive LQ/GT frames, one item per (clip, start frame).

    Options (BasicSR names): ``dataroot_gt``, ``dataroot_lq``, ``meta_info_file``,
    ``val_partition`` (``REDS4`` | ``official``), ``test_mode`` (keep only the
    partition), ``io_backend`` (``disk`` | ``lmdb``), ``num_frame``, ``gt_size``,
    ``interval_list``, ``random_reverse``, ``use_hflip``, ``use_rot``, ``scale``.
    Items: ``lq (t, c, h, w)``, ``gt (t, c, H, W)`` RGB in [0, 1], ``key`` ``'000/00000000'``.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        name = type(self).__name__
        self.opt = opt
        self.scale = int(require_option(opt, "scale", name))
        self.gt_size = int(require_option(opt, "gt_size", name))
        self.num_frame = int(require_option(opt, "num_frame", name))
        self.gt_root = Path(require_option(opt, "dataroot_gt", name))
        self.lq_root = Path(require_option(opt, "dataroot_lq", name))
        self.interval_list = list(opt.get("interval_list") or [1])
        self.random_reverse = bool(opt.get("random_reverse", False))
        self.use_hflip = bool(opt.get("use_hflip", False))
        self.use_rot = bool(opt.get("use_rot", False))

        held_out = validation_clips(require_option(opt, "val_partition", name))
        lengths = read_clip_lengths(require_option(opt, "meta_info_file", name))
        keep_held_out = bool(opt.get("test_mode", False))
        self.clip_lengths = {clip: n for clip, n in lengths.items() if (clip in held_out) == keep_held_out}
        if not self.clip_lengths:
            raise ValueError(f"{name}: no clip of {opt['meta_info_file']} is left "
                             f"(test_mode={keep_held_out}, held out: {', '.join(held_out)})")
        longest_window = self.num_frame * max(self.interval_list)
        for clip, n in self.clip_lengths.items():
            if n < longest_window:
                raise ValueError(f"{name}: clip {clip} has {n} frames, fewer than num_frame * interval "
                                 f"= {longest_window}")
        self.keys = [f"{clip}/{i:08d}" for clip, n in self.clip_lengths.items() for i in range(n)]

        self.file_client = build_file_client(opt.get("io_backend"), {"lq": self.lq_root, "gt": self.gt_root}, name)
        self.is_lmdb = self.file_client.backend == "lmdb"

    def frame_path(self, root: Path, clip: str, frame: int) -> str | Path:
        return f"{clip}/{frame:08d}" if self.is_lmdb else root / clip / f"{frame:08d}.png"

    def __getitem__(self, index: int) -> dict[str, Any]:
        key = self.keys[index]
        clip, frame_name = key.split("/")
        interval = random.choice(self.interval_list)
        window = self.num_frame * interval
        start = int(frame_name)
        last_start = self.clip_lengths[clip] - window
        if start > last_start:  # the window would run past the clip: redraw its start
            start = random.randint(0, last_start)
        frames = list(range(start, start + window, interval))
        if self.random_reverse and random.random() < 0.5:
            frames.reverse()

        img_lqs, img_gts = [], []
        for frame in frames:
            img_lqs.append(self.file_client.read_image(self.frame_path(self.lq_root, clip, frame), "lq"))
            gt_path = self.frame_path(self.gt_root, clip, frame)
            img_gts.append(self.file_client.read_image(gt_path, "gt"))
        lq, gt = crop_augment_stack(img_lqs, img_gts, self.gt_size, self.scale, self.use_hflip, self.use_rot,
                                    name=str(gt_path))
        return {"lq": lq, "gt": gt, "key": key}  # lq (t, c, h, w), gt (t, c, H, W)

    def __len__(self) -> int:
        return len(self.keys)

