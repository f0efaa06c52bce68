"""``python -m vsrt upscale``: video with audio, folders, chunk borders, bounded memory, safe output."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from vsrt.archs import build_network
from vsrt.inference.runner import ClipRunner
from vsrt.inference.spec import describe_network
from vsrt.inference.streaming import upscale_stream
from vsrt.utils import tensor2img
from vsrt.utils.synthetic import make_clip, write_clip_folders

av = pytest.importorskip("av")
TINY_BASICVSR = {"type": "BasicVSR", "num_feat": 8, "num_block": 1}
TINY_SAVSR = {"type": "SAVSR", "num_feat": 16, "num_frame": 5, "slid_win": 3, "fusion_win": 3,
              "w1_num_block": 1, "w2_num_block": 1, "n_resgroups": 1, "n_resblocks": 1}


def save_tiny(root: Path, network_g: dict) -> tuple[torch.nn.Module, list[str]]:
    """A tiny checkpoint + option file; returns the network and the CLI arguments that load it."""
    torch.manual_seed(0)
    net = build_network(network_g).eval()
    ckpt, opt = root / f"{network_g['type']}.pth", root / f"{network_g['type']}.yml"
    torch.save({"params": net.state_dict()}, ckpt)
    opt.write_text(yaml.safe_dump({"name": "tiny", "network_g": network_g}))
    return net, ["--opt", str(opt), "--weights", str(ckpt), "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def tiny_basicvsr(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("upscale_model"), TINY_BASICVSR)


def make_video(path: Path, num_frames: int = 10, size: tuple[int, int] = (24, 32),
               fps: Fraction = Fraction(30000, 1001), audio_codec: str = "aac",
               audio_seconds: float | None = None) -> Path:
    """An H.264 video of a moving synthetic scene with a 440 Hz sine audio track (as long as the video,
    or ``audio_seconds``)."""
    sample_rate = 44100
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[1], size[0], "yuv420p"
        audio = out.add_stream(audio_codec, rate=sample_rate)
        audio.layout = "mono"
        for frame in make_clip(num_frames, *size, seed=3):
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        samples = int(sample_rate * (audio_seconds or num_frames / float(fps)))
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / sample_rate)).astype(np.float32)[None]
        frame_size = audio.codec_context.frame_size or 1024
        for start in range(0, samples, frame_size):
            chunk = np.ascontiguousarray(wave[:, start:start + frame_size])
            if chunk.shape[1] < frame_size:
                chunk = np.pad(chunk, ((0, 0), (0, frame_size - chunk.shape[1])))
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = sample_rate, start
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return path


def probe(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        info = {"rate": video.average_rate, "size": (video.codec_context.height, video.codec_context.width),
                "audio": [s.codec_context.name for s in container.streams.audio]}
        info["frames"] = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        info["audio_packets"] = sum(1 for p in container.demux(audio=0) if p.size) if info["audio"] else 0
    return info


def test_upscale_video_keeps_fps_and_audio(tmp_path, tiny_basicvsr):
    from vsrt.__main__ import main

    _, model_args = tiny_basicvsr
    source = make_video(tmp_path / "in.mp4", num_frames=10)
    output = tmp_path / "out" / "up.mp4"
    main(["upscale", str(source), "-o", str(output), *model_args, "--chunk", "4", "--chunk-overlap", "2",
          "--crf", "20"])
    got, expected = probe(output), probe(source)
    assert got["frames"] == 10 and got["size"] == (96, 128)
    assert got["rate"] == expected["rate"] == Fraction(30000, 1001)
    assert got["audio"] == ["aac"] and got["audio_packets"] == expected["audio_packets"] > 0
    assert [p.name for p in output.parent.iterdir()] == ["up.mp4"]  # no temporary file left


def test_upscale_refuses_to_overwrite_and_reports_bad_input(tmp_path, tiny_basicvsr, capsys):
    from vsrt.inference.upscale import main

    _, model_args = tiny_basicvsr
    frames = write_clip_folders(tmp_path / "frames", ["clip"], num_frames=3, height=16, width=16) / "clip"
    output = tmp_path / "out.mp4"
    output.write_bytes(b"keep me")
    with pytest.raises(SystemExit) as err:
        main([str(frames), "-o", str(output), *model_args])
    assert err.value.code == 2 and "--force" in capsys.readouterr().err
    assert output.read_bytes() == b"keep me"
    main([str(frames), "-o", str(output), *model_args, "--force", "--fps", "12"])
    assert probe(output)["frames"] == 3 and probe(output)["rate"] == 12

    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    for bad, message in ((broken, "Cannot read video"), (tmp_path / "missing.mp4", "Input not found")):
        with pytest.raises(SystemExit):
            main([str(bad), "-o", str(tmp_path / "x.mp4"), *model_args])
        assert message in capsys.readouterr().err

    with pytest.raises(SystemExit):  # a video suffix vsrt cannot write is refused before any work
        main([str(frames), "-o", str(tmp_path / "out.webm"), *model_args])
    assert "Cannot write" in capsys.readouterr().err and not (tmp_path / "out.webm").exists()


def test_other_containers_in_and_odd_sizes_out(tmp_path, vsrt_log):
    """A .ts input is read like any FFmpeg container; an odd output size is cropped to even, with a warning."""
    from vsrt.inference.upscale import main

    _, model_args = save_tiny(tmp_path, TINY_SAVSR)
    source = make_video(tmp_path / "in.mp4", num_frames=4, size=(22, 30))
    transport_stream = tmp_path / "in.ts"
    with av.open(str(source)) as src, av.open(str(transport_stream), "w", format="mpegts") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in (src.streams.video[0], src.streams.audio[0])}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    output = tmp_path / "up.mkv"
    main([str(transport_stream), "-o", str(output), *model_args, "--scale", "1.5"])  # 22x30 -> 33x45
    got = probe(output)
    assert got["frames"] == 4 and got["size"] == (32, 44) and got["audio"] == ["aac"]
    assert "cropped to 32x44" in vsrt_log.text


def test_audio_the_output_container_cannot_hold_is_reencoded(tmp_path, tiny_basicvsr, vsrt_log):
    """FLAC audio cannot be copied into .mov: it becomes AAC of the same length instead of failing."""
    from vsrt.inference.upscale import main

    source = make_video(tmp_path / "in.mkv", num_frames=4, audio_codec="flac")
    main([str(source), "-o", str(tmp_path / "up.mov"), *tiny_basicvsr[1]])
    assert probe(tmp_path / "up.mov")["audio"] == ["aac"] and "re-encoded as AAC" in vsrt_log.text

    def samples(path: Path) -> int:
        with av.open(str(path)) as container:
            return sum(frame.samples for frame in container.decode(audio=0))

    assert abs(samples(tmp_path / "up.mov") - samples(source)) <= 1024  # at most one AAC frame of padding
    main([str(source), "-o", str(tmp_path / "up.mkv"), *tiny_basicvsr[1]])
    assert probe(tmp_path / "up.mkv")["audio"] == ["flac"]  # copied where the container takes it


def test_rotated_phone_video_keeps_its_orientation(tmp_path, tiny_basicvsr):
    """A display rotation (portrait phone video) is stored in a video output, and applied to PNG frames."""
    from vsrt.inference.upscale import main

    _, model_args = tiny_basicvsr
    plain = make_video(tmp_path / "plain.mp4", num_frames=3, size=(16, 24))
    rotated = tmp_path / "rotated.mp4"
    with av.open(str(plain)) as src, av.open(str(rotated), "w") as dst:
        video = dst.add_stream_from_template(src.streams.video[0])
        video.set_display_rotation(90)
        for packet in src.demux(video=0):
            if packet.dts is not None:
                packet.stream = video
                dst.mux(packet)
    main([str(rotated), "-o", str(tmp_path / "up.mkv"), *model_args])
    with av.open(str(tmp_path / "up.mkv")) as container:
        first = next(container.decode(video=0))
        assert (first.rotation, first.height, first.width) == (90, 64, 96)

    main([str(plain), "-o", str(tmp_path / "plain_png"), *model_args])
    main([str(rotated), "-o", str(tmp_path / "rotated_png"), *model_args])
    for name in ("00000000.png", "00000002.png"):
        upright = cv2.imread(str(tmp_path / "rotated_png" / name))
        assert upright.shape == (96, 64, 3)
        np.testing.assert_array_equal(upright, np.rot90(cv2.imread(str(tmp_path / "plain_png" / name))))


@pytest.mark.parametrize(("size", "colorspace"), [((64, 96), "ITU601"), ((720, 1280), "ITU709")])
def test_video_output_colours_follow_the_matrix_players_assume(tmp_path, size, colorspace):
    """Saturated colours survive the RGB -> YUV -> RGB trip under the matrix the stream is tagged with,
    which is also the one players assume for untagged video of that size (BT.709 for HD)."""
    from vsrt.inference.video_stream import VideoSink

    frame = np.zeros((*size, 3), np.uint8)
    frame[:, : size[1] // 2] = (30, 200, 60)  # BGR green
    frame[:, size[1] // 2:] = (220, 40, 180)  # BGR purple
    sink = VideoSink(tmp_path / "c.mp4", Fraction(25), "libx264", crf=0)
    for index in range(2):
        sink.write(frame, (index, Fraction(1, 25)))
    sink.close()
    with av.open(str(tmp_path / "c.mp4")) as container:
        decoded = next(container.decode(video=0))
        assert decoded.colorspace == (1 if colorspace == "ITU709" else 6) and decoded.color_range == 1
        as_player = decoded.reformat(format="bgr24", src_colorspace=colorspace, src_color_range="MPEG").to_ndarray()
    assert np.abs(as_player.astype(int) - frame).max() <= 4  # chroma rounding only (the wrong matrix: ~25)


def test_untagged_hd_input_is_read_with_the_hd_matrix(tmp_path):
    from vsrt.inference.video_stream import VideoFileSource

    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[:, :640] = (30, 200, 60)
    frame[:, 640:] = (220, 40, 180)
    with av.open(str(tmp_path / "untagged.mp4"), "w") as out:  # BT.709 YUV, no colour tags
        stream = out.add_stream("libx264", rate=25, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        yuv = av.VideoFrame.from_ndarray(frame, format="bgr24").reformat(format="yuv420p", dst_colorspace="ITU709")
        for packet in [*stream.encode(yuv), *stream.encode()]:
            out.mux(packet)
    source = VideoFileSource(tmp_path / "untagged.mp4")
    decoded, _ = next(source.frames())
    source.close()
    assert np.abs(decoded.astype(int) - frame).max() <= 4


TINY_VFI = {"type": "VRT", "upscale": 1, "img_size": [4, 16, 16], "window_size": [4, 4, 4], "depths": [1] * 11,
            "indep_reconsts": [], "embed_dims": [8] * 11, "num_heads": [1] * 11, "pa_frames": 0}


def test_interpolation_network_doubles_the_frame_rate(tmp_path, capsys):
    """Input frames unchanged, one network frame halfway between each pair (edges repeated),
    2n - 1 frames at twice the rate, audio kept."""
    from vsrt.inference.upscale import main

    net, model_args = save_tiny(tmp_path, TINY_VFI)
    folder = write_clip_folders(tmp_path / "frames", ["clip"], num_frames=5, height=16, width=24, seed=2) / "clip"
    stats = main([str(folder), "-o", str(tmp_path / "doubled"), *model_args])
    assert stats.max_buffered_frames <= 4  # streaming: the four frames around one gap
    inputs = [cv2.imread(str(p)) for p in sorted(folder.glob("*.png"))]
    outputs = [cv2.imread(str(p)) for p in sorted((tmp_path / "doubled").glob("*.png"))]
    assert len(outputs) == 2 * len(inputs) - 1
    for k, frame in enumerate(inputs):
        np.testing.assert_array_equal(outputs[2 * k], frame)
    lq = torch.stack([torch.from_numpy(f[..., ::-1].copy()).permute(2, 0, 1).float() / 255 for f in inputs])
    for k in range(len(inputs) - 1):
        window = lq[[max(k - 1, 0), k, k + 1, min(k + 2, len(inputs) - 1)]]
        with torch.no_grad():
            expected = tensor2img(net(window.unsqueeze(0))[0, 0])
        np.testing.assert_array_equal(outputs[2 * k + 1], expected)

    source = make_video(tmp_path / "in.mp4", num_frames=6)
    main([str(source), "-o", str(tmp_path / "doubled.mp4"), *model_args])
    got = probe(tmp_path / "doubled.mp4")
    assert got["frames"] == 11 and got["size"] == (24, 32) and got["audio"] == ["aac"]
    assert got["rate"] == 2 * Fraction(30000, 1001)
    with pytest.raises(SystemExit):
        main([str(source), "-o", str(tmp_path / "x.mkv"), *model_args, "--scale", "2"])
    assert "interpolates frames at their own size" in capsys.readouterr().err


def test_upscale_failure_leaves_no_partial_output(tmp_path, tiny_basicvsr, monkeypatch):
    from vsrt.inference.upscale import main

    _, model_args = tiny_basicvsr
    frames = write_clip_folders(tmp_path / "frames", ["clip"], num_frames=6, height=16, width=16) / "clip"
    calls = []

    def failing(self, lq, frames=None):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory (simulated)")
        return F.interpolate(lq[list(frames)], scale_factor=4)

    monkeypatch.setattr(ClipRunner, "__call__", failing)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for output in (out_dir / "video.mkv", out_dir / "pngs"):
        calls.clear()
        with pytest.raises(RuntimeError, match="simulated"):
            main([str(frames), "-o", str(output), *model_args, "--chunk", "3"])
        assert list(out_dir.iterdir()) == []


def test_folder_to_folder_matches_whole_clip(tmp_path, tiny_basicvsr):
    """A recurrent model whose context covers the clip gives exactly the whole-clip output."""
    from vsrt.inference.upscale import main

    net, model_args = tiny_basicvsr
    frames = write_clip_folders(tmp_path / "frames", ["clip"], num_frames=5, height=16, width=24) / "clip"
    lq = torch.stack([torch.from_numpy(cv2.imread(str(p))[..., ::-1].copy()).permute(2, 0, 1).float() / 255
                      for p in sorted(frames.glob("*.png"))])
    with torch.no_grad():
        whole = net(lq.unsqueeze(0))[0]
    for name, chunking in (("pngs", ["--chunk", "2", "--chunk-overlap", "5"]), ("whole", ["--chunk", "0"])):
        stats = main([str(frames), "-o", str(tmp_path / name), *model_args, *chunking])
        written = sorted((tmp_path / name).glob("*.png"))
        assert len(written) == 5
        for k, path in enumerate(written):
            np.testing.assert_array_equal(cv2.imread(str(path)), tensor2img(whole[k]))
    assert stats.max_window_frames == 5  # --chunk 0: one call on the whole clip


def test_sliding_window_chunks_equal_whole_video(tmp_path):
    """SAVSR gets num_frame // 2 context frames, so chunked streaming is exact at any chunk size."""
    torch.manual_seed(0)
    net = build_network(TINY_SAVSR).eval()
    runner = ClipRunner(net, describe_network(TINY_SAVSR, net), torch.device("cpu"), scale=(2.0, 2.5))
    video = [(frame, (i, Fraction(1, 25))) for i, frame in enumerate(make_clip(7, 12, 16, seed=1))]
    lq = torch.stack([torch.from_numpy(f[..., ::-1].copy()).permute(2, 0, 1).float() / 255 for f, _ in video])
    reference = [tensor2img(frame) for frame in runner(lq)]
    for chunk in (1, 3):
        outputs = []
        stats = upscale_stream(iter(video), runner, chunk, 2, lambda frame, ts, out=outputs: out.append(frame))
        assert stats.frames_out == 7 and stats.max_window_frames <= chunk + 4
        for got, want in zip(outputs, reference):
            np.testing.assert_array_equal(got, want)


def test_memory_does_not_grow_with_video_length():
    """8 vs 32 frames: same number of buffered frames and a similar tracemalloc peak."""
    def runner(lq, frames):
        return F.interpolate(lq[list(frames)], scale_factor=4, mode="nearest")

    def frames(count):
        for i in range(count):
            yield np.full((32, 48, 3), i % 255, np.uint8), (i, Fraction(1, 25))

    results = {}
    for count in (8, 32):
        emitted = []
        tracemalloc.start()
        stats = upscale_stream(frames(count), runner, chunk=4, context=2,
                               emit=lambda frame, ts, out=emitted: out.append(frame.shape))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert stats.frames_out == len(emitted) == count
        results[count] = (stats.max_buffered_frames, stats.max_window_frames, peak)
    # at most chunk + 2 * context = 8 frames, whatever the length (the short video has fewer to hold)
    assert results[8][:2] <= results[32][:2] == (8, 8)
    assert results[32][2] < 1.25 * results[8][2] + 64 * 1024
