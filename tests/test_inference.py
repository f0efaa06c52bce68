"""Benchmark scripts end to end on tiny generated REDS4 / Vimeo-90K-T / Vid4 trees.

The printed and JSON metrics must equal metrics computed here independently (network forward on
the LQ frames, ``tensor2img``, BasicSR PSNR/SSIM, mean per clip then over clips).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from helpers import REPO_ROOT
from vsrt.archs import build_network
from vsrt.data.arbitrary_scale import arbitrary_scale_downsample, as_mod_crop
from vsrt.inference.cli import main_reds, main_vimeo
from vsrt.metrics import calculate_psnr, calculate_ssim
from vsrt.utils import img2tensor, imresize, tensor2img
from vsrt.utils.synthetic import make_clip, write_clip_folders

REPO = Path(__file__).resolve().parents[1]
TINY_BASICVSR = {"type": "BasicVSR", "num_feat": 8, "num_block": 1}
TINY_SAVSR = {"type": "SAVSR", "num_feat": 16, "num_frame": 5, "slid_win": 3, "fusion_win": 3,
              "w1_num_block": 1, "w2_num_block": 1, "n_resgroups": 1, "n_resblocks": 1}


def save_tiny(root: Path, network_g: dict, seed: int = 0) -> tuple[torch.nn.Module, Path, Path]:
    torch.manual_seed(seed)
    net = build_network(network_g).eval()
    ckpt, opt = root / f"{network_g['type']}.pth", root / f"{network_g['type']}.yml"
    torch.save({"params": net.state_dict()}, ckpt)
    opt.write_text(yaml.safe_dump({"name": "tiny", "network_g": network_g}))
    return net, ckpt, opt


@pytest.fixture(scope="module")
def tiny_basicvsr(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("basicvsr"), TINY_BASICVSR)


def write_bicubic_lq(gt_paths: list[Path], gt_root: Path, lq_root: Path) -> None:
    """MATLAB-bicubic x1/4 LQ frames, rounded to uint8, mirroring the GT tree."""
    for path in gt_paths:
        lq = np.clip(np.round(imresize(cv2.imread(str(path)), 0.25)), 0, 255).astype(np.uint8)
        target = lq_root / path.relative_to(gt_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), lq)


def read_rgb(paths: list[Path]) -> torch.Tensor:
    frames = [cv2.imread(str(p)).astype(np.float32) / 255.0 for p in paths]
    return torch.stack(img2tensor(frames))  # (t, 3, h, w) RGB


def expected_scores(net, clips: dict[str, tuple[list[Path], list[Path], list[int]]], y: bool) -> dict:
    """Clip means and their mean, computed without vsrt.inference."""
    per_clip = {}
    for name, (lq_paths, gt_paths, scored) in clips.items():
        with torch.no_grad():
            out = net(read_rgb(lq_paths).unsqueeze(0))[0]
        psnrs, ssims = [], []
        for index, gt_path in zip(scored, gt_paths):
            sr, gt = tensor2img(out[index]), cv2.imread(str(gt_path))
            psnrs.append(calculate_psnr(sr, gt, 0, test_y_channel=y))
            ssims.append(calculate_ssim(sr, gt, 0, test_y_channel=y))
        per_clip[name] = (float(np.mean(psnrs)), float(np.mean(ssims)))
    return {"clips": per_clip, "psnr": float(np.mean([v[0] for v in per_clip.values()])),
            "ssim": float(np.mean([v[1] for v in per_clip.values()]))}


def check_report(report: dict, expected: dict, out_dir: Path, stdout: str) -> None:
    assert report["average"]["psnr"] == pytest.approx(expected["psnr"], abs=1e-10)
    assert report["average"]["ssim"] == pytest.approx(expected["ssim"], abs=1e-10)
    for clip in report["clips"]:
        assert (clip["psnr"], clip["ssim"]) == pytest.approx(expected["clips"][clip["clip"]], abs=1e-10)
    assert json.loads((out_dir / "metrics.json").read_text())["average"] == report["average"]
    with open(out_dir / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["clip"] for r in rows] == [c["clip"] for c in report["clips"]] + ["average"]
    assert float(rows[-1]["psnr"]) == pytest.approx(expected["psnr"], abs=1e-5)
    assert f"{expected['psnr']:.4f}" in stdout and f"{expected['ssim']:.4f}" in stdout


def test_inference_reds_matches_independent_metrics(tmp_path, tiny_basicvsr, capsys):
    net, ckpt, opt = tiny_basicvsr
    gt_root, lq_root = tmp_path / "GT", tmp_path / "sharp_bicubic"
    write_clip_folders(gt_root, ["000", "011"], num_frames=3, height=48, width=64, seed=1)
    write_bicubic_lq(sorted(gt_root.rglob("*.png")), gt_root, lq_root)
    out_dir = tmp_path / "results"
    report = main_reds(["--opt", str(opt), "--weights", str(ckpt), "--gt-root", str(gt_root),
                        "--lq-root", str(lq_root), "--clips", "000", "011", "--device", "cpu",
                        "--output", str(out_dir), "--save-images", "--quiet"])
    clips = {c: (sorted((lq_root / c).glob("*.png")), sorted((gt_root / c).glob("*.png")), [0, 1, 2])
             for c in ("000", "011")}
    check_report(report, expected_scores(net, clips, y=False), out_dir, capsys.readouterr().out)
    assert report["protocol"]["channel"] == "RGB" and not report["protocol"]["centre_frame_only"]
    assert len(list((out_dir / "images" / "000").glob("*.png"))) == 3


def test_inference_vimeo_centre_frame_y_channel(tmp_path, tiny_basicvsr, capsys):
    net, ckpt, opt = tiny_basicvsr
    gt_root, lq_root = tmp_path / "sequences", tmp_path / "matlabLRx4"
    sequences = ["00001/0001", "00002/0010"]
    for i, seq in enumerate(sequences):
        (gt_root / seq).mkdir(parents=True)
        for t, frame in enumerate(make_clip(7, 32, 48, seed=10 + i)):
            cv2.imwrite(str(gt_root / seq / f"im{t + 1}.png"), frame)
    write_bicubic_lq(sorted(gt_root.rglob("*.png")), gt_root, lq_root)
    meta = tmp_path / "sep_testlist.txt"
    meta.write_text("\n".join(sequences) + "\n")
    out_dir = tmp_path / "results"
    report = main_vimeo(["--opt", str(opt), "--weights", str(ckpt), "--dataset", "vimeo90k",
                         "--gt-root", str(gt_root), "--lq-root", str(lq_root), "--meta-file", str(meta),
                         "--device", "cpu", "--output", str(out_dir), "--quiet"])
    clips = {s: ([lq_root / s / f"im{i}.png" for i in range(1, 8)], [gt_root / s / "im4.png"], [3])
             for s in sequences}
    check_report(report, expected_scores(net, clips, y=True), out_dir, capsys.readouterr().out)
    assert report["protocol"]["channel"] == "Y" and report["protocol"]["centre_frame_only"]
    assert all(c["frames"] == 1 for c in report["clips"])


def test_inference_vid4_mean_of_clip_means(tmp_path, tiny_basicvsr, capsys):
    """Clips of different lengths: the average is over clips, not frames."""
    net, ckpt, opt = tiny_basicvsr
    gt_root, lq_root = tmp_path / "GT", tmp_path / "BIx4"
    write_clip_folders(gt_root, ["calendar"], num_frames=2, height=32, width=32, seed=3)
    write_clip_folders(gt_root, ["walk"], num_frames=4, height=32, width=32, seed=4)
    write_bicubic_lq(sorted(gt_root.rglob("*.png")), gt_root, lq_root)
    out_dir = tmp_path / "results"
    report = main_vimeo(["--opt", str(opt), "--weights", str(ckpt), "--dataset", "vid4", "--gt-root",
                         str(gt_root), "--lq-root", str(lq_root), "--device", "cpu", "--output",
                         str(out_dir), "--quiet", "--chunk", "3", "--chunk-overlap", "1"])
    assert report["settings"]["temporal_chunk"] == 3
    # chunked inference: the reference runs each chunk separately and averages the overlap
    from vsrt.archs.tiling import TileConfig, tiled_inference

    def chunked(lq):
        with torch.no_grad():
            return tiled_inference(net, lq, 4, TileConfig(temporal_chunk=3, temporal_overlap=1))

    class Chunked(torch.nn.Module):
        def forward(self, lq):
            return chunked(lq)

    clips = {c: (sorted((lq_root / c).glob("*.png")), sorted((gt_root / c).glob("*.png")), list(range(n)))
             for c, n in (("calendar", 2), ("walk", 4))}
    expected = expected_scores(Chunked(), clips, y=True)
    frame_weighted = (2 * expected["clips"]["calendar"][0] + 4 * expected["clips"]["walk"][0]) / 6
    assert abs(expected["psnr"] - frame_weighted) > 1e-6
    check_report(report, expected, out_dir, capsys.readouterr().out)


def test_inference_savsr_lq_from_gt_sliding_windows(tmp_path, capsys):
    """Arbitrary scale: LQ made from the mod-cropped GT, one reflected window per output frame."""
    net, ckpt, opt = save_tiny(tmp_path, TINY_SAVSR)
    gt_root = tmp_path / "GT"
    write_clip_folders(gt_root, ["city"], num_frames=4, height=27, width=33, seed=5)
    report = main_vimeo(["--opt", str(opt), "--weights", str(ckpt), "--dataset", "udm10", "--gt-root",
                         str(gt_root), "--scale", "2.5,3", "--device", "cpu", "--output",
                         str(tmp_path / "results"), "--quiet"])
    gts = [as_mod_crop(cv2.imread(str(p)), (2.5, 3.0)) for p in sorted((gt_root / "city").glob("*.png"))]
    lq = arbitrary_scale_downsample(torch.stack(img2tensor([g.astype(np.float32) / 255 for g in gts])), (2.5, 3.0))
    psnrs = []
    for i, gt in enumerate(gts):
        window = [abs(j) if j < 4 else 6 - j for j in range(i - 2, i + 3)]  # reflection at both ends
        with torch.no_grad():
            sr = tensor2img(net(lq[window].unsqueeze(0), scale=(2.5, 3.0))[0])
        psnrs.append(calculate_psnr(sr, gt, 0, test_y_channel=True))
    assert report["settings"]["lq"] == "from GT"
    assert report["average"]["psnr"] == pytest.approx(float(np.mean(psnrs)), abs=1e-10)


def test_inference_script_runs_as_a_program(tmp_path, tiny_basicvsr):
    """``python inference_reds.py ...`` from the repository root (help only: imports and argparse)."""
    result = subprocess.run([sys.executable, "inference_reds.py", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0 and "--tile" in result.stdout and "--precision" in result.stdout


def test_bad_scale_for_fixed_scale_model(tmp_path, tiny_basicvsr):
    _, ckpt, opt = tiny_basicvsr
    (tmp_path / "000").mkdir()  # a clip folder: the data is checked first, the scale before it is read
    with pytest.raises(ValueError, match="fixed x4"):
        main_reds(["--opt", str(opt), "--weights", str(ckpt), "--scale", "3", "--gt-root", str(tmp_path),
                   "--lq-root", str(tmp_path), "--clips", "000", "--output", str(tmp_path / "out"),
                   "--device", "cpu", "--quiet"])


def test_bad_device_is_a_one_line_error(tmp_path, tiny_basicvsr, capsys, monkeypatch):
    from vsrt.inference.cli import run_script

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _, ckpt, opt = tiny_basicvsr
    (tmp_path / "000").mkdir()  # a clip folder (the data folders are checked first)
    for device, message in (("cuda", "CUDA is not available"), ("tpu:0", "expected cpu, cuda")):
        with pytest.raises(SystemExit) as exit_info:
            run_script(main_reds, ["--opt", str(opt), "--weights", str(ckpt), "--device", device,
                                   "--gt-root", str(tmp_path), "--lq-root", str(tmp_path), "--clips", "000",
                                   "--output", str(tmp_path / "out"), "--quiet"])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_inference_vrt_vimeo_pads_to_eight_frames(tmp_path, capsys):
    """VRT on Vimeo-90K-T: 7 LQ frames + a repeated last frame, the official ``test_video`` with
    ``--tile 8 0 0 --tile_overlap 0 20 20``, output 3 scored on Y."""
    from types import SimpleNamespace

    from vsrt.archs.vrt.inference import test_video
    from vsrt.archs.vrt.vrt_arch import VRT

    net, ckpt, opt = save_tiny(tmp_path, {"type": "VRT", **VRT.tiny_config})
    gt_root, lq_root, sequence = tmp_path / "sequences", tmp_path / "lq", "00001/0001"
    (gt_root / sequence).mkdir(parents=True)
    for t, frame in enumerate(make_clip(7, 128, 128, seed=7)):
        cv2.imwrite(str(gt_root / sequence / f"im{t + 1}.png"), frame)
    write_bicubic_lq(sorted(gt_root.rglob("*.png")), gt_root, lq_root)
    meta = tmp_path / "meta_info_Vimeo90K_test_GT.txt"
    meta.write_text(f"{sequence} 7 (128,128,3)\n")
    report = main_vimeo(["--opt", str(opt), "--weights", str(ckpt), "--gt-root", str(gt_root), "--lq-root",
                         str(lq_root), "--meta-file", str(meta), "--device", "cpu", "--output",
                         str(tmp_path / "results"), "--quiet"])
    assert report["settings"]["temporal_chunk"] == 8 and report["settings"]["tile"] == [0, 0]
    lq = read_rgb([lq_root / sequence / f"im{i}.png" for i in (1, 2, 3, 4, 5, 6, 7, 7)]).unsqueeze(0)
    args = SimpleNamespace(tile=[8, 0, 0], tile_overlap=[0, 20, 20], scale=4, window_size=[2, 4, 4])
    with torch.no_grad():
        sr = tensor2img(test_video(lq, net, args)[0, 3])
    gt = cv2.imread(str(gt_root / sequence / "im4.png"))
    assert report["average"]["psnr"] == pytest.approx(calculate_psnr(sr, gt, 0, test_y_channel=True), abs=1e-10)
    assert report["average"]["ssim"] == pytest.approx(calculate_ssim(sr, gt, 0, test_y_channel=True), abs=1e-10)


TINY_VRT_VFI = {"type": "VRT", "upscale": 1, "out_chans": 3, "img_size": [4, 32, 32], "window_size": [4, 4, 4],
                "depths": [1] * 11, "indep_reconsts": [], "embed_dims": [8] * 7 + [12] * 4, "num_heads": [2] * 11,
                "pa_frames": 0}


def write_septuplets(root: Path, sequences: list[str], size: tuple[int, int] = (32, 48)) -> None:
    for i, seq in enumerate(sequences):
        (root / seq).mkdir(parents=True)
        for t, frame in enumerate(make_clip(7, *size, seed=20 + i)):
            cv2.imwrite(str(root / seq / f"im{t + 1}.png"), frame)


def test_frame_interpolation_benchmark_scores_im4_from_odd_frames(tmp_path, capsys):
    """VRT task 009 on Vimeo-90K-T: GT frames im1, im3, im5, im7 in, im4 scored on RGB, the same
    numbers from inference_vimeo90k.py and from vsrt.test with the VFI test options."""
    from vsrt import test as vsrt_test

    net, ckpt, opt = save_tiny(tmp_path, TINY_VRT_VFI)
    gt_root, sequences = tmp_path / "sequences", ["00001/0001", "00003/0042"]
    write_septuplets(gt_root, sequences)
    meta = tmp_path / "sep_testlist.txt"
    meta.write_text("\n".join(sequences) + "\n")
    report = main_vimeo(["--opt", str(opt), "--weights", str(ckpt), "--gt-root", str(gt_root), "--meta-file",
                         str(meta), "--device", "cpu", "--output", str(tmp_path / "results"), "--quiet"])
    clips = {s: ([gt_root / s / f"im{i}.png" for i in (1, 3, 5, 7)], [gt_root / s / "im4.png"], [0])
             for s in sequences}
    expected = expected_scores(net, clips, y=False)
    check_report(report, expected, tmp_path / "results", capsys.readouterr().out)
    assert report["protocol"]["channel"] == "RGB" and all(c["frames"] == 1 for c in report["clips"])

    options = yaml.safe_load((REPO_ROOT / "options/test/VRT/test_VRT_vfi_Vimeo90K.yml").read_text())
    options["network_g"] = TINY_VRT_VFI
    options["path"].update(pretrain_network_g=str(ckpt), results_root=str(tmp_path / "test_results"))
    options["datasets"]["test"].update(dataroot_gt=str(gt_root), dataroot_lq=str(gt_root), meta_info_file=str(meta))
    options["num_gpu"] = 0
    (tmp_path / "vfi.yml").write_text(yaml.safe_dump(options))
    metrics = vsrt_test.main(["-opt", str(tmp_path / "vfi.yml")])["Vimeo90K-T"]["average"]
    assert metrics["psnr"] == pytest.approx(expected["psnr"], abs=1e-6)
    assert metrics["ssim"] == pytest.approx(expected["ssim"], abs=1e-6)

    with pytest.raises(ValueError, match="interpolates frames"):
        main_reds(["--opt", str(opt), "--weights", str(ckpt), "--gt-root", str(gt_root), "--lq-root",
                   str(gt_root), "--clips", "00001", "--output", str(tmp_path / "reds"), "--device", "cpu",
                   "--quiet"])
