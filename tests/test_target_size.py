"""``--target-size H,W`` for ``python -m vsrt upscale`` and the inference scripts (any-scale inference)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch
import yaml

from vsrt.archs import build_network
from vsrt.archs.savsr.scale import sr_size
from vsrt.archs.savsr_arch import SAVSR
from vsrt.archs.scale import check_target_size, parse_size, scale_for_size, scaled_size
from vsrt.inference.cli import main_reds, main_vimeo
from vsrt.inference.runner import ClipRunner
from vsrt.inference.spec import describe_network
from vsrt.inference.upscale import main as upscale_main
from vsrt.utils.synthetic import write_clip_folders

TINY_SAVSR = {"type": "SAVSR", **SAVSR.tiny_config}
TINY_BASICVSR = {"type": "BasicVSR", "num_feat": 8, "num_block": 1}


def save_tiny(root: Path, network_g: dict) -> list[str]:
    """A tiny checkpoint + option file; returns the command-line arguments that load them."""
    torch.manual_seed(0)
    net = build_network(network_g)
    ckpt, opt = root / f"{network_g['type']}.pth", root / f"{network_g['type']}.yml"
    torch.save({"params": net.state_dict()}, ckpt)
    opt.write_text(yaml.safe_dump({"name": "tiny", "network_g": network_g}))
    return ["--opt", str(opt), "--weights", str(ckpt), "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def savsr_args(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("savsr"), TINY_SAVSR)


@pytest.fixture(scope="module")
def basicvsr_args(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("basicvsr"), TINY_BASICVSR)


def frame_folder(root: Path, height: int, width: int, num_frames: int = 3) -> Path:
    return write_clip_folders(root, ["clip"], num_frames, height, width) / "clip"


@pytest.mark.parametrize("text, expected", [("100,141", (100, 141)), ("100x141", (100, 141)),
                                            (" 100 X 141 ", (100, 141)), ("1080, 1920", (1080, 1920))])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "100", "100x", "x141", "100x141x3", "100.5x141", "-100x141", "0x141",
                                  "100by141", "abc"])
def test_parse_size_errors(text):
    with pytest.raises(ValueError, match="--target-size"):
        parse_size(text)


def test_scale_for_size_hits_every_target_exactly():
    """Under SAVSR's rounding (round half to even) the chosen scale gives exactly the target, up or down."""
    for height in range(1, 41):
        for target in range(1, 161):
            scale = scale_for_size((height, 7), (target, 19))
            assert scaled_size(height, 7, scale) == sr_size(height, 7, scale) == (target, 19)
    assert scale_for_size((37, 53), (100, 141)) == (100 / 37, 141 / 53)


def test_check_target_size():
    savsr = SAVSR(**SAVSR.tiny_config)
    assert check_target_size(savsr, (37, 53), (100, 141)) == (100 / 37, 141 / 53)
    basicvsr = build_network({**TINY_BASICVSR, "spynet_path": None})
    assert check_target_size(basicvsr, (16, 24), (64, 96)) == (4.0, 4.0)
    with pytest.raises(ValueError, match=r"fixed x4 network: it turns 16x24 input frames into 64x96, "
                                         r"not the requested target size 100x141"):
        check_target_size(basicvsr, (16, 24), (100, 141))


@pytest.mark.parametrize("size, target", [((37, 53), (100, 141)), ((11, 13), (16, 46)), ((12, 16), (9, 20))])
def test_savsr_runner_returns_the_target_size(size, target):
    torch.manual_seed(0)
    net = build_network(TINY_SAVSR).eval()
    runner = ClipRunner(net, describe_network(TINY_SAVSR, net), torch.device("cpu"), target_size=target)
    out = runner(torch.rand(3, 3, *size), frames=[1])
    assert out.shape == (1, 3, *target)


def test_upscale_frames_to_odd_target_size(tmp_path, savsr_args):
    frames = frame_folder(tmp_path / "frames", 37, 53)
    stats = upscale_main([str(frames), "-o", str(tmp_path / "pngs"), *savsr_args, "--target-size", "100x141"])
    written = sorted((tmp_path / "pngs").glob("*.png"))
    assert stats.frames_out == len(written) == 3
    assert all(cv2.imread(str(p)).shape == (100, 141, 3) for p in written)


def test_upscale_video_to_target_size(tmp_path, savsr_args, capsys):
    av = pytest.importorskip("av")
    frames = frame_folder(tmp_path / "frames", 24, 32)
    video = tmp_path / "up.mp4"
    upscale_main([str(frames), "-o", str(video), *savsr_args, "--target-size", "50,70"])
    with av.open(str(video)) as container:
        sizes = {(f.height, f.width) for f in container.decode(video=0)}
    assert sizes == {(50, 70)}
    with pytest.raises(SystemExit) as err:  # yuv420p cannot hold an odd size
        upscale_main([str(frames), "-o", str(tmp_path / "odd.mp4"), *savsr_args, "--target-size", "51x70"])
    assert err.value.code == 2 and "needs an even height and width" in capsys.readouterr().err


def test_fixed_scale_network_rejects_other_target_sizes(tmp_path, basicvsr_args, capsys):
    frames = frame_folder(tmp_path / "frames", 16, 24)
    output = tmp_path / "pngs"
    with pytest.raises(SystemExit) as err:
        upscale_main([str(frames), "-o", str(output), *basicvsr_args, "--target-size", "100,141"])
    message = capsys.readouterr().err
    assert err.value.code == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["frames"]  # nothing written
    assert "BasicVSR is a fixed x4 network: it turns 16x24 input frames into 64x96, not the requested " \
           "target size 100x141" in message
    upscale_main([str(frames), "-o", str(output), *basicvsr_args, "--target-size", "64x96"])  # its own size
    assert cv2.imread(str(sorted(output.glob("*.png"))[0])).shape == (64, 96, 3)


@pytest.mark.parametrize("main", [upscale_main, main_reds, main_vimeo])
def test_scale_and_target_size_are_mutually_exclusive(tmp_path, savsr_args, capsys, main):
    argv = [str(tmp_path / "in"), "-o", str(tmp_path / "out")] if main is upscale_main else []
    with pytest.raises(SystemExit) as err:
        main([*argv, *savsr_args, "--scale", "2", "--target-size", "64x96"])
    assert err.value.code == 2
    assert "argument --target-size: not allowed with argument --scale" in capsys.readouterr().err


def test_bad_target_size_is_one_error_line(tmp_path, savsr_args, capsys):
    frames = frame_folder(tmp_path / "frames", 16, 24)
    with pytest.raises(SystemExit) as err:
        upscale_main([str(frames), "-o", str(tmp_path / "pngs"), *savsr_args, "--target-size", "64by96"])
    assert err.value.code == 2
    assert capsys.readouterr().err.strip() == \
        "error: --target-size '64by96': expected H,W or HxW (height first), e.g. 100,141 or 100x141"


def test_benchmark_script_at_the_gt_size(tmp_path, savsr_args):
    """REDS-style GT/LQ folders of another ratio than x4: the target (the GT size) sets the scale."""
    write_clip_folders(tmp_path / "GT", ["000"], 3, 40, 56)
    write_clip_folders(tmp_path / "LQ", ["000"], 3, 16, 24)
    folders = ["--gt-root", str(tmp_path / "GT"), "--lq-root", str(tmp_path / "LQ"), "--clips", "000",
               "--output", str(tmp_path / "results")]
    report = main_reds([*savsr_args, *folders, "--target-size", "40x56"])
    assert report["settings"]["target_size"] == [40, 56] and report["clips"][0]["frames"] == 3
    assert json.loads((tmp_path / "results" / "metrics.json").read_text())["average"] == report["average"]
    with pytest.raises(ValueError, match="--target-size 64x96 differs from its GT size 40x56"):
        main_reds([*savsr_args, *folders, "--target-size", "64x96", "--force"])
    with pytest.raises(ValueError, match="--target-size needs LQ frames"):  # LQ made from the GT needs --scale
        main_vimeo([*savsr_args, "--dataset", "vid4", "--gt-root", str(tmp_path / "GT"), "--lq-from-gt",
                    "--target-size", "40x56", "--output", str(tmp_path / "results_vid4")])
