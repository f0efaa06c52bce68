"""scripts/benchmark.py: every architecture's row, JSON lines, and the official side by side."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest
import torch

from helpers import REPO_ROOT, load_script

SCRIPT = REPO_ROOT / "scripts" / "benchmark.py"
TINY = ["--tiny", "--size", "32", "32", "--frames", "2", "--vrt-frames", "2", "--warmup", "0", "--runs", "1",
        "--device", "cpu", "--threads", "1"]


def table_rows(table: str) -> dict[str, list[str]]:
    """Markdown rows keyed by their first cell (header and separator left out)."""
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("|") and not line.startswith("|---")]
    return {cells[0]: cells for cells in rows[1:]}


def test_every_architecture_has_a_row(tmp_path):
    bench = load_script(SCRIPT)
    jsonl = tmp_path / "runs.jsonl"
    table = bench.main([*TINY, "--in-process", "--jsonl", str(jsonl), "--markdown", str(tmp_path / "t.md")])
    rows = table_rows(table)
    assert list(rows) == [row.label for row in bench.ROWS]
    for label, cells in rows.items():
        assert cells[1:3] == ["fp32", "no"], label
        assert float(cells[4]) > 0, label  # vsrt s/frame
        assert cells[3] == "-" and cells[5] == "-"  # no official side asked for
        assert float(cells[6].split("/")[1]) >= 0, label  # peak MiB
    gathered, dense = rows["MIA-VSR, masks gathered"][7], rows["MIA-VSR, masks dense"][7]
    assert 0 < float(gathered) <= 1 and gathered == dense  # the mask mode changes the work, not the masks
    assert rows["MIA-VSR, use_mask=False"][7] == "-"
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    runs, summary = [x for x in lines if "kind" not in x], [x for x in lines if x.get("kind") == "row"]
    assert len(runs) == len(summary) == len(bench.ROWS)
    assert {r["frames_out"] for r in runs if r["row"] == "savsr"} == {1}  # 5 frames -> the centre one
    assert all(r["frames_out"] == 2 for r in runs if r["row"] != "savsr")
    assert (tmp_path / "t.md").read_text().strip() == table
    again = bench.main([*TINY, "--from-jsonl", str(jsonl)])  # the table again, from the JSON lines alone
    assert table_rows(again) == rows


FAKE_HELPER = '''
from vsrt.archs import build_network

def basicvsr(**kwargs):  # stands in for BasicSR's BasicVSR: same keys
    return build_network({"type": "BasicVSR", **kwargs})
'''


def test_official_side_by_side_in_separate_processes(tmp_path):
    """Official and vsrt runs interleave, one process each, the official one first (it writes the weights)."""
    helper = tmp_path / "official.py"
    helper.write_text(FAKE_HELPER)
    (tmp_path / "ref").mkdir()
    jsonl = tmp_path / "runs.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--only", "basicvsr", "--repeat", "2", "--official-ref",
         str(tmp_path / "ref"), "--official-helper", str(helper), "--jsonl", str(jsonl)],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    cells = table_rows(result.stdout)["BasicVSR"]
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    (row,) = [x for x in lines if x.get("kind") == "row"]
    official, vsrt = row["official"], row["vsrt"]
    # the table shows seconds rounded to 3 decimals and ratios to 2: compare with the unrounded values
    assert float(cells[3]) == pytest.approx(official["s_per_frame"], abs=5e-4)
    assert float(cells[4]) == pytest.approx(vsrt["s_per_frame"], abs=5e-4)
    assert float(cells[5].rstrip("x")) == pytest.approx(official["s_per_frame"] / vsrt["s_per_frame"], abs=5e-3)
    cpu_ratio = cells[8].split()[-1]  # "official / vsrt (ratio)" process CPU time
    expected_cpu = official["cpu_s_per_frame"] / vsrt["cpu_s_per_frame"]
    assert float(cpu_ratio.strip("()x")) == pytest.approx(expected_cpu, abs=5e-3)
    runs = [x for x in lines if "kind" not in x]
    assert [(r["impl"], r["round"]) for r in runs] == [("official", 0), ("vsrt", 0), ("official", 1), ("vsrt", 1)]
    assert len({r["pid"] for r in runs}) == 4


def test_missing_official_helper_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="official.py"):
        load_script(SCRIPT).main([*TINY, "--official-ref", str(tmp_path)])


def test_live_tensor_bytes_counts_what_is_alive_at_once():
    recorder = load_script(REPO_ROOT / "scripts" / "benchmark_run.py").LiveTensorBytes()
    weights = torch.ones(1000)  # made before: not counted
    with recorder:
        a = weights * 2  # 4000 bytes
        b = a + 1  # 8000 alive
        view = b[:10]  # a view: no new storage
        del a
        c = b * 3  # 8000 alive again (a is gone)
        del b, c
        d = view + 0  # 40 bytes: b's storage lives on through the view
    assert recorder.peak == 8000 and recorder.live == 4000 + 40 and d.numel() == 10


def test_memory_is_sampled_over_the_warm_up_passes_only(tmp_path, monkeypatch):
    """The RSS sampling thread wakes every millisecond and slows two-thread runs: the timed passes run without it."""
    bench = load_script(SCRIPT)
    benchmark_run = sys.modules["benchmark_run"]
    profile_model = importlib.import_module("profile_model")  # scripts/ is on sys.path once benchmark is loaded
    sampling, seen = [False], []
    original_sampler, original_forward_fn = profile_model.cpu_peak_memory, benchmark_run._forward_fn

    def sampler(passes):
        sampling[0] = True
        try:
            return original_sampler(passes)
        finally:
            sampling[0] = False

    def forward_fn(*args):
        forward = original_forward_fn(*args)
        return lambda: seen.append(sampling[0]) or forward()

    monkeypatch.setattr(profile_model, "cpu_peak_memory", sampler)
    monkeypatch.setattr(benchmark_run, "_forward_fn", forward_fn)
    jsonl = tmp_path / "runs.jsonl"
    args = [arg if arg != "0" else "1" for arg in TINY]  # --warmup 1
    bench.main([*args, "--runs", "2", "--only", "basicvsr", "--in-process", "--jsonl", str(jsonl)])
    assert seen == [True, False, False]  # one warm-up pass sampled, two timed passes not
    (run,) = [json.loads(line) for line in jsonl.read_text().splitlines() if "kind" not in json.loads(line)]
    assert len(run["times"]) == 2 and run["memory"].endswith("during the warm-up passes")
