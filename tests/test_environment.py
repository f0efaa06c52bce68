"""The test environment loses no coverage silently: PyAV is a requirement, and the launchers find torchrun."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO_ROOT

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def test_pyav_is_installed_where_ci_runs() -> None:
    """Without PyAV the video tests skip themselves; under CI (``CI=true``) that is a failure instead."""
    if importlib.util.find_spec("av") is None:
        message = ("PyAV (av) is not installed, so every video input/output test is skipped: "
                   "pip install -r requirements.txt")
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    import av

    assert int(av.__version__.split(".")[0]) >= 14, f"PyAV {av.__version__}: requirements.txt asks for av>=14"


def requirement_names(lines: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", line.split("#")[0].strip(), maxsplit=1)[0].lower()
            for line in lines if line.split("#")[0].strip()}


def test_setup_requires_what_requirements_txt_lists_for_running() -> None:
    """``pip install -e .`` gets PyAV (video in/out is a main feature) and every other runtime package."""
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    call = next(node for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    install = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "install_requires"))
    extras = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "extras_require"))
    optional = requirement_names([name for names in extras.values() for name in names])  # pip install .[export]
    runtime = requirement_names((REPO_ROOT / "requirements.txt").read_text().splitlines()) - optional
    assert "av" in runtime and "av" not in optional and {"tensorboard", "pytest", "onnxruntime"} <= optional
    assert runtime <= requirement_names(install), f"missing from setup.py: {runtime - requirement_names(install)}"


def launch(script: str, env_changes: dict[str, str], tmp_path: Path) -> list[str]:
    """Run ``bash <script> 2 cfg.yml --auto_resume`` with a stand-in launcher; the arguments it received."""
    config = tmp_path / "cfg" / "x.yml"
    config.parent.mkdir(exist_ok=True)
    config.write_text("name: x\n")
    env = {key: value for key, value in os.environ.items() if key not in ("TORCHRUN", "MASTER_PORT", "NNODES")}
    result = subprocess.run([shutil.which("bash"), str(REPO_ROOT / script), "2", "cfg/x.yml", "--auto_resume"],
                            cwd=tmp_path, env={**env, **env_changes}, capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def expected_arguments(module: str, port: int, tmp_path: Path) -> list[str]:
    return ["--nnodes=1", "--node_rank=0", "--master_addr=127.0.0.1", f"--master_port={port}",
            "--nproc_per_node=2", "-m", module, "-opt", str((tmp_path / "cfg" / "x.yml").resolve()),
            "--launcher", "pytorch", "--auto_resume"]


@pytest.mark.parametrize(("script", "module", "port"), [("dist_train.sh", "vsrt.train", 4321),
                                                         ("dist_test.sh", "vsrt.test", 4322)])
def test_launchers_use_torchrun_override(script: str, module: str, port: int, tmp_path: Path) -> None:
    """``TORCHRUN`` replaces the torchrun command (the tests set it to this interpreter where PATH has none)."""
    got = launch(script, {"TORCHRUN": "echo LAUNCHED"}, tmp_path)
    assert got == ["LAUNCHED", *expected_arguments(module, port, tmp_path)]


def test_launcher_without_torchrun_on_path_runs_the_python_module(tmp_path: Path) -> None:
    """No ``torchrun`` on PATH: ``python3 -m torch.distributed.run`` (a stand-in python3 echoes its arguments)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text('#!/bin/sh\necho python3 "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    for tool in ("bash", "dirname", "basename"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    path = str(bin_dir)
    assert shutil.which("torchrun", path=path) is None
    got = launch("dist_train.sh", {"PATH": path}, tmp_path)
    assert got == ["python3", "-m", "torch.distributed.run", *expected_arguments("vsrt.train", 4321, tmp_path)]


def test_run_launcher_helper_points_torchrun_at_this_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where PATH has no torchrun, the launcher tests run ``sys.executable -m torch.distributed.run``."""
    import helpers

    seen = {}

    def fake_run(command, env, **kwargs):
        seen.update(env)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(helpers.shutil, "which", lambda name, *args, **kwargs: None)
    monkeypatch.setattr(helpers.subprocess, "run", fake_run)
    helpers.run_launcher("dist_train.sh", "x.yml")
    assert seen["TORCHRUN"] == f"{sys.executable} -m torch.distributed.run"
