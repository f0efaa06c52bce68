"""SAVSR's arbitrary-scale LR generation and test-time GT crop against the official fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import parity_folders
from vsrt.data.arbitrary_scale import arbitrary_scale_downsample, as_mod_crop, cal_step, lr_size, matlab_bicubic_resize

CASES = [pytest.param(path, id=f"{tag}/{path.stem}")
         for tag, folder in parity_folders("savsr_resize") for path in sorted(folder.glob("*.pt"))]


@pytest.mark.parametrize("path", CASES)
def test_resize_parity(path: Path) -> None:
    case = torch.load(path, map_location="cpu", weights_only=True)
    scale = case["scale"]
    if case["pipeline"] == "test":  # the GT is the as_mod_crop of the BGR frames, made RGB/CHW
        crops = [as_mod_crop(frame.astype(np.float32) / 255.0, scale) for frame in case["src_uint8_bgr"].numpy()]
        crops = torch.from_numpy(np.stack([c[..., ::-1].transpose(2, 0, 1) for c in crops]))
        assert torch.equal(crops, case["input"])
    out = arbitrary_scale_downsample(case["input"].clone(), scale, case["mode"])
    want = case["output"]
    assert out.shape == want.shape
    assert (out - want).abs().max() <= case["atol"]


def test_lr_size_rounds_half_to_even() -> None:
    assert lr_size(45, 75, 2) == (22, 38)  # 22.5 -> 22, 37.5 -> 38
    assert lr_size(54, 57, (1.5, 3.8)) == (36, 15)


@pytest.mark.parametrize("mode", ["torch", "core"])
def test_shapes_4d_and_5d(mode: str) -> None:
    clip = torch.rand(2, 3, 3, 20, 24)
    out5 = arbitrary_scale_downsample(clip, (2.5, 3), mode)
    out4 = arbitrary_scale_downsample(clip[0], (2.5, 3), mode)
    assert out5.shape == (2, 3, 3, 8, 8)
    assert torch.equal(out5[0], out4)


def test_core_float64_and_upscaling() -> None:
    x = torch.rand(1, 3, 15, 17)
    out32 = matlab_bicubic_resize(x, (7, 30))
    out64 = matlab_bicubic_resize(x.double(), (7, 30))
    assert out64.dtype == torch.float64
    assert (out64 - out32.double()).abs().max() < 1e-5
    const = torch.full((1, 1, 9, 11), 0.25)  # normalised weights keep constants
    assert torch.allclose(matlab_bicubic_resize(const, (4, 23)), torch.full((1, 1, 4, 23), 0.25))


def test_bad_mode_and_degradation() -> None:
    x = torch.rand(3, 3, 8, 8)
    with pytest.raises(ValueError, match="mode"):
        arbitrary_scale_downsample(x, 2, "numpy")
    with pytest.raises(ValueError, match="BD"):
        arbitrary_scale_downsample(x, 2, "torch", degradation="BD")


def test_cal_step() -> None:
    assert [cal_step(s) for s in (4, 3.5, 3.8, 2.7, 2.95, 1.25)] == [1, 2, 5, 10, 20, 20]
    with pytest.raises(ValueError):
        cal_step(1.33)


@pytest.mark.parametrize("scale", [1.1, 1.5, 2.7, 3.9, (2, 3.75), (2.95, 3.75), (1.6, 3.05)])
def test_as_mod_crop_makes_sizes_consistent(scale) -> None:
    img = np.zeros((576, 720, 3), dtype=np.float32)
    h, w = as_mod_crop(img, scale).shape[:2]
    s_h, s_w = scale if isinstance(scale, tuple) else (scale, scale)
    lr_h, lr_w = lr_size(h, w, scale)
    assert (round(lr_h * s_h), round(lr_w * s_w)) == (h, w)
    assert as_mod_crop(torch.zeros(576, 720, 3), scale).shape[:2] == (h, w)
