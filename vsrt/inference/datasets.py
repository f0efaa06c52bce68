"""Benchmark test sets as lists of clips: REDS4, Vimeo-90K-T (SR and frame interpolation), and GT/LQ
folder pairs (Vid4, UDM10, ...).

A :class:`BenchmarkClip` names the LQ frames fed to the network, the GT frames that are scored and
which output frames they belong to, so one evaluation loop serves every protocol
(docs/metrics.md). LQ frames may instead be made from the GT (SAVSR's arbitrary-scale protocol,
VRT's non-blind denoising protocol).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vsrt.data.data_util import list_images, read_image, read_meta_info
from vsrt.inference.protocols import PROTOCOLS, REDS4_CLIPS, Protocol  # noqa: F401  (re-exported)
from vsrt.utils import img2tensor


@dataclass
class BenchmarkClip:
    """One clip: LQ frames in, scored GT frames and their positions in the output."""

    name: str
    gt_paths: list[Path]
    lq_paths: list[Path] | None  # None: LQ made from the GT (see LQFromGT)
    scored: list[int] = field(default_factory=list)  # output indices matched to gt_paths
    output_names: list[str] = field(default_factory=list)  # file names for --save-images

    def read_gt(self) -> list[np.ndarray]:
        return [read_image(p) for p in self.gt_paths]


def _check_frame_counts(name: str, gt: Sequence[Path], lq: Sequence[Path]) -> None:
    if len(gt) != len(lq):
        raise ValueError(f"clip {name}: {len(gt)} GT frames but {len(lq)} LQ frames")


def folder_clips(gt_root: str | Path, lq_root: str | Path | None,
                 names: Sequence[str] | None = None) -> list[BenchmarkClip]:
    """Clips stored as ``<root>/<clip>/<frame>.png`` (REDS4, Vid4, UDM10); all frames scored."""
    gt_root = Path(gt_root)
    if not gt_root.is_dir():
        raise FileNotFoundError(f"GT folder not found: {gt_root}")
    names = list(names) if names else sorted(p.name for p in gt_root.iterdir() if p.is_dir())
    if not names:
        raise ValueError(f"No clip folders in {gt_root}")
    clips = []
    for name in names:
        gt = [Path(p) for p in list_images(gt_root / name)]
        lq = [Path(p) for p in list_images(Path(lq_root) / name)] if lq_root is not None else None
        if lq is not None:
            _check_frame_counts(name, gt, lq)
        clips.append(BenchmarkClip(name, gt, lq, list(range(len(gt))), [p.stem for p in gt]))
    return clips


def vimeo_clips(gt_root: str | Path, lq_root: str | Path, meta_file: str | Path) -> list[BenchmarkClip]:
    """Vimeo-90K-T septuplets listed in ``meta_file`` (``sep_testlist.txt`` or BasicSR's meta info):
    ``im1..im7`` LQ frames in, only the centre output (``im4``) scored."""
    gt_root, lq_root = Path(gt_root), Path(lq_root)
    for root in (gt_root, lq_root):
        if not root.is_dir():
            raise FileNotFoundError(f"Vimeo-90K-T folder not found: {root}")
    clips = []
    for row in read_meta_info(meta_file):
        sequence = row[0]
        lq = [lq_root / sequence / f"im{i}.png" for i in range(1, 8)]
        clips.append(BenchmarkClip(sequence, [gt_root / sequence / "im4.png"], lq, [3],
                                   [sequence.replace("/", "_")]))
    return clips


def vimeo_interpolation_clips(gt_root: str | Path, meta_file: str | Path) -> list[BenchmarkClip]:
    """Vimeo-90K-T for frame interpolation: GT frames ``im1, im3, im5, im7`` in, ``im4`` scored."""
    gt_root = Path(gt_root)
    if not gt_root.is_dir():
        raise FileNotFoundError(f"Vimeo-90K-T folder not found: {gt_root}")
    clips = []
    for row in read_meta_info(meta_file):
        sequence = row[0]
        inputs = [gt_root / sequence / f"im{i}.png" for i in (1, 3, 5, 7)]
        clips.append(BenchmarkClip(sequence, [gt_root / sequence / "im4.png"], inputs, [0],
                                   [sequence.replace("/", "_")]))
    return clips


def read_lq(clip: BenchmarkClip) -> torch.Tensor:
    """LQ frames as a float32 RGB tensor ``(t, c, h, w)`` in [0, 1] (BasicSR ``read_img_seq``)."""
    assert clip.lq_paths is not None
    frames = [read_image(p).astype(np.float32) / 255.0 for p in clip.lq_paths]
    return torch.stack(img2tensor(frames, bgr2rgb=True, float32=True), dim=0)


@dataclass(frozen=True)
class LQFromGT:
    """Make the LQ frames from the GT instead of reading them.

    ``scale``: SAVSR's protocol, the GT is cropped with ``as_mod_crop`` and downsampled with
    ``arbitrary_scale_downsample(mode)`` (torch: antialiased bicubic). ``noise_sigma``: VRT's
    non-blind denoising protocol, ``LQ = GT + N(0, sigma/255)`` drawn after ``torch.manual_seed(0)``
    per clip, not clipped.
    """

    scale: float | tuple[float, float] | None = None
    mode: str = "torch"
    noise_sigma: float | None = None

    def make(self, gt_images: list[np.ndarray]) -> tuple[torch.Tensor, list[np.ndarray]]:
        """``(lq (t, c, h, w), gt_images)``; the GT may be cropped."""
        if self.scale is not None:
            from vsrt.data.arbitrary_scale import (
                arbitrary_scale_downsample,
                as_mod_crop,
            )

            gt_images = [as_mod_crop(img, self.scale) for img in gt_images]
        gt = torch.stack(img2tensor([img.astype(np.float32) / 255.0 for img in gt_images]), dim=0)
        if self.scale is not None:
            return arbitrary_scale_downsample(gt, self.scale, mode=self.mode), gt_images
        torch.manual_seed(0)
        noise = torch.normal(mean=0.0, std=torch.full_like(gt, float(self.noise_sigma) / 255.0))
        return gt + noise, gt_images
