"""Locate the Python 3.10 Lava environment and run ``lava_runner.py`` inside it.

Lava 0.10 runs only on Python 3.10, the compiler on 3.11+, so the Lava backend calls a separate
interpreter through a subprocess. Lookup order for that interpreter:

1. ``RSNNC_LAVA_PYTHON`` — an explicit interpreter (nothing else is tried when it is set);
2. ``RSNNC_LAVA_ENV`` — a virtual environment directory (``$RSNNC_LAVA_ENV/bin/python``);
3. ``<repo>/.venv-lava/bin/python`` (repo root: ``RSNNC_REPO_ROOT`` or found from this file);
4. ``~/.cache/rsnnc/lava-env/bin/python``.

Create the environment with ``scripts/setup_lava.sh`` (same ``RSNNC_LAVA_ENV`` convention).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

RUNNER = Path(__file__).resolve().with_name("lava_runner.py")
NETX_RUNNER = Path(__file__).resolve().with_name("netx_runner.py")
SETUP_HINT = "scripts/setup_lava.sh"
NETWORK_FORMAT = "rsnnc-lava-net"
NETWORK_VERSION = 1
#: Default limit for one runner call (a Lava process model that crashes can leave Lava waiting).
DEFAULT_TIMEOUT_S = float(os.environ.get("RSNNC_LAVA_TIMEOUT", 900))


class LavaError(RuntimeError):
    """The Lava environment is missing or the runner failed."""


@dataclass(frozen=True)
class LavaStatus:
    """Whether a usable Lava environment exists, and if not, what is missing and how to fix it."""

    found: bool
    python: Path | None
    lava_version: str | None
    reason: str


def repo_root() -> Path | None:
    """The source checkout this module lives in (editable install), or ``RSNNC_REPO_ROOT``."""
    env = os.environ.get("RSNNC_REPO_ROOT")
    if env:
        return Path(env).expanduser()
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() and (root / "backends").is_dir() else None


def _candidates() -> list[tuple[str, Path]]:
    """(label, interpreter path) in lookup order."""
    explicit = os.environ.get("RSNNC_LAVA_PYTHON")
    if explicit:
        return [("RSNNC_LAVA_PYTHON", Path(explicit).expanduser())]
    out = []
    env = os.environ.get("RSNNC_LAVA_ENV")
    if env:
        out.append(("RSNNC_LAVA_ENV", Path(env).expanduser() / "bin" / "python"))
    root = repo_root()
    if root is not None:
        out.append(("repo .venv-lava", root / ".venv-lava" / "bin" / "python"))
    out.append(("user cache", Path.home() / ".cache" / "rsnnc" / "lava-env" / "bin" / "python"))
    return out


def find_lava_python() -> Path | None:
    """First existing interpreter in the lookup order (not checked for a working ``lava``)."""
    for _, path in _candidates():
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def _fix_hint() -> str:
    root = repo_root()
    script = f"{root / SETUP_HINT}" if root is not None else SETUP_HINT
    return f"create it with `{script}` (needs Python 3.10), or set RSNNC_LAVA_PYTHON"


_PROBED: dict[tuple[str, str], str] = {}  # (interpreter, probe code) -> its output (successes only)
LAVA_PROBE = ("import sys, importlib.metadata as m; import lava; "
              "from lava.magma.core.run_configs import Loihi2SimCfg; "
              "print(m.version('lava-nc'), '%d.%d' % sys.version_info[:2])")
# lava-dl's netx, found and versioned without importing it (importing torch takes tens of
# seconds; the netx runner reports a broken installation itself)
NETX_PROBE = ("import importlib.metadata as m, importlib.util as u; import h5py;"
              " assert u.find_spec('lava.lib.dl.netx') and u.find_spec('torch'), 'lava-dl netx not found';"
              " print(m.version('lava-dl'))")


def _probe(python: str, code: str = LAVA_PROBE, timeout: float = 120) -> tuple[str | None, str]:
    """(first word the probe prints, or None; error text) for an interpreter."""
    if (python, code) in _PROBED:
        return _PROBED[python, code], ""
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return None, lines[-1] if lines else f"exit code {proc.returncode}"
    _PROBED[python, code] = proc.stdout.split()[0]
    return _PROBED[python, code], ""


def lava_status() -> LavaStatus:
    """Find the Lava interpreter and check that ``import lava`` works in it."""
    python = find_lava_python()
    if python is None:
        looked = ", ".join(f"{label}: {path}" for label, path in _candidates())
        return LavaStatus(False, None, None,
                          f"no Lava environment found (looked at {looked}); {_fix_hint()}")
    version, error = _probe(str(python))
    if version is None:
        return LavaStatus(False, python, None,
                          f"`import lava` fails in {python}: {error}; {_fix_hint()}")
    return LavaStatus(True, python, version, f"lava-nc {version} at {python}")


def netx_status() -> LavaStatus:
    """Like :func:`lava_status`, and also check that lava-dl's ``netx`` is installed there."""
    status = lava_status()
    if not status.found:
        return status
    version, error = _probe(str(status.python), NETX_PROBE, timeout=300)
    if version is None:
        return LavaStatus(False, status.python, status.lava_version,
                          f"lava-dl's netx is not usable in {status.python}: {error}; {_fix_hint()}")
    return LavaStatus(True, status.python, status.lava_version,
                      f"lava-nc {status.lava_version}, lava-dl {version} at {status.python}")


def require_lava() -> Path:
    """The Lava interpreter, or ``LavaError`` saying what is missing and how to fix it."""
    status = lava_status()
    if not status.found:
        raise LavaError(status.reason)
    assert status.python is not None
    return status.python


def write_network_dir(net_dir: Path | str, doc: dict, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``network.json`` and ``arrays.npz`` for the runner (see docs/lava-runner.md)."""
    net_dir = Path(net_dir)
    net_dir.mkdir(parents=True, exist_ok=True)
    doc = {"format": NETWORK_FORMAT, "version": NETWORK_VERSION, **doc}
    (net_dir / "network.json").write_text(json.dumps(doc, indent=1) + "\n")
    np.savez(net_dir / "arrays.npz", **{k: np.asarray(v) for k, v in arrays.items()})
    return net_dir


def run_in_lava(network_dir: Path | str, inputs: np.ndarray, *, steps: int | None = None,
                replicas: int | None = None, readout: str = "file",
                replicate_dense_as: str = "sparse", timeout: float | None = DEFAULT_TIMEOUT_S,
                python: Path | str | None = None) -> dict[str, np.ndarray]:
    """Run ``inputs`` (T, batch, n_in) or (T, n_in) through the network in Lava ``fixed_pt``.

    Returns ``spikes/<pop>``, ``v/<pop>``, ``u/<pop>`` as int64 arrays shaped like the input
    ((T, batch, n) or (T, n)), in raw Lava time steps, and ``meta`` (a 0-d JSON string array; see
    :func:`result_meta`). ``replicas`` samples share one Lava run (block-diagonal copies; default
    automatic, 1 = one run per sample), whose dense connections become Lava ``Sparse`` unless
    ``replicate_dense_as="dense"``. ``readout="get"`` reads sinks with ``Var.get()`` (slow).
    Raises ``LavaError`` if the environment is missing or the runner fails.
    """
    python = Path(python) if python is not None else require_lava()
    x = np.asarray(inputs)
    if x.dtype.kind not in "iub":
        raise ValueError(f"inputs must be integers, got {x.dtype}")
    with tempfile.TemporaryDirectory(prefix="rsnnc-lava-run-") as tmp:
        x_path, out_path = Path(tmp) / "inputs.npz", Path(tmp) / "results.npz"
        np.savez(x_path, x=x.astype(np.int64))
        cmd = [str(python), str(RUNNER), str(network_dir), "--inputs", str(x_path),
               "--out", str(out_path), "--readout", readout,
               "--replicate-dense-as", replicate_dense_as]
        if steps is not None:
            cmd += ["--steps", str(steps)]
        if replicas is not None:
            cmd += ["--replicas", str(replicas)]
        proc = _run_group(cmd, timeout)
        if proc.returncode != 0 or not out_path.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
            raise LavaError(f"Lava runner failed (exit {proc.returncode}): {tail}")
        with np.load(out_path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


@dataclass(frozen=True)
class NetxJob:
    """One ``.net`` file run by ``netx_runner.py`` (its docstring has the fields' meaning)."""

    net: Path
    inputs: np.ndarray  # (T, batch, n_in) integers, torch flat order of layer/0/shape
    steps: int
    reset_interval: int | None = None
    reset_offset: int = 0
    input_message_bits: int = 0


def run_netx(jobs: list[NetxJob], *, timeout: float | None = DEFAULT_TIMEOUT_S,
             python: Path | str | None = None) -> list[dict[str, np.ndarray]]:
    """Run every job with lava-dl's ``netx.hdf5.Network`` in Lava ``fixed_pt`` (one subprocess).

    Returns per job ``spikes/<i>``, ``u/<i>``, ``v/<i>`` (S, batch, n) int64 for every layer ``i``
    netx builds (file index), in raw Lava steps, and ``meta``. Raises ``LavaError``.
    """
    if python is None:
        status = netx_status()
        if not status.found:
            raise LavaError(status.reason)
        python = status.python
    with tempfile.TemporaryDirectory(prefix="rsnnc-netx-run-") as tmp:
        docs = []
        for k, job in enumerate(jobs):
            x = np.asarray(job.inputs)
            if x.dtype.kind not in "iub" or x.ndim != 3:
                raise ValueError(f"netx inputs must be integers (T, batch, n_in), got {x.dtype} {x.shape}")
            np.savez(Path(tmp) / f"x{k}.npz", x=x.astype(np.int64))
            docs.append({"net": str(job.net), "inputs": str(Path(tmp) / f"x{k}.npz"),
                         "out": str(Path(tmp) / f"r{k}.npz"), "steps": int(job.steps),
                         "reset_interval": job.reset_interval, "reset_offset": job.reset_offset,
                         "input_message_bits": job.input_message_bits})
        (Path(tmp) / "jobs.json").write_text(json.dumps({"jobs": docs}))
        proc = _run_group([str(python), str(NETX_RUNNER), str(Path(tmp) / "jobs.json")], timeout)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
            raise LavaError(f"netx runner failed (exit {proc.returncode}): {tail}")
        out = []
        for doc in docs:
            with np.load(doc["out"], allow_pickle=False) as z:
                out.append({k: z[k] for k in z.files})
        return out


def _run_group(cmd: list[str], timeout: float | None) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own session; on timeout kill its whole process group (Lava starts one
    OS process per Lava process, and a crashed process model can leave the run waiting)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise LavaError(f"Lava runner timed out after {timeout} s") from exc
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def result_meta(results: Mapping[str, np.ndarray]) -> dict:
    """The runner's metadata (timings, replicas per run, Lava version) from a result dict."""
    return json.loads(str(results["meta"])) if "meta" in results else {}
