"""``rsnnc validate``: every integer executor must equal the fixed-point interpreter, bit for bit.

Runs the float model (reference interpreter), the fixed-point interpreter and every emitted
integer executor of a build on the same inputs. Integer executors are compared with the fixed
interpreter on ``out``, every node's spikes and every state at every step; the first difference
is reported as (sample, step, node, neuron, values). Against the float model it reports spike
agreement per layer and, with labels, the accuracy of both.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rsnn_compiler import registry
from rsnn_compiler.accuracy import predictions
from rsnn_compiler.errors import RsnncError, UserInputError
from rsnn_compiler.executors import check_run_budget, fixed_profiles
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.ir.graph import Domain
from rsnn_compiler.progress import Task, track

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
    float_accuracy: float | None = None  # percent, on accuracy_data
    fixed_accuracy: float | None = None
    accuracy_data: str = ""  # what the accuracies were measured on (file, samples)
    ok: bool = True
    problems: list[str] = field(default_factory=list)  # each one makes validation fail
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def _flat_results(result: RunResult) -> dict[str, np.ndarray]:
    data = {"out": result.out}
    data.update({f"spikes/{k}": v for k, v in result.spikes.items()})
    data.update(result.states)
    return data


@dataclass
class KeyDifference:
    """How one result key (``out``, ``spikes/<node>``, ``v/<node>``...) of an executor differs
    from the interpreter's on a run of samples ``offset ..``: its earliest differing value (by
    step, then sample, then neuron; ``sample`` counts from the start of the whole data) and the
    number of differing values, or shapes that do not match (``shape`` set)."""

    key: str
    order: int  # position of the key in the interpreter's result (ties between keys)
    step: int = 0
    sample: int = 0
    neuron: tuple[int, ...] = ()
    expected: float | int | None = None
    got: float | int | None = None
    count: int = 0  # differing values (shape problems: values expected)
    shape: tuple[tuple[int, ...], tuple[int, ...] | None] | None = None  # (expected, got or None: missing)

    def rank(self) -> tuple:
        """Earlier is smaller: shape problems first, then by step, sample, key order, neuron."""
        return (-1, -1, self.order, ()) if self.shape else (self.step, self.sample, self.order, self.neuron)


def _node_of(key: str) -> str | None:
    return key.split("/", 1)[1] if "/" in key else None


def key_differences(expected: RunResult, got: RunResult, offset: int = 0,
                    nodes: set[str] | None = None) -> tuple[list[KeyDifference], int]:
    """Every key of ``got`` that differs from ``expected`` and the number of values compared;
    ``offset`` is the index of the first sample of this run in the whole data; only the keys of
    ``nodes`` (``spikes/<node>``, ``v/<node>``, ...) if given."""
    ref, other = _flat_results(expected), _flat_results(got)
    if nodes is not None:
        ref = {k: v for k, v in ref.items() if _node_of(k) in nodes}
    found: list[KeyDifference] = []
    compared = 0
    for order, (key, a) in enumerate(ref.items()):
        b = other.get(key)
        if b is None or b.shape != a.shape:
            found.append(KeyDifference(key, order, count=int(a.size),
                                       shape=(a.shape, None if b is None else b.shape)))
            continue
        compared += a.size
        diff = a != b
        if not diff.any():
            continue
        t, s, *neuron = (int(i) for i in np.argwhere(diff)[0])
        found.append(KeyDifference(key, order, t, s + offset, tuple(neuron), a[(t, s, *neuron)].item(),
                                   b[(t, s, *neuron)].item(), int(diff.sum())))
    return found, compared


def _joined(a: tuple[int, ...] | None, b: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The shape of two results concatenated along the batch axis (None: missing)."""
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return a if b is None else (b if a is None else a)
    return (a[0], a[1] + b[1], *a[2:])


def merge_differences(executor: str, parts: list[list[KeyDifference]]) -> Mismatch | None:
    """The first difference over runs on consecutive slices of the data (one part per slice, in
    order): per key the earliest value and the summed count, then the earliest key. One part
    gives exactly what one run on all the data gives; so do several."""
    per_key: dict[str, KeyDifference] = {}
    for part in parts:
        for d in part:
            seen = per_key.get(d.key)
            if seen is None:
                per_key[d.key] = d
                continue
            first = min(seen, d, key=KeyDifference.rank)
            shape = None
            if seen.shape or d.shape:
                exp_a, got_a = seen.shape or (None, None)
                exp_b, got_b = d.shape or (None, None)
                shape = (_joined(exp_a, exp_b), _joined(got_a, got_b))
            per_key[d.key] = KeyDifference(d.key, d.order, first.step, first.sample, first.neuron,
                                           first.expected, first.got, seen.count + d.count, shape)
    if not per_key:
        return None
    best = min(per_key.values(), key=KeyDifference.rank)
    if best.shape:
        got = "missing" if best.shape[1] is None else f"shape {best.shape[1]}"
        return Mismatch(executor, best.key, 0, 0, [], f"shape {best.shape[0]}", got, best.count)
    return Mismatch(executor, best.key, best.sample, best.step, list(best.neuron), best.expected, best.got, best.count)


def first_mismatch(executor: str, expected: RunResult, got: RunResult,
                   nodes: set[str] | None = None) -> tuple[Mismatch | None, int]:
    """Earliest difference (by step, then sample, then key order) and the number of values
    compared; only the keys of ``nodes`` if given."""
    found, compared = key_differences(expected, got, nodes=nodes)
    return merge_differences(executor, [found]), compared


@dataclass
class LayerTally:
    """Spike agreement counts of one spiking node, float vs fixed point."""

    node: str
    equal: int
    values: int
    float_spikes: int  # spike events (nonzero values)
    fixed_spikes: int


def layer_tallies(float_run: RunResult, fixed_run: RunResult) -> list[LayerTally]:
    layers = []
    for node, fs in float_run.spikes.items():
        qs = fixed_run.spikes.get(node)
        if qs is None or qs.shape != fs.shape:
            continue
        layers.append(LayerTally(node, int(np.count_nonzero(fs == qs)), int(fs.size),
                                 int(np.count_nonzero(fs)), int(np.count_nonzero(qs))))
    return layers


def layer_agreement(float_run: RunResult, fixed_run: RunResult) -> list[LayerAgreement]:
    return merge_layers([layer_tallies(float_run, fixed_run)])


def merge_layers(parts: list[list[LayerTally]]) -> list[LayerAgreement]:
    """Per-layer agreement = equal values / values, summed over the parts (exact: integer counts)."""
    totals: dict[str, LayerTally] = {}
    for part in parts:
        for t in part:
            s = totals.setdefault(t.node, LayerTally(t.node, 0, 0, 0, 0))
            s.equal, s.values = s.equal + t.equal, s.values + t.values
            s.float_spikes, s.fixed_spikes = s.float_spikes + t.float_spikes, s.fixed_spikes + t.fixed_spikes
    return [LayerAgreement(t.node, t.equal / t.values if t.values else 1.0, t.float_spikes, t.fixed_spikes)
            for t in totals.values()]


def integer_executors(manifest: dict) -> list[str]:
    """Executors to check: every built target that runs the fixed graph and has an executor."""
    names = []
    for target, art in manifest.get("targets", {}).items():
        if art.get("profile") and target in registry.EXECUTORS and target != REFERENCE:
            names.append(target)
    return sorted(names)


def check_max_accuracy_drop(points: float | None, has_labels: bool) -> None:
    """``--max-accuracy-drop`` must be a finite number of points (NaN would disable the check)
    and needs labels to compare against."""
    if points is None:
        return
    if not math.isfinite(points):
        raise UserInputError(f"--max-accuracy-drop {points} must be a finite number of points")
    if not has_labels:
        raise UserInputError("--max-accuracy-drop needs labels: add y (batch,) to the data file")


def validated_profile(build: Path, manifest: dict) -> str:
    """The fixed-point profile a build's integer executors run (refuses a build without one)."""
    profiles = fixed_profiles(manifest)
    if not profiles:
        raise UserInputError(
            f"{build} has no fixed-point graph, so there is nothing integer to validate;"
            " rebuild with an integer target, e.g. --target c,gpu"
        )
    return profiles[0]


@dataclass
class PartTally:
    """One node group of an executor (its ``node_groups``) on one run of samples."""

    part: str
    nodes: list[str]
    compared: int
    differences: list[KeyDifference]


@dataclass
class ExecutorTally:
    """One integer executor on one run of samples: how it differs from the interpreter."""

    executor: str
    available: bool
    compared: int = 0
    differences: list[KeyDifference] = field(default_factory=list)
    wall_time_s: float = 0.0
    reason: str = ""  # why it could not run
    parts: list[PartTally] = field(default_factory=list)


@dataclass
class ShardTally:
    """Everything validation needs from samples ``offset .. offset + samples`` of the data, as
    counts and first differences (no arrays): ``merge_shards`` turns tallies of consecutive
    slices into the report that one run on all of them gives."""

    offset: int
    samples: int
    steps: int
    float_correct: int | None = None  # samples whose prediction equals the label
    fixed_correct: int | None = None
    layers: list[LayerTally] = field(default_factory=list)
    executors: list[ExecutorTally] = field(default_factory=list)


def validate_shard(
    build: Path, manifest: dict, x: np.ndarray, y: np.ndarray | None, offset: int = 0,
    progress=lambda msg: None, executor_options: dict[str, dict] | None = None,
) -> ShardTally:
    """Run the float model, the fixed-point interpreter and every integer executor on ``x``
    (samples ``offset ..`` of the whole data) and tally the differences. ``executor_options``
    holds fields per executor name (e.g. ``{"gpu": {"processes": 2}}``). Refuses (exit 2) a
    slice whose recorded run would exceed the build's memory budget."""
    check_run_budget(build, manifest, x)
    profile = validated_profile(build, manifest)
    interp = registry.get_executor(REFERENCE)
    tally = ShardTally(offset=offset, samples=int(x.shape[1]), steps=int(x.shape[0]))
    bar = Task("validate: executors", 2 + len(integer_executors(manifest)), "run")
    float_run = None
    if "float" in manifest.get("graphs", {}):  # a build made from a fixed-point graph has none
        progress("running the float model (reference interpreter)")
        float_run = interp.run(build, manifest, Domain.FLOAT, None, x)
    bar.advance()
    progress(f"running the fixed-point interpreter ({profile})")
    fixed_run = interp.run(build, manifest, Domain.FIXED, profile, x)
    bar.advance()
    if float_run is not None:
        tally.layers = layer_tallies(float_run, fixed_run)
    if y is not None:
        if float_run is not None:
            tally.float_correct = int(np.count_nonzero(predictions(float_run.out) == y))
        tally.fixed_correct = int(np.count_nonzero(predictions(fixed_run.out) == y))
    for name in integer_executors(manifest):
        progress(f"running {name}")
        start = time.perf_counter()
        try:
            executor = registry.get_executor(name, **(executor_options or {}).get(name, {}))
            got = executor.run(build, manifest, Domain.FIXED, profile, x)
            bar.advance()
        except ExecutorUnavailable as exc:
            tally.executors.append(ExecutorTally(name, False, reason=str(exc)))
            continue
        differences, compared = key_differences(fixed_run, got, offset)
        check = ExecutorTally(name, True, compared, differences, time.perf_counter() - start)
        groups = getattr(executor, "node_groups", None)
        for part, nodes in (groups(build, manifest) if groups else {}).items():
            found, n = key_differences(fixed_run, got, offset, set(nodes))
            check.parts.append(PartTally(part, list(nodes), n, found))
        tally.executors.append(check)
    bar.close()
    return tally


def merge_shards(
    build: Path, manifest: dict, tallies: list[ShardTally],
    allow_missing: bool = False, max_accuracy_drop: float | None = None, data_label: str = "",
) -> ValidationReport:
    """The validation report of the tallies of consecutive slices of one data set (in order).
    Counts add up exactly; each executor's wall time is the sum over the slices; accuracies are
    percentages on ``data_label`` (default: the sample count)."""
    tallies = sorted(tallies, key=lambda t: t.offset)
    samples = sum(t.samples for t in tallies)
    report = ValidationReport(build=str(build), profile=validated_profile(build, manifest), samples=samples,
                              steps=tallies[0].steps if tallies else 0)
    report.layers = merge_layers([t.layers for t in tallies])
    if "float" not in manifest.get("graphs", {}):
        report.notes.append("the build has no float graph (built from a fixed-point graph): no float comparison")
    if tallies and all(t.fixed_correct is not None for t in tallies):
        report.accuracy_data = data_label or f"{samples} samples"
        report.fixed_accuracy = 100.0 * sum(t.fixed_correct for t in tallies) / samples
        if all(t.float_correct is not None for t in tallies):
            report.float_accuracy = 100.0 * sum(t.float_correct for t in tallies) / samples
    names = list(dict.fromkeys(e.executor for t in tallies for e in t.executors))
    for name in names:
        parts = [e for t in tallies for e in t.executors if e.executor == name]
        missing = next((e for e in parts if not e.available), None)
        if missing is not None:
            report.executors.append(ExecutorCheck(name, "unavailable", reason=missing.reason))
            if not allow_missing:
                report.ok = False
                report.problems.append(f"{name} could not run: {missing.reason}")
            continue
        mismatch = merge_differences(name, [e.differences for e in parts])
        report.executors.append(ExecutorCheck(name, "mismatch" if mismatch else "equal", sum(e.compared for e in parts),
                                              sum(e.wall_time_s for e in parts), mismatch))
        for group in parts[0].parts:
            pieces = [next(p for p in e.parts if p.part == group.part) for e in parts]
            m = merge_differences(name, [p.differences for p in pieces])
            report.executors[-1].parts.append(PartCheck(group.part, group.nodes, "mismatch" if m else "equal",
                                                        sum(p.compared for p in pieces), m))
        if mismatch:
            report.ok = False
            report.problems.append(mismatch.describe())
    if not report.executors:
        report.notes.append("no integer executor was built besides the interpreter (targets: c, gpu, lava)")
    if max_accuracy_drop is not None and report.float_accuracy is not None:
        drop = report.float_accuracy - report.fixed_accuracy
        if drop > max_accuracy_drop:
            report.ok = False
            report.problems.append(
                f"fixed-point accuracy {report.fixed_accuracy:.2f}% is {drop:.2f} points below float"
                f" {report.float_accuracy:.2f}% on {report.accuracy_data} (allowed {max_accuracy_drop})"
            )
    return report


def write_report(build: Path, report: ValidationReport) -> dict:
    """Write ``BUILD/validate.json`` (sorted keys, atomically); returns the JSON data."""
    import json

    from rsnn_compiler.artifact import atomic_write_bytes

    data = report.to_json()
    atomic_write_bytes(Path(build) / "validate.json", (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    return data


DEFAULT_BATCH = 1024  # samples per validation batch (rsnnc validate --batch)


def batch_bounds(samples: int, batch: int | None) -> list[tuple[int, int]]:
    """(first, end) of consecutive batches of at most ``batch`` samples (None: one batch)."""
    if batch is not None and (isinstance(batch, bool) or int(batch) < 1):
        raise UserInputError(f"--batch {batch} must be at least 1 sample")
    size = max(1, samples if batch is None else min(int(batch), samples))
    return [(a, min(a + size, samples)) for a in range(0, max(samples, 1), size)]


def validate(
    build: Path, manifest: dict, x: np.ndarray, y: np.ndarray | None,
    allow_missing: bool = False, max_accuracy_drop: float | None = None,
    progress=lambda msg: None, executor_options: dict[str, dict] | None = None, data_label: str = "",
    batch: int | None = DEFAULT_BATCH,
) -> ValidationReport:
    """Validate in this process, ``batch`` samples at a time (progress per batch; memory for one
    batch's records). Each batch is one ``validate_shard`` and the tallies merge exactly as
    ``rsnnc validate --shards N`` merges its Ray tasks' slices: the report does not depend on the
    batch size, except the executors' times, which are summed."""
    check_max_accuracy_drop(max_accuracy_drop, y is not None)
    bounds = batch_bounds(int(x.shape[1]), batch)
    tallies = []
    for index, (a, b) in enumerate(track(bounds, "validate: batches", unit="batch") if len(bounds) > 1 else bounds):
        if len(bounds) > 1:
            progress(f"batch {index + 1}/{len(bounds)}: samples {a}..{b - 1}")
        tallies.append(validate_shard(build, manifest, x[:, a:b], None if y is None else y[a:b], a,
                                      progress, executor_options))
    return merge_shards(build, manifest, tallies, allow_missing, max_accuracy_drop, data_label)
