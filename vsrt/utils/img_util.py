"""Conversions between OpenCV images and BasicSR tensors, and image file I/O.

Conventions (BasicSR's):

* an *image* is a numpy array ``(h, w, c)`` in OpenCV's **BGR** order, uint8 in
  [0, 255] or float32 in [0, 1] (``(h, w)`` for grey);
* a *tensor* is ``(c, h, w)`` (or ``(n, c, h, w)``) in **RGB** order, float in
  [0, 1].

Differences from BasicSR: :func:`tensor2img` and :func:`tensor2img_fast` never
modify their input (BasicSR clamps a float32 CPU tensor in place);
:func:`img2tensor` also accepts ``(h, w)`` arrays and any dtype;
:func:`imwrite` and :func:`imfrombytes` raise clear errors instead of
returning ``None`` / ``False``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch


def _img_to_tensor(img: np.ndarray, bgr2rgb: bool, float32: bool) -> torch.Tensor:
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 3 and bgr2rgb:
        # BasicSR swaps channels with cv2.cvtColor, which has no float64 path, so float64
        # images become float32 here even when float32=False (kept for parity).
        if img.dtype == np.float64:
            img = img.astype(np.float32)
        img = img[..., ::-1]
    chw = np.ascontiguousarray(img.transpose(2, 0, 1))  # (h, w, c) -> (c, h, w)
    tensor = torch.from_numpy(chw)
    return tensor.float() if float32 else tensor


def img2tensor(imgs: np.ndarray | list[np.ndarray], bgr2rgb: bool = True,
               float32: bool = True) -> torch.Tensor | list[torch.Tensor]:
    """``(h, w, c)`` BGR array(s) -> ``(c, h, w)`` RGB tensor(s).

    Values are **not** rescaled: uint8 input gives floats in 0..255. Only
    3-channel images are colour-swapped. A list gives a list.
    """
    if isinstance(imgs, list):
        return [_img_to_tensor(img, bgr2rgb, float32) for img in imgs]
    return _img_to_tensor(imgs, bgr2rgb, float32)


def _tensor_to_img(tensor: torch.Tensor, rgb2bgr: bool, out_type: type,
                   min_max: Sequence[float]) -> np.ndarray:
    low, high = min_max
    tensor = tensor.squeeze(0).detach().float().cpu().clamp(low, high)
    tensor = (tensor - low) / (high - low)
    if tensor.dim() == 4:
        # imported here: torchvision is slow to import and only needed for batches
        from torchvision.utils import make_grid

        grid = make_grid(tensor, nrow=int(math.sqrt(tensor.size(0))), normalize=False)
        img = grid.numpy().transpose(1, 2, 0)  # (c, H, W) -> (H, W, c)
        if rgb2bgr:
            img = img[..., ::-1]
    elif tensor.dim() == 3:
        img = tensor.numpy().transpose(1, 2, 0)  # (c, h, w) -> (h, w, c)
        if img.shape[2] == 1:
            img = img[..., 0]
        elif rgb2bgr:
            img = img[..., ::-1]
    elif tensor.dim() == 2:
        img = tensor.numpy()
    else:
        raise TypeError(f"tensor2img supports 2-D, 3-D or 4-D tensors, got shape {tuple(tensor.shape)}")
    if out_type == np.uint8:
        img = (img * 255.0).round()  # round half to even, on float32
    return np.ascontiguousarray(img.astype(out_type))


def tensor2img(tensor: torch.Tensor | list[torch.Tensor], rgb2bgr: bool = True,
               out_type: type = np.uint8,
               min_max: Sequence[float] = (0, 1)) -> np.ndarray | list[np.ndarray]:
    """RGB tensor(s) -> BGR image(s), as BasicSR saves and scores network outputs.

    Accepts ``(n, c, h, w)``, ``(c, h, w)`` or ``(h, w)``; a leading dimension
    of size 1 is squeezed first, and ``n > 1`` is tiled with torchvision's
    ``make_grid`` (``int(sqrt(n))`` per row, 2 px padding). Values are clamped
    to ``min_max`` and mapped to [0, 1] in float32, then, for uint8 output,
    multiplied by 255 and rounded half to even. One-channel tensors give 2-D
    arrays. A list gives a list.
    """
    if torch.is_tensor(tensor):
        return _tensor_to_img(tensor, rgb2bgr, out_type, min_max)
    if isinstance(tensor, list) and all(torch.is_tensor(t) for t in tensor):
        images = [_tensor_to_img(t, rgb2bgr, out_type, min_max) for t in tensor]
        return images[0] if len(images) == 1 else images
    raise TypeError(f"tensor2img expects a tensor or a list of tensors, got {type(tensor).__name__}")


def tensor2img_fast(tensor: torch.Tensor, rgb2bgr: bool = True,
                    min_max: Sequence[float] = (0, 1)) -> np.ndarray:
    """``(1, c, h, w)`` RGB tensor -> ``(h, w, c)`` BGR uint8, **truncating** (not rounding)."""
    low, high = min_max
    img = tensor.squeeze(0).detach().clamp(low, high).permute(1, 2, 0)  # -> (h, w, c)
    img = ((img - low) / (high - low) * 255).to(torch.uint8).cpu().numpy()
    return np.ascontiguousarray(img[..., ::-1]) if rgb2bgr else img


_IMREAD_FLAGS = {"color": cv2.IMREAD_COLOR, "grayscale": cv2.IMREAD_GRAYSCALE,
                 "unchanged": cv2.IMREAD_UNCHANGED}


def imfrombytes(content: bytes, flag: str = "color", float32: bool = False) -> np.ndarray:
    """Decode an encoded image (PNG, JPEG, ...) into an OpenCV array.

    Args:
        content: the encoded file's bytes.
        flag: ``'color'`` (BGR, 3 channels), ``'grayscale'`` or ``'unchanged'``.
        float32: return float32 divided by 255 instead of the decoded dtype.
    """
    if flag not in _IMREAD_FLAGS:
        raise ValueError(f"imfrombytes: unknown flag '{flag}'; use one of {sorted(_IMREAD_FLAGS)}")
    img = cv2.imdecode(np.frombuffer(content, np.uint8), _IMREAD_FLAGS[flag])
    if img is None:
        raise ValueError(f"imfrombytes: could not decode {len(content)} bytes as an image")
    if float32:
        img = img.astype(np.float32) / 255.0
    return img


def imwrite(img: np.ndarray, path: str | os.PathLike, auto_mkdir: bool = True, *,
            params: Sequence[int] | None = None) -> None:
    """Write an OpenCV image; the format follows the extension of ``path``.

    Args:
        img: ``(h, w, c)`` BGR or ``(h, w)`` array, as ``cv2.imwrite`` takes it.
        path: destination file.
        auto_mkdir: create the parent folder when missing.
        params: OpenCV encoder parameters, e.g. ``[cv2.IMWRITE_PNG_COMPRESSION, 1]``.

    Raises:
        OSError: the image could not be encoded or written.
    """
    path = os.fspath(path)
    if auto_mkdir:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    extension = os.path.splitext(path)[1]
    try:
        ok, encoded = cv2.imencode(extension, img, list(params or []))
    except cv2.error as err:
        raise OSError(f"imwrite: cannot encode a {getattr(img, 'shape', '?')} "
                      f"{getattr(img, 'dtype', '?')} image as '{extension}' for {path}: {err}") from err
    if not ok:
        raise OSError(f"imwrite: OpenCV failed to encode the image for {path}")
    encoded.tofile(path)
