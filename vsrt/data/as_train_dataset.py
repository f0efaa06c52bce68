"""Arbitrary-scale training data (SAVSR): GT-only clips, one scale per batch, LR made on the fly.

Follows ``ASVimeo90KDataset`` of the official Weepingchestnut/SAVSR code
(``lbasicsr/data/vimeo90k_dataset.py``: ``cl_train_stg`` and ``as_collate_fn``).

How a batch is made:

1. ``__getitem__`` (seeded per sample by :mod:`vsrt.data.resumable`) reads ``num_frame`` GT frames,
   crops one ``lq_size * max_scale`` square (240 officially) shared by the frames, flips/rotates
   them and may reverse their order. It also draws the sample's scale from the curriculum at the
   current epoch (``scale``, ``(2,)``) and two uniform numbers for the patch position (``crop``).
2. :func:`make_scaled_batch` (called by ``ASVSRModel.feed_data``) gives the whole batch the scale
   and patch position of its FIRST sample: the GT is cropped to
   ``(round(lq_size * s_h), round(lq_size * s_w))`` and downsampled with
   :func:`~vsrt.data.arbitrary_scale.arbitrary_scale_downsample` to ``lq_size x lq_size``; the target
   is the centre GT frame.

Why the batch scale is taken from the first sample: vsrt's training loop collates with the default
collate function, and every sample's draws are a pure function of (seed, epoch, rank, position), so
the batch scale is too: a resumed run sees the same scales as an uninterrupted one (the official
collate drew it from each worker's ``random`` state). The resize also runs on the training device.

Deliberate differences from the official code:

* the curriculum (``CL_train_set``, ``init_int_scale``) follows ``set_epoch``; vsrt's training
  loop must call ``dataset.set_epoch(epoch)`` every epoch, as the official loop does;
* ``random_reverse`` reverses the frames of the sample it is drawn for (officially a list stored on
  the dataset was reversed in place, so a sample's order depended on the samples before it);
* ``scale_list`` (entries ``s`` or ``[s_h, s_w]``) may replace ``scale_h_list`` / ``scale_w_list``;
* ``downsample_mode: numpy`` (a silent no-op officially) is rejected; ``num_frame > 7`` (officially
  reflection-padded septuplets) and ``flip_sequence: true`` are not supported;
* ``ASVideoFolderDataset`` (not official) trains on generic clip folders or videos.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vsrt.data.arbitrary_scale import arbitrary_scale_downsample
from vsrt.data.data_util import list_images, read_meta_info, require_option
from vsrt.data.file_client import build_file_client
from vsrt.data.transforms import augment
from vsrt.data.video_io import is_video_file, list_clips, read_clip
from vsrt.data.vimeo90k_dataset import septuplet_frame, vimeo_neighbors
from vsrt.registry import DATASET_REGISTRY
from vsrt.utils import img2tensor

ScalePair = tuple[float, float]

SYMMETRIC_TRAIN_SCALES: tuple[ScalePair, ...] = tuple((s, s) for s in (round(1 + 0.1 * i, 1) for i in range(1, 31)))
_ASYMMETRIC_GRID = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
ASYMMETRIC_TRAIN_SCALES: tuple[ScalePair, ...] = tuple(
    (h, w) for h in _ASYMMETRIC_GRID for w in _ASYMMETRIC_GRID if h != w)
OFFICIAL_TRAIN_SCALES = SYMMETRIC_TRAIN_SCALES + ASYMMETRIC_TRAIN_SCALES
"""The 60 official training scales: x1.1 ... x4.0, then the 30 ordered pairs of the grid with s_h != s_w."""

DOWNSAMPLE_MODES = ("torch", "core")


def scale_pair(value: Any, what: str) -> ScalePair:
    """An option value ``s`` or ``[s_h, s_w]`` as ``(s_h, s_w)`` floats; errors name ``what``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"{what}: expected a positive scale s or a pair [s_h, s_w], got {value!r}")
    return float(value[0]), float(value[1])


class ScaleCurriculum:
    """The scale a training batch gets at an epoch (official ``cl_train_stg`` and its fallbacks).

    Precedence as officially: ``curriculum`` (``CL_train_set: [E, a, b]``), else ``fixed``
    (``single_scale_ft``), else integer scales in epoch 0 (``init_int_scale``), else a uniform draw
    from ``scales``. With ``[E, a, b]``, from epoch E on every draw is from ``scales``; before, with
    ``r = epoch % 10``: ``r <= a`` gives x4, ``r <= b`` a symmetric x2, x3 or x4, else ``scales``.
    Draws use the ``random`` module, which vsrt seeds per sample.
    """

    def __init__(self, scales: Sequence[ScalePair], curriculum: Sequence[int] | None = None,
                 init_int_scale: bool = False, fixed: ScalePair | None = None) -> None:
        if not scales:
            raise ValueError("the training scale list is empty")
        if curriculum is not None and (len(curriculum) != 3 or not all(isinstance(v, int) for v in curriculum)):
            raise ValueError(f"CL_train_set must be three integers [epochs, a, b], got {curriculum!r}")
        self.scales = [tuple(s) for s in scales]
        self.curriculum = tuple(curriculum) if curriculum is not None else None
        self.init_int_scale = init_int_scale
        self.fixed = fixed

    @classmethod
    def from_options(cls, opt: dict[str, Any], name: str) -> ScaleCurriculum:
        """Official keys ``CL_train_set``, ``single_scale_ft`` (+ ``scale``), ``init_int_scale``,
        ``only_sy_scale``, ``scale_h_list`` / ``scale_w_list``; or vsrt's ``scale_list``."""
        heights, widths = opt.get("scale_h_list"), opt.get("scale_w_list")
        if (heights is None) != (widths is None):
            raise ValueError(f"{name}: scale_h_list and scale_w_list go together")
        if opt.get("scale_list") is not None:
            if heights is not None:
                raise ValueError(f"{name}: give scale_list or scale_h_list/scale_w_list, not both")
            scales = [scale_pair(s, f"{name}: scale_list") for s in opt["scale_list"]]
        elif heights is not None:
            if len(heights) != len(widths):
                raise ValueError(f"{name}: scale_h_list and scale_w_list differ in length")
            scales = [scale_pair([h, w], f"{name}: scale_h_list/scale_w_list") for h, w in zip(heights, widths)]
        else:
            scales = list(SYMMETRIC_TRAIN_SCALES if opt.get("only_sy_scale") else OFFICIAL_TRAIN_SCALES)
        fixed = scale_pair(require_option(opt, "scale", name), f"{name}: scale") if opt.get("single_scale_ft") else None
        return cls(scales, opt.get("CL_train_set"), bool(opt.get("init_int_scale", False)), fixed)

    def all_scales(self) -> list[ScalePair]:
        """Every scale a draw can return (for size checks)."""
        extra = [(4.0, 4.0)] if self.curriculum is not None else []
        if self.curriculum is not None or self.init_int_scale:
            extra += [(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]
        return self.scales + extra + ([self.fixed] if self.fixed else [])

    def draw(self, epoch: int) -> ScalePair:
        if self.curriculum is not None:
            all_scales_from, only_x4_until, integer_until = self.curriculum
            if epoch < all_scales_from:
                stage = epoch % 10
                if stage <= only_x4_until:
                    return 4.0, 4.0
                if stage <= integer_until:
                    scale = float(random.randint(2, 4))
                    return scale, scale
        elif self.fixed is not None:
            return self.fixed
        elif epoch == 0 and self.init_int_scale:
            scale = float(random.randint(2, 4))
            return scale, scale
        return self.scales[random.randrange(len(self.scales))]


def make_scaled_batch(gt: torch.Tensor, scale: Sequence[float], crop: Sequence[float], lq_size: int,
                      mode: str = "torch") -> tuple[torch.Tensor, torch.Tensor]:
    """GT patches ``(b, t, c, P_h, P_w)`` -> ``(lq (b, t, c, ~lq_size, ~lq_size), gt (b, t, c, H, W))``.

    ``H, W = round(lq_size * s_h), round(lq_size * s_w)``; the window sits at the fractions
    ``crop = (u_top, u_left)`` in [0, 1) of the free room, the same for the whole batch.
    """
    scale_h, scale_w = float(scale[0]), float(scale[1])
    height, width = round(lq_size * scale_h), round(lq_size * scale_w)
    patch_h, patch_w = gt.shape[-2:]
    if height > patch_h or width > patch_w:
        raise ValueError(f"scale ({scale_h}, {scale_w}) needs a {height}x{width} GT patch for lq_size "
                         f"{lq_size}, but the GT patches are {patch_h}x{patch_w} (raise max_scale)")
    top = min(int(float(crop[0]) * (patch_h - height + 1)), patch_h - height)
    left = min(int(float(crop[1]) * (patch_w - width + 1)), patch_w - width)
    gt = gt[..., top:top + height, left:left + width]
    return arbitrary_scale_downsample(gt, (scale_h, scale_w), mode), gt


def random_square_crop(frames: list[np.ndarray], size: int, where: str) -> list[np.ndarray]:
    """The same random ``size x size`` window of every ``(h, w, c)`` frame (``random``: top, then left)."""
    height, width = frames[0].shape[:2]
    if height < size or width < size:
        raise ValueError(f"{where}: frames are {height}x{width}, smaller than the {size}x{size} GT patch "
                         "(lq_size * max_scale)")
    top, left = random.randint(0, height - size), random.randint(0, width - size)
    return [frame[top:top + size, left:left + size] for frame in frames]


class ArbitraryScaleTrainDataset(Dataset):
    """Shared part of the arbitrary-scale training sets; subclasses implement :meth:`read_frames`.

    Options: ``lq_size`` (60), ``max_scale`` (4; GT patches are ``lq_size * max_scale`` square),
    ``downsample_mode`` (``torch`` | ``core``, read by the model), ``use_hflip``, ``use_rot``,
    ``random_reverse`` and the curriculum keys of :meth:`ScaleCurriculum.from_options`.
    ``gt_size``, ``interval_list`` (Vimeo) and ``dataroot_lq`` are accepted and unused, as officially.
    Items: ``gt (t, c, P, P)``, ``scale`` ``(2,)`` float64, ``crop`` ``(2,)`` float64, ``key``.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        self.name = f"{type(self).__name__} ('{opt.get('name', '?')}')"
        self.opt = opt
        self.lq_size = int(opt.get("lq_size", 60))
        self.patch_size = round(self.lq_size * float(opt.get("max_scale", 4)))
        self.downsample_mode = opt.get("downsample_mode", "torch")
        if self.downsample_mode not in DOWNSAMPLE_MODES:
            raise ValueError(f"{self.name}: downsample_mode must be one of {DOWNSAMPLE_MODES}, "
                             f"got '{self.downsample_mode}'")
        if opt.get("flip_sequence"):
            raise ValueError(f"{self.name}: flip_sequence is not supported (SAVSR trains on one window)")
        self.use_hflip = bool(opt.get("use_hflip", False))
        self.use_rot = bool(opt.get("use_rot", False))
        self.random_reverse = bool(opt.get("random_reverse", False))
        self.curriculum = ScaleCurriculum.from_options(opt, self.name)
        for scale_h, scale_w in self.curriculum.all_scales():
            if max(round(self.lq_size * scale_h), round(self.lq_size * scale_w)) > self.patch_size:
                raise ValueError(f"{self.name}: scale ({scale_h}, {scale_w}) exceeds max_scale "
                                 f"{opt.get('max_scale', 4)}")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Move the scale curriculum to ``epoch`` (call at the start of every epoch)."""
        self.epoch = epoch

    def read_frames(self, index: int) -> tuple[list[np.ndarray], str]:
        """float32 BGR ``(h, w, c)`` frames in [0, 1] of sample ``index``, and its key."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        frames, key = self.read_frames(index)
        frames = random_square_crop(frames, self.patch_size, f"{self.name}, {key}")
        frames = augment(frames, self.use_hflip, self.use_rot)
        frames = frames if isinstance(frames, list) else [frames]
        gt = torch.stack(img2tensor(frames, bgr2rgb=True, float32=True), dim=0)  # (t, c, P, P)
        scale = self.curriculum.draw(self.epoch)
        crop = (random.random(), random.random())
        return {"gt": gt, "scale": torch.tensor(scale, dtype=torch.float64),
                "crop": torch.tensor(crop, dtype=torch.float64), "key": key}


@DATASET_REGISTRY.register()
class ASVimeo90KDataset(ArbitraryScaleTrainDataset):
    """Vimeo-90K septuplets (``dataroot_gt/<clip>/<seq>/im1..7.png`` or an LMDB keyed ``<clip>/<seq>/im<n>``).

    Options: ``dataroot_gt``, ``meta_info_file`` (``sep_trainlist.txt`` works), ``io_backend``
    (disk | lmdb), ``num_frame`` (7; or 1, 3, 5 centred), plus the shared options above.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__(opt)
        self.gt_root = Path(require_option(opt, "dataroot_gt", self.name))
        self.neighbors = vimeo_neighbors(opt.get("num_frame", 7))
        self.keys = [row[0] for row in read_meta_info(require_option(opt, "meta_info_file", self.name))]
        self.file_client = build_file_client(opt.get("io_backend"), {"gt": self.gt_root})
        self.is_lmdb = self.file_client.backend == "lmdb"
        if not self.is_lmdb and not self.gt_root.is_dir():
            raise FileNotFoundError(f"{self.name}: data folder not found: {self.gt_root}")

    def read_frames(self, index: int) -> tuple[list[np.ndarray], str]:
        neighbors = list(self.neighbors)
        if self.random_reverse and random.random() < 0.5:
            neighbors.reverse()
        key = self.keys[index]
        paths = [septuplet_frame(self.gt_root, key, n, self.is_lmdb) for n in neighbors]
        return [self.file_client.read_image(path, "gt") for path in paths], key

    def __len__(self) -> int:
        return len(self.keys)


@DATASET_REGISTRY.register()
class ASVideoFolderDataset(ArbitraryScaleTrainDataset):
    """Clips under ``dataroot_gt`` (frame folders as REDS / Vid4 / UDM10, or video files); not official.

    One sample per clip and epoch (raise ``dataset_enlarge_ratio`` for more): ``num_frame``
    frames, ``interval`` apart (drawn from ``interval_list``), from a random start.
    ``cache_data: true`` keeps decoded clips in memory. Shared options as above.
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__(opt)
        self.clips = list_clips(require_option(opt, "dataroot_gt", self.name))
        self.names = sorted(self.clips)
        self.num_frame = int(require_option(opt, "num_frame", self.name))
        self.interval_list = list(opt.get("interval_list") or [1])
        self.cache_data = bool(opt.get("cache_data", False))
        self._cache: dict[str, list[np.ndarray]] = {}

    def _num_frames(self, clip: str) -> int:
        path = self.clips[clip]
        if clip not in self._cache and not is_video_file(path):
            return len(list_images(path))
        return len(self._load(clip))

    def _load(self, clip: str) -> list[np.ndarray]:
        frames = self._cache.get(clip) or read_clip(self.clips[clip])
        if self.cache_data:
            self._cache[clip] = frames
        return frames

    def read_frames(self, index: int) -> tuple[list[np.ndarray], str]:
        clip = self.names[index]
        interval = random.choice(self.interval_list)
        span = (self.num_frame - 1) * interval + 1
        num_frames = self._num_frames(clip)
        if num_frames < span:
            raise ValueError(f"{self.name}: clip {clip} has {num_frames} frames; num_frame {self.num_frame} "
                             f"at interval {interval} needs {span}")
        start = random.randint(0, num_frames - span)
        indices = list(range(start, start + span, interval))
        if self.random_reverse and random.random() < 0.5:
            indices.reverse()
        if clip in self._cache or self.cache_data or is_video_file(self.clips[clip]):
            frames = [self._load(clip)[i] for i in indices]
        else:
            frames = read_clip(self.clips[clip], indices)
        return [frame.astype(np.float32) / 255.0 for frame in frames], f"{clip}/{start:08d}"

    def __len__(self) -> int:
        return len(self.names)
