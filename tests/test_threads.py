"""The torch thread setting of the runtime and the build (rsnn_compiler/threads.py)."""

from __future__ import annotations

import os

import pytest
import torch

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.threads import THREADS_ENV, intra_op_threads, compute_threads


def test_threads_follow_the_load_and_the_environment(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
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
