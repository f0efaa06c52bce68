"""Bad option values are errors at load time that name the key, before any data is read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import tiny_train_options, write_options
from vsrt import train
from vsrt.option_checks import check_network_g
from vsrt.options import OptionError, allowed_imports, load_options


def load(tmp_path: Path, **changes):
    return load_options(write_options(tmp_path / "o.yml", tiny_train_options(tmp_path, **changes)),
                        is_train=True, root=tmp_path)[0]


def start_without_data(tmp_path: Path, **changes) -> None:
    """``vsrt.train`` on options whose data folder does not exist: only a load-time check can fail first."""
    opt = tiny_train_options(tmp_path, **changes)
    opt["datasets"]["train"]["dataroot_gt"] = str(tmp_path / "no_such_data")
    train.main(["-opt", str(write_options(tmp_path / "o.yml", opt))])


@pytest.mark.parametrize("key, value, message", [
    ("logger.save_checkpoint_freq", 0, r"logger.save_checkpoint_freq: must be >= 1, got 0"),
    ("logger.print_freq", -5, r"logger.print_freq: must be >= 1"),
    ("val.val_freq", 0, r"val.val_freq: must be >= 1"),
    ("train.total_iter", "sixty", r"train.total_iter: expected an integer, got 'sixty'"),
    ("train.total_iter", 2.5, r"train.total_iter: expected an integer, got 2.5"),
    ("train.accumulate_grad", 0, r"train.accumulate_grad: must be >= 1"),
    ("datasets.train.gt_size", "32", r"datasets.train.gt_size: expected an integer, got '32'"),
    ("datasets.train.batch_size_per_gpu", True, r"datasets.train.batch_size_per_gpu: expected an integer"),
    ("train.ema_decay", "0.9", r"train.ema_decay: expected a number"),
    ("train.ema_decay", 1.5, r"train.ema_decay: must be in \[0, 1\)"),
    ("manual_seed", "ten", r"manual_seed: expected an integer"),
    ("datasets.train.dataroot_flow", "flows/", r"datasets.train.dataroot_flow: no vsrt dataset"),
    ("datasets.train.use_shuffle", False, r"datasets.train.use_shuffle: false is not supported"),
    ("dist_params", {"backend": "ncl"}, r"dist_params.backend: 'ncl' is not one of nccl, gloo"),
    ("path.ignore_resume_networks", ["network_d"], r"path.ignore_resume_networks: expected a list of network_g"),
    ("logger.wandb", {"projct": "x"}, r"unknown key 'logger.wandb.projct'. Did you mean 'project'"),
    ("logger.wandb", {"project": "x", "mode": "ofline"}, r"logger.wandb.mode: 'ofline' is not one of online"),
])
def test_bad_value_names_the_key_and_file(tmp_path, key, value, message):
    with pytest.raises(OptionError, match=message) as info:
        load(tmp_path, **{key: value})
    assert str(tmp_path / "o.yml") in str(info.value)


def test_official_spellings_are_accepted(tmp_path):
    """``!!float 5e3`` frequencies (official files), ``dataroot_flow: ~``, ``project: ~``."""
    opt = load(tmp_path, **{"logger.save_checkpoint_freq": 5e3, "train.total_iter": 3e5,
                            "datasets.train.dataroot_flow": None, "dist_params": {"backend": "gloo", "port": 29500},
                            "logger.wandb": {"project": None, "resume_id": None},
                            "path.ignore_resume_networks": ["network_g"]})
    assert opt["logger"]["save_checkpoint_freq"] == 5000.0


def test_missing_total_iter_is_a_clear_error(tmp_path):
    opt = tiny_train_options(tmp_path)
    del opt["train"]["total_iter"]
    with pytest.raises(OptionError, match="required key 'train.total_iter' is missing"):
        load_options(write_options(tmp_path / "o.yml", opt), is_train=True, root=tmp_path)
    del opt["train"]
    with pytest.raises(OptionError, match="training needs a 'train' section"):
        load_options(write_options(tmp_path / "o.yml", opt), is_train=True, root=tmp_path)
    load_options(tmp_path / "o.yml", is_train=False, root=tmp_path)  # testing needs no train section


def test_scale_the_network_cannot_produce_fails_before_data(tmp_path):
    with pytest.raises(OptionError, match=r"scale: 2, but network_g \(BasicVSR\) produces x4"):
        start_without_data(tmp_path, scale=2)
    vrt = {"type": "VRT", "upscale": 4, "img_size": [2, 16, 16], "window_size": [2, 8, 8], "depths": [1] * 8,
           "indep_reconsts": [], "embed_dims": [8] * 8, "num_heads": [1] * 8, "pa_frames": 2}
    with pytest.raises(OptionError, match=r"scale: 2, but network_g \(VRT\) produces x4 \(network_g.upscale\)"):
        check_network_g({"scale": 2, "network_g": vrt}, "vrt.yml")
    assert check_network_g({"scale": 2, "network_g": {**vrt, "upscale": 2}}).__name__ == "VRT"
    with pytest.raises(OptionError, match="scale: a scale is a number or a pair"):
        check_network_g({"scale": "x4", "network_g": vrt})
    # an arbitrary-scale network takes any scale
    assert check_network_g({"scale": 2.5, "network_g": {"type": "SAVSR"}}).__name__ == "SAVSR"


def test_network_value_of_the_wrong_kind_fails_before_data(tmp_path):
    with pytest.raises(TypeError, match=r"network_g.num_feat: expected int for BasicVSR, got '8' \(str\)"):
        start_without_data(tmp_path, **{"network_g.num_feat": "8"})
    with pytest.raises(TypeError, match=r"network_g.window_size: expected Sequence\[int\]"):
        check_network_g({"network_g": {"type": "MIAVSR", "window_size": 8}})
    check_network_g({"network_g": {"type": "VRT", "mlp_ratio": 2}})  # an int where a float is expected is fine


def test_imports_need_an_explicit_opt_in(tmp_path, monkeypatch, capsys):
    """An option file that names a module outside vsrt would run its code: refused (a usage error,
    before anything is imported) unless allowed."""
    monkeypatch.delenv("VSRT_ALLOW_IMPORTS", raising=False)
    (tmp_path / "evil_mod.py").write_text("import pathlib\npathlib.Path(__file__).with_name('ran').touch()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    opt = tiny_train_options(tmp_path, imports=["evil_mod"])
    path = write_options(tmp_path / "o.yml", opt)
    with pytest.raises(SystemExit):
        train.main(["-opt", str(path)])
    assert "imports: evil_mod would run the code of these modules. Pass --allow_imports (or set " \
        "VSRT_ALLOW_IMPORTS=1)" in capsys.readouterr().err
    assert not (tmp_path / "ran").exists() and "evil_mod" not in sys.modules
    with pytest.raises(OptionError, match=r"imports: evil_mod would run"):  # the same check inside train()
        allowed_imports({"imports": ["evil_mod"]})
    opt["datasets"]["train"]["dataroot_gt"] = str(tmp_path / "no_such_data")  # stop right after the import
    with pytest.raises((FileNotFoundError, ValueError)):
        train.main(["-opt", str(write_options(tmp_path / "o.yml", opt)), "--allow_imports"])
    assert (tmp_path / "ran").exists()
    monkeypatch.delitem(sys.modules, "evil_mod")
    assert allowed_imports({"imports": ["vsrt.losses"]}) == ["vsrt.losses"]  # vsrt's own modules
    assert allowed_imports({"imports": ["evil_mod"]}, allow=True) == ["evil_mod"]
    monkeypatch.setenv("VSRT_ALLOW_IMPORTS", "1")
    assert allowed_imports({"imports": "evil_mod"}) == ["evil_mod"]
    with pytest.raises(OptionError, match="imports: expected a list of module names"):
        allowed_imports({"imports": [3]})
