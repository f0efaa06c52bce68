"""The benchmark scripts run on CPU and print their tables."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import REPO_ROOT


def test_benchmark_masking_prints_the_three_modes():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "benchmark_masking.py"), "--random", "--depths", "1",
         "--frames", "2", "--size", "16", "16", "--repeat", "1", "--threads", "1"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()
            if line.split() and line.split()[0] in ("full", "dense", "gather")}
    assert set(rows) == {"full", "dense", "gather"}, result.stdout
    kept = {mode: float(row[1]) for mode, row in rows.items()}
    transformer_gflops = {mode: float(row[-1]) for mode, row in rows.items()}
    assert kept["full"] == 1.0 and kept["gather"] == kept["dense"] < 1.0
    # gathering the kept tokens must do less transformer work than computing every token
    assert transformer_gflops["gather"] < transformer_gflops["full"] <= transformer_gflops["dense"]
