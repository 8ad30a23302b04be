"""Operations and energy per sample, from named cost tables whose every constant has provenance.

Counts per sample (NeuroBench definitions, ``rsnn_compiler.accounting``): effective synaptic ops,
dense synaptic ops, neuron updates, spikes, and *messages* = spikes x destination cores each spike
reaches (from the Loihi 2 mapping). With calibration data they come from a fixed-point
interpreter run (``run_fixed`` + ``count_synops``); without, they are structural upper bounds
(every neuron fires every step). Energies are ranges (low, high) in joules.

No per-operation Loihi 2 figure is published: the neuromorphic tables are Loihi 1 (14 nm)
figures and are labelled so; never read them as Loihi 2 silicon energy. The ANN/GPU tables
cost the dense equivalent network (one inference, MACs = dense synops / T).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rsnn_compiler.ir.graph import Graph

PJ = 1e-12


@dataclass(frozen=True)
class Cost:
    """Energy of one operation in picojoules, as a range, with its source."""

    low_pj: float
    high_pj: float
    source: str
    estimate: bool  # True: derived, secondary, or not the target chip


@dataclass(frozen=True)
class CostTable:
    name: str
    description: str
    synop: Cost | None = None  # per effective synaptic op (spiking) or MAC (dense ANN)
    neuron_update: Cost | None = None
    message: Cost | None = None  # per spike message sent to one destination core


DAVIES = "Davies et al., 'Loihi', IEEE Micro 38(1) 2018, Table 2 (via keras-spiking model_energy.py; verify)"
SANAFE = "SLAM-Lab/SANA-FE arch/loihi.yaml (calibrated Loihi 1 model)"
HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm 0.9 V"

TABLES: dict[str, CostTable] = {
    "loihi1_davies2018": CostTable(
        "loihi1_davies2018", "Loihi 1 (14 nm) measured per-op energies; NOT Loihi 2",
        synop=Cost(23.6, 27.1, DAVIES + ": 23.6 pJ/synop; high adds 3.5 pJ spike hop", True),
        neuron_update=Cost(52.0, 81.0, DAVIES + ": 52 pJ inactive, 81 pJ active neuron update", True),
        message=Cost(1.7, 3.5, DAVIES + ": 1.7 pJ within-tile spike, 3.5 pJ per across-tile hop", True)),
    "loihi1_sanafe": CostTable(
        "loihi1_sanafe", "Loihi 1 energies calibrated in SANA-FE; NOT Loihi 2",
        synop=Cost(35.5, 35.5, SANAFE + ": synaptic event 35.5 pJ", True),
        neuron_update=Cost(51.2, 72.8, SANAFE + ": neuron update 51.2 inactive .. 72.8 active pJ", True),
        message=Cost(76.8, 81.0, SANAFE + ": axon-out 76.8 pJ, + 3.0..4.2 pJ per NoC hop", True)),
    "horowitz45_int8": CostTable(
        "horowitz45_int8", "equivalent dense ANN, INT8 MACs at 45 nm (compute only, no memory)",
        synop=Cost(0.23, 0.23, HOROWITZ + ": INT8 mult 0.2 + INT32 add 0.03 pJ (derived MAC)", True)),
    "horowitz45_fp32": CostTable(
        "horowitz45_fp32", "equivalent dense ANN, FP32 MACs at 45 nm (compute only, no memory)",
        synop=Cost(4.6, 4.6, HOROWITZ + ": FP32 mult 3.7 + add 0.9 pJ (derived MAC)", True)),
    "gpu_degnan2015": CostTable(
        "gpu_degnan2015", "dense execution on a GPU, whole-system energy per op (GTX Titan Black)",
        synop=Cost(300.0, 300.0, "Degnan, Marr, Hasler, IEEE TVLSI 24(1) 2015 (via keras-spiking): 0.3 nJ/op", True)),
}
SPIKING_TABLES = ("loihi1_davies2018", "loihi1_sanafe")
DENSE_TABLES = ("horowitz45_int8", "horowitz45_fp32", "gpu_degnan2015")


@dataclass
class OpCounts:
    steps: int
    samples: int  # 0: structural bound
    source: str  # "measured" (calibration run) or "upper bound"
    synops: float  # effective synaptic ops per sample
    dense_synops: float  # dense MACs per sample over all steps
    neuron_updates: float
    spikes: float
    messages: float


def count_ops(graph: Graph, mapping, calib_x: np.ndarray | None, max_samples: int = 64) -> OpCounts:
    """Per-sample counts: from a fixed-point run on ``calib_x`` when given, else upper bounds."""
    from rsnn_compiler.accounting import is_synapse, weight_sparsity
    from rsnn_compiler.ir.ops import NeuronOp

    fanout = {k: float(v.mean()) if v.size else 0.0 for k, v in mapping.fanout_cores.items()}
    if calib_x is not None:
        from rsnn_compiler.accounting import count_synops
        from rsnn_compiler.interpreter.fixed_interp import run_fixed

        x = np.asarray(calib_x)[:, :max_samples]
        acc = count_synops(graph, run_fixed(graph, x, record=True))
        msgs = sum(s * fanout.get(n, 0.0) for n, s in acc.spikes_per_node.items())
        return OpCounts(acc.steps, acc.samples, "measured", acc.effective_synops, acc.dense_synops,
                        acc.neuron_updates_per_sample, acc.spikes_per_sample, msgs)
    steps = graph.attrs.steps or 1
    weights = weight_sparsity(graph)
    synops = steps * sum(w.kept for w in weights.values())
    dense = steps * sum(w.total for n, w in weights.items() if is_synapse(graph.nodes[n]))
    updates = spikes = msgs = 0.0
    for name, op in graph.nodes.items():
        if isinstance(op, NeuronOp):
            n = steps * math.prod(op.shape)
            updates += n
            if op.spiking:
                spikes += n
                msgs += n * fanout.get(name, 0.0)
    return OpCounts(steps, 0, "upper bound", float(synops), float(dense), updates, spikes, msgs)


def estimate(counts: OpCounts, table: CostTable, dense: bool) -> dict:
    """Energy range (joules per sample) of ``counts`` under ``table``."""
    if dense:  # equivalent ANN: one inference = dense MACs of one step
        ops = [("mac", counts.dense_synops / max(counts.steps, 1), table.synop)]
    else:
        ops = [("synop", counts.synops, table.synop), ("neuron_update", counts.neuron_updates,
               table.neuron_update), ("message", counts.messages, table.message)]
    low = sum(n * c.low_pj for _, n, c in ops if c) * PJ
    high = sum(n * c.high_pj for _, n, c in ops if c) * PJ
    return {"table": table.name, "description": table.description, "low_j": low, "high_j": high,
            "constants": {k: {"low_pj": c.low_pj, "high_pj": c.high_pj, "source": c.source,
                              "estimate": c.estimate} for k, _, c in ops if c}}


def energy_report(graph: Graph, mapping, calib_x: np.ndarray | None) -> dict:
    counts = count_ops(graph, mapping, calib_x)
    rows = [estimate(counts, TABLES[t], False) for t in SPIKING_TABLES]
    rows += [estimate(counts, TABLES[t], True) for t in DENSE_TABLES]
    return {
        "counts": vars(counts),
        "estimates": rows,
        "caveat": "Loihi 1 per-op figures (no Loihi 2 per-op energy is published); "
                  "dense tables cost the equivalent ANN's MACs only (no memory traffic)",
    }


__all__ = ["Cost", "CostTable", "OpCounts", "TABLES", "count_ops", "energy_report", "estimate"]
