"""``vsrt upscale --backend onnxruntime --onnx FILE``: an exported graph through the streaming upscaler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsrt.inference.streaming import upscale_stream

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def read_frames(folder):
    import cv2

    return [cv2.imread(str(p)) for p in sorted(folder.glob("*.png"))]


def test_onnxruntime_backend_matches_the_pytorch_backend(tmp_path):
    pytest.importorskip("av")
    from test_upscale import TINY_BASICVSR, make_video, save_tiny

    from vsrt.export.cli import main as export_main
    from vsrt.inference.upscale import main as upscale_main

    _, model_args = save_tiny(tmp_path, TINY_BASICVSR)
    onnx_file = tmp_path / "basicvsr.onnx"
    export_main([*model_args[:4], "--frames", "4", "--size", "16", "16", "-o", str(onnx_file)])
    video = make_video(tmp_path / "in.mp4", num_frames=8, size=(24, 32))
    # the same windows (4 frames, no overlap) and tiles (16 px, overlap 4) on both backends
    windows = ["--chunk", "4", "--chunk-overlap", "0", "--tile", "16", "--tile-overlap", "4", "--quiet"]
    upscale_main([str(video), "-o", str(tmp_path / "torch"), *model_args, *windows])
    upscale_main([str(video), "-o", str(tmp_path / "onnx"), "--onnx", str(onnx_file), *windows])
    torch_frames, onnx_frames = read_frames(tmp_path / "torch"), read_frames(tmp_path / "onnx")
    assert len(onnx_frames) == len(torch_frames) == 8 and onnx_frames[0].shape == (96, 128, 3)
    difference = max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(onnx_frames, torch_frames))
    assert difference <= 1  # a pixel level of rounding at most (ONNX Runtime's kernels vs torch's)


@pytest.mark.parametrize(("num_frames", "chunk", "context", "window"), [(11, 2, 1, 4), (3, 2, 1, 4), (9, 3, 2, 8)])
def test_fixed_windows_give_every_call_the_same_length_and_every_frame_once(num_frames, chunk, context, window):
    frames = [(np.full((2, 2, 3), i, np.uint8), i) for i in range(num_frames)]
    calls, emitted = [], []

    def runner(lq: torch.Tensor, frames: range) -> torch.Tensor:  # identity network: output = input frame
        calls.append([round(float(v) * 255) for v in lq[:, 0, 0, 0]])
        return lq[list(frames)]

    upscale_stream(frames, runner, chunk, context, lambda img, ts: emitted.append((int(img[0, 0, 0]), ts)),
                   window=window)
    assert emitted == [(i, i) for i in range(num_frames)]  # every frame once, in order, with its timestamp
    assert all(len(c) == window for c in calls)
    for call in calls:  # consecutive frames (a short video repeats its last one)
        real = list(range(call[0], min(call[0] + window, num_frames)))
        assert call == real + [num_frames - 1] * (window - len(real))
    if num_frames >= window:  # real frames only: the windows at the ends are shifted inwards, not padded
        assert all(len(set(call)) == window for call in calls)
        assert calls[0][0] == 0 and calls[-1][-1] == num_frames - 1


def test_backend_flags_are_checked_before_any_work(tmp_path, capsys):
    from vsrt.inference.upscale import main as upscale_main

    (tmp_path / "in").mkdir()
    cases = [(["--backend", "onnxruntime", "--opt", "x.yml"], "give it with --onnx"),
             (["--backend", "pytorch", "--onnx", "x.onnx"], "drop --backend pytorch"),
             (["--onnx", "x.onnx", "--precision", "bf16"], "--precision: fixed in the exported file"),
             (["--onnx", "x.pt2"], "expected a .onnx file")]
    for arguments, message in cases:
        with pytest.raises(SystemExit):
            upscale_main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), *arguments])
        assert message in capsys.readouterr().err
