"""``--scale`` for ``python -m vsrt.test`` and the shared scale helpers of ``vsrt.archs.scale``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import make_clips, write_options
from vsrt import test as vsrt_test
from vsrt.archs import build_network
from vsrt.archs.savsr_arch import SAVSR
from vsrt.archs.scale import check_scale_supported, fixed_scale, is_arbitrary_scale, parse_scale, scale_tag


@pytest.mark.parametrize("text, expected", [("2.5", (2.5, 2.5)), ("4", (4.0, 4.0)), ("1.5,3.8", (1.5, 3.8)),
                                            (" x1.5, x3.8 ", (1.5, 3.8)), ("x4", (4.0, 4.0))])
def test_parse_scale(text, expected):
    assert parse_scale(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "0", "-2", "1,2,3", "2,", "inf", "nan"])
def test_parse_scale_errors(text):
    with pytest.raises(ValueError, match="--scale"):
        parse_scale(text)


def test_scale_tag():
    assert scale_tag(2) == "x2.0"
    assert scale_tag((3.5, 3.5)) == "x3.5"
    assert scale_tag([1.5, 3.8]) == "x1.5_x3.8"
    assert scale_tag((1.6, 3.05)) == "x1.6_x3.05"


def test_check_scale_supported():
    basicvsr = build_network({"type": "BasicVSR", "num_feat": 8, "num_block": 1, "spynet_path": None})
    assert check_scale_supported(basicvsr, 4) == (4.0, 4.0)
    with pytest.raises(ValueError, match=r"BasicVSR is a fixed x4 network: it cannot upscale by x2\.5"):
        check_scale_supported(basicvsr, (2.5, 2.5))
    with pytest.raises(ValueError, match="fixed x4 .* x1.5_x3.8"):
        check_scale_supported(type(basicvsr), (1.5, 3.8))
    savsr = SAVSR(**SAVSR.tiny_config)
    assert is_arbitrary_scale(savsr) and is_arbitrary_scale(SAVSR)
    assert check_scale_supported(savsr, (1.5, 3.8)) == (1.5, 3.8)

    class Denoiser:  # VRT-like: an instance attribute, 1 for denoising
        def __init__(self):
            self.upscale = 1

    assert fixed_scale(Denoiser()) == 1 and check_scale_supported(Denoiser(), 1) == (1.0, 1.0)
    with pytest.raises(ValueError, match="fixed x1 network"):
        check_scale_supported(Denoiser(), 2)
    with pytest.raises(ValueError, match="does not declare its upscaling factor"):
        check_scale_supported(object(), 2)


def fixed_scale_test_options(tmp_path: Path) -> Path:
    make_clips(tmp_path / "clips", ["c"], num_frames=3, size=32)
    return write_options(tmp_path / "basicvsr.yml", {
        "name": "basicvsr_scale", "model_type": "VideoRecurrentModel", "scale": 4, "num_gpu": 0,
        "datasets": {"test": {"name": "clips", "type": "VideoFolderDataset", "dataroot_gt": str(tmp_path / "clips"),
                              "test_mode": True}},
        "network_g": {"type": "BasicVSR", "num_feat": 8, "num_block": 1, "spynet_path": None},
        "path": {"results_root": str(tmp_path / "results")},
        "val": {"pbar": False, "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 0}}},
    })


def test_fixed_scale_model_rejects_other_scales(tmp_path):
    opt_path = fixed_scale_test_options(tmp_path)
    with pytest.raises(ValueError, match=r"BasicVSR is a fixed x4 network: it cannot upscale by x2\.5"):
        vsrt_test.main(["-opt", str(opt_path), "--scale", "2.5"])
    with pytest.raises(ValueError, match="fixed x4 .* x4.0_x2.0"):
        vsrt_test.main(["-opt", str(opt_path), "--scale", "4,2"])
    with pytest.raises(ValueError, match="--scale 'two'"):
        vsrt_test.main(["-opt", str(opt_path), "--scale", "two"])
    report = vsrt_test.main(["-opt", str(opt_path), "--scale", "4"])
    assert set(report["clips"]["average"]) == {"psnr"}


def test_arbitrary_scale_model_tests_at_the_requested_scale(tmp_path):
    make_clips(tmp_path / "GT", ["c"], num_frames=3, size=32)
    opt_path = write_options(tmp_path / "savsr.yml", {
        "name": "savsr_scale", "model_type": "ASVSRModel", "num_gpu": 0,
        "datasets": {"test": {"name": "clips", "type": "ASVideoTestDataset", "dataroot_gt": str(tmp_path / "GT"),
                              "num_frame": 5, "padding": "reflection", "scales": [2, 3.5],
                              "downsampling_mode": "core"}},
        "network_g": {"type": "SAVSR", **SAVSR.tiny_config},
        "path": {"results_root": str(tmp_path / "results")},
        "val": {"pbar": False, "metrics": {"psnr_y": {"type": "calculate_psnr", "crop_border": 0,
                                                      "test_y_channel": True}}},
    })
    report = vsrt_test.main(["-opt", str(opt_path), "--scale", "1.5,3.8"])
    assert set(report["clips"]["average"]) == {"psnr_y_x1.5_x3.8"}
    assert report["clips"]["scales"] == ["x1.5_x3.8"]
    written = json.loads((tmp_path / "results" / "savsr_scale" / "metrics.json").read_text())
    assert written["clips"]["average"] == report["clips"]["average"]

    report = vsrt_test.main(["-opt", str(opt_path)])  # without --scale: every scale of the dataset
    assert set(report["clips"]["average"]) == {"psnr_y_x2.0", "psnr_y_x3.5"}
