"""Test / validation sets read from frame folders: whole clips, and Vimeo-90K-T septuplets.

``VideoRecurrentTestDataset`` follows BasicSR's (one item per clip, clips in
sorted order) with these differences: any dataset name works (BasicSR accepts
only Vid4 / REDS4 / REDSofficial); LQ and GT clips are matched by name (BasicSR
zips two sorted listings); ``cache_data: false`` reads a clip when it is asked
for instead of raising; GT is optional (no ``dataroot_gt``: items have no
``gt``); mismatched frame counts or sizes raise errors naming the clip.
``VideoTestVimeo90KDataset`` is BasicSR's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from vsrt.data.data_util import (
    check_scale,
    list_images,
    read_img_seq,
    read_meta_info,
    require_option,
)
from vsrt.data.vimeo90k_dataset import vimeo_neighbors
from vsrt.registry import DATASET_REGISTRY


def _check_disk_backend(opt: dict[str, Any], name: str) -> None:
    backend = (opt.get("io_backend") or {}).get("type", "disk")
    if backend != "disk":
        raise ValueError(f"{name} reads frame folders; io_backend must be 'disk', got '{backend}'")


@DATASET_REGISTRY.register()
class VideoRecurrentTestDataset(Dataset):
    """Whole clips: ``dataroot_lq/<clip>/<frames>`` and ``dataroot_gt/<clip>/<frames>`` (REDS4, Vid4, UDM10, ...).

    Options: ``dataroot_gt`` (optional), ``dataroot_lq``, ``meta_info_file``
    (optional; first token of each line is a clip name, otherwise every
    sub-folder of ``dataroot_lq``), ``cache_data`` (default true), ``scale``
    (when given, GT must be exactly ``scale`` x LQ), ``io_backend: disk``.
    ``num_frame`` and ``padding`` are accepted and unused.
    Items: ``lq (t, c, h, w)``, ``gt (t, c, H, W)``, ``folder`` (the clip name).
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        self.name = f"{type(self).__name__} ('{opt.get('name', '?')}')"
        _check_disk_backend(opt, self.name)
        self.opt = opt
        self.scale = opt.get("scale")
        self.lq_root = Path(require_option(opt, "dataroot_lq", self.name))
        self.gt_root = Path(opt["dataroot_gt"]) if opt.get("dataroot_gt") else None
        self.cache_data = bool(opt.get("cache_data", True))

        if opt.get("meta_info_file"):
            folders = {row[0] for row in read_meta_info(opt["meta_info_file"])}
        elif self.lq_root.is_dir():
            folders = {p.name for p in self.lq_root.iterdir() if p.is_dir() and not p.name.startswith(".")}
        else:
            raise FileNotFoundError(f"{self.name}: dataroot_lq not found: {self.lq_root}")
        if not folders:
            raise ValueError(f"{self.name}: no clip folders in {self.lq_root}")
        self.folders = sorted(folders)

        self.lq_paths: dict[str, list[str]] = {}
        self.gt_paths: dict[str, list[str]] = {}
        for folder in self.folders:
            self.lq_paths[folder] = list_images(self.lq_root / folder)
            if self.gt_root is not None:
                self.gt_paths[folder] = list_images(self.gt_root / folder)
                n_lq, n_gt = len(self.lq_paths[folder]), len(self.gt_paths[folder])
                if n_lq != n_gt:
                    raise ValueError(f"{self.name}: clip {folder} has {n_lq} LQ frames but {n_gt} GT frames")
        self.cache: dict[str, dict[str, torch.Tensor]] = {}
        if self.cache_data:
            for folder in self.folders:
                self.cache[folder] = self.read_clip(folder)

    def read_clip(self, folder: str) -> dict[str, torch.Tensor]:
        """``{'lq': (t, c, h, w)[, 'gt': (t, c, H, W)]}`` read from disk, sizes checked."""
        clip = {"lq": read_img_seq(self.lq_paths[folder])}
        if self.gt_root is not None:
            clip["gt"] = read_img_seq(self.gt_paths[folder])
            if self.scale is not None:
                check_scale(clip["lq"].shape[-2:], clip["gt"].shape[-2:], int(self.scale),
                            f"{self.name}, clip {folder}")
        return clip

    def __getitem__(self, index: int) -> dict[str, Any]:
        folder = self.folders[index]
        clip = self.cache[folder] if self.cache_data else self.read_clip(folder)
        return {**clip, "folder": folder}

    def __len__(self) -> int:
        return len(self.folders)


@DATASET_REGISTRY.register()
class VideoTestVimeo90KDataset(Dataset):
    """Vimeo-90K-T: ``num_frame`` LQ frames around ``im4`` and the GT ``im4`` of each listed septuplet.

    Options: ``dataroot_gt``, ``dataroot_lq``, ``meta_info_file`` (required;
    ``sep_testlist.txt`` works), ``num_frame`` (7 = all, as recurrent models
    use; 1, 3, 5 centred), ``temporal_scale`` (KAIR's name: keep every k-th of
    those frames; 2 with ``dataroot_lq`` = ``dataroot_gt`` and scale 1 is the
    frame-interpolation protocol, im1, im3, im5, im7 -> im4), ``scale``
    (optional size check), ``io_backend: disk``.
    Items: ``lq (t, c, h, w)``, ``gt (c, H, W)``, ``folder`` (``'vimeo90k'``),
    ``idx`` (``'i/N'``), ``border`` (0), ``lq_path`` (the centre LQ frame).
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        self.name = f"{type(self).__name__} ('{opt.get('name', '?')}')"
        _check_disk_backend(opt, self.name)
        if opt.get("cache_data"):
            raise ValueError(f"{self.name}: cache_data is not supported for Vimeo-90K-T; set it to false")
        self.opt = opt
        self.scale = opt.get("scale")
        gt_root = Path(require_option(opt, "dataroot_gt", self.name))
        lq_root = Path(require_option(opt, "dataroot_lq", self.name))
        temporal_scale = int(opt.get("temporal_scale", 1))
        if temporal_scale < 1:
            raise ValueError(f"{self.name}: temporal_scale must be >= 1, got {temporal_scale}")
        neighbors = vimeo_neighbors(opt.get("num_frame", 7))[::temporal_scale]
        sequences = [row[0] for row in read_meta_info(require_option(opt, "meta_info_file", self.name))]
        for root in (gt_root, lq_root):
            if not root.is_dir():
                raise FileNotFoundError(f"{self.name}: data folder not found: {root}")
        self.gt_paths = [str(gt_root / seq / "im4.png") for seq in sequences]
        self.lq_paths = [[str(lq_root / seq / f"im{i}.png") for i in neighbors] for seq in sequences]
        self.center = len(neighbors) // 2

    def __getitem__(self, index: int) -> dict[str, Any]:
        lq = read_img_seq(self.lq_paths[index])
        gt = read_img_seq([self.gt_paths[index]])[0]
        if self.scale is not None:
            check_scale(lq.shape[-2:], gt.shape[-2:], int(self.scale), f"{self.name}, {self.gt_paths[index]}")
        return {
            "lq": lq,  # (t, c, h, w)
            "gt": gt,  # (c, H, W)
            "folder": "vimeo90k",
            "idx": f"{index}/{len(self)}",
            "border": 0,
            "lq_path": self.lq_paths[index][self.center],
        }

    def __len__(self) -> int:
        return len(self.gt_paths)
