"""Frame reading, temporal indexing and the BI / BD degradations of the video datasets.

Numerically identical to BasicSR's ``basicsr/data/data_util.py`` for
``generate_frame_indices``, ``generate_gaussian_kernel`` and ``duf_downsample``
(golden fixtures in ``shared/parity/core``). Differences: invalid arguments
raise ``ValueError`` instead of ``AssertionError``; ``duf_downsample`` takes any
integer scale (BasicSR stops at 2, 3, 4); unreadable or missing frames raise
errors that name the file; folder listings keep image files only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vsrt.data.transforms import augment, mod_crop, paired_random_crop
from vsrt.utils import img2tensor, imresize

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
PADDING_MODES = ("replicate", "reflection", "reflection_circle", "circle")
DEGRADATIONS = ("BI", "BD")
PathLike = str | os.PathLike


# ----------------------------------------------------------------------------- files


def list_images(folder: PathLike) -> list[str]:
    """Sorted paths of the image files in ``folder`` (not recursive); errors name the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Frame folder not found: {folder}")
    paths = sorted(str(p) for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not paths:
        raise ValueError(f"No image frames ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return paths


def read_image(path: PathLike) -> np.ndarray:
    """``cv2.imread`` as uint8 BGR (h, w, 3); raises naming the file when it cannot be read."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Image not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"Cannot decode image {path}")
    return img


def check_same_size(frames: Sequence[np.ndarray], names: Sequence[str], what: str) -> None:
    """Raise naming the first frame whose (h, w) differs from the first frame's."""
    first = frames[0].shape[:2]
    for frame, name in zip(frames, names):
        if frame.shape[:2] != first:
            raise ValueError(f"{what}: frame {name} is {frame.shape[:2]}, the clip's first frame is {first}")


def check_scale(lq_shape: Sequence[int], gt_shape: Sequence[int], scale: int, what: str) -> None:
    """Raise unless ``gt_shape[:2] == scale * lq_shape[:2]`` exactly."""
    (h_lq, w_lq), (h_gt, w_gt) = lq_shape[:2], gt_shape[:2]
    if (h_gt, w_gt) != (h_lq * scale, w_lq * scale):
        raise ValueError(f"{what}: GT size ({h_gt}, {w_gt}) is not {scale}x the LQ size ({h_lq}, {w_lq})")


def read_img_seq(path: PathLike | list[PathLike], require_mod_crop: bool = False, scale: int = 1,
                 return_imgname: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[str]]:
    """Read frames (a list of files, or every image of a folder in sorted order).

    Returns a float32 RGB tensor ``(t, c, h, w)`` in [0, 1], plus the frame
    names without extension when ``return_imgname``.
    """
    img_paths = [str(p) for p in path] if isinstance(path, list) else list_images(path)
    if not img_paths:
        raise ValueError("read_img_seq got an empty list of frames")
    imgs = [read_image(p).astype(np.float32) / 255.0 for p in img_paths]
    if require_mod_crop:
        imgs = [mod_crop(img, scale) for img in imgs]
    check_same_size(imgs, img_paths, "read_img_seq")
    frames = torch.stack(img2tensor(imgs, bgr2rgb=True, float32=True), dim=0)
    if return_imgname:
        return frames, [Path(p).stem for p in img_paths]
    return frames


def read_meta_info(meta_info_file: PathLike) -> list[list[str]]:
    """Whitespace-separated tokens of each non-empty line (``000 100 (720,1280,3)``)."""
    if not os.path.isfile(meta_info_file):
        raise FileNotFoundError(f"meta_info_file not found: {meta_info_file}")
    with open(meta_info_file) as f:
        rows = [line.split() for line in f if line.strip()]
    if not rows:
        raise ValueError(f"meta_info_file {meta_info_file} lists nothing")
    return rows


def require_option(opt: dict, key: str, dataset: str):
    """``opt[key]``, or a KeyError that names the dataset and the missing key."""
    if opt.get(key) is None:
        raise KeyError(f"{dataset} ('{opt.get('name', '?')}') needs the option '{key}'")
    return opt[key]


# ----------------------------------------------------------------------------- temporal


def generate_frame_indices(crt_idx: int, max_frame_num: int, num_frames: int,
                           padding: str = "reflection") -> list[int]:
    """Indices of the ``num_frames`` (odd) frames centred on ``crt_idx`` in a clip of ``max_frame_num``.

    Out-of-range neighbours are padded; for ``crt_idx = 0, num_frames = 5``:
    replicate ``[0, 0, 0, 1, 2]``, reflection ``[2, 1, 0, 1, 2]``,
    reflection_circle ``[4, 3, 0, 1, 2]``, circle ``[3, 4, 0, 1, 2]``.
    """
    if num_frames % 2 != 1:
        raise ValueError(f"num_frames must be odd, got {num_frames}")
    if padding not in PADDING_MODES:
        raise ValueError(f"Unknown padding '{padding}'; use one of {PADDING_MODES}")
    last = max_frame_num - 1
    half = num_frames // 2
    first_in_window = crt_idx - half
    indices = []
    for i in range(crt_idx - half, crt_idx + half + 1):
        if 0 <= i <= last:
            indices.append(i)
        elif padding == "replicate":
            indices.append(0 if i < 0 else last)
        elif padding == "reflection":
            indices.append(-i if i < 0 else 2 * last - i)
        elif padding == "reflection_circle":  # mirror the far end of the window
            indices.append(crt_idx + half - i if i < 0 else first_in_window - (i - last))
        else:  # circle: wrap around the window
            indices.append(i + num_frames if i < 0 else i - num_frames)
    return indices


# ----------------------------------------------------------------------------- degradations


def generate_gaussian_kernel(kernel_size: int = 13, sigma: float = 1.6) -> np.ndarray:
    """The DUF blur kernel: ``scipy.ndimage.gaussian_filter`` of a centred delta (float64).

    Because it is a filtered delta, the kernel is truncated at ``4 * sigma``
    (rounded) and renormalised, exactly as BasicSR's.
    """
    from scipy.ndimage import gaussian_filter  # scipy only for the BD degradation

    delta = np.zeros((kernel_size, kernel_size))
    delta[kernel_size // 2, kernel_size // 2] = 1
    return gaussian_filter(delta, sigma)


def duf_downsample(x: torch.Tensor, kernel_size: int = 13, scale: int = 4) -> torch.Tensor:
    """BD degradation of DUF: Gaussian blur (sigma ``0.4 * scale``) then ``scale``-strided sampling.

    ``x`` is ``(b, t, c, h, w)`` or ``(t, c, h, w)``; the output has the same
    rank with ``h / scale, w / scale`` (for sizes divisible by ``scale``).
    """
    if int(scale) != scale or scale < 1:
        raise ValueError(f"duf_downsample needs a positive integer scale, got {scale}")
    single_clip = x.ndim == 4
    if single_clip:
        x = x.unsqueeze(0)
    b, t, c, h, w = x.shape
    planes = x.reshape(b * t * c, 1, h, w)  # (b, t, c, h, w) -> (b*t*c, 1, h, w)
    pad = kernel_size // 2 + scale * 2
    planes = F.pad(planes, (pad, pad, pad, pad), mode="reflect")
    kernel = torch.from_numpy(generate_gaussian_kernel(kernel_size, 0.4 * scale)).type_as(planes)
    planes = F.conv2d(planes, kernel[None, None], stride=scale)
    planes = planes[:, :, 2:-2, 2:-2]  # the extra 2*scale padding leaves 2 samples per side
    out = planes.reshape(b, t, c, planes.shape[-2], planes.shape[-1])  # -> (b, t, c, h/s, w/s)
    return out.squeeze(0) if single_clip else out


def _quantize(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def degrade_frames(frames: Sequence[np.ndarray], scale: int, mode: str = "BI") -> list[np.ndarray]:
    """Make uint8 LR frames from uint8 HR frames (sizes must be divisible by ``scale``).

    ``BI``: MATLAB bicubic (:func:`vsrt.utils.imresize`) at ``1 / scale``.
    ``BD``: :func:`duf_downsample` (13x13 Gaussian, sigma ``0.4 * scale``).
    Both work on 0..255 floats and round to uint8, like saving the LR as PNG.
    """
    if mode not in DEGRADATIONS:
        raise ValueError(f"Unknown degradation '{mode}'; use one of {DEGRADATIONS}")
    for i, frame in enumerate(frames):
        if frame.shape[0] % scale or frame.shape[1] % scale:
            raise ValueError(f"Frame {i} of size {frame.shape[:2]} is not divisible by scale {scale}; "
                             "mod-crop it first")
    if mode == "BI":
        return [_quantize(imresize(frame.astype(np.float32), 1 / scale)) for frame in frames]
    # (t, h, w, c) -> (t, c, h, w); the blur is per channel so the BGR order does not matter
    clip = torch.from_numpy(np.stack(frames).astype(np.float32)).permute(0, 3, 1, 2)
    lr = duf_downsample(clip, kernel_size=13, scale=scale).permute(0, 2, 3, 1).numpy()
    return [_quantize(frame) for frame in lr]


# ----------------------------------------------------------------------------- training samples


def crop_augment_stack(img_lqs: list[np.ndarray], img_gts: list[np.ndarray], gt_size: int, scale: int,
                       use_hflip: bool, use_rot: bool, name: str | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired random crop, one flip/rotation for all frames, then ``(t, c, h, w)`` RGB tensors.

    The random draws (crop, then augment) are BasicSR's, in BasicSR's order.
    """
    img_gts, img_lqs = paired_random_crop(img_gts, img_lqs, gt_size, scale, name)
    img_gts = img_gts if isinstance(img_gts, list) else [img_gts]
    img_lqs = img_lqs if isinstance(img_lqs, list) else [img_lqs]
    results = augment(img_lqs + img_gts, use_hflip, use_rot)
    results = results if isinstance(results, list) else [results]
    tensors = img2tensor(results, bgr2rgb=True, float32=True)
    num_lq = len(img_lqs)
    return torch.stack(tensors[:num_lq], dim=0), torch.stack(tensors[num_lq:], dim=0)
