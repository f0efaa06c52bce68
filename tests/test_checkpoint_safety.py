"""Crash safety of checkpoint writes, made deterministic: the write is made to fail at chosen points.

No timing: ``torch.save`` writes part of its output and raises, ``os.replace`` raises, or the
interruption is a ``KeyboardInterrupt``. The previous file must stay intact and loadable and no
temporary file may remain.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
import torch

from helpers import tiny_train_options, write_options
from vsrt.models import build_model
from vsrt.options import load_options
from vsrt.utils.checkpoint import atomic_save

REAL_SAVE = torch.save


def fail_after_partial_write(error: BaseException):
    """A ``torch.save`` that writes the first half of the real output, then raises ``error``."""
    def save(obj, handle, *args, **kwargs):
        buffer = io.BytesIO()
        REAL_SAVE(obj, buffer)
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        handle.flush()
        raise error
    return save


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_write_failing_midway_keeps_the_previous_file_and_no_temporary(tmp_path, monkeypatch, error):
    target = tmp_path / "net_g_4.pth"
    atomic_save({"params": {"w": torch.arange(1000.0)}}, target)
    monkeypatch.setattr(torch, "save", fail_after_partial_write(error))
    with pytest.raises(type(error)):
        atomic_save({"params": {"w": torch.zeros(1000)}}, target)
    assert names(tmp_path) == ["net_g_4.pth"], "a failed write must remove its temporary file"
    loaded = torch.load(target, weights_only=True)
    torch.testing.assert_close(loaded["params"]["w"], torch.arange(1000.0), rtol=0, atol=0)


def test_a_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", fail_after_partial_write(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"w": torch.ones(3)}, tmp_path / "models" / "net_g_2.pth")
    assert names(tmp_path / "models") == []


def test_a_failed_rename_keeps_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "4.state"
    atomic_save({"iter": 4}, target)

    def broken_replace(src, dst):
        raise PermissionError(f"cannot rename {src}")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(PermissionError):
        atomic_save({"iter": 8}, target)
    assert names(tmp_path) == ["4.state"]
    assert torch.load(target, weights_only=True) == {"iter": 4}


def test_written_to_a_synced_temporary_in_the_same_folder_then_renamed_over(tmp_path, monkeypatch):
    """The target is untouched while bytes are written; one ``os.replace`` publishes a synced file."""
    target = tmp_path / "net_g_8.pth"
    atomic_save({"old": torch.zeros(2)}, target)
    events: list[tuple] = []
    real_replace, real_fsync = os.replace, os.fsync

    def save(obj, handle, *args, **kwargs):
        temporaries = [p for p in tmp_path.iterdir() if p != target]
        assert len(temporaries) == 1, temporaries
        events.append(("save", temporaries[0]))
        assert torch.load(target, weights_only=True).keys() == {"old"}, "the target is written in place"
        REAL_SAVE(obj, handle)

    def fsync(fd):
        events.append(("fsync", fd))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", Path(src), Path(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_save({"new": torch.ones(2)}, target)
    (_, temporary), (first_sync, _), (third, source, destination) = events[:3]
    assert first_sync == "fsync" and third == "replace", events
    assert temporary.parent == tmp_path and temporary != target  # same folder: the rename is atomic
    assert temporary.name.startswith(".net_g_8.pth.") and temporary.name.endswith(".tmp")
    assert (source, destination) == (temporary, target)
    assert names(tmp_path) == ["net_g_8.pth"]
    assert torch.load(target, weights_only=True).keys() == {"new"}


def test_published_file_has_the_permissions_of_a_plain_new_file(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_save({"w": 1}, tmp_path / "a.pth")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.pth").stat().st_mode) == 0o640


def test_a_failed_model_save_keeps_the_last_complete_checkpoint_for_resume(tmp_path, monkeypatch):
    """``model.save`` writes the network, then the state; a failure in either leaves iteration 4 usable."""
    opt, _ = load_options(write_options(tmp_path / "o.yml", tiny_train_options(tmp_path)),
                          is_train=True, root=tmp_path)
    for key in ("models", "training_states"):
        Path(opt["path"][key]).mkdir(parents=True, exist_ok=True)
    models, states = Path(opt["path"]["models"]), Path(opt["path"]["training_states"])
    model = build_model(opt)
    model.save(epoch=1, current_iter=4, batch_in_epoch=4)
    saved_params = torch.load(models / "net_g_4.pth", weights_only=True)["params"]

    calls = []

    def fail_on_state(obj, handle, *args, **kwargs):  # the network file goes through, the state fails
        calls.append(obj)
        if len(calls) == 2:
            return fail_after_partial_write(OSError("disk full"))(obj, handle)
        return REAL_SAVE(obj, handle)

    monkeypatch.setattr(torch, "save", fail_on_state)
    with pytest.raises(OSError):
        model.save(epoch=2, current_iter=8, batch_in_epoch=4)
    assert names(states) == ["4.state"] and names(models) == ["net_g_4.pth", "net_g_8.pth"]
    monkeypatch.setattr(torch, "save", fail_after_partial_write(OSError("disk full")))
    with pytest.raises(OSError):
        model.save(epoch=3, current_iter=12, batch_in_epoch=4)
    assert names(states) == ["4.state"] and names(models) == ["net_g_4.pth", "net_g_8.pth"]

    state = torch.load(states / "4.state", weights_only=True)
    assert (state["epoch"], state["iter"], state["batch_in_epoch"]) == (1, 4, 4)
    reloaded = torch.load(models / "net_g_4.pth", weights_only=True)["params"]
    assert reloaded.keys() == saved_params.keys()
    assert all(torch.equal(reloaded[k], saved_params[k]) for k in saved_params)
