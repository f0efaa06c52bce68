"""vsrt.archs.layers.threads: two independent calls side by side on two CPU threads, else one after the other."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from helpers import torch_threads
from vsrt.archs.layers import threads
from vsrt.archs.layers.execution import force_sync_free, sync_free

X = torch.zeros(2)


def where_and_how() -> tuple[int, int, bool, bool, bool]:
    """The calling thread, its intra-op thread count, grad / inference mode and the sync-free override."""
    return (threading.get_ident(), torch.get_num_threads(), torch.is_grad_enabled(),
            torch.is_inference_mode_enabled(), sync_free(X))


def test_side_by_side_on_two_threads_in_the_callers_modes() -> None:
    with torch_threads(2), torch.inference_mode(), force_sync_free():
        first, second = threads.run_concurrently(X, where_and_how, where_and_how)
        assert torch.get_num_threads() == 2  # restored
    assert first[0] == threading.get_ident() != second[0]
    assert first[1:] == second[1:] == (1, False, True, True)  # one thread each, the caller's modes

    with torch_threads(2), torch.no_grad():
        _, second = threads.run_concurrently(X, where_and_how, where_and_how)
    assert second[1:] == (1, False, False, False)


def test_really_concurrent() -> None:
    """Each call waits for the other to start: one after the other this would deadlock (timeouts fail it)."""
    started = [threading.Event(), threading.Event()]

    def meet(mine: int) -> bool:
        started[mine].set()
        return started[1 - mine].wait(timeout=10)

    with torch_threads(2), torch.no_grad():
        assert threads.run_concurrently(X, lambda: meet(0), lambda: meet(1)) == (True, True)


@pytest.mark.parametrize("count", [0, 1, 2, 5])
def test_map_in_halves_keeps_the_order(count: int) -> None:
    """The first half (rounded up) on the caller, the rest on the helper; results in the items' order."""
    with torch_threads(2), torch.no_grad():
        results = threads.map_in_halves(X, lambda item: (item, threading.get_ident()), range(count))
    assert [item for item, _ in results] == list(range(count))
    on_caller = [item for item, thread in results if thread == threading.get_ident()]
    assert on_caller == list(range((count + 1) // 2 if count > 1 else count))


@pytest.mark.parametrize("count", [0, 1, 2, 5])
def test_for_each_alternating_calls_every_item_once_odd_ones_on_the_helper(count: int) -> None:
    calls = []
    with torch_threads(2), torch.no_grad():
        threads.for_each_alternating(X, lambda item: calls.append((item, threading.get_ident())), range(count))
    assert sorted(item for item, _ in calls) == list(range(count))
    on_caller = sorted(item for item, thread in calls if thread == threading.get_ident())
    assert on_caller == (list(range(0, count, 2)) if count > 1 else list(range(count)))


@pytest.mark.parametrize("case", ["one thread", "three threads", "grad", "autocast", "dispatch mode", "meta"])
def test_one_after_the_other_where_it_does_not_pay(case: str) -> None:
    x = X.to("meta") if case == "meta" else X
    count = {"one thread": 1, "three threads": 3}.get(case, threads.CONCURRENT_THREADS)
    mode = FlopCounterMode(display=False) if case == "dispatch mode" else contextlib.nullcontext()
    with torch_threads(count), torch.set_grad_enabled(case == "grad"), \
            torch.autocast("cpu", enabled=case == "autocast"), mode:
        first, second = threads.run_concurrently(x, where_and_how, where_and_how)
    assert first[0] == second[0] == threading.get_ident()
    assert first[1] == second[1] == count  # the thread count is left alone


@pytest.mark.parametrize("failing", ["first", "second"])
def test_errors_reach_the_caller_after_both_finish(failing: str) -> None:
    finished = threading.Event()

    def fail() -> None:
        raise RuntimeError(f"{failing} failed")

    def slow() -> int:
        finished.wait(0.2)
        finished.set()
        return torch.get_num_threads()

    calls = (fail, slow) if failing == "first" else (slow, fail)
    with torch_threads(2), torch.no_grad():
        with pytest.raises(RuntimeError, match=f"{failing} failed"):
            threads.run_concurrently(X, *calls)
        assert finished.is_set()  # the other call ran to its end before the error came back
        assert torch.get_num_threads() == 2


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="fork")
def test_a_forked_child_gets_its_own_helper() -> None:
    """A fork (e.g. a DataLoader worker) has no helper thread: the child must not wait on the parent's."""
    with torch_threads(2), torch.no_grad():
        threads.run_concurrently(X, where_and_how, where_and_how)  # the parent's helper exists
        pid = os.fork()
        if pid == 0:  # the child: exit 0 only if both calls ran, else (hanging) killed by the alarm
            import signal
            signal.alarm(20)
            first, second = threads.run_concurrently(X, where_and_how, where_and_how)
            os._exit(0 if first[0] != second[0] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
