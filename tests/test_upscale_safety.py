"""``vsrt upscale`` never destroys what it did not write, reports damaged input, and takes a frame range.

Also: an output suffix it cannot write is an error, progress moves within a chunk, and a request
whose output cannot fit in memory fails before any work with the estimate.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_upscale import TINY_BASICVSR, TINY_SAVSR, make_video, probe, save_tiny

from vsrt.archs import build_network
from vsrt.archs.spec import describe_network
from vsrt.archs.tiling import TileConfig
from vsrt.inference.folder_output import MANIFEST
from vsrt.inference.frame_range import FrameRange, parse_time
from vsrt.inference.runner import ClipRunner
from vsrt.inference.streaming import ChunkProgress, calls_per_window, upscale_stream
from vsrt.inference.upscale import main
from vsrt.utils.synthetic import make_clip, write_clip_folders

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def model_args(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("safety_model"), TINY_BASICVSR)[1]


def frames_folder(root: Path, count: int = 3) -> Path:
    return write_clip_folders(root, ["clip"], num_frames=count, height=16, width=16) / "clip"


def error_of(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    return capsys.readouterr().err


def test_force_replaces_only_the_frames_vsrt_wrote(tmp_path, model_args, capsys):
    frames = frames_folder(tmp_path / "in", count=3)
    out = tmp_path / "out"
    (out / "notes").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "notes" / "00000000.png").write_bytes(b"in a subfolder")
    assert "--force" in error_of([str(frames), "-o", str(out), *model_args], capsys)

    main([str(frames), "-o", str(out), *model_args, "--force"])
    assert sorted(p.name for p in out.glob("*.png")) == ["00000000.png", "00000001.png", "00000002.png"]
    main([str(frames), "-o", str(out), *model_args, "--force", "--frames", "2"])  # fewer frames than before
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "00000000.png", "00000001.png", "notes", "notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "notes" / "00000000.png").read_bytes() == b"in a subfolder"

    (out / "00000005.png").write_bytes(b"a user's frame")  # frame-named, listed by no manifest
    message = error_of([str(frames), "-o", str(out), *model_args, "--force"], capsys)
    assert "did not write" in message and "00000005.png" in message
    assert (out / "00000005.png").read_bytes() == b"a user's frame"
    assert len(list(out.glob("*.png"))) == 3  # nothing replaced


def test_an_output_folder_that_is_or_contains_the_input_is_refused(tmp_path, model_args, capsys):
    frames = frames_folder(tmp_path / "parent", count=2)
    before = {p.name: p.read_bytes() for p in frames.iterdir()}
    assert "contains the input" in error_of([str(frames), "-o", str(tmp_path / "parent"), *model_args,
                                             "--force"], capsys)
    assert "is the input" in error_of([str(frames), "-o", str(frames), *model_args, "--force"], capsys)
    assert {p.name: p.read_bytes() for p in frames.iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "parent").iterdir()) == ["clip"]
    # inside the input folder is allowed: frames are listed non-recursively, so a later run over the
    # input does not read them, and the input frames stay as they were
    main([str(frames), "-o", str(frames / "up"), *model_args])
    assert {p.name: p.read_bytes() for p in frames.iterdir() if p.is_file()} == before
    assert main([str(frames), "-o", str(tmp_path / "again"), *model_args]).frames_in == 2


def test_an_output_suffix_it_cannot_write_is_an_error(tmp_path, model_args, capsys):
    frames = frames_folder(tmp_path / "in", count=2)
    for name in ("x.gif", "x.png", "x.webm"):
        assert "Cannot write" in error_of([str(frames), "-o", str(tmp_path / name), *model_args], capsys)
        assert not (tmp_path / name).exists()
    main([str(frames), "-o", f"{tmp_path / 'frames.v2'}/", *model_args])  # a trailing / names a folder
    assert len(list((tmp_path / "frames.v2").glob("*.png"))) == 2
    (tmp_path / "made.by.user").mkdir()  # an existing empty folder needs no --force, and no trailing /
    main([str(frames), "-o", str(tmp_path / "made.by.user"), *model_args])
    assert len(list((tmp_path / "made.by.user").glob("*.png"))) == 2


def cut_mkv(tmp_path: Path, frames: int = 60) -> Path:
    full = make_video(tmp_path / "full.mkv", num_frames=frames, size=(16, 16))
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 3])  # an interrupted download
    return cut


def test_a_truncated_video_warns_and_fails_with_strict(tmp_path, model_args, capsys, vsrt_log):
    cut = cut_mkv(tmp_path)
    stats = main([str(cut), "-o", str(tmp_path / "up.mkv"), *model_args])
    assert 0 < stats.frames_out < 50 and probe(tmp_path / "up.mkv")["frames"] == stats.frames_out
    assert "truncated" in vsrt_log.text and "--strict" in vsrt_log.text

    message = error_of([str(cut), "-o", str(tmp_path / "strict.mkv"), *model_args, "--strict"], capsys)
    assert "truncated" in message and "missing" in message
    assert not (tmp_path / "strict.mkv").exists() and not list(tmp_path.glob(".strict*"))

    # an intact file passes --strict, also when its audio outlasts the video (common in real files)
    whole = make_video(tmp_path / "whole.mkv", num_frames=12, size=(16, 16), audio_seconds=0.8)
    assert main([str(whole), "-o", str(tmp_path / "ok.mkv"), *model_args, "--strict"]).frames_out == 12


def test_start_frames_and_duration_select_the_input(tmp_path, model_args, capsys):
    frames = frames_folder(tmp_path / "in", count=6)
    main([str(frames), "-o", str(tmp_path / "range"), *model_args, "--start", "2", "--frames", "3"])
    subset = tmp_path / "subset"
    subset.mkdir()
    for k, path in enumerate(sorted(frames.glob("*.png"))[2:5]):
        (subset / f"{k:08d}.png").write_bytes(path.read_bytes())
    main([str(subset), "-o", str(tmp_path / "expected"), *model_args])
    got = sorted((tmp_path / "range").glob("*.png"))
    assert len(got) == 3
    for path in got:
        np.testing.assert_array_equal(cv2.imread(str(path)), cv2.imread(str(tmp_path / "expected" / path.name)))

    video = make_video(tmp_path / "in.mp4", num_frames=10)  # 29.97 frames/s, with audio
    main([str(video), "-o", str(tmp_path / "late.mkv"), *model_args, "--start", "0.2s"])
    main([str(video), "-o", str(tmp_path / "short.mkv"), *model_args, "--duration", "0.1"])
    assert probe(tmp_path / "late.mkv")["frames"] == 4  # frames 6..9 (frame 6 is at 0.2002 s)
    assert probe(tmp_path / "short.mkv")["frames"] == 3
    with av.open(str(tmp_path / "late.mkv")) as container:
        assert next(container.decode(video=0)).time == 0  # the output starts at 0
        audio = [p for p in container.demux(audio=0) if p.size]
        assert audio and min(float(p.pts * p.time_base) for p in audio) >= 0
    full_audio = probe(video)["audio_packets"]
    assert 0 < probe(tmp_path / "late.mkv")["audio_packets"] < full_audio

    with av.open(str(tmp_path / "gop.mp4"), "w") as out:  # keyframes every 5 frames: a time start seeks
        stream = out.add_stream("libx264", rate=25, options={"g": "5", "keyint_min": "5", "sc_threshold": "0"})
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for frame in make_clip(30, 16, 16, seed=5):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    main([str(tmp_path / "gop.mp4"), "-o", str(tmp_path / "by_time"), *model_args, "--start", "0.84s", "--frames", "2"])
    main([str(tmp_path / "gop.mp4"), "-o", str(tmp_path / "by_index"), *model_args, "--start", "21", "--frames", "2"])
    for name in ("00000000.png", "00000001.png"):  # seeking + skipping to 0.84 s selects frame 21, as counting does
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / "by_time" / name)),
                                      cv2.imread(str(tmp_path / "by_index" / name)))

    assert "write 2.5s for seconds" in error_of([str(video), "-o", str(tmp_path / "x.mkv"), *model_args,
                                                  "--start", "2.5"], capsys)
    assert "none in the range" in error_of([str(frames), "-o", str(tmp_path / "none"), *model_args,
                                           "--start", "99"], capsys)


def test_time_and_range_parsing():
    assert parse_time("12.5", "--duration") == parse_time("12.5s", "--duration") == 12.5
    assert parse_time("1:30", "--start") == 90 and parse_time("1:01:30.5", "--start") == 3690.5
    with pytest.raises(ValueError, match="--start 'soon'"):
        parse_time("soon", "--start")
    assert FrameRange.from_args("10s", None, None).start_seconds == 10
    assert FrameRange.from_args("7", 5, None).expected(100, Fraction(25)) == 5
    assert FrameRange.from_args("2s", None, None).expected(100, Fraction(25)) == 50
    assert FrameRange.from_args(None, None, "1.5").expected(None, Fraction(30)) == 45
    with pytest.raises(ValueError, match="--frames 0"):
        FrameRange.from_args(None, 0, None)


class RecordingBar:
    def __init__(self) -> None:
        self.n, self.updates = 0.0, []

    def update(self, amount: float) -> None:
        self.n += amount
        self.updates.append(amount)


def test_progress_moves_with_every_tile_of_a_chunk():
    """2x2 tiles per network window: the bar advances a quarter of the chunk per tile, before the
    chunk's frames are written, and ends on the exact frame count."""
    torch.manual_seed(0)
    net = build_network(TINY_BASICVSR).eval()
    tiles = TileConfig(tile=8)  # tile starts 0 and 8 on each axis
    runner = ClipRunner(net, describe_network(TINY_BASICVSR, net), torch.device("cpu"), tiles=tiles)
    bar = RecordingBar()
    progress = ChunkProgress(bar)
    progress.watch(runner)
    seen_at_emit = []
    video = [(frame, (i, Fraction(1, 25))) for i, frame in enumerate(make_clip(6, 16, 16, seed=1))]
    upscale_stream(iter(video), runner, 4, 1, lambda frame, ts: seen_at_emit.append(bar.n), progress,
                   lambda out_frames, size: calls_per_window("recurrent", tiles, size, out_frames))
    assert progress.calls == 8  # two chunks x four tiles
    assert bar.updates[:4] == [1.0, 1.0, 1.0, 1.0] and seen_at_emit[0] == 4.0  # a chunk of 4 frames, 4 tiles
    assert bar.updates[4:8] == [0.5] * 4 and bar.n == 6  # the last chunk: 2 frames over 4 tiles
    assert calls_per_window("sliding", tiles, (16, 16), 3) == 12 and calls_per_window("window", TileConfig(),
                                                                                     (16, 16), 3) == 1


def test_an_output_that_cannot_fit_fails_early_with_the_estimate(tmp_path, capsys):
    _, savsr_args = save_tiny(tmp_path, TINY_SAVSR)
    frames = frames_folder(tmp_path / "in", count=3)
    start = time.perf_counter()
    message = error_of([str(frames), "-o", str(tmp_path / "huge"), *savsr_args, "--scale", "10000"], capsys)
    assert time.perf_counter() - start < 20
    # 3 output frames of 160000x160000 (0.9 TB) and a 64-channel map (6.6 TB, what SAVSR would allocate)
    assert "160000x160000" in message and "at least 7.5 TB on cpu" in message and "--scale" in message
    assert not (tmp_path / "huge").exists()

    from vsrt.utils.memory_check import TooLargeError, check_fits

    spec = describe_network({"type": "BasicVSR"})
    need = (8 * 3 + 64) * 256 * 256 * 4  # 8 output frames and one 64-channel map of 256x256, float32
    check_fits(spec, (64, 64), 4, 8, 4, torch.device("cpu"), available=need)  # exactly fits
    with pytest.raises(TooLargeError, match="at least 23.1 MB on cpu"):
        check_fits(spec, (64, 64), 4, 8, 4, torch.device("cpu"), available=need - 1)
    check_fits(spec, (64, 64), 4, 8, 4, torch.device("cpu"), tile=(32, 32), available=need - 1)  # tiles help

    net = build_network(TINY_SAVSR).eval()  # the benchmark scripts' runner checks too, once per input size
    runner = ClipRunner(net, describe_network(TINY_SAVSR, net), torch.device("cpu"), scale=(10000.0, 10000.0))
    with pytest.raises(TooLargeError, match="160000x160000"):
        runner(torch.rand(3, 3, 16, 16))
    runner.scale = (1.5, 1.5)
    for _ in range(2):
        assert runner(torch.rand(3, 3, 8, 8)).shape == (3, 3, 12, 12)
    assert len(runner.checked_sizes) == 1


def test_savsr_validation_refuses_an_absurd_scale_before_allocating(tmp_path):
    """The same estimate guards SAVSR's whole-clip inference in vsrt.test / validation."""
    from vsrt.models import build_model
    from vsrt.options import finalize
    from vsrt.utils.memory_check import TooLargeError

    opt = finalize({"name": "t", "model_type": "ASVSRModel", "scale": 4, "num_gpu": 0, "network_g": TINY_SAVSR,
                    "path": {"results_root": str(tmp_path)}}, is_train=False, root=tmp_path)
    model = build_model(opt)
    with pytest.raises(TooLargeError, match="SAVSR at scale 10000x10000 turns 16x16 frames into 160000x160000"):
        model.infer(torch.rand(1, 5, 3, 16, 16), scale=10000)
    assert model.infer(torch.rand(1, 5, 3, 8, 8), scale=1.5).shape == (1, 5, 3, 12, 12)


def test_argument_and_path_errors_come_before_torch_is_imported(tmp_path):
    import os
    import subprocess
    import sys

    frames = frames_folder(tmp_path / "in", count=1)
    code = ("import sys\nfrom vsrt.inference.upscale import main\n"
            f"for argv in ([{str(frames)!r}, '-o', 'x.gif'], [{str(frames)!r}, '-o', {str(frames)!r}],"
            f" [{str(frames)!r}, '-o', 'y', '--start', '2.5']):\n"
            "    try:\n        main([*argv, '--model', 'basicvsr_reds'])\n"
            "    except SystemExit as err:\n        assert err.code == 2\n"
            "print('torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert result.stdout.strip() == "False", result.stderr
    assert result.stderr.count("error: ") == 3


def test_progress_moves_during_one_long_network_call():
    """One call per chunk (a recurrent network on whole frames): from the second chunk on, the bar
    moves while the call runs, paced by the previous call, and never past 90 % of the chunk before
    the call is done; the count is exact at each chunk's end."""
    from types import SimpleNamespace

    def slow_model(clip):
        time.sleep(0.4)
        return clip

    bar, runner = RecordingBar(), SimpleNamespace(model_fn=slow_model)
    progress = ChunkProgress(bar, tick_seconds=0.05)
    progress.watch(runner)
    for chunk in range(2):
        progress.begin(4, calls=1)
        runner.model_fn(None)
        during = list(bar.updates)
        progress.end()
        assert bar.n == 4 * (chunk + 1)
    first_chunk, second_chunk = bar.updates[:1], bar.updates[1:]
    assert first_chunk == [4.0]  # nothing to pace the first call by
    ticks = during[1:-1]  # the second call's updates while it ran (its last one is the call's completion)
    assert len(ticks) >= 2 and sum(ticks) <= 0.9 * 4 + 1e-9
    assert sum(second_chunk) == pytest.approx(4.0)


def test_frame_selector_shifts_audio_and_holds_little_before_a_far_start():
    from types import SimpleNamespace

    from vsrt.inference.frame_range import STOP, FrameSelector

    selector = FrameSelector(FrameRange.from_args("1000", 3, None), Fraction(25))
    sent, most_held, kept = [], 0, []
    for index in range(1100):  # one video frame (25/s) and two audio packets (50/s) per step
        for half in (0, 1):
            packet = SimpleNamespace(pts=2 * index + half, dts=2 * index + half, time_base=Fraction(1, 50))
            selector.audio(packet, sent.append)
            most_held = max(most_held, len(selector.held_audio))
        result = selector.take((index, Fraction(1, 25)))
        if result is STOP:
            break
        if result is not None:
            kept.append(result)
    assert kept == [(0, Fraction(1, 25)), (1, Fraction(1, 25)), (2, Fraction(1, 25))]  # frames 1000-1002 at 0
    assert most_held <= 300  # not the 2000 packets before the start
    # audio from the first kept frame's time, shifted to 0; a frame count ends it at the next demuxed frame
    assert [p.pts for p in sent] == list(range(len(sent))) and 6 <= len(sent) <= 8
