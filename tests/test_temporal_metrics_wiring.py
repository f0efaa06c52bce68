"""The temporal metrics where users ask for them: ``val.metrics`` (validation and ``vsrt.test``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch

from helpers import make_clips, write_options
from vsrt.archs import build_network
from vsrt.metrics import calculate_psnr, calculate_tof, calculate_warping_error

TEMPORAL = {"psnr": {"type": "calculate_psnr", "crop_border": 0},
            "tof": {"type": "calculate_tof"},
            "warp": {"type": "calculate_warping_error", "crop_border": 2, "better": "lower"}}


def _test_options(tmp_path: Path, **val: object) -> dict:
    make_clips(tmp_path / "clips", ["a", "b"], num_frames=4, size=32, seed=4)
    torch.manual_seed(0)
    network_g = {"type": "BasicVSR", "num_feat": 8, "num_block": 1, "spynet_path": None}
    torch.save({"params": build_network(network_g).state_dict()}, tmp_path / "net.pth")
    return {"name": "temporal", "model_type": "VideoRecurrentModel", "scale": 4, "num_gpu": 0,
            "datasets": {"test": {"name": "clips", "type": "VideoFolderDataset",
                                  "dataroot_gt": str(tmp_path / "clips"), "test_mode": True}},
            "network_g": network_g,
            "path": {"pretrain_network_g": str(tmp_path / "net.pth"), "results_root": str(tmp_path / "results")},
            "val": {"save_img": True, "suffix": "out", "metrics": TEMPORAL, **val}}


def _read(folder: Path) -> list:
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))]


def test_val_metrics_score_temporal_metrics_per_clip(tmp_path: Path) -> None:
    """tOF and the warping error are computed once per clip on all its frames (not averaged over frames),
    next to per-frame PSNR; the best-value tracking treats them as lower-is-better."""
    from vsrt import test as vsrt_test

    opt = _test_options(tmp_path)
    report = vsrt_test.main(["-opt", str(write_options(tmp_path / "t.yml", opt))])["clips"]
    visualization = next((tmp_path / "results").rglob("visualization"))
    for clip in ("a", "b"):
        outputs = _read(next(visualization.rglob(clip)))
        gts = _read(tmp_path / "clips" / clip)
        assert len(outputs) == len(gts) == 4
        scores = report["clips"][clip]
        assert scores["tof"] == pytest.approx(calculate_tof(outputs, gts), rel=1e-9)
        assert scores["warp"] == pytest.approx(calculate_warping_error(outputs, gts, crop_border=2), rel=1e-9)
        psnr = sum(calculate_psnr(o, g, crop_border=0) for o, g in zip(outputs, gts)) / 4
        assert scores["psnr"] == pytest.approx(psnr, rel=1e-9)
        assert scores["tof"] > 0 and scores["warp"] > 0


def test_temporal_metric_on_single_frame_scoring_is_a_clear_error(tmp_path: Path) -> None:
    from vsrt import test as vsrt_test

    opt = _test_options(tmp_path, center_frame_only=True)
    with pytest.raises(ValueError, match=r"val.metrics \['tof', 'warp'\]: temporal metrics score consecutive"):
        vsrt_test.main(["-opt", str(write_options(tmp_path / "t.yml", opt))])
