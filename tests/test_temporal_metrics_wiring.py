"""The temporal metrics where users ask for them: ``val.metrics`` (validation and ``vsrt.test``) and the
benchmark scripts' ``--temporal-metrics``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from helpers import make_clips, write_options
from vsrt.archs import build_network
from vsrt.inference.cli import main_reds, main_vimeo
from vsrt.metrics import calculate_psnr, calculate_tof, calculate_warping_error
from vsrt.utils import img2tensor, imresize, tensor2img
from vsrt.utils.synthetic import write_clip_folders

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


def _tiny_benchmark(tmp_path: Path) -> tuple[torch.nn.Module, list[str], Path, Path]:
    """A tiny BasicVSR (weights + option file) and a REDS-like GT / MATLAB-bicubic LQ tree of two clips."""
    torch.manual_seed(0)
    network_g = {"type": "BasicVSR", "num_feat": 8, "num_block": 1}
    net = build_network(network_g).eval()
    torch.save({"params": net.state_dict()}, tmp_path / "net.pth")
    (tmp_path / "net.yml").write_text(yaml.safe_dump({"name": "tiny", "network_g": network_g}))
    gt_root, lq_root = tmp_path / "GT", tmp_path / "LQ"
    write_clip_folders(gt_root, ["000", "011"], num_frames=4, height=48, width=64, seed=1)
    for path in sorted(gt_root.rglob("*.png")):
        lq = np.clip(np.round(imresize(cv2.imread(str(path)), 0.25)), 0, 255).astype(np.uint8)
        (lq_root / path.parent.name).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(lq_root / path.parent.name / path.name), lq)
    args = ["--opt", str(tmp_path / "net.yml"), "--weights", str(tmp_path / "net.pth"), "--device", "cpu",
            "--quiet"]
    return net, args, gt_root, lq_root


def test_inference_reds_prints_and_writes_temporal_metrics(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    net, args, gt_root, lq_root = _tiny_benchmark(tmp_path)
    out_dir = tmp_path / "results"
    report = main_reds([*args, "--gt-root", str(gt_root), "--lq-root", str(lq_root), "--clips", "000", "011",
                        "--output", str(out_dir), "--temporal-metrics"])
    stdout = capsys.readouterr().out
    expected = {}
    for clip in ("000", "011"):  # network on the LQ frames, tensor2img, the metrics on the GT PNGs
        lq = torch.stack(img2tensor([cv2.imread(str(p)).astype(np.float32) / 255
                                     for p in sorted((lq_root / clip).glob("*.png"))]))
        with torch.no_grad():
            outputs = [tensor2img(frame) for frame in net(lq[None])[0]]
        gts = [cv2.imread(str(p)) for p in sorted((gt_root / clip).glob("*.png"))]
        expected[clip] = (calculate_tof(outputs, gts), calculate_warping_error(outputs, gts))
    for clip in report["clips"]:
        assert (clip["tof"], clip["warping_error"]) == pytest.approx(expected[clip["clip"]], rel=1e-9)
    means = np.mean(list(expected.values()), axis=0)
    assert (report["average"]["tof"], report["average"]["warping_error"]) == pytest.approx(tuple(means), rel=1e-9)
    assert json.loads((out_dir / "metrics.json").read_text())["average"] == report["average"]
    rows = list(csv.DictReader(open(out_dir / "metrics.csv")))
    assert float(rows[-1]["tof"]) == pytest.approx(means[0], rel=1e-6)
    assert "tOF" in stdout and "E_warp" in stdout and f"{means[0]:.4f}" in stdout and f"{means[1]:.7f}" in stdout
    # without the flag: neither columns nor keys
    plain = main_reds([*args, "--gt-root", str(gt_root), "--lq-root", str(lq_root), "--clips", "000",
                       "--output", str(tmp_path / "plain")])
    assert "tof" not in plain["average"] and "tof" not in plain["clips"][0] and "tOF" not in capsys.readouterr().out


def test_inference_temporal_metrics_refuse_centre_frame_protocols(tmp_path: Path) -> None:
    _, args, gt_root, _ = _tiny_benchmark(tmp_path)
    meta = tmp_path / "sep_testlist.txt"
    meta.write_text("00001/0001\n")
    with pytest.raises(SystemExit, match="--temporal-metrics needs whole clips, but vimeo90k"):
        main_vimeo([*args, "--dataset", "vimeo90k", "--gt-root", str(gt_root), "--lq-root", str(gt_root),
                    "--meta-file", str(meta), "--output", str(tmp_path / "v"), "--temporal-metrics"])
