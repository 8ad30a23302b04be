"""Torch intra-op and BLAS threads that stay fast on a busy machine.

Measured on a shared 2-core machine at load average ~6: a (8, 1024) x (1024, 1024) float32
``F.linear`` takes 1.6-3.4 ms with one torch thread and 20-22 ms with two (threads of a
saturated machine wait for each other at every op); numpy's OpenBLAS likewise (an (80, 3130) x
(3130, 3130) float64 product: 0.15-0.27 s on one thread, 0.38-0.47 s on two). The runtime and
``rsnnc build`` therefore use as many threads as other processes leave cores idle (at least one,
at most the cores), or ``$RSNNC_THREADS`` when set, for torch and (threadpoolctl) BLAS alike. Thread counts never change results here: every float sum the
runtime or the build depends on bit for bit runs with the same kernels, and the integer paths
are exact (docs/gpu-runtime.md).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rsnn_compiler.errors import UserInputError

THREADS_ENV = "RSNNC_THREADS"


def runnable_elsewhere() -> int | None:
    """Threads of other processes runnable right now (Linux: ``/proc/loadavg``'s running count
    less this process's threads in state R, e.g. torch workers still spinning), or None where
    ``/proc`` does not say."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        mine = 0
        for task in os.scandir("/proc/self/task"):
            try:
                stat = Path(task.path, "stat").read_text()
            except OSError:  # the thread ended meanwhile
                continue
            mine += stat[stat.rindex(")") + 2:stat.rindex(")") + 3] == "R"
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - mine)


def intra_op_threads() -> int:
    """``$RSNNC_THREADS``, else the cores other processes leave idle right now (Linux: threads
    runnable elsewhere at this moment; elsewhere the 1-minute load average, counting this process
    as one of the running jobs), at least 1. The instant count, not the 1-minute average, where
    available: the average stays high for a minute after a burst (e.g. a Lava validation) has
    ended and would keep an idle machine at one thread."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise UserInputError(f"${THREADS_ENV}={env!r}: give a positive number of threads")
        return int(env)
    cores = os.cpu_count() or 1
    others = runnable_elsewhere()
    if others is not None:
        return max(1, min(cores, cores - others))
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return max(1, min(cores, cores - int(load + 0.5) + 1))


@contextmanager
def compute_threads(threads: int | None = None) -> Iterator[int]:
    """Run the block with ``threads`` (default ``intra_op_threads()``) torch intra-op threads and
    at most that many BLAS threads (numpy's)."""
    import torch
    from threadpoolctl import threadpool_limits

    n = threads or intra_op_threads()
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        with threadpool_limits(n, user_api="blas"):
            yield n
    finally:
        if n != before:
            torch.set_num_threads(before)
