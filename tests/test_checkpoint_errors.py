"""A checkpoint that would run code is refused with an error naming the file, and without torch's advice
to lift the restriction; damaged files are named too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from vsrt.archs import build_network
from vsrt.utils.checkpoint import load_network
from vsrt.utils.safe_load import CheckpointError, read_checkpoint

TINY = {"type": "BasicVSR", "num_feat": 8, "num_block": 1}


class RunsCode:
    """Unpickling this calls ``os.system`` (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def malicious_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    net = build_network(TINY)
    marker = tmp_path / "code_ran"
    path = tmp_path / "innocent.pth"
    torch.save({"params": net.state_dict(), "extra": RunsCode(marker)}, path)
    return path, marker


def test_a_checkpoint_that_runs_code_is_refused_naming_the_file(tmp_path):
    path, marker = malicious_checkpoint(tmp_path)
    with pytest.raises(CheckpointError) as err:
        load_network(build_network(TINY), path)
    message = str(err.value)
    assert str(path) in message and "system" in message and "refused" in message
    assert "weights_only" not in message and err.value.__cause__ is None and err.value.__suppress_context__
    assert not marker.exists()


def test_the_upscaler_reports_a_refused_checkpoint_in_one_line(tmp_path, capsys):
    from vsrt.inference.upscale import main
    from vsrt.utils.synthetic import write_clip_folders

    path, marker = malicious_checkpoint(tmp_path)
    (tmp_path / "net.yml").write_text(yaml.safe_dump({"name": "tiny", "network_g": TINY}))
    frames = write_clip_folders(tmp_path / "in", ["clip"], num_frames=2, height=16, width=16) / "clip"
    with pytest.raises(SystemExit) as err:
        main([str(frames), "-o", str(tmp_path / "out"), "--opt", str(tmp_path / "net.yml"), "--weights", str(path),
              "--device", "cpu", "--quiet"])
    text = capsys.readouterr().err
    assert err.value.code == 2 and text.startswith("error: Checkpoint") and str(path) in text
    assert "weights_only" not in text and not marker.exists() and not (tmp_path / "out").exists()


def test_damaged_and_foreign_files_are_named(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"params": build_network(TINY).state_dict()}, good)
    cases = {"empty.pth": b"", "cut.pth": good.read_bytes()[:200], "text.pth": b"not a checkpoint at all"}
    expected = {"empty.pth": "the file is empty", "cut.pth": "damaged or incomplete", "text.pth": "not a PyTorch"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError) as err:
            read_checkpoint(tmp_path / name)
        assert str(tmp_path / name) in str(err.value) and expected[name] in str(err.value)
        assert "weights_only" not in str(err.value)
    assert set(read_checkpoint(good)) == {"params"}
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_checkpoint(tmp_path / "missing.pth")


def test_resume_states_spynet_and_vgg_files_are_refused_the_same_way(tmp_path):
    """Every place vsrt reads a checkpoint-like file gives the same refusal: training states
    (path.resume_state), SpyNet weights (network_g.spynet_path) and VGG weights (perceptual loss)."""
    import logging

    from helpers import tiny_train_options
    from vsrt.experiment import find_resume_state
    from vsrt.losses.perceptual_loss import PerceptualLoss
    from vsrt.models import build_model
    from vsrt.options import finalize

    path, marker = malicious_checkpoint(tmp_path)
    opt = tiny_train_options(tmp_path, **{"path.resume_state": str(path)})
    with pytest.raises(RuntimeError) as err:
        find_resume_state({"path": opt["path"]}, False, logging.getLogger("test"))
    opt = finalize(tiny_train_options(tmp_path, **{"network_g.spynet_path": str(path)}), is_train=True,
                   root=tmp_path)
    with pytest.raises(CheckpointError) as spynet_err:
        build_model(opt)
    with pytest.raises(CheckpointError) as vgg_err:
        PerceptualLoss(layer_weights={"conv1_1": 1.0}, pretrained=str(path))
    for message in (str(err.value), str(spynet_err.value), str(vgg_err.value)):
        assert str(path) in message and "refused" in message and "weights_only" not in message
    assert not marker.exists()


def test_benchmark_script_reports_a_refused_checkpoint_in_one_line(tmp_path, monkeypatch, capsys):
    from vsrt.inference.cli import main_reds, run_script
    from vsrt.utils.synthetic import write_clip_folders

    path, marker = malicious_checkpoint(tmp_path)
    write_clip_folders(tmp_path / "GT", ["000"], 2, 16, 16, seed=0)
    write_clip_folders(tmp_path / "LQ", ["000"], 2, 4, 4, seed=1)
    options = tmp_path / "run.yml"
    options.write_text(f"name: run\nnetwork_g: {TINY}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_script(main_reds, ["--opt", str(options), "--weights", str(path), "--gt-root", str(tmp_path / "GT"),
                               "--lq-root", str(tmp_path / "LQ"), "--clips", "000", "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and str(path) in err
    assert "Traceback" not in err and "weights_only" not in err and not marker.exists()


def test_pretrain_network_g_reads_params_unless_param_key_g_names_another(tmp_path):
    """BasicSR's convention: ``params`` by default, ``path.param_key_g`` to pick e.g. ``params_ema``; the EMA
    copy of a training run starts from the file's ``params_ema``."""
    from helpers import tiny_train_options
    from vsrt.models import build_model
    from vsrt.options import finalize
    from vsrt.utils.checkpoint import unwrap_model

    torch.manual_seed(0)
    plain, ema = build_network(TINY).state_dict(), build_network(TINY).state_dict()
    path = tmp_path / "both.pth"
    torch.save({"params": plain, "params_ema": ema}, path)

    def loaded(**changes) -> tuple[dict, dict]:
        opt = finalize(tiny_train_options(tmp_path, **{"path.pretrain_network_g": str(path), **changes}),
                       is_train=True, root=tmp_path)
        model = build_model(opt)
        return unwrap_model(model.net_g).state_dict(), model.net_g_ema.state_dict()

    def same(a: dict, b: dict) -> bool:
        return all(torch.equal(a[k], b[k]) for k in a)

    net_g, net_g_ema = loaded()
    assert same(net_g, plain) and not same(net_g, ema) and same(net_g_ema, ema)
    net_g, _ = loaded(**{"path.param_key_g": "params_ema"})
    assert same(net_g, ema)
