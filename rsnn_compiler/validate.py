"""``rsnnc validate``: every integer executor must equal the fixed-point interpreter, bit for bit.

Runs the float model (reference interpreter), the fixed-point interpreter and every emitted
integer executor of a build on the same inputs. Integer executors are compared with the fixed
interpreter on ``out``, every node's spikes and every state at every step; the first difference
is reported as (sample, step, node, neuron, values). Against the float model it reports spike
agreement per layer and, with labels, the accuracy of both.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rsnn_compiler import registry
from rsnn_compiler.errors import RsnncError, UserInputError
from rsnn_compiler.executors import fixed_profiles
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.ir.graph import Domain
from rsnn_compiler.progress import Task

REFERENCE = "interp"


class ExecutorUnavailable(RsnncError):
    """An executor cannot run here (e.g. the Lava environment is missing); says what is missing."""

    exit_code = 1


@dataclass
class Mismatch:
    executor: str
    key: str  # "out", "spikes/<node>", "v/<node>", ...
    sample: int
    step: int
    neuron: list[int]
    expected: float | int | str | None
    got: float | int | str | None
    differing_values: int

    def describe(self) -> str:
        return (
            f"{self.executor} differs from the fixed-point interpreter at sample {self.sample}, step"
            f" {self.step}, {self.key}, neuron {tuple(self.neuron)}: expected {self.expected}, got"
            f" {self.got} ({self.differing_values} differing value(s) in {self.key})"
        )


@dataclass
class PartCheck:
    """One group of nodes of an executor compared on its own (e.g. Lava's stock vs custom
    processes): the executor's ``node_groups`` names them."""

    part: str
    nodes: list[str]
    status: str  # "equal", "mismatch"
    compared_values: int = 0
    mismatch: Mismatch | None = None


@dataclass
class ExecutorCheck:
    executor: str
    status: str  # "equal", "mismatch", "unavailable"
    compared_values: int = 0
    wall_time_s: float = 0.0
    mismatch: Mismatch | None = None
    reason: str = ""
    parts: list[PartCheck] = field(default_factory=list)


@dataclass
class LayerAgreement:
    node: str
    spike_agreement: float  # fraction of (step, sample, neuron) with equal spike values
    float_spikes: int
    fixed_spikes: int


@dataclass
class ValidationReport:
    build: str
    profile: str | None
    samples: int
    steps: int
    executors: list[ExecutorCheck] = field(default_factory=list)
    layers: list[LayerAgreement] = field(default_factory=list)
    float_accuracy: float | None = None
    fixed_accuracy: float | None = None
    ok: bool = True
    problems: list[str] = field(default_factory=list)  # each one makes validation fail
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def predictions(out: np.ndarray) -> np.ndarray:
    """argmax over outputs of the output summed over time (docs/design.md §1)."""
    summed = out.reshape(out.shape[0], out.shape[1], -1).sum(axis=0)
    return np.argmax(summed, axis=-1)


def accuracy(out: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(predictions(out) == y))


def _flat_results(result: RunResult) -> dict[str, np.ndarray]:
    data = {"out": result.out}
    data.update({f"spikes/{k}": v for k, v in result.spikes.items()})
    data.update(result.states)
    return data


def _node_of(key: str) -> str | None:
    return key.split("/", 1)[1] if "/" in key else None


def first_mismatch(executor: str, expected: RunResult, got: RunResult,
                   nodes: set[str] | None = None) -> tuple[Mismatch | None, int]:
    """Earliest difference (by step, then sample, then key order) and the number of values
    compared; only the keys of ``nodes`` (``spikes/<node>``, ``v/<node>``, ...) if given."""
    ref, other = _flat_results(expected), _flat_results(got)
    if nodes is not None:
        ref = {k: v for k, v in ref.items() if _node_of(k) in nodes}
    best: tuple[tuple[int, int, int], Mismatch] | None = None
    compared = 0
    for order, (key, a) in enumerate(ref.items()):
        b = other.get(key)
        if b is None or b.shape != a.shape:
            shape = None if b is None else b.shape
            got_text = "missing" if b is None else f"shape {shape}"
            m = Mismatch(executor, key, 0, 0, [], f"shape {a.shape}", got_text, int(a.size))
            rank = (-1, -1, order)
            if best is None or rank < best[0]:
                best = (rank, m)
            continue
        compared += a.size
        diff = a != b
        if not diff.any():
            continue
        t, s, *neuron = (int(i) for i in np.argwhere(diff)[0])
        m = Mismatch(executor, key, s, t, neuron, a[(t, s, *neuron)].item(), b[(t, s, *neuron)].item(), int(diff.sum()))
        rank = (t, s, order)
        if best is None or rank < best[0]:
            best = (rank, m)
    return (best[1] if best else None), compared


def layer_agreement(float_run: RunResult, fixed_run: RunResult) -> list[LayerAgreement]:
    layers = []
    for node, fs in float_run.spikes.items():
        qs = fixed_run.spikes.get(node)
        if qs is None or qs.shape != fs.shape:
            continue
        layers.append(
            LayerAgreement(node, float(np.mean(fs == qs)), int(np.abs(fs).sum()), int(np.abs(qs).sum()))
        )
    return layers


def integer_executors(manifest: dict) -> list[str]:
    """Executors to check: every built target that runs the fixed graph and has an executor."""
    names = []
    for target, art in manifest.get("targets", {}).items():
        if art.get("profile") and target in registry.EXECUTORS and target != REFERENCE:
            names.append(target)
    return sorted(names)


def validate(
    build: Path, manifest: dict, x: np.ndarray, y: np.ndarray | None,
    allow_missing: bool = False, max_accuracy_drop: float | None = None,
    progress=lambda msg: None,
) -> ValidationReport:
    profiles = fixed_profiles(manifest)
    profile = profiles[0] if profiles else None
    report = ValidationReport(build=str(build), profile=profile, samples=int(x.shape[1]), steps=int(x.shape[0]))
    interp = registry.get_executor(REFERENCE)
    if profile is None:
        raise UserInputError(
            f"{build} has no fixed-point graph, so there is nothing integer to validate;"
            " rebuild with an integer target, e.g. --target c,gpu"
        )
    bar = Task("validate: executors", 2 + len(integer_executors(manifest)), "run")
    progress("running the float model (reference interpreter)")
    float_run = interp.run(build, manifest, Domain.FLOAT, None, x)
    if y is not None:
        report.float_accuracy = accuracy(float_run.out, y)
    bar.advance()
    progress(f"running the fixed-point interpreter ({profile})")
    fixed_run = interp.run(build, manifest, Domain.FIXED, profile, x)
    bar.advance()
    report.layers = layer_agreement(float_run, fixed_run)
    if y is not None:
        report.fixed_accuracy = accuracy(fixed_run.out, y)
    for name in integer_executors(manifest):
        progress(f"running {name}")
        start = time.perf_counter()
        try:
            got = registry.get_executor(name).run(build, manifest, Domain.FIXED, profile, x)
            bar.advance()
        except ExecutorUnavailable as exc:
            check = ExecutorCheck(name, "unavailable", reason=str(exc))
            if not allow_missing:
                report.ok = False
                report.problems.append(f"{name} could not run: {exc}")
            report.executors.append(check)
            continue
        mismatch, compared = first_mismatch(name, fixed_run, got)
        check = ExecutorCheck(name, "mismatch" if mismatch else "equal", compared, time.perf_counter() - start, mismatch)
        groups = getattr(registry.get_executor(name), "node_groups", None)
        for part, nodes in (groups(build, manifest) if groups else {}).items():
            m, n = first_mismatch(name, fixed_run, got, set(nodes))
            check.parts.append(PartCheck(part, list(nodes), "mismatch" if m else "equal", n, m))
        report.executors.append(check)
        if mismatch:
            report.ok = False
            report.problems.append(mismatch.describe())
    bar.close()
    if not report.executors:
        report.notes.append("no integer executor was built besides the interpreter (targets: c, gpu, lava)")
    if max_accuracy_drop is not None and y is not None:
        drop = 100.0 * (report.float_accuracy - report.fixed_accuracy)
        if drop > max_accuracy_drop:
            report.ok = False
            report.problems.append(
                f"fixed-point accuracy {100 * report.fixed_accuracy:.2f}% is {drop:.2f} points below float"
                f" {100 * report.float_accuracy:.2f}% (allowed {max_accuracy_drop})"
            )
    return report
