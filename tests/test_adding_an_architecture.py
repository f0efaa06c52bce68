"""The worked example of docs/adding_an_architecture.md: one architecture file, its option file and this
test, which the documentation shows verbatim."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from vsrt import train
from vsrt.archs import build_network
from vsrt.demo import make_demo_data

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "docs" / "examples"


@pytest.fixture
def sliding_vsr(monkeypatch: pytest.MonkeyPatch) -> type:
    monkeypatch.syspath_prepend(str(EXAMPLES))  # what PYTHONPATH=docs/examples does
    return importlib.import_module("sliding_vsr_arch").SlidingVSR  # importing it registers it


def test_each_output_frame_sees_only_its_window(sliding_vsr: type) -> None:
    torch.manual_seed(0)
    net = build_network({"type": "SlidingVSR", **sliding_vsr.tiny_config}).eval()
    lqs = torch.rand(1, 5, 3, 8, 8)
    changed = lqs.clone()
    changed[:, 4] += 0.5  # the last frame: in the windows of frames 3 and 4 only
    with torch.no_grad():
        out, out_changed = net(lqs), net(changed)
    assert out.shape == (1, 5, 3, 32, 32)
    differs = [not torch.equal(out[:, i], out_changed[:, i]) for i in range(5)]
    assert differs == [False, False, False, True, True]

    copy = build_network({"type": "SlidingVSR", **sliding_vsr.tiny_config}).eval()
    copy.load_state_dict(net.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(copy(lqs), out)


def test_it_trains_from_its_option_file(sliding_vsr: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_demo_data(Path("demo_output") / "data")  # the clips `python -m vsrt demo` writes
    root = Path(train.main(["-opt", str(EXAMPLES / "train_SlidingVSR_demo.yml"), "--allow_imports", "--force_yml",
                            "train.total_iter=2", "val.val_freq=2", "train.fix_flow=-1", "logger.print_freq=1",
                            "datasets.train.batch_size_per_gpu=1"]))
    log = next(root.glob("train_*.log")).read_text()
    assert "iter:       2" in log and log.count("Validation synthetic_heldout") == 1
    assert "flow network" not in log  # fix_flow has nothing to freeze in a network without flow
    state = torch.load(root / "models" / "net_g_latest.pth", weights_only=True)["params"]
    assert state.keys() == build_network({"type": "SlidingVSR", "num_feat": 32, "num_block": 3}).state_dict().keys()


def test_the_documentation_shows_these_files_verbatim() -> None:
    doc = (REPO_ROOT / "docs" / "adding_an_architecture.md").read_text()
    for path in (EXAMPLES / "sliding_vsr_arch.py", EXAMPLES / "train_SlidingVSR_demo.yml", Path(__file__)):
        assert path.read_text().strip() in doc, f"docs/adding_an_architecture.md does not show {path.name} as it is"
