"""Ray, the one engine for work spread over processes or machines (docs/scale-out.md).

``rsnnc sweep`` runs its points and ``rsnnc validate --shards N`` its data slices as Ray tasks:
in a local Ray started inside this process by default (``num_cpus`` from the machine or
``--num-cpus``), on a running cluster with ``--address``. Ray is imported here only, when a
command needs it, so no other command pays for its start-up.

Tasks are plain functions of picklable arguments; ``run_tasks`` submits them all, collects the
results as they finish (``on_done`` sees each one at once: progress, writing a result) and
returns them in submission order. A task's ``RsnncError`` reaches the caller as itself, so
exit codes are those of a run in one process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from rsnn_compiler.errors import UserInputError


@dataclass(frozen=True)
class RayOptions:
    """Where tasks run: ``address`` None starts a local Ray with ``num_cpus`` CPUs (None: the
    CPUs this process may use); an address (``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``)
    joins a running cluster, whose size is its own."""

    address: str | None = None
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.num_cpus is not None and self.num_cpus < 1:
            raise UserInputError(f"--num-cpus {self.num_cpus} must be at least 1")
        if self.address is not None and self.num_cpus is not None:
            raise UserInputError("--num-cpus applies to a local Ray only; a cluster (--address) has its own CPUs")


def machine_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _ray():
    try:
        import ray
    except ImportError:
        raise UserInputError("Ray is not installed in this environment; run `bash scripts/setup.sh`"
                             " (it installs the ray package from pyproject.toml)") from None
    return ray


@contextlib.contextmanager
def ray_session(options: RayOptions = RayOptions()) -> Iterator[None]:
    """Ray for the length of the block. One that is already initialized (a caller's session,
    e.g. a test fixture) is used as it is and left running; one started here is shut down."""
    ray = _ray()
    if ray.is_initialized():
        yield
        return
    kwargs: dict[str, Any] = dict(logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
    if options.address is None:
        kwargs["num_cpus"] = options.num_cpus or machine_cpus()
    else:
        kwargs["address"] = options.address
    handlers = _signal_handlers()  # ray.init installs its own SIGTERM handler in this process
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        _restore(handlers)
        where = f"the Ray cluster at {options.address}" if options.address else "a local Ray"
        raise UserInputError(f"could not start {where}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    try:
        yield
    finally:
        ray.shutdown()
        _restore(handlers)


def _signal_handlers() -> dict:
    """The process's SIGTERM/SIGINT handlers (main thread only: elsewhere they cannot change)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore(handlers: dict) -> None:
    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)


def cluster_cpus() -> int:
    """CPUs of the Ray session in use (inside ``ray_session``)."""
    return int(_ray().cluster_resources().get("CPU", 1))


def run_tasks(
    fn: Callable, calls: Sequence[tuple], on_done: Callable[[int, Any], None] = lambda i, r: None,
    num_cpus: float = 1,
) -> list[Any]:
    """``[fn(*call) for call in calls]`` as Ray tasks of ``num_cpus`` CPUs each (inside
    ``ray_session``); ``on_done(index, result)`` runs in this process as each task finishes.
    The first task that fails stops the rest and raises its error here."""
    ray = _ray()
    remote = ray.remote(num_cpus=num_cpus, max_retries=0)(fn)
    refs = [remote.remote(*call) for call in calls]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                results[index[ref]] = _get(ray, ref)
                on_done(index[ref], results[index[ref]])
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
    return results


def _get(ray, ref):
    """``ray.get`` that re-raises a task's own exception (an RsnncError keeps its exit code and
    one-line message; anything else stays the internal error it was)."""
    from ray.exceptions import RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise


__all__ = ["RayOptions", "cluster_cpus", "machine_cpus", "ray_session", "run_tasks"]
