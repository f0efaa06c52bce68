"""The experiment folder across runs: resume fallback, resuming another experiment, ignore_resume_networks,
temporary files of killed runs, archiving only what holds something."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

from helpers import tiny_train_options, write_options
from vsrt import experiment, train
from vsrt.archs import build_network
from vsrt.models import build_model
from vsrt.options import load_options
from vsrt.utils import checkpoint

LOGGER = logging.getLogger("vsrt.tests")


@pytest.fixture
def trained(tmp_path) -> tuple[Path, Path]:
    """A finished 4-iteration run ``experiments/tiny`` with states at iterations 2 and 4, and its option file."""
    opt = tiny_train_options(tmp_path, **{"train.total_iter": 4, "logger.save_checkpoint_freq": 2,
                                          "val.val_freq": None})
    opt_path = write_options(tmp_path / "tiny.yml", opt)
    return Path(train.main(["-opt", str(opt_path)])), opt_path


def params(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["params"]


@pytest.mark.parametrize("damage", ["empty", "garbage", "weights"])
def test_auto_resume_skips_an_unreadable_newest_state(trained, vsrt_log, damage):
    root, opt_path = trained
    if damage == "weights":
        (root / "models" / "net_g_4.pth").write_bytes(b"PK\x03\x04 torn")
        bad = root / "models" / "net_g_4.pth"
    else:
        bad = root / "training_states" / "4.state"
        bad.write_bytes(b"" if damage == "empty" else b"not a checkpoint")
    train.main(["-opt", str(opt_path), "--auto_resume", "--force_yml", "train.total_iter=5"])
    assert f"Cannot read {bad}" in vsrt_log.text
    assert f"Resumed from {root / 'training_states' / '2.state'}: epoch 0, iteration 2" in vsrt_log.text
    assert torch.load(root / "training_states" / "4.state", weights_only=True)["iter"] == 4  # rewritten


def test_auto_resume_with_only_unreadable_states_refuses_to_start_over(trained):
    root, opt_path = trained
    for state in (root / "training_states").glob("*.state"):
        state.write_bytes(b"")
    with pytest.raises(RuntimeError, match=r"--auto_resume: no readable training state .*4.state, 2.state"):
        train.main(["-opt", str(opt_path), "--auto_resume"])


def test_resume_state_of_another_experiment_takes_that_experiments_weights(trained, tmp_path, vsrt_log):
    root, opt_path = trained
    state_path = root / "training_states" / "4.state"
    opt, _ = load_options(opt_path, True, [f"path.resume_state={state_path}", "name=other"], root=tmp_path)
    path, state = experiment.find_resume_state(opt, auto_resume=False, logger=LOGGER)
    experiment.use_resumed_weights(opt, path, state, LOGGER)
    assert Path(opt["path"]["pretrain_network_g"]) == root / "models" / "net_g_4.pth"
    other = train.main(["-opt", str(opt_path), "--force_yml", f"path.resume_state={state_path}", "name=other",
                        "train.total_iter=5"])
    assert f"Resumed from {state_path}: epoch 0, iteration 4" in vsrt_log.text
    assert (Path(other) / "models" / "net_g_latest.pth").is_file()


def test_ignore_resume_networks_keeps_the_configured_weights(trained, tmp_path):
    root, opt_path = trained
    torch.manual_seed(7)
    fresh = build_network({"type": "BasicVSR", "num_feat": 8, "num_block": 1, "spynet_path": None})
    torch.save({"params": fresh.state_dict()}, tmp_path / "start.pth")
    resumed = {}
    for ignore in ([], ["network_g"]):
        opt, _ = load_options(opt_path, True, [f"path.resume_state={root / 'training_states' / '4.state'}",
                                               f"path.pretrain_network_g={tmp_path / 'start.pth'}",
                                               f"path.ignore_resume_networks={ignore}"], root=tmp_path)
        path, state = experiment.find_resume_state(opt, auto_resume=False, logger=LOGGER)
        experiment.use_resumed_weights(opt, path, state, LOGGER)
        model = build_model(opt)
        model.resume_training(state)  # the optimizer and schedule are resumed either way
        assert model.schedulers[0].last_epoch == 3
        resumed[bool(ignore)] = model.net_g.state_dict()
    checkpointed, configured = params(root / "models" / "net_g_4.pth"), fresh.state_dict()
    assert all(torch.equal(resumed[False][k], checkpointed[k]) for k in checkpointed)
    assert all(torch.equal(resumed[True][k], configured[k]) for k in configured)
    assert not all(torch.equal(configured[k], checkpointed[k]) for k in configured)


def test_temporary_files_of_a_killed_write_are_removed_at_start(trained, monkeypatch, vsrt_log):
    """A write killed before its rename leaves atomic_save's own temporary file; the next start removes it
    and nothing else."""
    root, opt_path = trained
    models = root / "models"
    with monkeypatch.context() as patch:  # a kill -9 between the write and the rename: no clean-up runs
        patch.setattr(checkpoint.os, "replace", lambda *a: (_ for _ in ()).throw(SystemExit("killed")))
        patch.setattr(checkpoint.os, "remove", lambda path: None)
        with pytest.raises(SystemExit):
            checkpoint.atomic_save({"params": {}}, models / "net_g_6.pth")
    orphans = list(models.glob(".net_g_6.pth.*.tmp"))
    assert len(orphans) == 1
    keep = [models / "my_notes.tmp", models / ".hidden.tmp", root / "training_states" / ".x.state.tmp"]
    for path in keep:
        path.write_text("user file")
    train.main(["-opt", str(opt_path), "--auto_resume", "--force_yml", "train.total_iter=5"])
    assert not orphans[0].exists() and all(path.exists() for path in keep)
    assert "Removed 1 temporary checkpoint file(s)" in vsrt_log.text


def test_failed_starts_do_not_pile_up_archives(tmp_path):
    """Starts that fail on missing data (before the folder is touched) or on a missing SpyNet file (after
    the folder and its log exist) archive nothing; a folder with a finished run is archived once."""
    opt = tiny_train_options(tmp_path, **{"train.total_iter": 1, "val.val_freq": None})
    good = write_options(tmp_path / "good.yml", opt)
    no_data = tiny_train_options(tmp_path, **{"train.total_iter": 1, "datasets.train.dataroot_gt": str(tmp_path / "x")})
    no_spynet = tiny_train_options(tmp_path, **{"train.total_iter": 1, "network_g.spynet_path": str(tmp_path / "x")})
    experiments = tmp_path / "experiments"
    for _ in range(2):
        with pytest.raises((FileNotFoundError, ValueError)):
            train.main(["-opt", str(write_options(tmp_path / "bad.yml", no_data))])
        assert not (experiments / "tiny").exists()
    for _ in range(2):
        with pytest.raises(FileNotFoundError, match="spynet_path"):
            train.main(["-opt", str(write_options(tmp_path / "bad.yml", no_spynet))])
    assert [p.name for p in experiments.iterdir()] == ["tiny"]  # reused: log and option copy only
    train.main(["-opt", str(good)])
    assert [p.name for p in experiments.iterdir()] == ["tiny"]
    train.main(["-opt", str(good)])
    names = sorted(p.name for p in experiments.iterdir())
    assert len(names) == 2 and names[0] == "tiny" and names[1].startswith("tiny_archived_")
    assert os.listdir(experiments / names[1] / "models") == ["net_g_latest.pth"]
    archived_logs = "".join(p.read_text() for p in (experiments / names[1]).glob("train_tiny_*.log"))
    assert f"spynet_path: {tmp_path / 'x'}" in archived_logs  # the failed starts' log is kept with the run
