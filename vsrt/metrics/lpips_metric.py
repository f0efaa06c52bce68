"""LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018,
arXiv:1801.03924; https://github.com/richzhang/PerceptualSimilarity) through the ``lpips`` package, offline.

``lpips`` ships its linear calibration layers (v0.1) but downloads the ImageNet backbone through
torchvision. vsrt never downloads: the backbone's torchvision weights file is given in the metric block,

    lpips: {type: calculate_lpips, net: alex, backbone_path: experiments/pretrained_models/alexnet-owt-7be5be79.pth}

(``vgg``: ``vgg16-397923af.pth``; ``squeeze``: ``squeezenet1_1-b8a52dc0.pth``), and a missing package,
path or file is an error that says what to do. Frames are uint8 BGR ``(h, w, 3)`` (:func:`tensor2img`),
scored as RGB in [-1, 1] on the CPU; lower is better.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsrt.registry import METRIC_REGISTRY

BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth",
                  "squeeze": "squeezenet1_1-b8a52dc0.pth"}


@functools.lru_cache(maxsize=4)
def load_lpips(net: str, backbone_path: str) -> Any:
    """An ``lpips.LPIPS`` model (eval, CPU) whose backbone is read from ``backbone_path``, without downloads."""
    if net not in BACKBONE_FILES:
        raise ValueError(f"calculate_lpips: net must be one of {sorted(BACKBONE_FILES)}, got {net!r}")
    try:
        import lpips
    except ImportError:
        raise ImportError("calculate_lpips needs the lpips package: pip install lpips") from None
    path = Path(backbone_path)
    if not path.is_file():
        raise FileNotFoundError(f"calculate_lpips: backbone_path {backbone_path} is not a file (the torchvision "
                                f"ImageNet weights of {net}, {BACKBONE_FILES[net]})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)  # linear layers from the package, random backbone
    for block in model.net.children():  # slice1..sliceN: (index -> layer) of tv's features
        for key in block.state_dict():
            source = f"features.{key}"  # "0.weight" -> "features.0.weight"
            if source not in state:
                raise KeyError(f"calculate_lpips: {backbone_path} has no {source!r}; it is not torchvision's "
                               f"{net} checkpoint ({BACKBONE_FILES[net]})")
            block.get_parameter(key).data.copy_(state[source])
    return model.eval()


def _to_lpips_input(img: np.ndarray) -> torch.Tensor:
    """uint8 BGR ``(h, w, 3)`` -> float32 RGB ``(1, 3, h, w)`` in [-1, 1]."""
    rgb = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1).float()
    return (rgb / 127.5 - 1.0)[None]


@METRIC_REGISTRY.register()
def calculate_lpips(img: np.ndarray, img2: np.ndarray, backbone_path: str | None = None, net: str = "alex",
                    crop_border: int = 0, better: str = "lower") -> float:
    """LPIPS distance of two uint8 BGR images (0 = identical); see the module docstring."""
    if better != "lower":
        raise ValueError(f"LPIPS is lower-is-better; 'better' must be 'lower', got {better!r}")
    if backbone_path is None:
        raise ValueError(f"calculate_lpips needs backbone_path: the torchvision ImageNet weights of the {net} "
                         f"backbone ({BACKBONE_FILES.get(net, '?')}); vsrt never downloads them")
    if img.shape != img2.shape or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"calculate_lpips: expected two (h, w, 3) images of one size, got {img.shape} and "
                         f"{img2.shape}")
    model = load_lpips(net, str(backbone_path))
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border]
    with torch.no_grad():
        return float(model(_to_lpips_input(img), _to_lpips_input(img2)).item())
