"""The torch thread setting of the runtime and the build (rsnn_compiler/threads.py)."""

from __future__ import annotations

import os

import pytest
import torch

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.threads import THREADS_ENV, intra_op_threads, compute_threads


def test_threads_follow_the_load_and_the_environment(monkeypatch):
    """Without /proc's instant count: the 1-minute load average decides."""
    import rsnn_compiler.threads as threads_mod

    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setattr(threads_mod, "runnable_elsewhere", lambda: None)
    cores = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert intra_op_threads() == cores  # idle machine: every core
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 4.0, 0.0, 0.0))
    assert intra_op_threads() == 1  # saturated: one thread (contended threads wait on each other)
    monkeypatch.setenv(THREADS_ENV, "3")
    assert intra_op_threads() == 3
    monkeypatch.setenv(THREADS_ENV, "zero")
    with pytest.raises(UserInputError, match=THREADS_ENV):
        intra_op_threads()


def test_compute_threads_sets_and_restores():
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    with compute_threads(other) as n:
        assert n == other and torch.get_num_threads() == other
    assert torch.get_num_threads() == before


def test_threads_follow_what_runs_now_not_the_stale_average(monkeypatch):
    """Where /proc says how many threads of other processes are runnable now, that decides: an
    idle machine whose 1-minute average is still high from a finished burst gets every core, a
    busy one fewer; this process's own running threads (torch workers) do not count."""
    import rsnn_compiler.threads as threads_mod

    monkeypatch.delenv(THREADS_ENV, raising=False)
    cores = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 4.0, 0.0, 0.0))
    monkeypatch.setattr(threads_mod, "runnable_elsewhere", lambda: 0)
    assert intra_op_threads() == cores
    monkeypatch.setattr(threads_mod, "runnable_elsewhere", lambda: cores + 3)
    assert intra_op_threads() == 1
    monkeypatch.undo()
    if os.path.exists("/proc/loadavg"):
        n = threads_mod.runnable_elsewhere()  # the real reading: this test's own thread excluded
        assert n is not None and n >= 0
