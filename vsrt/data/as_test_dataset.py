"""Arbitrary-scale test / validation clips (SAVSR): GT cropped with ``as_mod_crop``, LR made on the fly.

Follows ``ASVideoTestDataset`` of the official Weepingchestnut/SAVSR code
(``lbasicsr/data/video_test_dataset.py``) and its test options
(``options/test/SAVSR/test_SAVSR_{Vid4,UDM10}_asBI.yml``): for every GT frame,
``as_mod_crop`` at the scale, then ``arbitrary_scale_downsample`` (``torch`` or ``core``).

Deliberate differences from the official code:

* one item per CLIP (``lq (t, c, h, w)``, ``gt (t, c, H, W)``), not per frame: the model slides
  the ``num_frame`` window over the clip itself (``ASVSRModel.infer``, with this dataset's
  ``padding``), which gives the same inputs, and vsrt's validation averages frames per clip, then
  clips, as the official test does;
* one dataset may hold several scales (``scales: [2, 3.5, [1.5, 3.8]]``; ``ASVSRModel``
  validates at each and names the metrics ``psnr_x2.0``, ``psnr_x1.5_x3.8``); the official
  ``downsampling_scale`` (one scale) and ``scale`` also work;
* clips are listed from ``dataroot_gt`` (frame folders or video files); ``dataroot_lq``, which the
  official code required but did not read, is accepted and unused;
* ``use_arbitrary_scale_downsampling: false`` (officially: the GT was returned as LR) is rejected.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vsrt.data.arbitrary_scale import arbitrary_scale_downsample, as_mod_crop
from vsrt.data.as_train_dataset import DOWNSAMPLE_MODES, SYMMETRIC_TRAIN_SCALES, ScalePair, scale_pair
from vsrt.data.data_util import PADDING_MODES, read_meta_info, require_option
from vsrt.data.video_io import list_clips, read_clip
from vsrt.registry import DATASET_REGISTRY
from vsrt.utils import img2tensor

OFFICIAL_ASYMMETRIC_TEST_SCALES: tuple[ScalePair, ...] = (
    (1.5, 4.0), (2.0, 4.0), (2.0, 3.75), (1.5, 3.5), (1.6, 3.05), (1.7, 3.75), (2.95, 3.75), (3.9, 2.0),
    (3.5, 1.5), (3.5, 2.0), (3.5, 1.75), (4.0, 1.4))
OFFICIAL_TEST_SCALES = SYMMETRIC_TRAIN_SCALES + OFFICIAL_ASYMMETRIC_TEST_SCALES
"""The 42 scales of the official Vid4 / UDM10 tests: x1.1 ... x4.0 and 12 asymmetric (s_h, s_w)."""


@DATASET_REGISTRY.register()
class ASVideoTestDataset(Dataset):
    """Whole GT clips under ``dataroot_gt`` (Vid4 / UDM10 / REDS4 layout, or videos) with LR at a scale.

    Options: ``dataroot_gt``; the scale(s): ``scales`` (a list), else ``downsampling_scale``, else
    ``scale`` (each entry ``s`` or ``[s_h, s_w]``); ``downsampling_mode`` (``torch`` | ``core``);
    ``meta_info_file`` (optional clip list); ``cache_data`` (keep decoded clips); ``num_frame`` and
    ``padding`` (the model's sliding window, default ``reflection``); ``io_backend: disk``.
    Items at the current :attr:`scale`: ``lq (t, c, h, w)``, ``gt (t, c, H, W)``, ``folder``,
    ``scale`` ``(2,)``. :meth:`at_scale` gives the same clips at another scale.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        self.name = f"{type(self).__name__} ('{opt.get('name', '?')}')"
        self.opt = opt
        backend = (opt.get("io_backend") or {}).get("type", "disk")
        if backend != "disk":
            raise ValueError(f"{self.name} reads clip folders or videos; io_backend must be 'disk', got '{backend}'")
        if opt.get("use_arbitrary_scale_downsampling") is False:
            raise ValueError(f"{self.name}: LR frames are always made from the GT here; "
                             "remove use_arbitrary_scale_downsampling: false")
        self.mode = opt.get("downsampling_mode", "torch")
        if self.mode not in DOWNSAMPLE_MODES:
            raise ValueError(f"{self.name}: downsampling_mode must be one of {DOWNSAMPLE_MODES}, got '{self.mode}'")
        self.padding = opt.get("padding") or "reflection"
        if self.padding not in PADDING_MODES:
            raise ValueError(f"{self.name}: padding must be one of {PADDING_MODES}, got '{self.padding}'")
        self.num_frame = opt.get("num_frame")
        self.scales = self._read_scales(opt)
        self.scale = self.scales[0]

        clips = list_clips(require_option(opt, "dataroot_gt", self.name))
        if opt.get("meta_info_file"):
            wanted = [row[0] for row in read_meta_info(opt["meta_info_file"])]
            missing = sorted(set(wanted) - set(clips))
            if missing:
                raise FileNotFoundError(f"{self.name}: clips {missing} of the meta_info_file are not in "
                                        f"{opt['dataroot_gt']}")
            clips = {name: clips[name] for name in wanted}
        self.clips = clips
        self.folders = sorted(clips)
        self.cache_data = bool(opt.get("cache_data", False))
        self._cache: dict[str, list[np.ndarray]] = {}

    def _read_scales(self, opt: dict[str, Any]) -> list[ScalePair]:
        if opt.get("scales") is not None:
            if not isinstance(opt["scales"], (list, tuple)) or not opt["scales"]:
                raise ValueError(f"{self.name}: scales must be a non-empty list, got {opt['scales']!r}")
            return [scale_pair(s, f"{self.name}: scales") for s in opt["scales"]]
        for key in ("downsampling_scale", "scale"):
            if opt.get(key) is not None:
                return [scale_pair(opt[key], f"{self.name}: {key}")]
        raise KeyError(f"{self.name} needs the option 'scales', 'downsampling_scale' or 'scale'")

    def at_scale(self, scale: Any) -> ASVideoTestDataset:
        """A view of the same clips (sharing the cache) at ``scale``, with its own copy of ``opt``."""
        view = copy.copy(self)
        view.scale = scale_pair(scale, f"{self.name}: scale")
        view.opt = dict(self.opt)
        return view

    def _frames(self, folder: str) -> list[np.ndarray]:
        if folder in self._cache:
            return self._cache[folder]
        frames = read_clip(self.clips[folder])
        if self.cache_data:
            self._cache[folder] = frames
        return frames

    def __getitem__(self, index: int) -> dict[str, Any]:
        folder = self.folders[index]
        frames = [as_mod_crop(frame, self.scale).astype(np.float32) / 255.0 for frame in self._frames(folder)]
        gt = torch.stack(img2tensor(frames, bgr2rgb=True, float32=True), dim=0)  # (t, c, H, W)
        lq = arbitrary_scale_downsample(gt, self.scale, self.mode)  # (t, c, H / s_h, W / s_w)
        return {"lq": lq, "gt": gt, "folder": folder, "scale": torch.tensor(self.scale, dtype=torch.float64)}

    def __len__(self) -> int:
        return len(self.folders)
