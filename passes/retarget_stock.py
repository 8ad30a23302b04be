"""retarget_stock (``rsnnc build --stock-neurons lava|netx``): neurons Loihi 2 runs without
custom neuron microcode, fine-tuned to recover accuracy, with the accuracy cost reported.

Lava's stock ``LIF`` (and lava-dl netx's CUBA layers) compute a zero-reset CUBA LIF with one
``du``/``dv``/``vth`` per population and a strict ``v > theta``. Per spiking population
(``LIF``, ``IF``, ``CubaLIF``) this pass

- sets the reset to ``zero`` (``v_reset = 0``) and the comparator to ``>``;
- shares the decays: ``lava`` mode bins ``beta`` (and ``alpha``) into at most 4 quantile groups
  (the Lava emitter runs a population with up to 4 (du, dv, vth) as that many stock LIFs), each
  group taking its mean; ``netx`` mode (one decay per layer) takes, per population, the candidate
  (mean or a decile of the neurons' values) that gives the best accuracy on the training data;
- normalises the threshold to 1, exactly: ``v`` is rescaled per neuron by ``1/theta`` (input
  gain, bias and ``v_init`` divided by ``theta``), which leaves a zero-reset neuron's spikes
  unchanged, so per-neuron thresholds need no custom process;
- ``netx`` mode also zeroes ``v_init`` (netx has no initial membrane) and makes
  ``quantize_state`` use integer weights (weight exponent 0) and biases on netx's
  ``bias_exp = 6`` (``rsnn_compiler.fixed.profiles.LOIHI2_NETX``; set by the build).

Then the synapse weights and biases are fine-tuned (``passes/finetune.py``, surrogate
gradients) for ``--stock-finetune`` epochs (default 20) on ``--stock-data`` (labels needed),
and the report gives the accuracy (percent, with the data it was measured on) on the ``--calib``
data of the original float model, the retargeted one before and after the fine-tune, and the
cost in points. The build's accuracy check then treats the retargeting like pruning: more than
``--accuracy-tolerance`` points below the float model stops the build unless
``--accept-accuracy-loss``. Without
``--stock-data`` the calibration set is split: every 4th sample is held out for the report, the
rest trains. Neurons without a stock
counterpart (ALIF, LI readouts, conversion neurons) stay as they are and are listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import IF, LIF, Comparator, CubaLIF, NeuronOp, ResetMode
from rsnn_compiler.passes import quant_common as Q
from rsnn_compiler.passes.finetune import FinetuneConfig, finetune
from rsnn_compiler.pass_options import RetargetStockOptions
from rsnn_compiler.passes_api import PassContext, PassReport, Prop

HOLDOUT_EVERY = 4  # every 4th calibration sample is held out for the accuracy report


@dataclass
class RetargetStockReport(PassReport):
    mode: str = ""
    retargeted: list[dict] = field(default_factory=list)  # node, kind, changes
    left_custom: list[dict] = field(default_factory=list)  # node, kind, why
    epochs: int = 0
    train_samples: int = 0
    holdout_samples: int = 0
    report_data: str = ""  # what the accuracies below are measured on
    accuracy_original: float | None = None  # percent, float model before this pass
    accuracy_retargeted: float | None = None  # percent, stock neurons before the fine-tune
    accuracy_finetuned: float | None = None  # percent, after the fine-tune
    accuracy_cost_points: float | None = None  # original - finetuned, in percentage points
    loss_per_epoch: list[float] = field(default_factory=list)


def _spread(a) -> str:
    a = np.asarray(a, np.float64).ravel()
    return f"{a.min():.4g}" if a.size and a.min() == a.max() else f"[{a.min():.4g}, {a.max():.4g}] -> {a.mean():.4g}"


MAX_GROUPS = 4  # LavaSpec.max_lif_split: one Lava LIF per (du, dv, vth)


def grouped(a, groups: int) -> np.ndarray:
    """``a`` with its values binned into at most ``groups`` quantile groups, each set to its mean."""
    a = np.asarray(a, np.float64)
    flat = a.ravel()
    if flat.size == 0 or np.ptp(flat) == 0:
        return a.astype(np.float32)
    edges = np.quantile(flat, np.linspace(0, 1, groups + 1)[1:-1])
    label = np.searchsorted(edges, flat, side="right")
    out = np.empty_like(flat)
    for k in np.unique(label):
        out[label == k] = flat[label == k].mean()
    return out.reshape(a.shape).astype(np.float32)


def decay_candidates(a) -> list[float]:
    """Shared-decay candidates for one population: its mean and its deciles."""
    flat = np.asarray(a, np.float64).ravel()
    return sorted({round(float(v), 6) for v in [flat.mean(), *np.quantile(flat, np.linspace(0.1, 0.9, 9))]})


def stock_neuron(op: NeuronOp, netx: bool) -> tuple[NeuronOp, list[str]]:
    """The stock counterpart of a LIF / IF / CubaLIF and what changed (module docstring)."""
    changes = []
    if op.reset is not ResetMode.ZERO or (np.asarray(op.v_reset) != 0).any():
        changes.append(f"reset {op.reset.value} -> zero")
    if op.comparator is not Comparator.GT:
        changes.append("comparator >= -> >")
    theta = np.asarray(op.theta, np.float64)
    if (theta <= 0).any():
        raise UserInputError("retarget_stock: a threshold <= 0 cannot be normalised; fix the model")
    zeros = np.zeros(op.shape, np.float32)
    kw: dict = dict(reset=ResetMode.ZERO, comparator=Comparator.GT, v_reset=zeros,
                    theta=np.ones(op.shape, np.float32), bias=(op.bias / theta).astype(np.float32))
    v_init = zeros if netx else (op.v_init / theta).astype(np.float32)
    if netx and (np.asarray(op.v_init) != 0).any():
        changes.append("v_init -> 0")
    kw["v_init"] = v_init
    if (theta != 1).any():
        changes.append("threshold normalised to 1 (gain, bias, v_init / theta)")
    decays = ("alpha", "beta") if isinstance(op, CubaLIF) else ("beta",) if isinstance(op, LIF) else ()
    if isinstance(op, CubaLIF):
        kw["gain_v"] = (op.gain_v / theta).astype(np.float32)
    else:
        kw["gain"] = (op.gain / theta).astype(np.float32)
    groups = 1 if netx else MAX_GROUPS
    for p in decays:
        value = getattr(op, p)
        kw[p] = grouped(value, groups)
        if np.ptp(value):
            n = len(np.unique(kw[p]))
            changes.append(f"{p} {_spread(value)} ({'shared' if n == 1 else f'{n} groups'})")
    return op.replace(**kw), changes


def pick_shared_decays(graph: Graph, nodes: list[str], x: np.ndarray, y: np.ndarray,
                       originals: dict[str, NeuronOp]) -> tuple[Graph, list[str]]:
    """Per population (in order), the shared decay candidate with the best accuracy on (x, y)."""
    notes = []
    for name in nodes:
        op = graph.nodes[name]
        params = ("alpha", "beta") if isinstance(op, CubaLIF) else ("beta",) if isinstance(op, LIF) else ()
        for p in params:
            best = None
            for c in decay_candidates(getattr(originals[name], p)):
                trial = graph.with_node(name, graph.nodes[name].replace(**{p: np.full(op.shape, c, np.float32)}))
                acc = accuracy(trial, x, y)
                if best is None or acc > best[0]:
                    best = (acc, c, trial)
            if best is not None:
                graph = best[2]
                notes.append(f"{name}.{p} = {best[1]:.4g} (best shared candidate, {best[0]:.1f}% on training data)")
    return graph, notes


def accuracy(graph: Graph, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the float graph on (x, y), in percent."""
    return float(Q.accuracy(run_float(graph, x), y))


class RetargetStock:
    name: ClassVar[str] = "retarget_stock"
    option_types: ClassVar[tuple[type, ...]] = (RetargetStockOptions,)
    requires: ClassVar[frozenset[str]] = frozenset({Prop.CANONICAL})
    establishes: ClassVar[frozenset[str]] = frozenset()
    invalidates: ClassVar[frozenset[str]] = frozenset()
    forbids: ClassVar[frozenset[str]] = frozenset({Prop.QUANTIZED, Prop.WEIGHTS_QUANTIZED})

    def run(self, graph: Graph, ctx: PassContext) -> tuple[Graph, RetargetStockReport]:
        opts = ctx.options.of(RetargetStockOptions)
        mode = opts.mode.value
        if graph.attrs.domain is not Domain.FLOAT:
            raise UserInputError("retarget_stock runs on the float graph")
        epochs = opts.finetune_epochs
        report = RetargetStockReport(name=self.name, mode=mode, epochs=epochs)
        original = graph
        netx = mode == "netx"
        for name, op in graph.nodes.items():
            if type(op) in (LIF, IF, CubaLIF):
                new, changes = stock_neuron(op, netx)
                graph = graph.with_node(name, new)
                report.retargeted.append({"node": name, "kind": type(op).__name__, "changes": changes})
            elif isinstance(op, NeuronOp):
                report.left_custom.append({"node": name, "kind": type(op).__name__,
                                           "why": "no stock Loihi 2 process computes it"})
        report.changed = True
        split = self._data(ctx, opts.data)
        if split is None:
            report.notes.append("not fine-tuned (no labelled --calib or --stock-data): the retargeted"
                                " model's accuracy is unmeasured")
            report.reason = self._reason(report)
            return graph, report
        (xt, yt), (xh, yh), report.report_data = split
        report.train_samples, report.holdout_samples = int(xt.shape[1]), int(xh.shape[1])
        if netx:
            nodes = [r["node"] for r in report.retargeted]
            originals = {n: original.nodes[n] for n in nodes}
            graph, picked = pick_shared_decays(graph, nodes, xt[:, :512], yt[:512], originals)
            report.notes += picked
        report.accuracy_original = accuracy(original, xh, yh)
        report.accuracy_retargeted = accuracy(graph, xh, yh)
        if epochs > 0:
            ctx.progress(f"retarget_stock: fine-tuning {epochs} epochs on {xt.shape[1]} samples")
            graph, result = finetune(graph, xt, yt, None, FinetuneConfig(epochs=epochs, lr=3e-3))
            report.loss_per_epoch = [round(v, 5) for v in result.loss_per_epoch]
        report.accuracy_finetuned = accuracy(graph, xh, yh)
        report.accuracy_cost_points = round(report.accuracy_original - report.accuracy_finetuned, 2)
        report.reason = self._reason(report)
        return graph, report

    @staticmethod
    def _data(ctx: PassContext, path: str | None):
        """((x, y) to train on, (x, y) to report on, the name of the report data), or None
        without labelled data (``path``: --stock-data)."""
        x, y = ctx.calib_x, ctx.calib_y
        if path:
            from rsnn_compiler.data import load_data

            xt, yt = load_data(path)
            if yt is None:
                raise UserInputError(f"--stock-data {path} has no labels y")
            if x is None or y is None:
                return (xt, yt), (xt, yt), f"the training data ({xt.shape[1]} samples of --stock-data)"
            return (xt, yt), (x, y), f"--calib ({x.shape[1]} samples)"
        if x is None or y is None:
            return None
        hold = np.arange(x.shape[1]) % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
        if hold.all() or not hold.any():
            return (x, y), (x, y), f"the training data ({x.shape[1]} samples of --calib)"
        return (x[:, ~hold], y[~hold]), (x[:, hold], y[hold]), \
            f"--calib's held-out quarter ({int(hold.sum())} samples)"

    @staticmethod
    def _reason(r: RetargetStockReport) -> str:
        text = f"{len(r.retargeted)} populations on stock neurons ({r.mode})"
        if r.left_custom:
            text += f", {len(r.left_custom)} left custom"
        if r.accuracy_finetuned is not None:
            text += (f"; accuracy on {r.report_data} {r.accuracy_original:.2f}% -> {r.accuracy_retargeted:.2f}%"
                     f" retargeted -> {r.accuracy_finetuned:.2f}% fine-tuned"
                     f" (cost {r.accuracy_cost_points:+.2f} points)")
        return text
