"""The upscaler's flicker report on constructed streams with known differences, and ``vsrt upscale --report``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsrt.metrics.flicker import FlickerReport, format_summary, seam_positions


def _uniform(value: float, size: tuple[int, int] = (16, 24)) -> np.ndarray:
    return np.full((*size, 3), value, dtype=np.uint8)


def test_chunk_border_jumps_give_the_known_ratio() -> None:
    """Input: +1 grey level per frame. Output: the same ramp plus a +10 step at every 4th frame (a chunk
    border): border pairs differ by 11, the others by 1; the input's own ratio is 1."""
    report = FlickerReport(chunk=4)
    for t in range(12):
        report.add_input(_uniform(50 + t))
        report.add_output(_uniform(50 + t + 10 * (t // 4), (64, 96)))
    summary = report.summary()
    border = summary["chunk_border"]
    assert summary["frames"] == 12 and border["pairs"] == [4, 8]
    assert (border["border"], border["inside"], border["ratio"]) == (11.0, 1.0, 11.0)
    assert (border["input_border"], border["input_inside"], border["input_ratio"]) == (1.0, 1.0, 1.0)
    assert summary["tile_seams"] is None
    assert [p["output"] for p in summary["per_pair"]] == [1, 1, 1, 11, 1, 1, 1, 11, 1, 1, 1]
    assert "ratio 11.00 (input: 1.00)" in format_summary(summary)


def test_a_stream_without_seams_scores_one() -> None:
    rng = np.random.default_rng(0)
    report = FlickerReport(chunk=3)
    for _ in range(7):
        frame = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        report.add_input(frame)
        report.add_output(frame)
    summary = report.summary()["chunk_border"]
    assert summary["pairs"] == [3, 6] and summary["ratio"] == pytest.approx(summary["input_ratio"])


def test_tile_seams_positions_and_known_flicker() -> None:
    # LQ width 40, tiles of 16 overlapping 4: starts 0, 12, 24 -> seams at LQ 14 and 26, x4 -> 56 and 104
    assert seam_positions(40, 16, 4, 4) == [56, 104]
    assert seam_positions(40, 0, 0, 4) == [] and seam_positions(16, 16, 4, 4) == []
    report = FlickerReport(chunk=100, tile=(0, 16), tile_overlap=(0, 4))
    for t in range(5):
        report.add_input(_uniform(0, (10, 40)))
        output = np.full((40, 160, 3), 100, dtype=np.uint8)
        output[:, 52:60] += 6 * (t % 2)  # the band of +-4 px around the seam at 56 flickers by 6 levels
        report.add_output(output)
    tiles = report.summary()["tile_seams"]
    assert tiles["seam_cols"] == [56, 104] and tiles["seam_rows"] == [] and tiles["band"] == 4
    # 8 of the 16 seam-band columns flicker by 6: mean 3; nothing else changes
    assert (tiles["near_seams"], tiles["away_from_seams"], tiles["ratio"]) == (3.0, 0.0, float("inf"))


def test_upscale_report_matches_the_written_frames(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``vsrt upscale --report``: chunks of 2 with no context (the recurrent network restarts at every
    chunk border), tiles of 8 LQ px overlapping 2; the per-pair differences are those of the frames written."""
    import torch
    import yaml

    from vsrt.archs import build_network
    from vsrt.inference.upscale import main
    from vsrt.utils.synthetic import write_clip_folders

    torch.manual_seed(0)
    network_g = {"type": "BasicVSR", "num_feat": 8, "num_block": 1}
    torch.save({"params": build_network(network_g).state_dict()}, tmp_path / "net.pth")
    (tmp_path / "net.yml").write_text(yaml.safe_dump({"name": "tiny", "network_g": network_g}))
    frames = write_clip_folders(tmp_path / "frames", ["clip"], num_frames=6, height=16, width=24) / "clip"
    report_path = tmp_path / "flicker.json"
    main([str(frames), "-o", str(tmp_path / "out"), "--opt", str(tmp_path / "net.yml"), "--weights",
          str(tmp_path / "net.pth"), "--device", "cpu", "--quiet", "--chunk", "2", "--chunk-overlap", "0",
          "--tile", "8", "--tile-overlap", "2", "--report", str(report_path)])
    report = json.loads(report_path.read_text())
    gray = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2GRAY).astype(float)
            for p in sorted((tmp_path / "out").glob("*.png"))]
    inputs = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2GRAY).astype(float) for p in sorted(frames.glob("*.png"))]
    assert len(gray) == report["frames"] == 6
    differences = [np.abs(gray[i] - gray[i - 1]).mean() for i in range(1, 6)]
    assert [p["output"] for p in report["per_pair"]] == pytest.approx(differences, rel=1e-6)
    assert [p["input"] for p in report["per_pair"]] == pytest.approx(
        [np.abs(inputs[i] - inputs[i - 1]).mean() for i in range(1, 6)], rel=1e-6)
    border = report["chunk_border"]
    assert border["pairs"] == [2, 4]
    assert border["border"] == pytest.approx((differences[1] + differences[3]) / 2, rel=1e-6)
    assert border["inside"] == pytest.approx((differences[0] + differences[2] + differences[4]) / 3, rel=1e-6)
    # LQ 16 x 24, tiles of 8 overlapping 2: starts 0, 6, 8 (rows) and 0, 6, 12, 16 (columns), seams x4
    tiles = report["tile_seams"]
    assert tiles["seam_rows"] == [28, 36] and tiles["seam_cols"] == [28, 52, 68] and tiles["band"] == 4
    near = np.zeros((64, 96), dtype=bool)
    for row in (28, 36):
        near[row - 4:row + 4] = True
    for col in (28, 52, 68):
        near[:, col - 4:col + 4] = True
    pairs = [np.abs(gray[i] - gray[i - 1]) for i in range(1, 6)]
    assert tiles["near_seams"] == pytest.approx(np.mean([d[near].mean() for d in pairs]), rel=1e-6)
    assert tiles["away_from_seams"] == pytest.approx(np.mean([d[~near].mean() for d in pairs]), rel=1e-6)
    assert "flicker report (6 frames, chunks of 2" in capsys.readouterr().out


def test_upscale_report_argument_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A bad report path is a one-line error before the model is loaded (the preset is never downloaded)."""
    from vsrt.inference.upscale import main

    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.png"), np.zeros((8, 8, 3), np.uint8))
    for report, message in (("r.txt", "ending in .json"), (str(tmp_path / "no" / "r.json"), "does not exist"),
                            (str(tmp_path), "ending in .json")):
        with pytest.raises(SystemExit):
            main([str(frames), "-o", str(tmp_path / "out"), "--model", "basicvsr_reds", "--no-download",
                  "--report", report])
        assert message in capsys.readouterr().err and not (tmp_path / "out").exists()
