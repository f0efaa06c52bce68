"""Which execution path a forward takes: data-dependent (gathered) or sync-free (static shapes).

Some steps can be done two ways with the same result:

* **gather**: look at the data first and compute only what is needed (MIA-VSR's kept tokens
  through ``nonzero`` / boolean indexing, the exact-equality mirror check that halves
  SpyNet's work). Best on the CPU, where reading a value costs nothing.
* **sync-free**: compute everything with static shapes and select with ``torch.where``. On a
  GPU, reading a tensor's value on the host (``.item()``, ``.tolist()``, ``nonzero``, a
  data-dependent shape) stalls the stream until every queued kernel has finished, which costs
  more than the work it saves, and breaks CUDA graphs and ``torch.compile``.

:func:`sync_free` decides, for one forward, from the input's device (``auto``: sync-free
everywhere except on the CPU) or from an explicit mode; :func:`force_sync_free` overrides
``auto`` inside a ``with`` block (tests check the CUDA path on the CPU with it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

EXECUTION_MODES = ("auto", "gather", "dense")

_forced: ContextVar[bool | None] = ContextVar("vsrt_force_sync_free", default=None)


def check_execution_mode(mode: str, name: str = "mask_execution") -> str:
    """``mode`` if it is one of :data:`EXECUTION_MODES`, else a ValueError naming ``name``."""
    if mode not in EXECUTION_MODES:
        raise ValueError(f"{name} must be one of {EXECUTION_MODES}; got {mode!r}")
    return mode


def sync_free(x: torch.Tensor, mode: str = "auto") -> bool:
    """True when the forward on ``x`` must avoid host-device synchronisation.

    ``dense`` -> True, ``gather`` -> False, ``auto`` -> the :func:`force_sync_free` override if
    one is active, else True unless ``x`` lives on the CPU.
    """
    if mode == "dense":
        return True
    if mode == "gather":
        return False
    forced = _forced.get()
    if forced is not None:
        return forced
    return x.device.type != "cpu"


@contextmanager
def force_sync_free(enabled: bool = True) -> Iterator[None]:
    """Inside the block, ``auto`` means sync-free (``enabled``) or gathered (not ``enabled``) on any device."""
    token = _forced.set(enabled)
    try:
        yield
    finally:
        _forced.reset(token)


# fused GPU attention kernels (memory-efficient / flash) want the head dim a multiple of 8
FUSED_HEAD_DIM_MULTIPLE = 8

# PyTorch's fused CPU attention kernel is slow at head dims just short of a multiple of 8 (one thread,
# 16 windows of 128 tokens on the 2-core VM: d=14 3.7 ms vs d=16 2.7; 30: 4.7 vs 32: 3.8; VRT's stage 8,
# 5 windows of 384 tokens, 11.5 vs 9.4 ms; two threads 9.3 vs 8.1), so float32 attention on the CPU pads
# a head dim by up to this many zero columns; head dims further from a multiple of 8 (20) stay as they are
CPU_HEAD_DIM_MAX_PAD = 2


def fused_head_dim(x: torch.Tensor, head_dim: int) -> int:
    """Head dim to run attention at: ``head_dim`` rounded up to a multiple of 8 on the sync-free
    (GPU) path, so that PyTorch's fused SDPA kernels accept it (20 and 30 do not); on the CPU in
    float32 rounded up where that adds at most :data:`CPU_HEAD_DIM_MAX_PAD` columns (30 -> 32), which
    the fused CPU kernel runs faster; else unchanged."""
    padded = -(-head_dim // FUSED_HEAD_DIM_MULTIPLE) * FUSED_HEAD_DIM_MULTIPLE
    if sync_free(x):
        return padded
    if x.device.type == "cpu" and x.dtype == torch.float32 and padded - head_dim <= CPU_HEAD_DIM_MAX_PAD:
        return padded
    return head_dim


# CPU window attention works through its windows in chunks of about this many key tokens: the q/k/v
# projections and the attention output of a chunk stay in cache, and no temporary outgrows glibc's mmap
# threshold (a whole-batch k/v of MIA-VSR at 64x64 is 12 MB, fresh pages on every block call)
CPU_ATTENTION_CHUNK_TOKENS = 3072


def attention_window_chunk(x: torch.Tensor, tokens_per_window: int) -> int | None:
    """Windows per window-attention chunk for ``x``'s forward: None (all windows at once, one kernel
    launch each) on the sync-free (GPU) path, else about :data:`CPU_ATTENTION_CHUNK_TOKENS` key tokens."""
    if sync_free(x):
        return None
    return max(1, CPU_ATTENTION_CHUNK_TOKENS // tokens_per_window)


def capturing_graph() -> bool:
    """Whether the call is traced, compiled, exported or seen by a Python dispatch mode (``FlopCounterMode``,
    ``FakeTensorMode``, memory recorders). The CPU fast paths (NNPACK convolutions, oneDNN linear layers,
    the sampled deformable convolution) then keep the standard ops, which graphs hold and counters know."""
    exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.5
    return (torch.jit.is_tracing() or torch.compiler.is_compiling() or (exporting is not None and exporting())
            or _get_current_dispatch_mode() is not None)


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (torch < 2.4 has no device argument)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """``torch.autocast(device_type, enabled=False)`` where autocast is on, else a no-op context.

    The same result either way; but every autocast region is a sub-graph that ``torch.export`` splits
    out and inlines again, at a cost that grows with the graph (60 % of exporting a 12-block MIA-VSR).
    """
    if autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()
