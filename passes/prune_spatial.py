"""prune_spatial: layer-adaptive magnitude pruning (LAMP) to a global sparsity target.

Scores (Lee et al., "Layer-adaptive sparsity for the magnitude-based pruning", ICLR 2021): in a
layer whose weights sorted by magnitude are ``|w_1| <= ... <= |w_n|``,

    score(u) = w_u^2 / sum_{v >= u} w_v^2            (in (0, 1]; the largest weight scores 1)

and the weights with the globally smallest scores are zeroed until ``fraction`` of *all* synapse
weights (Affine / Conv, every layer counted) are zero. Existing zeros count toward the target.
A layer is protected (left as it is) when it is already at least as sparse as the target or
named in ``prune_exclude``; every other layer keeps at least its largest weight.

Structured mode (``prune_structure = "neurons"``, alias ``"channels"``) scores whole output rows
(a neuron's incoming weights, a conv output channel) the same way with ``g_r = ||W_r||^2`` in
place of ``w^2``, zeroes the chosen rows and their bias entries, and never prunes a layer that
feeds a non-spiking readout or the output directly (that would delete classes).

With calibration data the pass measures accuracy (or agreement with the unpruned model when
there are no labels) before/after, the accuracy-vs-sparsity curve, and synaptic operations and
spikes from actual runs (``rsnn_compiler.accounting``). An optional masked fine-tune
(``prune_finetune_epochs`` > 0, ``passes/finetune.py``) retrains the kept weights; an optional
``prune_tolerance`` (accuracy points) backs off to the sparsest curve point within tolerance.

Options: ``PruneSpatialOptions`` (rsnn_compiler/pass_options.py; ``ctx.options.of(...)``):
fraction, structure, exclude, curve, tolerance, finetune_epochs/lr/batch/logit_scale, rounds
(gradual pruning: R rounds of prune-to-s_k then fine-tune, s_k = s (1 - (1 - k/R)^3)),
finetune_control, curve_finetune, and the fine-tune data (finetune_arrays or finetune_data; default:
the calibration data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from rsnn_compiler.accounting import is_synapse
from rsnn_compiler.data import load_data
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler import progress
from rsnn_compiler.ir.ops import Affine, Conv1d, Conv2d, NeuronOp, Output
from rsnn_compiler.pass_options import PruneSpatialOptions, PruneStructure
from rsnn_compiler.passes_api import PassContext, PassReport, Prop

from rsnn_compiler.passes import prune_eval as ev

STRUCTURES = tuple(s.value for s in PruneStructure)
DEFAULT_CURVE = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)


@dataclass
class LayerPruning:
    total: int
    kept_before: int
    kept: int
    density: float
    protected: bool
    zero_rows: int  # output neurons / channels without any weight


@dataclass
class PruneSpatialReport(PassReport):
    method: str = "lamp"
    structure: str = "unstructured"
    fraction_requested: float = 0.0
    fraction_reached: float = 0.0  # global sparsity of the synapse weights after the pass
    weights_total: int = 0
    weights_kept_before: int = 0
    weights_kept_after: int = 0
    layers: dict[str, LayerPruning] = field(default_factory=dict)
    protected_layers: list[str] = field(default_factory=list)
    metric: str = ""  # "accuracy" (labels) or "agreement_with_unpruned"; "" without calib data
    accuracy_before: float | None = None
    accuracy_pruned: float | None = None  # after pruning, before fine-tune
    accuracy_after: float | None = None
    accuracy_unpruned_finetuned: float | None = None  # control (prune_finetune_control)
    tolerance: float | None = None
    within_tolerance: bool | None = None
    curve: list[tuple[float, float]] = field(default_factory=list)  # (sparsity, accuracy), no fine-tune
    curve_finetuned: list[tuple[float, float]] = field(default_factory=list)
    finetune: dict = field(default_factory=dict)
    steps: int | None = None
    synops_before: dict = field(default_factory=dict)  # accounting summaries, per sample
    synops_after: dict = field(default_factory=dict)
    effective_synops_before: float | None = None
    effective_synops_after: float | None = None
    spikes_per_sample_before: float | None = None
    spikes_per_sample_after: float | None = None


# ------------------------------------------------------------------------------------------
# Scores and masks
# ------------------------------------------------------------------------------------------
def lamp_scores(magnitude2: np.ndarray) -> np.ndarray:
    """LAMP score of each entry of a flat array of squared magnitudes (zeros score 0)."""
    flat = np.asarray(magnitude2, dtype=np.float64).ravel()
    order = np.argsort(flat, kind="stable")
    sorted_m = flat[order]
    tail = np.cumsum(sorted_m[::-1])[::-1]  # sum_{v >= u}
    scores_sorted = np.divide(sorted_m, tail, out=np.zeros_like(sorted_m), where=tail > 0)
    scores = np.empty_like(flat)
    scores[order] = scores_sorted
    return scores


def _feeds_readout(graph: Graph, name: str) -> bool:
    for e in graph.out_edges(name):
        dst = graph.nodes[e.dst]
        if isinstance(dst, Output) or (isinstance(dst, NeuronOp) and not dst.spiking):
            return True
    return False


def prunable_layers(graph: Graph, fraction: float, exclude: set[str], structure: str) -> tuple[list[str], list[str]]:
    """(eligible float synapse layers, protected layers) in graph order."""
    eligible, protected = [], []
    for name, op in graph.nodes.items():
        if not isinstance(op, (Affine, Conv1d, Conv2d)):
            continue
        density = np.count_nonzero(op.weight) / max(op.weight.size, 1)
        structural_skip = structure != "unstructured" and _feeds_readout(graph, name)
        if name in exclude or density <= 1.0 - fraction or structural_skip or op.weight.size <= 1:
            protected.append(name)
        else:
            eligible.append(name)
    return eligible, protected


def lamp_masks(graph: Graph, fraction: float, structure: str = "unstructured",
               exclude: set[str] | frozenset[str] = frozenset()) -> tuple[dict[str, np.ndarray], list[str]]:
    """Keep-masks (bool, weight-shaped) of the eligible layers for a global sparsity ``fraction``."""
    if structure not in STRUCTURES:
        raise UserInputError(f"prune_structure '{structure}' is not one of: {', '.join(STRUCTURES)}")
    synapses = {n: op for n, op in graph.nodes.items() if isinstance(op, (Affine, Conv1d, Conv2d))}
    eligible, protected = prunable_layers(graph, fraction, set(exclude), structure)
    total = sum(op.weight.size for op in synapses.values())
    fixed_zeros = sum(op.weight.size - np.count_nonzero(op.weight) for n, op in synapses.items() if n not in eligible)
    budget = int(np.ceil(fraction * total - 1e-9)) - fixed_zeros  # zeros wanted among the eligible weights

    # candidates: (score, count, layer index, unit index); each layer's top unit is never pruned
    scores, counts, owners, units = [], [], [], []
    for li, name in enumerate(eligible):
        w = synapses[name].weight.astype(np.float64)
        if structure == "unstructured":
            m2 = (w * w).ravel()
            cnt = np.ones_like(m2)
        else:
            rows = w.reshape(w.shape[0], -1)
            m2 = (rows * rows).sum(axis=1)
            cnt = np.full(m2.shape, rows.shape[1], dtype=np.float64)
        s = lamp_scores(m2)
        keep_top = int(np.argmax(m2))
        idx = np.array([u for u in range(m2.size) if u != keep_top], dtype=np.int64)
        scores.append(s[idx]); counts.append(cnt[idx])
        owners.append(np.full(idx.size, li)); units.append(idx)
    masks = {n: np.ones(synapses[n].weight.shape, dtype=bool) for n in eligible}
    if not eligible or budget <= 0:
        return masks, protected
    scores_a, counts_a = np.concatenate(scores), np.concatenate(counts)
    owners_a, units_a = np.concatenate(owners), np.concatenate(units)
    order = np.argsort(scores_a, kind="stable")
    pruned = np.cumsum(counts_a[order])
    take = order[: int(np.searchsorted(pruned, budget, side="left")) + 1]
    if pruned[-1] < budget:
        take = order
    for li, u in zip(owners_a[take], units_a[take]):
        mask = masks[eligible[li]]
        if structure == "unstructured":
            mask.reshape(-1)[u] = False
        else:
            mask[u] = False
    return masks, protected


def apply_masks(graph: Graph, masks: dict[str, np.ndarray], structure: str) -> Graph:
    """Zero masked weights (exact +0.0); in structured mode also the bias of a removed row."""
    for name, mask in masks.items():
        op = graph.nodes[name]
        w = np.where(mask, op.weight, 0.0).astype(np.float32)
        bias = op.bias
        if structure != "unstructured" and bias is not None:
            alive = mask.reshape(mask.shape[0], -1).any(axis=1)
            bias = np.where(alive, bias, 0.0).astype(np.float32)
        graph = graph.with_node(name, op.replace(weight=w, bias=bias))
    return graph


def prune_to(graph: Graph, fraction: float, structure: str = "unstructured",
             exclude: frozenset[str] = frozenset()) -> tuple[Graph, dict[str, np.ndarray]]:
    masks, _ = lamp_masks(graph, fraction, structure, exclude)
    return apply_masks(graph, masks, structure), masks


def global_sparsity(graph: Graph) -> float:
    ws = [op.weight for op in graph.nodes.values() if is_synapse(op)]
    total = sum(w.size for w in ws)
    return 1.0 - sum(np.count_nonzero(w) for w in ws) / total if total else 0.0


# ------------------------------------------------------------------------------------------
# The pass
# ------------------------------------------------------------------------------------------
def _finetune_data(ctx: PassContext, opts: PruneSpatialOptions):
    if opts.finetune_arrays is not None:
        x, y = opts.finetune_arrays
        return np.asarray(x), np.asarray(y), "options"
    path = opts.finetune_data
    if path:
        x, y = load_data(path, need_labels=True)
        return x, y, str(path)
    if ctx.calib_x is None or ctx.calib_y is None:
        raise UserInputError("the pruning fine-tune needs labelled data: pass --calib with labels 'y'"
                             " or give --finetune-data")
    return ctx.calib_x, ctx.calib_y, "calibration data"


class PruneSpatial:
    name: ClassVar[str] = "prune_spatial"
    option_types: ClassVar[tuple[type, ...]] = (PruneSpatialOptions,)
    requires: ClassVar[frozenset[str]] = frozenset()
    establishes: ClassVar[frozenset[str]] = frozenset({Prop.PRUNED})
    invalidates: ClassVar[frozenset[str]] = frozenset()
    forbids: ClassVar[frozenset[str]] = frozenset({Prop.WEIGHTS_QUANTIZED, Prop.QUANTIZED})

    def run(self, graph: Graph, ctx: PassContext) -> tuple[Graph, PruneSpatialReport]:
        ev.require_unquantized(graph, self.name)
        opts = ctx.options.of(PruneSpatialOptions)
        fraction, structure = opts.fraction, opts.structure.value
        report = PruneSpatialReport(name=self.name, structure=structure)
        if fraction is None:
            report.skipped, report.reason = True, "no pruning fraction given"
            return graph, report
        exclude = frozenset(opts.exclude)
        report.fraction_requested = fraction
        report.tolerance = opts.tolerance
        epochs = opts.finetune_epochs

        x, y = ctx.calib_x, ctx.calib_y
        labels = None
        if x is not None:
            report.steps = int(ev.graph_steps(graph, x).shape[0])
            labels, report.metric = ev.reference_labels(graph, x, y)
            report.accuracy_before = ev.accuracy(graph, x, labels)
            acc_before = ev.account(graph, x)
            report.synops_before = ev.summary(acc_before)

        rounds = opts.rounds

        def finetuned(pruned: Graph, masks, tag: str, n_epochs: int = epochs) -> Graph:
            from rsnn_compiler.passes.finetune import FinetuneConfig, finetune

            fx, fy, source = _finetune_data(ctx, opts)
            cfg = FinetuneConfig(
                epochs=n_epochs, lr=opts.finetune_lr, batch_size=opts.finetune_batch, seed=ctx.seed,
                logit_scale=opts.finetune_logit_scale,
            )
            ctx.progress(f"prune_spatial: fine-tuning ({tag}, {n_epochs} epochs on {source})")
            # every zero stays zero: the new ones and those the layer already had
            full_masks = {n: op.weight != 0 for n, op in pruned.nodes.items()
                          if isinstance(op, (Affine, Conv1d, Conv2d))}
            tuned, result = finetune(pruned, ev.graph_steps(pruned, fx), fy, full_masks, cfg)
            report.finetune.update({"epochs": result.epochs, "updates": result.updates, "samples": result.samples,
                               "lr": cfg.lr, "batch_size": cfg.batch_size, "data": source,
                               "loss_per_epoch": result.loss_per_epoch})
            return tuned

        # accuracy-vs-sparsity curve (and the tolerance back-off uses it)
        if x is not None:
            grid = DEFAULT_CURVE if opts.curve is None else opts.curve
            points = sorted({round(float(s), 4) for s in grid} | {round(fraction, 4)})
            for s in progress.track(points, "prune_spatial: accuracy vs sparsity", unit="point"):
                g_s, m_s = prune_to(graph, s, structure, exclude)
                reached = round(float(global_sparsity(g_s)), 4)
                report.curve.append((reached, ev.accuracy(g_s, x, labels)))
                if epochs > 0 and opts.curve_finetune and s > 0:
                    report.curve_finetuned.append((reached, ev.accuracy(finetuned(g_s, m_s, f"curve {s}"), x, labels)))

        if epochs > 0 and x is not None and opts.finetune_control:
            # control: the unpruned graph fine-tuned with the same budget (is the gain pruning's?)
            control = finetuned(graph, {}, "unpruned control", epochs * rounds)
            report.accuracy_unpruned_finetuned = ev.accuracy(control, x, labels)

        pruned, masks = prune_to(graph, fraction, structure, exclude)  # one shot
        touched = set(masks)
        if x is not None:
            report.accuracy_pruned = ev.accuracy(pruned, x, labels)
        if epochs > 0:
            pruned, history = graph, []
            for k in progress.track(range(1, rounds + 1), "prune_spatial: prune + fine-tune", unit="round"):  # gradual: cubic schedule s_k = s (1 - (1 - k/R)^3)
                s_k = fraction if k == rounds else fraction * (1.0 - (1.0 - k / rounds) ** 3)
                pruned, masks = prune_to(pruned, s_k, structure, exclude)
                touched |= set(masks)
                pruned = finetuned(pruned, masks, f"round {k}/{rounds}, sparsity {s_k:.3f}")
                if x is not None:
                    history.append((round(float(global_sparsity(pruned)), 4), ev.accuracy(pruned, x, labels)))
            report.finetune["rounds"] = history
        if x is not None:
            report.accuracy_after = ev.accuracy(pruned, x, labels)
            if report.tolerance is not None:
                report.within_tolerance = report.accuracy_before - report.accuracy_after <= report.tolerance
                if not report.within_tolerance:
                    pruned, masks = self._back_off(graph, report, structure, exclude, fraction)
                    touched = set(masks)
                    if epochs > 0 and masks:
                        pruned = finetuned(pruned, masks, "back-off")
                    report.accuracy_after = ev.accuracy(pruned, x, labels)
                    report.within_tolerance = report.accuracy_before - report.accuracy_after <= report.tolerance
            acc_after = ev.account(pruned, x)
            report.synops_after = ev.summary(acc_after)
            report.effective_synops_before = report.synops_before["effective_synops_per_sample"]
            report.effective_synops_after = report.synops_after["effective_synops_per_sample"]
            report.spikes_per_sample_before = report.synops_before["spikes_per_sample"]
            report.spikes_per_sample_after = report.synops_after["spikes_per_sample"]
        else:
            report.notes.append("no calibration data: no accuracy, curve or synaptic-op counts")
        self._fill_layers(graph, pruned, report, touched)
        report.reason = (
            f"{report.fraction_reached:.1%} of {report.weights_total} weights zero"
            f" (target {fraction:.1%}, LAMP, {structure})"
        )
        return pruned, report

    @staticmethod
    def _back_off(graph, report, structure, exclude, fraction):
        ok = [s for s, a in report.curve if s < fraction and report.accuracy_before - a <= report.tolerance]
        if not ok:
            report.notes.append("no pruned sparsity met the tolerance; weights left unchanged")
            return graph, {}
        best = max(ok)
        report.notes.append(f"sparsity {fraction:.1%} exceeded the tolerance; backed off to {best:.1%}")
        return prune_to(graph, best, structure, exclude)

    @staticmethod
    def _fill_layers(before: Graph, after: Graph, report: PruneSpatialReport, touched: set[str]) -> None:
        for name, op in after.nodes.items():
            if not isinstance(op, (Affine, Conv1d, Conv2d)):
                continue
            w = op.weight
            rows = w.reshape(w.shape[0], -1)
            report.layers[name] = LayerPruning(
                total=int(w.size),
                kept_before=int(np.count_nonzero(before.nodes[name].weight)),
                kept=int(np.count_nonzero(w)),
                density=float(np.count_nonzero(w) / max(w.size, 1)),
                protected=name not in touched,
                zero_rows=int((~rows.any(axis=1)).sum()),
            )
        report.protected_layers = [n for n, l in report.layers.items() if l.protected]
        report.weights_total = sum(l.total for l in report.layers.values())
        report.weights_kept_before = sum(l.kept_before for l in report.layers.values())
        report.weights_kept_after = sum(l.kept for l in report.layers.values())
        if report.weights_total:
            report.fraction_reached = 1.0 - report.weights_kept_after / report.weights_total


__all__ = ["PruneSpatial", "PruneSpatialReport", "apply_masks", "global_sparsity", "lamp_masks",
           "lamp_scores", "prune_to"]
