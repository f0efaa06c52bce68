"""CPU threads for inference: one op on the calling thread alone, or two independent pieces of work at once.

PyTorch spreads each CPU op over its intra-op threads (OpenMP). That splits large matrix products well,
but not everything vsrt runs: NNPACK's Winograd / FFT convolutions run on one thread
(:mod:`vsrt.archs.layers.nnpack_conv`), and a chain of small ops gains little from a second thread.
Where a network has two independent pieces of work they can instead run side by side, each
single-threaded, one on the caller's thread and one on a helper thread (:func:`run_concurrently`,
:func:`map_in_halves`). Measured on the 2-core development VM, 64x64 frames, two threads, in one
process alternating both ways (medians):

* SAVSR's two level-1 recurrent branches (71 % of a frame): 1.12 -> 0.80 s per output frame;
* BasicVSR's two SpyNet passes, then its two propagations, then half of the frames' heads on each
  thread: 0.29 -> 0.16 s per frame;
* smaller pieces: the two SpyNet passes of the recurrent transformers and VRT (VRT, 6 frames: 0.146 ->
  0.082 s), the per-frame heads of PSRT-recurrent / MIA-VSR / IIA-VSR (4 frames: 0.39 -> 0.32 s) and
  VRT, a few per cent of those networks;
* VRT's window attention, chunk by chunk alternately on the two threads (:func:`for_each_alternating`;
  attention calls of 4 chunks or more, from about 20 ms to 110 ms each at 64x64): 1.69 -> 1.59 s per frame.

Only whole pieces of work pay, not single ops: after every multi-threaded op the OpenMP team's idle
worker spins for about 8 ms (measured) on the second core before it sleeps, so a helper thread that
starts within that time shares the core with it. A region of a few milliseconds (one attention call
split in two) comes out slower than the op on two threads; a region of 100 ms loses a few per cent.

:func:`run_concurrently` runs side by side only where that pays and is safe (:func:`concurrency_pays`):
CPU inference (no autograd graph, no autocast) on exactly :data:`CONCURRENT_THREADS` intra-op threads,
not traced, compiled or seen by a dispatch mode. Anywhere else it runs the two calls one after the
other on the caller's thread; the results are the same either way up to float32 rounding (threaded
reductions, Winograd on one thread in place of a batched convolution).

Inside :func:`run_concurrently` PyTorch's intra-op thread count is 1 (it is process-wide: each branch
then runs its ops on its own thread, NNPACK's pool runs on the calling thread, and so do the ops of any
other Python thread of the process meanwhile); it is restored
when both branches are done, also when one of them raises. Peak memory grows by what both pieces hold
at once (BasicVSR: both directions' features until each frame's head).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

import torch

from vsrt.archs.layers.execution import autocast_enabled, capturing_graph

CONCURRENT_THREADS = 2
"""Intra-op thread count at which :func:`run_concurrently` runs its two calls side by side, one thread each.
With more threads each op splits further by itself, and two single-threaded branches would leave cores idle."""

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")
R = TypeVar("R")

_helper: ThreadPoolExecutor | None = None
_helper_lock = threading.Lock()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Inside the block PyTorch's intra-op thread count is 1 (NNPACK's pool then runs calls on the calling
    thread); the previous count is restored on the way out. Costs well under a microsecond."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def concurrency_pays(x: torch.Tensor) -> bool:
    """Whether :func:`run_concurrently` would run side by side for a forward on ``x``."""
    if type(x) is not torch.Tensor or capturing_graph():  # graphs and dispatch modes see one thread only
        return False
    return (x.device.type == "cpu" and not torch.is_grad_enabled() and not autocast_enabled("cpu")
            and torch.get_num_threads() == CONCURRENT_THREADS)


def run_concurrently(x: torch.Tensor, first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """``(first(), second())``: side by side, one thread each, where :func:`concurrency_pays` for ``x``;
    else one after the other.

    The two calls must not depend on each other or write to shared tensors. ``second`` runs on a helper
    thread in the caller's grad / inference mode and a copy of its context variables (e.g.
    :func:`vsrt.archs.layers.execution.force_sync_free`); its exception, if any, is raised here.
    """
    if not concurrency_pays(x):
        return first(), second()
    inference = torch.is_inference_mode_enabled()
    context = contextvars.copy_context()

    def in_callers_modes() -> B:
        with torch.inference_mode() if inference else torch.no_grad():
            return context.run(second)

    with one_thread():
        future: Future[B] = _executor().submit(in_callers_modes)
        try:
            result_first = first()
        finally:
            wait([future])  # the helper must be done before the thread count is restored
        return result_first, future.result()


def map_in_halves(x: torch.Tensor, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(item) for item in items]``, the second half of ``items`` on the helper thread where
    :func:`concurrency_pays` for ``x`` (:func:`run_concurrently`). The calls must be independent."""
    half = (len(items) + 1) // 2
    if half == len(items):  # nothing for a second thread
        return [fn(item) for item in items]
    first, second = run_concurrently(x, lambda: [fn(item) for item in items[:half]],
                                     lambda: [fn(item) for item in items[half:]])
    return first + second


def for_each_alternating(x: torch.Tensor, fn: Callable[[T], object], items: Sequence[T]) -> None:
    """``fn(item)`` for every item, the odd-numbered ones on the helper thread where :func:`concurrency_pays`
    for ``x`` (:func:`run_concurrently`). Alternating balances runs of cheaper and dearer items better than
    halves do. The calls must be independent (e.g. write disjoint slices of one output)."""
    if len(items) < 2:
        for item in items:
            fn(item)
        return
    run_concurrently(x, lambda: [fn(item) for item in items[0::2]], lambda: [fn(item) for item in items[1::2]])


def _executor() -> ThreadPoolExecutor:
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vsrt-branch")
        return _helper


def _forget_executor() -> None:
    """After ``fork`` the child has no helper thread (only the forking thread survives): make a new one."""
    global _helper, _helper_lock
    _helper, _helper_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_executor)
