"""``python -m vsrt export``: every architecture to ONNX (ONNX Runtime) and ``.pt2`` (torch.export), checked
against eager on a clip it was not traced on; MIA-VSR's exported masks keep the same tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from vsrt.archs import ARCH_REGISTRY, build_network
from vsrt.archs.spec import describe_network
from vsrt.export.cli import main as export_main
from vsrt.export.graph import ExportInfo, exportable, trace, write_onnx, write_pt2
from vsrt.export.runtime import load_exported, read_info
from vsrt.export.verify import verification_clip, verify

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

# frames and size per architecture: the fewest that exercise the network (MIA-VSR: two masked steps)
CLIPS = {"BasicVSR": (3, 16), "BasicRecurrentSwin": (2, 16), "PSRTRecurrent": (2, 16), "IIAVSR": (2, 16),
         "MIAVSR": (3, 16), "VRT": (2, 32), "SAVSR": (5, 16)}


def tiny(name: str) -> tuple[torch.nn.Module, dict]:
    cls = ARCH_REGISTRY.get(name)
    network_g = {"type": name, **cls.tiny_config}
    torch.manual_seed(0)
    net = build_network(network_g).eval()
    for module in net.modules():  # a trained mask predictor's spread (the initial bias is 0: every
        if type(module).__name__ == "TokenKeepPredictor":  # static token would sit exactly on the threshold)
            torch.nn.init.normal_(module.rnn.weight, std=1.0)
            torch.nn.init.normal_(module.rnn.bias, std=0.5)
    return net, network_g


def test_every_built_in_architecture_has_an_export_clip():
    built_in = {name for name in ARCH_REGISTRY.keys() if ARCH_REGISTRY.get(name).__module__.startswith("vsrt.")}
    assert set(CLIPS) == built_in  # (other tests register examples of their own)


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_onnx_and_pt2_match_eager(tmp_path, name):
    import dataclasses

    net, network_g = tiny(name)
    spec = describe_network(network_g, net)
    frames, size = CLIPS[name]
    scale = (3.5, 3.5) if spec.arbitrary_scale else None  # SAVSR fixed at a non-integer scale
    wrapper = exportable(net, spec, scale, frames)
    info = ExportInfo(arch=name, label="tiny", spec=dataclasses.asdict(spec), frames=frames, channels=3,
                      size=(size, size), scale=scale, outputs=["output", "kept_fraction"] if wrapper.with_masks
                      else ["output"], tolerance=1e-4, network_g=network_g)
    program = trace(wrapper, torch.rand(info.input_shape(), generator=torch.Generator().manual_seed(0)))
    write_pt2(program, info, str(tmp_path / "net.pt2"))
    write_onnx(program, info, str(tmp_path / "net.onnx"))
    for path in (tmp_path / "net.pt2", tmp_path / "net.onnx"):
        result = verify(path, wrapper, info)
        assert result["max_abs_diff"] <= 1e-4, (path.suffix, result)
        assert read_info(path).to_json() == info.to_json()
        if name == "MIAVSR":  # masks in the graph: same kept tokens, and some tokens really skipped
            assert wrapper.with_masks and result["kept_equal"]
            assert 0.0 < result["kept_fraction"] < 1.0


def write_tiny_options(root: Path, name: str = "BasicVSR") -> tuple[torch.nn.Module, list[str]]:
    net, network_g = tiny(name)
    (root / "net.pth").write_bytes(b"")
    torch.save({"params": net.state_dict()}, root / "net.pth")
    (root / "net.yml").write_text(yaml.safe_dump({"name": "tiny", "network_g": network_g}))
    return net, ["--opt", str(root / "net.yml"), "--weights", str(root / "net.pth")]


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_command_writes_a_checked_file_that_runs_like_the_network(tmp_path, fmt, capsys):
    net, source = write_tiny_options(tmp_path)
    out = tmp_path / "out" / f"basicvsr.{fmt}"
    optimize = ["--optimize"] if fmt == "onnx" else []  # onnxscript's optimiser (off by default)
    result = export_main([*source, "--format", fmt, "--frames", "3", "--size", "16", "20", *optimize, "-o", str(out)])
    assert out.is_file() and result["max_abs_diff"] <= 1e-4
    assert f"wrote {out}" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left behind
    info = read_info(out)
    assert (info.arch, info.frames, info.size, info.model_spec().scale) == ("BasicVSR", 3, (16, 20), 4)
    exported = load_exported(out)
    clip = torch.rand(2, 3, 3, 16, 20)  # a batch of two clips
    with torch.no_grad():
        assert torch.allclose(exported(clip), net(clip), atol=1e-4)
        # smaller frames are padded to the exported size and the output cropped
        assert exported(clip[..., :12, :18]).shape == (2, 3, 3, 48, 72)
    with pytest.raises(ValueError, match="at most 16x20"):
        exported(torch.rand(1, 3, 3, 16, 24))
    with pytest.raises(ValueError, match="--frames 4"):
        exported(torch.rand(1, 4, 3, 16, 20))


def test_export_refuses_a_file_beyond_the_tolerance(tmp_path, capsys):
    _, source = write_tiny_options(tmp_path)
    out = tmp_path / "net.onnx"  # ONNX Runtime's kernels round differently from torch's: a diff > 0
    with pytest.raises(SystemExit):
        export_main([*source, "--frames", "3", "--size", "16", "16", "--tolerance", "1e-30", "-o", str(out)])
    assert "not written" in capsys.readouterr().err
    assert list(tmp_path.glob("*.onnx")) == [] and list(tmp_path.glob(".net*")) == []


def test_savsr_export_is_fixed_to_its_scale(tmp_path):
    net, source = write_tiny_options(tmp_path, "SAVSR")
    out = tmp_path / "savsr.pt2"
    export_main([*source, "--frames", "5", "--size", "16", "16", "--scale", "2.5", "-o", str(out)])
    exported = load_exported(out)
    clip = verification_clip(read_info(out))
    with torch.no_grad():
        assert torch.allclose(exported(clip, scale=2.5), net(clip, scale=2.5), atol=1e-4)
    with pytest.raises(ValueError, match="exported at x2.5"):
        exported(clip, scale=4)


def test_fp16_export_takes_and_gives_half_precision(tmp_path):
    net, source = write_tiny_options(tmp_path, "SAVSR")
    out = tmp_path / "savsr16.pt2"
    result = export_main([*source, "--frames", "5", "--size", "16", "16", "--precision", "fp16", "-o", str(out)])
    info = read_info(out)
    assert info.precision == "fp16" and info.dtype == torch.float16 and result["max_abs_diff"] <= 2e-2
    clip = verification_clip(info).float()
    with torch.no_grad():  # the fp16 graph against the fp32 network
        assert (load_exported(out)(clip, scale=4) - net(clip, scale=4)).abs().max() < 2e-2


@pytest.mark.parametrize(("name", "arguments", "message"), [
    ("BasicVSR", ["--frames", "3", "--size", "16", "16", "-o", "x.onnx", "--format", "pt2"], "must end in .pt2"),
    ("BasicVSR", ["--frames", "3", "--size", "16", "16", "-o", "x.txt"], "give a .onnx or .pt2"),
    ("BasicVSR", ["--frames", "1", "--size", "16", "16", "-o", "x.pt2"], "needs at least 2"),
    ("BasicVSR", ["--frames", "3", "--size", "16", "16", "--dynamic", "-o", "x.pt2"], "SpyNet's pyramid"),
    ("SAVSR", ["--frames", "4", "--size", "16", "16", "-o", "x.pt2"], "exactly num_frame=5"),
    ("BasicVSR", ["--frames", "3", "--size", "16", "16", "--precision", "fp16", "-o", "x.pt2"],
     "cannot be traced in fp16"),
    ("VRT", ["--frames", "2", "--size", "16", "18", "-o", "x.pt2"], "--size W 18: VRT needs a multiple of 4"),
])
def test_export_argument_errors_name_the_argument(tmp_path, monkeypatch, capsys, name, arguments, message):
    monkeypatch.chdir(tmp_path)
    _, source = write_tiny_options(tmp_path, name)
    with pytest.raises(SystemExit):
        export_main([*source, *arguments])
    assert message in capsys.readouterr().err
    assert not any(tmp_path.glob("x.*"))


def test_the_eager_reference_takes_the_ops_the_graph_holds(tmp_path):
    """CPU fast paths (Winograd convolutions here) are not traced: the check compares the file with eager on
    the standard ops, so a .pt2 matches exactly even where the fast path rounds differently."""
    import dataclasses

    from vsrt.export.verify import StandardOps

    net, network_g = tiny("BasicVSR")
    spec = describe_network(network_g, net)
    wrapper = exportable(net, spec, None, 2)
    info = ExportInfo(arch="BasicVSR", label="tiny", spec=dataclasses.asdict(spec), frames=2, channels=3,
                      size=(40, 40), scale=None, tolerance=1e-4, network_g=network_g)
    clip = verification_clip(info)
    with torch.no_grad():
        fast = wrapper(clip)
        with StandardOps():
            standard = wrapper(clip)
    assert not torch.equal(fast, standard)  # the fast path is active at this size
    write_pt2(trace(wrapper, clip), info, str(tmp_path / "net.pt2"))
    assert verify(tmp_path / "net.pt2", wrapper, info)["max_abs_diff"] == 0.0
