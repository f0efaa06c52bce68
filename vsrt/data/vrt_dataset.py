"""Datasets of the VRT recipes (KAIR ``data/dataset_video_{train,test}.py``): deblurring, denoising, Vimeo x 8.

VRT (arXiv 2201.12288, https://github.com/JingyunLiang/VRT) is trained with KAIR
(https://github.com/cszn/KAIR, ``options/vrt/*.json``). Its SR recipes read REDS / Vimeo-90K
like BasicSR (``REDSRecurrentDataset``, ``Vimeo90KRecurrentDataset``); these classes cover the rest:

* :class:`PairedVideoTrainDataset` (KAIR ``VideoRecurrentTrainDataset``): windows of LQ/GT
  frames from any frame-folder or LMDB dataset, any scale (1 for deblurring: DVD, GoPro,
  REDS blur). Clips are listed by a meta file or, on disk, found as sub-folders.
* :class:`VideoDenoisingTrainDataset` (KAIR ``VideoRecurrentTrainNonblindDenoisingDataset``):
  GT windows only; each sample gets one noise level drawn uniformly from
  ``[sigma_min, sigma_max] / 255``, Gaussian noise (not clipped) and the level as a 4th channel.
* :class:`VideoDenoisingTestDataset` (KAIR ``VideoRecurrentTestDataset`` with ``sigma``): whole
  GT clips (DAVIS-test, Set8) with the official fixed noise: seed 0 per clip, level ``sigma / 255``.
* :class:`Vimeo90KPaddedDataset` (KAIR ``VideoRecurrentTrainVimeoDataset``): septuplets padded
  to 8 frames by repeating the last (``pad_sequence``), VRT's temporal window.

Same random draws, in the same order, as KAIR. Differences: meta files may have 3 tokens
(BasicSR, start frame 0) or 4 (KAIR, with the start frame); without a meta file the frame
folders are listed; ``val_partition`` is applied whenever it is given (KAIR applies it only to
a dataset named ``REDS``, which its VRT files never use); random reversal is per item.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vsrt.data.data_util import (
    crop_augment_stack,
    list_images,
    read_img_seq,
    read_meta_info,
    require_option,
)
from vsrt.data.file_client import build_file_client
from vsrt.data.reds_dataset import validation_clips
from vsrt.data.transforms import augment, paired_random_crop
from vsrt.data.video_test_dataset import VideoRecurrentTestDataset
from vsrt.data.vimeo90k_dataset import Vimeo90KRecurrentDataset
from vsrt.registry import DATASET_REGISTRY
from vsrt.utils import img2tensor


def add_noise_level_map(gt: torch.Tensor, sigma: torch.Tensor | float,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """``gt (t, c, h, w)`` -> ``(t, c + 1, h, w)``: ``gt + N(0, sigma)`` (not clipped), then the level map.

    ``sigma`` is on the [0, 1] intensity scale (``sigma_255 / 255``); the draws are KAIR's.
    """
    level = torch.as_tensor(sigma, dtype=gt.dtype).reshape(1, 1, 1, 1)
    noisy = gt + torch.normal(mean=0, std=level.expand_as(gt), generator=generator)
    t, _, h, w = gt.shape
    return torch.cat([noisy, level.expand(t, 1, h, w)], dim=1)


def read_frame_lists(opt: dict[str, Any], name: str, is_lmdb: bool) -> dict[str, list[str]]:
    """``{clip: [frame path relative to a data root, ...]}`` in temporal order.

    With ``meta_info_file`` (lines ``<clip> <count> [(h,w,c)] [<start>]``) frames are
    ``<clip>/<start + i:filename_tmpl>[.filename_ext]`` (LMDB keys have no extension);
    otherwise every sub-folder of ``dataroot_gt`` is a clip of its sorted image files.
    """
    template = opt.get("filename_tmpl") or "08d"
    extension = "" if is_lmdb else "." + (opt.get("filename_ext") or "png")
    if opt.get("meta_info_file"):
        clips = {}
        for line_no, row in enumerate(read_meta_info(opt["meta_info_file"]), start=1):
            if len(row) < 2 or not row[1].isdigit() or (len(row) > 3 and not row[3].isdigit()):
                raise ValueError(f"{opt['meta_info_file']}, line {line_no}: expected "
                                 f"'<clip> <frame count> (h,w,c) [<start frame>]', got '{' '.join(row)}'")
            start = int(row[3]) if len(row) > 3 else 0
            clips[row[0]] = [f"{row[0]}/{i:{template}}{extension}" for i in range(start, start + int(row[1]))]
        return clips
    if is_lmdb:
        raise KeyError(f"{name} ('{opt.get('name', '?')}') needs 'meta_info_file' to read an LMDB")
    gt_root = Path(require_option(opt, "dataroot_gt", name))
    if not gt_root.is_dir():
        raise FileNotFoundError(f"{name}: data folder not found: {gt_root}")
    folders = sorted(p for p in gt_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{name}: no clip folders in {gt_root}")
    return {f.name: [f"{f.name}/{Path(p).name}" for p in list_images(f)] for f in folders}


@DATASET_REGISTRY.register(aliases=("VideoRecurrentTrainDataset",))
class PairedVideoTrainDataset(Dataset):
    """Random windows of ``num_frame`` LQ/GT frames, one item per (clip, start frame).

    Options: ``dataroot_gt``, ``dataroot_lq``, ``meta_info_file`` (required for LMDB),
    ``filename_tmpl`` (``08d``), ``filename_ext`` (``png``), ``val_partition`` (optional:
    ``REDS4``, ``official`` or a list of clips held out), ``test_mode`` (keep only those),
    ``io_backend`` (``disk`` | ``lmdb``), ``num_frame``, ``gt_size``, ``interval_list``,
    ``random_reverse``, ``use_hflip``, ``use_rot``, ``scale`` (1 for deblurring).
    Items: ``lq (t, c, h, w)``, ``gt (t, c, H, W)`` RGB in [0, 1], ``key`` (``'<clip>/<frame>'``).
    """

    reads_lq = True

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        self.name = type(self).__name__
        self.opt = opt
        self.scale = int(opt.get("scale") or 1)
        self.gt_size = int(require_option(opt, "gt_size", self.name))
        self.num_frame = int(require_option(opt, "num_frame", self.name))
        self.interval_list = list(opt.get("interval_list") or [1])
        self.random_reverse = bool(opt.get("random_reverse", False))
        self.use_hflip = bool(opt.get("use_hflip", False))
        self.use_rot = bool(opt.get("use_rot", False))
        roots = {"gt": Path(require_option(opt, "dataroot_gt", self.name))}
        if self.reads_lq:
            roots["lq"] = Path(require_option(opt, "dataroot_lq", self.name))
        self.roots = roots
        self.is_lmdb = (opt.get("io_backend") or {}).get("type", "disk") == "lmdb"
        frames = read_frame_lists(opt, self.name, self.is_lmdb)
        self.file_client = build_file_client(opt.get("io_backend"), roots)
        for root in roots.values() if not self.is_lmdb else ():
            if not root.is_dir():
                raise FileNotFoundError(f"{self.name}: data folder not found: {root}")
        if opt.get("val_partition"):
            held_out = validation_clips(opt["val_partition"])
            keep_held_out = bool(opt.get("test_mode", False))
            frames = {clip: f for clip, f in frames.items() if (clip in held_out) == keep_held_out}
        longest_window = self.num_frame * max(self.interval_list)
        for clip, clip_frames in frames.items():
            if len(clip_frames) < longest_window:
                raise ValueError(f"{self.name}: clip {clip} has {len(clip_frames)} frames, fewer than "
                                 f"num_frame * interval = {longest_window}")
        if not frames:
            raise ValueError(f"{self.name} ('{opt.get('name', '?')}'): no clip left to train on")
        self.frames = frames
        self.index = [(clip, i) for clip, clip_frames in frames.items() for i in range(len(clip_frames))]

    def window(self, index: int) -> tuple[str, list[str]]:
        """``(key, frame paths)`` of the window drawn for ``index`` (KAIR's draws: interval, start, reverse)."""
        clip, start = self.index[index]
        key = self.frames[clip][start].rsplit(".", 1)[0] if not self.is_lmdb else self.frames[clip][start]
        clip_frames = self.frames[clip]
        interval = random.choice(self.interval_list)
        last_start = len(clip_frames) - self.num_frame * interval
        if start > last_start:  # the window would run past the clip: redraw its start
            start = random.randint(0, last_start)
        positions = list(range(start, start + self.num_frame * interval, interval))
        if self.random_reverse and random.random() < 0.5:
            positions.reverse()
        return key, [clip_frames[p] for p in positions]

    def read_frames(self, paths: list[str], client_key: str) -> list[np.ndarray]:
        """float32 BGR frames in [0, 1] from ``dataroot_<client_key>``."""
        root = self.roots[client_key]
        return [self.file_client.read_image(path if self.is_lmdb else root / path, client_key) for path in paths]

    def __getitem__(self, index: int) -> dict[str, Any]:
        key, paths = self.window(index)
        lq, gt = crop_augment_stack(self.read_frames(paths, "lq"), self.read_frames(paths, "gt"), self.gt_size,
                                    self.scale, self.use_hflip, self.use_rot, name=f"{self.name}, {key}")
        return {"lq": lq, "gt": gt, "key": key}  # lq (t, c, h, w), gt (t, c, H, W)

    def __len__(self) -> int:
        return len(self.index)


@DATASET_REGISTRY.register(aliases=("VideoRecurrentTrainNonblindDenoisingDataset",))
class VideoDenoisingTrainDataset(PairedVideoTrainDataset):
    """GT windows with Gaussian noise of a random level per sample, plus the level map (non-blind).

    Options: those of :class:`PairedVideoTrainDataset` without ``dataroot_lq`` (scale 1), and
    ``sigma_min`` / ``sigma_max`` on the 0..255 scale (KAIR / VRT: 0 and 50).
    Items: ``lq (t, 4, h, w)`` (noisy RGB, not clipped, then ``sigma / 255``), ``gt (t, 3, h, w)``.
    """

    reads_lq = False

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__(opt)
        if self.scale != 1:
            raise ValueError(f"{self.name}: denoising works at scale 1, got scale {self.scale}")
        self.sigma_min = float(require_option(opt, "sigma_min", self.name)) / 255.0
        self.sigma_max = float(require_option(opt, "sigma_max", self.name)) / 255.0
        if not 0 <= self.sigma_min <= self.sigma_max:
            raise ValueError(f"{self.name}: need 0 <= sigma_min <= sigma_max, got {opt['sigma_min']}, "
                             f"{opt['sigma_max']}")

    def __getitem__(self, index: int) -> dict[str, Any]:
        key, paths = self.window(index)
        img_gts = self.read_frames(paths, "gt")
        img_gts = paired_random_crop(img_gts, img_gts, self.gt_size, 1, f"{self.name}, {key}")[0]
        img_gts = augment(img_gts if isinstance(img_gts, list) else [img_gts], self.use_hflip, self.use_rot)
        gt = torch.stack(img2tensor(img_gts if isinstance(img_gts, list) else [img_gts], bgr2rgb=True))
        sigma = torch.empty(1).uniform_(self.sigma_min, self.sigma_max)  # one level per sample
        return {"lq": add_noise_level_map(gt, sigma), "gt": gt, "key": key}  # lq (t, 4, h, w), gt (t, 3, h, w)


@DATASET_REGISTRY.register()
class VideoDenoisingTestDataset(VideoRecurrentTestDataset):
    """Whole GT clips (DAVIS-test, Set8) with the official fixed noise of level ``sigma`` (0..255).

    The noise of each clip is drawn from a generator seeded 0 (what ``torch.manual_seed(0)``
    before each clip gives in the official test), not clipped; the input has the level map
    as a 4th channel. Options: ``dataroot_gt`` (``dataroot_lq`` defaults to it), ``sigma``,
    ``meta_info_file``, ``cache_data``. Items: ``lq (t, 4, h, w)``, ``gt (t, 3, h, w)``, ``folder``.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        name = f"{type(self).__name__} ('{opt.get('name', '?')}')"
        self.sigma = float(require_option(opt, "sigma", name)) / 255.0
        opt = {**opt, "dataroot_lq": opt.get("dataroot_lq") or require_option(opt, "dataroot_gt", name)}
        super().__init__(opt)

    def read_clip(self, folder: str) -> dict[str, torch.Tensor]:
        gt = read_img_seq(self.gt_paths[folder])
        return {"lq": add_noise_level_map(gt, self.sigma, torch.Generator().manual_seed(0)), "gt": gt}


@DATASET_REGISTRY.register(aliases=("VideoRecurrentTrainVimeoDataset",))
class Vimeo90KPaddedDataset(Vimeo90KRecurrentDataset):
    """Vimeo-90K septuplets for VRT: with ``pad_sequence: true`` the last frame is repeated (7 -> 8).

    Options: those of ``Vimeo90KRecurrentDataset`` (``flip_sequence`` defaults to false here)
    plus ``pad_sequence`` (required). Items: ``lq (8, c, h, w)``, ``gt (8, c, H, W)``, ``key``.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        self.pad_sequence = bool(require_option(opt, "pad_sequence", type(self).__name__))
        super().__init__({**opt, "flip_sequence": opt.get("flip_sequence", False)})
        if self.pad_sequence and self.flip_sequence:
            raise ValueError(f"{type(self).__name__}: choose pad_sequence or flip_sequence, not both")

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        if self.pad_sequence:  # (7, c, h, w) -> (8, c, h, w)
            item["lq"] = torch.cat([item["lq"], item["lq"][-1:]], dim=0)
            item["gt"] = torch.cat([item["gt"], item["gt"][-1:]], dim=0)
        return item
