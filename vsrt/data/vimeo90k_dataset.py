"""Vimeo-90K septuplets for recurrent networks (BasicSR's ``Vimeo90KRecurrentDataset``).

Layout: ``dataroot_gt/<clip>/<seq>/im1.png ... im7.png`` (``vimeo_septuplet/sequences``)
and the same under ``dataroot_lq`` (BIx4 or BDx4), or LMDBs keyed
``<clip>/<seq>/im<n>``; the GT LMDB must hold all 7 frames (``create_lmdb.py``
does by default; BasicSR's stock Vimeo GT LMDB keeps only ``im4``).
``meta_info_file``: one septuplet per line, first token ``00001/0001``; the
official ``sep_trainlist.txt`` works as it is.

Same random draws and outputs as BasicSR, with one deliberate difference:
``random_reverse`` reverses the frame order of the item it is drawn for
(BasicSR reverses a list stored on the dataset, so the order of one item
depends on the items loaded before it in the same worker).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from vsrt.data.data_util import crop_augment_stack, read_meta_info, require_option
from vsrt.data.file_client import build_file_client
from vsrt.registry import DATASET_REGISTRY


def vimeo_neighbors(num_frame: int | None) -> list[int]:
    """Frame numbers (1-based ``im<n>``) of the ``num_frame`` septuplet frames around ``im4``.

    ``None``, ``-1`` and ``7`` mean all seven frames.
    """
    if num_frame in (None, -1, 7):
        return list(range(1, 8))
    if num_frame not in (1, 3, 5):
        raise ValueError(f"num_frame for Vimeo-90K must be 1, 3, 5, 7 or -1 (all), got {num_frame}")
    return [i + (9 - num_frame) // 2 for i in range(num_frame)]


def septuplet_frame(root: Path, key: str, frame: int, lmdb: bool) -> str | Path:
    """Where frame ``im<frame>`` of septuplet ``key`` (``00001/0001``) is: an LMDB key or a PNG path."""
    return f"{key}/im{frame}" if lmdb else root / key / f"im{frame}.png"


@DATASET_REGISTRY.register()
class Vimeo90KRecurrentDataset(Dataset):
    """All (by default) seven LQ and GT frames of a septuplet, cropped and augmented alike.

    Options: ``dataroot_gt``, ``dataroot_lq``, ``meta_info_file``, ``io_backend``,
    ``gt_size``, ``use_hflip``, ``use_rot``, ``random_reverse``, ``scale``,
    ``flip_sequence`` (required: true appends the reversed sequence, 7 -> 14
    frames), ``num_frame`` (-1 / 7 for all, or 1, 3, 5 centred frames);
    ``interval_list`` is accepted and unused, as in BasicSR.
    Items: ``lq (t, c, h, w)``, ``gt (t, c, H, W)``, ``key`` ``'00001/0001'``.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        name = type(self).__name__
        self.opt = opt
        self.scale = int(require_option(opt, "scale", name))
        self.gt_size = int(require_option(opt, "gt_size", name))
        self.flip_sequence = bool(require_option(opt, "flip_sequence", name))
        self.gt_root = Path(require_option(opt, "dataroot_gt", name))
        self.lq_root = Path(require_option(opt, "dataroot_lq", name))
        self.neighbors = vimeo_neighbors(opt.get("num_frame"))
        self.random_reverse = bool(opt.get("random_reverse", False))
        self.use_hflip = bool(opt.get("use_hflip", False))
        self.use_rot = bool(opt.get("use_rot", False))
        self.keys = [row[0] for row in read_meta_info(require_option(opt, "meta_info_file", name))]

        self.file_client = build_file_client(opt.get("io_backend"), {"lq": self.lq_root, "gt": self.gt_root}, name)
        self.is_lmdb = self.file_client.backend == "lmdb"

    def frame_path(self, root: Path, key: str, frame: int) -> str | Path:
        return septuplet_frame(root, key, frame, self.is_lmdb)

    def __getitem__(self, index: int) -> dict[str, Any]:
        neighbors = list(self.neighbors)
        if self.random_reverse and random.random() < 0.5:
            neighbors.reverse()
        key = self.keys[index]
        img_lqs, img_gts = [], []
        for frame in neighbors:
            img_lqs.append(self.file_client.read_image(self.frame_path(self.lq_root, key, frame), "lq"))
            gt_path = self.frame_path(self.gt_root, key, frame)
            img_gts.append(self.file_client.read_image(gt_path, "gt"))
        lq, gt = crop_augment_stack(img_lqs, img_gts, self.gt_size, self.scale, self.use_hflip, self.use_rot,
                                    name=str(gt_path))
        if self.flip_sequence:  # (7, c, h, w) -> (14, c, h, w): the sequence, then its mirror
            lq = torch.cat([lq, lq.flip(0)], dim=0)
            gt = torch.cat([gt, gt.flip(0)], dim=0)
        return {"lq": lq, "gt": gt, "key": key}

    def __len__(self) -> int:
        return len(self.keys)


@DATASET_REGISTRY.register()
class Vimeo90KInterpolationDataset(Dataset):
    """Frame interpolation on Vimeo-90K septuplets (VRT task 009): ``im1, im3, im5, im7`` -> ``im4``.

    Only the GT septuplets are read (``dataroot_gt``, folders or an LMDB with all seven frames);
    the four input frames and the target share one random crop (``gt_size``) and flip/rotation.
    ``random_reverse`` reverses the input order (the target stays the middle frame). The same
    frames are scored by the test protocol (``VideoTestVimeo90KDataset`` with
    ``temporal_scale: 2``). Options: ``dataroot_gt``, ``meta_info_file``, ``io_backend``,
    ``gt_size``, ``use_hflip``, ``use_rot``, ``random_reverse``; ``scale`` must be 1.
    Items: ``lq (4, c, h, w)``, ``gt (1, c, h, w)``, ``key``.
    """

    INPUTS = (1, 3, 5, 7)
    TARGET = 4

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        name = type(self).__name__
        self.opt = opt
        if int(opt.get("scale", 1)) != 1:
            raise ValueError(f"{name}: frame interpolation keeps the frame size; set scale: 1 (got {opt['scale']})")
        self.gt_size = int(require_option(opt, "gt_size", name))
        self.gt_root = Path(require_option(opt, "dataroot_gt", name))
        self.random_reverse = bool(opt.get("random_reverse", False))
        self.use_hflip = bool(opt.get("use_hflip", False))
        self.use_rot = bool(opt.get("use_rot", False))
        self.keys = [row[0] for row in read_meta_info(require_option(opt, "meta_info_file", name))]
        self.file_client = build_file_client(opt.get("io_backend"), {"gt": self.gt_root}, name)
        self.is_lmdb = self.file_client.backend == "lmdb"

    def _read(self, key: str, frame: int) -> Any:
        return self.file_client.read_image(septuplet_frame(self.gt_root, key, frame, self.is_lmdb), "gt")

    def __getitem__(self, index: int) -> dict[str, Any]:
        key = self.keys[index]
        inputs = list(self.INPUTS)
        if self.random_reverse and random.random() < 0.5:
            inputs.reverse()
        frames = [self._read(key, frame) for frame in inputs]
        lq, gt = crop_augment_stack(frames, [self._read(key, self.TARGET)], self.gt_size, 1, self.use_hflip,
                                    self.use_rot, name=f"{self.gt_root}/{key}")
        return {"lq": lq, "gt": gt, "key": key}

    def __len__(self) -> int:
        return len(self.keys)
