"""No host-device synchronisation in eval forwards on the sync-free (CUDA) path.

A ``TorchDispatchMode`` records every operation whose result the host must read (a value or a
data-dependent shape): on a GPU each one stalls the stream. Every registered architecture runs its
tiny configuration in eval under ``force_sync_free()`` (what ``auto`` selects on CUDA; MIA-VSR also
with ``mask_execution='dense'``) and nothing may be recorded. The recorder is checked against the
gathered path, which must be caught.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vsrt.archs import ARCH_REGISTRY, MIAVSR
from vsrt.archs.layers.execution import check_execution_mode, force_sync_free, sync_free

aten = torch.ops.aten
SYNCING = {aten.nonzero, aten._local_scalar_dense, aten._unique, aten._unique2, aten.unique_dim,
           aten.unique_consecutive, aten.masked_select, aten.equal, aten.is_nonzero}
INDEXING = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}


class SyncRecorder(TorchDispatchMode):
    """Names of the syncing operations dispatched inside the block (boolean indexing included)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func.overloadpacket
        if packet in SYNCING:
            self.calls.append(str(func))
        elif packet in INDEXING:
            indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
            if any(i is not None and i.dtype == torch.bool for i in indices):
                self.calls.append(f"{func} (boolean index)")
        return func(*args, **(kwargs or {}))


def tiny_input(cls: type) -> torch.Tensor:
    shape = getattr(cls, "tiny_input_shape", (1, 4, 3, 16, 16))
    if len(shape) == 5 and shape[1] < 4 and cls.__name__ != "VRT":
        shape = (shape[0], 4, *shape[2:])  # enough recurrent steps for MIA-VSR's masks to act
    return torch.rand(*shape, generator=torch.Generator().manual_seed(3))


def recorded_calls(net: torch.nn.Module, lqs: torch.Tensor, force: bool | None = True) -> list[str]:
    recorder = SyncRecorder()
    with torch.no_grad():
        if force is None:
            with recorder:
                net(lqs)
        else:
            with force_sync_free(force), recorder:
                net(lqs)
    return recorder.calls


@pytest.mark.parametrize("name", sorted(ARCH_REGISTRY.keys()))
def test_eval_forward_does_not_synchronise_on_the_sync_free_path(name):
    cls = ARCH_REGISTRY.get(name)
    torch.manual_seed(0)
    net = cls(**cls.tiny_config).eval()
    assert recorded_calls(net, tiny_input(cls)) == []


def mirrored_clip() -> torch.Tensor:
    half = torch.rand(1, 2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    return torch.cat([half, half.flip(1)], dim=1)


def test_mia_vsr_dense_mode_does_not_synchronise_on_any_device_choice():
    torch.manual_seed(0)
    net = MIAVSR(**MIAVSR.tiny_config, mask_execution="dense").eval()
    # no force: 'dense' alone selects the sync-free mask path; only the CPU mirror check may sync
    calls = recorded_calls(net, mirrored_clip(), force=None)
    assert calls == ["aten.equal.default"]


def test_recorder_catches_the_gathered_paths():
    """The CPU defaults (gathered kept tokens, the mirror check) are recorded: the test can fail."""
    torch.manual_seed(0)
    net = MIAVSR(**MIAVSR.tiny_config, mask_execution="gather").eval()
    calls = recorded_calls(net, mirrored_clip(), force=False)
    assert "aten.equal.default" in calls  # mirror check
    assert any("nonzero" in c for c in calls) and any("_local_scalar_dense" in c for c in calls)
    assert any("boolean index" in c for c in calls)


def test_mia_vsr_dense_and_gathered_masks_give_the_same_output():
    torch.manual_seed(0)
    net = MIAVSR(**MIAVSR.tiny_config).eval()
    lqs = torch.rand(2, 4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        gathered, gathered_masks = net(lqs, return_masks=True)  # auto on the CPU: gather
        net.mask_execution = "dense"
        dense, dense_masks = net(lqs, return_masks=True)
    torch.testing.assert_close(dense, gathered, atol=1e-5, rtol=0)
    kept = [float(v) for branch in dense_masks for step in branch[1:] for v in step]
    assert kept == [float(v) for branch in gathered_masks for step in branch[1:] for v in step]
    assert 0 < min(kept) < 1  # some tokens were skipped: the two paths really differ


def test_skip_masked_tokens_is_a_deprecated_alias_of_mask_execution():
    net = MIAVSR(**MIAVSR.tiny_config)
    assert net.mask_execution == "auto" and net.skip_masked_tokens
    with pytest.warns(DeprecationWarning, match="mask_execution"):
        net.skip_masked_tokens = False
    assert net.mask_execution == "dense" and not net.skip_masked_tokens
    with pytest.warns(DeprecationWarning):
        net.skip_masked_tokens = True
    assert net.mask_execution == "gather"


def test_execution_mode_resolution():
    cpu = torch.zeros(1)
    assert not sync_free(cpu) and sync_free(cpu, "dense") and not sync_free(cpu, "gather")
    with force_sync_free():
        assert sync_free(cpu) and not sync_free(cpu, "gather")
    assert not sync_free(cpu)
    with pytest.raises(ValueError, match="mask_execution must be one of"):
        check_execution_mode("sparse")
    with pytest.raises(ValueError, match="mask_execution must be one of"):
        MIAVSR(**MIAVSR.tiny_config, mask_execution="sparse")
