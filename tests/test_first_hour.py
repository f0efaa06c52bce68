"""A new user's first hour: fast argument errors, safe and labelled benchmark output, sensible threads,
readable logs."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from helpers import REPO_ROOT, tiny_train_options, write_options
from vsrt import train
from vsrt.archs import build_network
from vsrt.inference.arguments import HelpFormatter, dataset_of_option_file, option_file_data
from vsrt.inference.cli import main_reds, reds_parser, run_script, vimeo_parser
from vsrt.options import parse_args
from vsrt.utils.cpu import cgroup_cpu_limit, default_num_threads
from vsrt.utils.synthetic import write_clip_folders

# Runs one entry point in a fresh interpreter and reports, when it exits, whether torch was imported.
PROBE = """
import runpy, sys
kind, target, *args = sys.argv[1:]
sys.argv = [target if kind == "path" else sys.argv[0], *args]
try:
    runpy.run_path(target, run_name="__main__") if kind == "path" else runpy.run_module(target, run_name="__main__")
except SystemExit as exit:
    print(f"exit={exit.code} torch_imported={'torch' in sys.modules}")
"""


def probe(kind: str, target: str, *args: str) -> tuple[str, str]:
    result = subprocess.run([sys.executable, "-c", PROBE, kind, target, *args], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    return result.stdout, result.stderr


@pytest.mark.parametrize(("kind", "target", "args", "message"), [
    ("module", "vsrt.train", ["-opt", "missing.yml"], "Option file not found: missing.yml"),
    ("module", "vsrt.test", ["-opt", "options/test/VRT/test_VRT_tiny_cpu.yml", "--force_yml", "val.nope=1"],
     "unknown key 'val.nope'"),
    ("module", "vsrt.test", ["-opt", "options/test/VRT/test_VRT_tiny_cpu.yml", "--auto_resume"],
     "unrecognized arguments: --auto_resume"),
    ("module", "vsrt", ["train", "-opt", "options/train/VRT/train_VRT_tiny_cpu.yml", "--launcher", "mpi"],
     "invalid choice: 'mpi'"),
    ("module", "vsrt", ["demo", "--iters", "0"], "--iters must be >= 1"),
    ("path", "inference_reds.py", ["--model", "basicvsr_reds", "--gt-root", "no/such/folder"],
     "--gt-root: folder not found: no/such/folder"),
    ("path", "inference_vimeo90k.py", ["--opt", "nothing.yml"], "--opt: file not found: nothing.yml"),
    ("path", "inference_vimeo90k.py", ["--model", "vrt_x4_vimeo_bi", "--dataset", "vid5"], "invalid choice: 'vid5'"),
    ("module", "vsrt", ["zoo", "show", "vrt_x4_red"], "Unknown model 'vrt_x4_red'. Did you mean 'vrt_x4_reds_6f'"),
    ("path", "inference_reds.py", ["--model", "mia_vsr_red"],
     "Unknown model 'mia_vsr_red'. Did you mean 'mia_vsr_reds'"),
    ("module", "vsrt", ["upscale", "tests/fixtures", "-o", "out_never_written/", "--model", "basicvsr"],
     "Unknown model 'basicvsr'. Did you mean 'basicvsr_reds'"),
], ids=["train-missing-file", "test-unknown-key", "test-has-no-auto-resume", "vsrt-train-bad-choice",
        "demo-bad-iters", "reds-missing-data", "vimeo-missing-opt", "vimeo-bad-dataset", "zoo-misspelt-preset",
        "reds-misspelt-preset", "upscale-misspelt-preset"])
def test_argument_errors_come_before_torch_is_imported(kind, target, args, message):
    stdout, stderr = probe(kind, target, *args)
    assert "exit=2 torch_imported=False" in stdout, (stdout, stderr[-2000:])
    assert message in stderr, stderr[-2000:]


def test_usage_names_the_entry_point_and_test_help_has_only_test_options(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        parse_args(is_train=False, argv=["--help"])
    test_help = capsys.readouterr().out
    assert test_help.startswith("usage: python -m vsrt.test ")
    assert "--auto_resume" not in test_help and "--scale" in test_help
    monkeypatch.setattr(sys, "argv", ["vsrt train"])  # what `vsrt train` / the dispatcher sets
    with pytest.raises(SystemExit):
        parse_args(is_train=True, argv=["--help"])
    assert capsys.readouterr().out.startswith("usage: vsrt train ")
    result = subprocess.run([sys.executable, "-m", "vsrt", "test", "--help"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m vsrt test "), result.stdout

    from vsrt.__main__ import main as dispatch

    for command in ("zoo", "upscale", "demo"):
        monkeypatch.setattr(sys, "argv", ["/somewhere/bin/vsrt"])  # the installed `vsrt` command
        with pytest.raises(SystemExit):
            dispatch([command, "--help"])
        assert capsys.readouterr().out.startswith(f"usage: vsrt {command} ")
        assert sys.argv[0] == "/somewhere/bin/vsrt"  # restored


@pytest.mark.parametrize("parser", [reds_parser(), vimeo_parser()], ids=["reds", "vimeo90k"])
def test_every_benchmark_argument_has_help_showing_its_default(parser):
    formatter = HelpFormatter(parser.prog)
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
        if action.default not in (None, argparse.SUPPRESS) and not isinstance(action.default, bool):  # a value
            assert "%(default)s" in formatter._get_help_string(action), action.option_strings
        elif action.default is None and action.nargs != 0 and action.dest not in ("opt", "model"):
            # decided from other arguments (or by the network): the help says how
            assert "default" in action.help or parser._action_groups[2].title.startswith("tiling (default"), \
                action.option_strings


def test_an_option_files_own_test_set_is_the_benchmark_data():
    bd_vimeo = option_file_data(str(REPO_ROOT / "options/test/VRT/test_VRT_videosr_VimeoBD_Vimeo90K.yml"))
    assert dataset_of_option_file(bd_vimeo) == "vimeo90k"
    assert bd_vimeo["lq_root"] == "datasets/vimeo90k/vimeo_septuplet_BDLRx4/sequences"  # BD, not the BI default
    assert dataset_of_option_file(option_file_data(str(REPO_ROOT / "options/test/MIAVSR/test_MIAVSR_Vid4.yml"))) \
        == "vid4"
    savsr = option_file_data(str(REPO_ROOT / "options/test/SAVSR/test_SAVSR_UDM10_asBI.yml"))
    assert dataset_of_option_file(savsr) == "udm10" and savsr["lq_root"] is None  # LQ made from the GT
    # the demo's validation clips get their LQ on the fly: not benchmark data, the script's defaults apply
    assert option_file_data(str(REPO_ROOT / "options/train/BasicVSR/train_BasicVSR_demo_cpu.yml")) == {}


@pytest.fixture
def reds_like(tmp_path):
    """A tiny BasicVSR checkpoint and an option file whose test set names REDS-style folders (2 clips)."""
    torch.manual_seed(0)
    network_g = {"type": "BasicVSR", "num_feat": 8, "num_block": 1}
    checkpoint = tmp_path / "net.pth"
    torch.save({"params": build_network(network_g).state_dict()}, checkpoint)
    write_clip_folders(tmp_path / "GT", ["000", "011"], 3, 32, 32, seed=0)
    write_clip_folders(tmp_path / "LQ", ["000", "011"], 3, 8, 8, seed=1)
    options = tmp_path / "my_run.yml"
    options.write_text(yaml.safe_dump({
        "name": "my_experiment", "network_g": network_g,
        "datasets": {"test": {"type": "VideoRecurrentTestDataset", "dataroot_gt": str(tmp_path / "GT"),
                              "dataroot_lq": str(tmp_path / "LQ")}}}))
    return options, checkpoint


def test_benchmark_uses_the_option_files_data_and_never_overwrites_silently(reds_like, tmp_path, monkeypatch,
                                                                            capsys):
    options, checkpoint = reds_like
    monkeypatch.chdir(tmp_path)
    args = ["--opt", str(options), "--weights", str(checkpoint), "--clips", "000", "011", "--device", "cpu",
            "--quiet", "--save-images"]
    report = main_reds(args)  # no --gt-root / --lq-root: the option file's test set
    out = capsys.readouterr().out
    results = tmp_path / "results" / "my_experiment" / "reds4"  # under the experiment's name
    assert json.loads((results / "metrics.json").read_text())["average"] == report["average"]
    assert f"on {tmp_path / 'GT'} (scored as REDS4)" in out  # not called REDS4: it is other data
    for clip in ("000", "011"):
        assert f"results/my_experiment/reds4/images/{clip}/ (3 frames)" in out
        assert sorted(p.name for p in (results / "images" / clip).iterdir()) == [
            "00000000.png", "00000001.png", "00000002.png"]

    before = (results / "metrics.json").read_text()
    with pytest.raises(SystemExit):
        run_script(main_reds, args)
    assert "already holds results (metrics.csv, metrics.json, images): give --force" in capsys.readouterr().err
    assert (results / "metrics.json").read_text() == before
    assert main_reds([*args, "--force"])["average"] == report["average"]


def test_unwritable_results_folder_is_an_error_before_any_work(reds_like, tmp_path):
    options, checkpoint = reds_like
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    stdout, stderr = probe("path", "inference_reds.py", "--opt", str(options), "--weights", str(checkpoint),
                           "--clips", "000", "--output", str(blocker / "results"))
    assert "exit=2 torch_imported=False" in stdout, (stdout, stderr[-2000:])  # before the model is even loaded
    assert f"results folder {blocker / 'results'} is not writable" in stderr


def test_default_threads_follow_the_usable_idle_cores(tmp_path):
    assert default_num_threads(cores=2, busy=0.1) == 2
    assert default_num_threads(cores=2, busy=10.0) == 1  # a loaded machine: oversubscription is far slower
    assert default_num_threads(cores=8, busy=3.0) == 5
    assert default_num_threads(num_workers=3, cores=8, busy=0.0) == 5  # each data worker takes a core
    assert default_num_threads(num_workers=4, cores=2, busy=0.0) == 1
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")
    assert cgroup_cpu_limit(quota) == 1.5
    quota.write_text("max 100000\n")
    assert cgroup_cpu_limit(quota) is None
    assert cgroup_cpu_limit(tmp_path / "absent") is None


def test_training_log_validates_once_per_iteration(tmp_path):
    """val_freq dividing total_iter: validation at 2 and 4, not a third time after the loop."""
    opt = tiny_train_options(tmp_path, **{"train.total_iter": 4, "val.val_freq": 2, "train.ema_decay": 0})
    root = Path(train.main(["-opt", str(write_options(tmp_path / "tiny.yml", opt))]))
    log = next(root.glob("train_*.log")).read_text()
    assert len(re.findall(r"Validation val\n", log)) == 2, log[-3000:]
