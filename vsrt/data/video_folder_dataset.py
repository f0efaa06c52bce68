"""Custom video data: a folder of clips, each a folder of frames or a video file, LR made on the fly.

Not in BasicSR. ``dataroot_gt`` holds the clips (``clip_a/0001.png ...``,
``clip_b.mp4``, ...). Without ``dataroot_lq`` the LR frames are made from the
(mod-cropped) GT frames with ``degradation: BI`` (MATLAB bicubic) or ``BD``
(DUF Gaussian blur + subsampling), rounded to uint8 exactly as
``scripts/data_preparation/generate_lr.py`` writes them, so training on the fly
equals training on generated files. With ``dataroot_lq`` (same clip names) the
LR frames are read instead and GT must be exactly ``scale`` x LQ.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vsrt.data.data_util import (
    DEGRADATIONS,
    check_scale,
    crop_augment_stack,
    degrade_frames,
    list_images,
    require_option,
)
from vsrt.data.transforms import mod_crop
from vsrt.data.video_io import is_video_file, list_clips, read_clip
from vsrt.registry import DATASET_REGISTRY
from vsrt.utils import img2tensor


def frames_to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    """uint8 BGR (h, w, c) frames -> float32 RGB (t, c, h, w) in [0, 1]."""
    return torch.stack(img2tensor([f.astype(np.float32) / 255.0 for f in frames], bgr2rgb=True, float32=True))


@DATASET_REGISTRY.register()
class VideoFolderDataset(Dataset):
    """One item per clip: a random ``num_frame`` window for training, the whole clip in ``test_mode``.

    Options: ``dataroot_gt``, ``dataroot_lq`` (optional), ``degradation``
    (``BI`` | ``BD``, default ``BI``), ``scale``, ``test_mode``, ``cache_data``
    (keep decoded clips in memory), and for training ``num_frame``, ``gt_size``,
    ``interval_list``, ``random_reverse``, ``use_hflip``, ``use_rot``.
    Items: ``lq (t, c, h, w)``, ``gt (t, c, H, W)``, ``key`` (``'<clip>/<start:08d>'``)
    and ``folder`` (the clip name).
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        self.name = f"{type(self).__name__} ('{opt.get('name', '?')}')"
        self.opt = opt
        self.scale = int(require_option(opt, "scale", self.name))
        self.degradation = opt.get("degradation") or "BI"
        if self.degradation not in DEGRADATIONS:
            raise ValueError(f"{self.name}: degradation must be one of {DEGRADATIONS}, got '{self.degradation}'")
        self.test_mode = bool(opt.get("test_mode", False))
        self.cache_data = bool(opt.get("cache_data", False))
        self.gt_clips = list_clips(require_option(opt, "dataroot_gt", self.name))
        self.lq_clips = list_clips(opt["dataroot_lq"]) if opt.get("dataroot_lq") else None
        if self.lq_clips is not None:
            missing = sorted(set(self.gt_clips) - set(self.lq_clips))
            if missing:
                raise FileNotFoundError(f"{self.name}: no LQ clip for {', '.join(missing)} in {opt['dataroot_lq']}")
        self.names = sorted(self.gt_clips)
        for clip in self.names:  # frame folders are listed now, so a missing or empty clip fails early
            if not is_video_file(self.gt_clips[clip]):
                list_images(self.gt_clips[clip])
        if not self.test_mode:
            self.num_frame = int(require_option(opt, "num_frame", self.name))
            self.gt_size = int(require_option(opt, "gt_size", self.name))
            self.interval_list = list(opt.get("interval_list") or [1])
            self.random_reverse = bool(opt.get("random_reverse", False))
            self.use_hflip = bool(opt.get("use_hflip", False))
            self.use_rot = bool(opt.get("use_rot", False))
        self._cache: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def _read_pair(self, clip: str, indices: list[int] | None = None,
                   gt: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """uint8 (lq, gt) frames of ``clip`` (all, or those at ``indices``), checked for count and size.

        ``gt`` passes GT frames that are already decoded (the ones at ``indices``).
        """
        if gt is None:
            gt = read_clip(self.gt_clips[clip], indices)
        if self.lq_clips is None:
            gt = [mod_crop(frame, self.scale) for frame in gt]
            return degrade_frames(gt, self.scale, self.degradation), gt
        lq = read_clip(self.lq_clips[clip], indices)
        if len(lq) != len(gt):
            raise ValueError(f"{self.name}: clip {clip} has {len(lq)} LQ frames but {len(gt)} GT frames")
        check_scale(lq[0].shape, gt[0].shape, self.scale, f"{self.name}, clip {clip}")
        return lq, gt

    def _clip_frames(self, clip: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if clip in self._cache:
            return self._cache[clip]
        pair = self._read_pair(clip)
        if self.cache_data:
            self._cache[clip] = pair
        return pair

    def _training_item(self, clip: str) -> dict[str, Any]:
        interval = random.choice(self.interval_list)
        window = self.num_frame * interval
        path = self.gt_clips[clip]
        lq_all, gt_all = None, None
        if self.cache_data:
            lq_all, gt_all = self._clip_frames(clip)
        elif is_video_file(path):  # decoded once, only the window is degraded
            gt_all = read_clip(path)
        num_frames = len(gt_all) if gt_all is not None else len(list_images(path))
        if num_frames < window:
            raise ValueError(f"{self.name}: clip {clip} has {num_frames} frames, fewer than num_frame * interval "
                             f"= {window}")
        start = random.randint(0, num_frames - window)
        indices = list(range(start, start + window, interval))
        if self.random_reverse and random.random() < 0.5:
            indices.reverse()
        if lq_all is not None:
            img_lqs, img_gts = [lq_all[i] for i in indices], [gt_all[i] for i in indices]
        else:
            img_lqs, img_gts = self._read_pair(clip, indices, None if gt_all is None else [gt_all[i] for i in indices])
        img_lqs = [f.astype(np.float32) / 255.0 for f in img_lqs]
        img_gts = [f.astype(np.float32) / 255.0 for f in img_gts]
        lq, gt = crop_augment_stack(img_lqs, img_gts, self.gt_size, self.scale, self.use_hflip, self.use_rot,
                                    name=f"clip {clip}")
        return {"lq": lq, "gt": gt, "key": f"{clip}/{start:08d}", "folder": clip}

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self.names[index]
        if not self.test_mode:
            return self._training_item(clip)
        lq, gt = self._clip_frames(clip)
        return {"lq": frames_to_tensor(lq), "gt": frames_to_tensor(gt), "key": f"{clip}/{0:08d}", "folder": clip}

    def __len__(self) -> int:
        return len(self.names)

