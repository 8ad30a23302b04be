"""``rsnnc sweep``: every point as a Ray task, cached by what it is computed from (docs/sweep.md).

Layout of the sweep folder ``DIR``:

- ``points/<key>/build/``: the point's build (with ``validate.json``), ``points/<key>/result.json``
  its outcome and numbers, written by the driver as each task finishes;
- ``data/``: copies of data files cut to a point's ``time_steps``;
- ``sweep.json``, ``sweep.md``: the table; ``pareto.png``/``.svg``: accuracy against cost.

A point's key is the SHA-256 of everything its result depends on: the compiler version, its
build command line with every file named in it replaced by the file's SHA-256 (and, for
``pkg.module:factory``, the module's source file), the validation data's SHA-256, ``samples``,
``time_steps`` and the validation options. A point whose folder holds a ``result.json`` with
its key is not run again (``--force`` runs it anyway), so a rerun skips finished points and an
interrupted sweep resumes where it stopped: results are written one by one as tasks finish, and
builds are atomic, so a killed sweep leaves finished points complete and nothing half-written.
Points with the same key (the same point listed twice) run once.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from rsnn_compiler import __version__
from rsnn_compiler.artifact import atomic_write_bytes, sha256_file
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.progress import Task
from rsnn_compiler.sweep.config import DATA_OPTIONS, PointConfig, SweepConfig
from rsnn_compiler.sweep.point import PointResult, PointTask, parse_build_argv, run_point

POINTS = "points"
DATA = "data"
RESULT = "result.json"
KEY_CHARS = 16  # of the key's hex digest, in folder names


def _module_digest(source: str) -> str | None:
    """SHA-256 of the source file of ``pkg.module`` in ``pkg.module:factory`` (None otherwise)."""
    import importlib.util

    module, sep, _ = source.rpartition(":")
    if not sep or "/" in module or module.endswith(".py") or Path(source).exists():
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return sha256_file(Path(origin)) if origin and Path(origin).is_file() else None


def point_key(point: PointConfig, config: SweepConfig) -> str:
    """The SHA-256 that names a point's result (see the module docstring)."""
    argv = [f"file:{sha256_file(Path(a))}" if Path(a).is_file() else a for a in point.build_argv()]
    data = config.data
    if not Path(data.path).is_file():
        raise UserInputError(f"{config.path}: [data] path {data.path} not found")
    payload = {
        "compiler": __version__,
        "build": argv,
        "module": _module_digest(point.source),
        "data": {"sha256": sha256_file(Path(data.path)), "samples": data.samples,
                 "allow_missing": data.allow_missing, "max_accuracy_drop": data.max_accuracy_drop},
        "time_steps": point.time_steps,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cut_data_files(point: PointConfig, root: Path) -> dict[str, str]:
    """Copies of the point's data options (calib, ...) cut to its first ``time_steps`` steps,
    written once under ``root/data``; {option: path of the copy}."""
    from rsnn_compiler.data import load_data, save_npz

    steps = point.time_steps
    if steps is None:
        return {}
    copies = {}
    for option in DATA_OPTIONS:
        value = point.options.get(option)
        if not isinstance(value, str):
            continue
        x, y = load_data(value)
        path = root / DATA / f"{Path(value).stem}-{sha256_file(Path(value))[:12]}-T{steps}.npz"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            save_npz(path, {"x": x[:steps], **({} if y is None else {"y": y})})
        copies[option] = str(path)
    return copies


def plan(config: SweepConfig, root: Path) -> list[PointTask]:
    """One task per point, checked by the build command's parser before anything runs."""
    tasks = []
    for point in config.points:
        key = point_key(point, config)
        folder = root.resolve() / POINTS / key[:KEY_CHARS]
        copies = cut_data_files(point, root)
        argv = point.build_argv(copies)
        try:
            parse_build_argv(argv, str(folder / "build"))
        except UserInputError as exc:
            raise UserInputError(f"{config.path}: point {point.index + 1}: {exc}") from None
        data = replace(config.data, path=str(Path(config.data.path).resolve()))
        tasks.append(PointTask(point.index, key, argv, str(folder), data, point.time_steps, point.axis_values(),
                               point.command(copies), os.getcwd()))
    return tasks


def read_cached(task: PointTask) -> PointResult | None:
    """The point's earlier result when it has the same key and is final."""
    path = Path(task.folder) / RESULT
    try:
        data = json.loads(path.read_text())
        result = PointResult.from_json(data)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if result.key != task.key or not result.cacheable:
        return None
    return replace(result, index=task.index, axes=task.axes, command=task.command, cached=True)


def write_result(task: PointTask, result: PointResult) -> None:
    data = replace(result, cached=False).to_json()
    Path(task.folder).mkdir(parents=True, exist_ok=True)  # a refused build leaves no folder
    atomic_write_bytes(Path(task.folder) / RESULT, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


@dataclass
class SweepResult:
    results: list[PointResult] = field(default_factory=list)  # in the configuration's order
    ran: int = 0
    cached: int = 0


def run_sweep(
    config: SweepConfig, root: Path, ray_options=None, force: bool = False,
    on_point: Callable[[PointResult], None] = lambda r: None,
) -> SweepResult:
    """Run every point not already finished (all with ``force``) as Ray tasks; results are
    written as they arrive, so an interrupted sweep resumes."""
    from rsnn_compiler.ray_engine import RayOptions, ray_session, run_tasks

    root = Path(root)
    tasks = plan(config, root)
    done: dict[str, PointResult] = {}
    if not force:
        for task in tasks:
            cached = read_cached(task)
            if cached is not None:
                done.setdefault(task.key, cached)
    todo = list({t.key: t for t in tasks if t.key not in done}.values())
    sweep = SweepResult(cached=len(done))
    bar = Task(f"sweep: {len(todo)} of {len(tasks)} points to run", len(todo), "point")

    def finished(i: int, result: PointResult) -> None:
        if result.cacheable:
            write_result(todo[i], result)
        done[result.key] = result
        bar.advance(detail=f"point {result.index + 1}: {result.status}")
        on_point(result)

    if todo:
        with ray_session(ray_options or RayOptions()):
            run_tasks(run_point, [(t,) for t in todo], on_done=finished)
    bar.close()
    sweep.ran = len(todo)
    for task in tasks:
        result = done[task.key]
        sweep.results.append(replace(result, index=task.index, axes=task.axes, command=task.command))
    return sweep


__all__ = ["POINTS", "RESULT", "SweepResult", "cut_data_files", "plan", "point_key", "read_cached", "run_sweep"]
