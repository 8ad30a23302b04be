"""prune_temporal: the fewest time steps whose outputs stay within tolerance on calibration data.

Every executor is causal, so running ``T'`` steps gives exactly the first ``T'`` steps of a
``T``-step run: one float run on the calibration inputs scores every candidate ``T' <= T``.
For a candidate, the output distribution per sample is

    value readout (LI, non-spiking output):  p_T'  = softmax(mean_{t < T'} out[t])
    spiking output:                          p_T'  = (c + 1/2) / sum(c + 1/2),  c = sum_{t < T'} out[t]

and ``T'`` passes when ``mean_b KL(p_T || p_T') <= time_kl_tolerance`` and the accuracy (labels;
without labels: agreement with the full-length predictions) is at most ``time_accuracy_tolerance``
points below the full-length one. The chosen ``T'`` is the smallest such that it and every longer
candidate pass (robust to a lucky short prefix). It is recorded as ``GraphAttrs.steps``: executors
run the first ``steps`` steps of the data.

Per-layer active windows (reported, not yet used by backends): ``first_active`` is the first step
with any activity on the calibration data (empirical), ``last_needed = T' - 1 - d`` with ``d`` the
smallest total edge delay from the node to the output (structural: later values cannot reach the
output within ``T'`` steps).

Options: ``PruneTemporalOptions`` (rsnn_compiler/pass_options.py): enabled (default True),
kl_tolerance (default 0.05 nats), accuracy_tolerance (points, default 1.0), min_steps (default 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import networkx as nx
import numpy as np

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir import topology
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.ops import NeuronOp
from rsnn_compiler.pass_options import PruneTemporalOptions
from rsnn_compiler.passes_api import PassContext, PassReport, Prop

from rsnn_compiler.accounting import count_synops, is_synapse
from rsnn_compiler.passes import prune_eval as ev
from rsnn_compiler.passes.finetune import spiking_output


@dataclass
class StepPoint:
    steps: int
    kl: float
    accuracy: float


@dataclass
class ActiveWindow:
    first_active: int | None  # None: never active on the calibration data
    last_needed: int | None  # None: cannot reach the output


@dataclass
class PruneTemporalReport(PassReport):
    steps_before: int = 0
    steps_after: int = 0
    metric: str = ""
    kl_tolerance: float = 0.0
    accuracy_tolerance: float = 0.0
    kl_at_chosen: float | None = None
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    curve: list[StepPoint] = field(default_factory=list)
    active_windows: dict[str, ActiveWindow] = field(default_factory=dict)
    synops_before: dict = field(default_factory=dict)
    synops_after: dict = field(default_factory=dict)
    effective_synops_before: float | None = None
    effective_synops_after: float | None = None
    spikes_per_sample_before: float | None = None
    spikes_per_sample_after: float | None = None


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def output_distributions(out: np.ndarray, spiking: bool) -> np.ndarray:
    """p[T'-1, b, :] for every prefix length T' (see the module docstring)."""
    steps, batch = out.shape[:2]
    cum = np.cumsum(out.reshape(steps, batch, -1).astype(np.float64), axis=0)
    if spiking:
        c = cum + 0.5
        return c / c.sum(axis=-1, keepdims=True)
    return _softmax(cum / np.arange(1, steps + 1).reshape(-1, 1, 1))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) over the last axis (natural log); zero terms of p contribute nothing."""
    p = np.clip(p, 0.0, 1.0)
    q = np.clip(q, 1e-12, 1.0)
    terms = np.where(p > 0, p * (np.log(np.clip(p, 1e-300, 1.0)) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


def delays_to_output(graph: Graph) -> dict[str, int]:
    """Smallest total edge delay from each node to the output node (absent: unreachable)."""
    view = nx.DiGraph()
    view.add_nodes_from(graph.nodes)
    for e in graph.edges:
        old = view.get_edge_data(e.dst, e.src)
        if old is None or e.delay < old["delay"]:
            view.add_edge(e.dst, e.src, delay=e.delay)  # reversed: from the output backwards
    return dict(nx.single_source_dijkstra_path_length(view, graph.output_name, weight="delay"))


class PruneTemporal:
    name: ClassVar[str] = "prune_temporal"
    option_types: ClassVar[tuple[type, ...]] = (PruneTemporalOptions,)
    requires: ClassVar[frozenset[str]] = frozenset()
    establishes: ClassVar[frozenset[str]] = frozenset({Prop.PRUNED})
    invalidates: ClassVar[frozenset[str]] = frozenset()
    forbids: ClassVar[frozenset[str]] = frozenset({Prop.WEIGHTS_QUANTIZED, Prop.QUANTIZED})

    def run(self, graph: Graph, ctx: PassContext) -> tuple[Graph, PruneTemporalReport]:
        ev.require_unquantized(graph, self.name)
        report = PruneTemporalReport(name=self.name)
        opts = ctx.options.of(PruneTemporalOptions)
        report.kl_tolerance = opts.kl_tolerance
        report.accuracy_tolerance = opts.accuracy_tolerance
        min_steps = opts.min_steps
        if not opts.enabled:
            report.skipped, report.reason = True, "temporal pruning is off (--no-prune-time)"
            return graph, report
        if ctx.calib_x is None:
            report.skipped, report.reason = True, "no calibration data (--calib) to choose T on"
            return graph, report
        if report.kl_tolerance < 0 or report.accuracy_tolerance < 0:
            raise UserInputError("temporal pruning tolerances must be >= 0")
        x = ev.graph_steps(graph, ctx.calib_x)
        steps = int(x.shape[0])
        report.steps_before = steps

        result = run_float(graph, x, record=True)
        if ctx.calib_y is not None:
            labels, report.metric = np.asarray(ctx.calib_y), "accuracy"
        else:
            labels, report.metric = ev.predictions(result.out), "agreement_with_full_length"
        dists = output_distributions(result.out, spiking_output(graph))
        full = dists[-1]
        cum = np.cumsum(result.out.reshape(steps, result.out.shape[1], -1), axis=0)
        acc = (cum.argmax(axis=-1) == labels[None]).mean(axis=1) * 100.0
        kl = np.maximum(kl_divergence(full[None], dists).mean(axis=1), 0.0)
        report.accuracy_before = float(acc[-1])
        passes = (kl <= report.kl_tolerance) & (acc >= acc[-1] - report.accuracy_tolerance)
        passes[: min_steps - 1] = False
        # smallest T' such that T' and every longer candidate pass
        chosen = steps
        for t in range(steps, 0, -1):
            if not passes[t - 1]:
                break
            chosen = t
        report.curve = [StepPoint(t + 1, float(kl[t]), float(acc[t])) for t in range(steps)]
        report.steps_after = chosen
        report.kl_at_chosen = float(kl[chosen - 1])
        report.accuracy_after = float(acc[chosen - 1])

        before = count_synops(graph, result)
        new = graph.with_attrs(steps=chosen)
        after = ev.account(new, x)
        report.synops_before, report.synops_after = before.summary(), after.summary()
        report.effective_synops_before, report.effective_synops_after = before.effective_synops, after.effective_synops
        report.spikes_per_sample_before, report.spikes_per_sample_after = before.spikes_per_sample, after.spikes_per_sample
        report.active_windows = self._windows(graph, result.values, chosen)
        report.reason = (
            f"T {steps} -> {chosen} (KL {report.kl_at_chosen:.4f} <= {report.kl_tolerance},"
            f" {report.metric} {report.accuracy_after:.2f}% vs {report.accuracy_before:.2f}%)"
        )
        return new, report

    @staticmethod
    def _windows(graph: Graph, values: dict[str, np.ndarray], chosen: int) -> dict[str, ActiveWindow]:
        dist = delays_to_output(graph)
        out: dict[str, ActiveWindow] = {}
        for name in topology.evaluation_order(graph):
            op = graph.nodes[name]
            if not (is_synapse(op) or isinstance(op, NeuronOp)):
                continue
            v = values[name][:chosen]
            active = np.flatnonzero(v.reshape(v.shape[0], -1).any(axis=1))
            last = chosen - 1 - dist[name] if name in dist and dist[name] < chosen else None
            out[name] = ActiveWindow(int(active[0]) if active.size else None, last)
        return out


__all__ = ["ActiveWindow", "PruneTemporal", "PruneTemporalReport", "StepPoint", "delays_to_output",
           "kl_divergence", "output_distributions"]
