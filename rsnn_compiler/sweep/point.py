"""One sweep point: a normal build plus validate, and its numbers (docs/sweep.md).

``run_point`` is what a Ray task runs. The build's options come from the ``rsnnc build``
command's own parser (``build_options``), so a point is exactly the command line the table
shows; the build folder is ``<point folder>/build`` (written atomically, as any build) and gets
its ``validate.json`` as after ``rsnnc validate``.

Outcome of a point (``status``): ``ok`` (every integer executor equals the interpreter, within
the accuracy bound), ``mismatch`` (an executor differs), ``failed`` (an executor could not run,
or accuracy fell below ``max_accuracy_drop``), ``refused`` (the build or validation stopped on
bad input: exit 2, e.g. a target that cannot take the point's options), ``error`` (an internal
error: exit 3). Every outcome but ``error`` and an executor that could not run is final for
the point's inputs, so the sweep keeps it (``cacheable``).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rsnn_compiler.errors import RsnncError, UserInputError
from rsnn_compiler.sweep.config import DataSpec
from rsnn_compiler.sweep.metrics import PointMetrics

BUILD = "build"


@dataclass(frozen=True)
class PointTask:
    """What a Ray task needs to run one point (plain data: it travels to the worker)."""

    index: int
    key: str
    build_argv: list[str]  # `rsnnc build` arguments without -o
    folder: str  # the point's folder; the build goes into its BUILD subfolder
    data: DataSpec
    time_steps: int | None
    axes: dict[str, Any]
    command: str  # the equivalent rsnnc build command line, for the table
    cwd: str  # the sweep's folder: relative paths and pkg.module inputs resolve here, as on the command line


@dataclass
class PointResult:
    index: int
    key: str
    axes: dict[str, Any]
    command: str
    status: str  # ok / mismatch / failed / refused / error
    exit_code: int
    message: str = ""  # the problem(s), one line each
    metrics: PointMetrics | None = None
    wall_time_s: float = 0.0
    cached: bool = False  # read from an earlier run of the sweep
    warnings: list[str] = field(default_factory=list)  # the build's result-changing warnings

    @property
    def cacheable(self) -> bool:
        unavailable = self.metrics is not None and "unavailable" in self.metrics.executors.values()
        return self.status != "error" and not unavailable

    def to_json(self) -> dict:
        data = asdict(self)
        data["metrics"] = None if self.metrics is None else self.metrics.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict) -> "PointResult":
        fields = dict(data)
        metrics = fields.pop("metrics")
        if metrics is not None:
            metrics = dict(metrics)
            metrics.pop("c_memory_bytes", None)
            metrics = PointMetrics(**metrics)
        return cls(**fields, metrics=metrics)


def parse_build_argv(argv: list[str], out: str):
    """(INPUT, BuildOptions) of ``rsnnc build ARGV -o OUT``, parsed by the build command itself;
    a value it refuses is a UserInputError naming the option."""
    from types import SimpleNamespace

    import click

    from rsnn_compiler.cli.commands.build import build_options, command
    from rsnn_compiler.cli.common import Session

    try:
        ctx = command.make_context("build", [*argv, "-o", out], obj=Session())
    except click.ClickException as exc:
        raise UserInputError(f"rsnnc build {' '.join(argv)}: {exc.format_message()}") from None
    args = SimpleNamespace(**ctx.params)
    return args.input, build_options(args)


def load_point_data(data: DataSpec, time_steps: int | None, build_steps: int | None):
    """The validation data of a point: the first ``samples`` samples, the first ``time_steps``
    steps, and no more steps than the build runs (temporal pruning)."""
    from rsnn_compiler.data import load_data

    x, y = load_data(data.path)
    if data.samples is not None:
        x, y = x[:, : data.samples], (None if y is None else y[: data.samples])
    for steps in (time_steps, build_steps):
        if steps:
            x = x[:steps]
    return x, y


def _validated(task: PointTask, result: PointResult) -> None:
    from rsnn_compiler.artifact import read_manifest
    from rsnn_compiler.build import build
    from rsnn_compiler.sweep.metrics import point_metrics
    from rsnn_compiler.validate import validate, write_report

    out = Path(task.folder) / BUILD
    for leftover in Path(task.folder).glob(f".{BUILD}.*-*"):  # a killed run's half-written build
        shutil.rmtree(leftover, ignore_errors=True)
    source, options = parse_build_argv(task.build_argv, str(out))
    build(source, out, options, warn=result.warnings.append)  # kept also when a gate stops the build
    manifest = read_manifest(out)
    x, y = load_point_data(task.data, task.time_steps, manifest.get("steps"))
    report = validate(out, manifest, x, y, allow_missing=task.data.allow_missing,
                      max_accuracy_drop=task.data.max_accuracy_drop,
                      data_label=f"{Path(task.data.path).name} ({x.shape[1]} samples)")
    write_report(out, report)
    result.metrics = point_metrics(out, manifest, report, x)
    result.message = "; ".join(report.problems)
    if report.ok:
        result.status, result.exit_code = "ok", 0
    else:
        mismatch = any(c.status == "mismatch" for c in report.executors)
        result.status, result.exit_code = ("mismatch" if mismatch else "failed"), 1


def run_point(task: PointTask) -> PointResult:
    """Build and validate one point; every failure is the point's outcome, not an exception."""
    start = time.perf_counter()
    result = PointResult(task.index, task.key, task.axes, task.command, "error", 3)
    try:
        with contextlib.chdir(task.cwd):  # a Ray worker starts in a folder of its own
            _validated(task, result)
    except RsnncError as exc:
        result.status = "refused" if exc.exit_code == 2 else "failed"
        result.exit_code, result.message = exc.exit_code, str(exc)
    except Exception as exc:  # noqa: BLE001 - an internal error is this point's outcome
        first = str(exc).splitlines()[0] if str(exc) else ""
        result.message = f"internal error: {type(exc).__name__}: {first}"
    result.wall_time_s = time.perf_counter() - start
    return result


__all__ = ["BUILD", "PointResult", "PointTask", "load_point_data", "parse_build_argv", "run_point"]
