"""Numbers for the conversion report: per-layer error split, messages, accuracy per T.

For a neuron with time-averaged input z (ANN units, bias included), T steps, output unit u,
at most K counts per step (1 for IF, N for MTN) and v(0) = v0, against the target ReLU(z):

    clipping      = ReLU(z) - clip(z, 0, K u)
    quantisation  = clip(z, 0, K u) - u * clip(floor((T z + v0) / u), 0, K T) / T
    unevenness    = u * clip(floor((T z + v0) / u), 0, K T) / T - phi_SNN

(phi_SNN = u * sum of the counts / T); each is reported as ||e||_2 / ||ReLU(z)||_2 over the
calibration samples, on the SNN's own inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsnn_compiler.frontends.ann_graph import AnnGraph, forward
from rsnn_compiler.frontends.snn_build import BuiltSnn, SitePlan
from rsnn_compiler.interpreter.float_interp import run_float


@dataclass
class LayerErrors:
    site: str
    clipping: float
    quantisation: float
    unevenness: float
    messages_per_sample: float
    payload_per_sample: float


def repeat_input(x: np.ndarray, steps: int) -> np.ndarray:
    """Static (batch, *features) input as (T, batch, *features): the same current every step."""
    return np.repeat(np.asarray(x, np.float32)[None], steps, axis=0)


def snn_predict(graph, x: np.ndarray, steps: int) -> np.ndarray:
    return run_float(graph, repeat_input(x, steps), record=False).out.sum(0).argmax(-1)


def error_split(built: BuiltSnn, plans: dict[str, SitePlan], x: np.ndarray, steps: int) -> list[LayerErrors]:
    g = built.graph
    res = run_float(g, repeat_input(x, steps), record=True)
    rows = []
    batch = x.shape[0]
    for site, node in built.neuron_of.items():
        plan = plans[site]
        op = g.nodes[node]
        drive = sum(res.values[e.src] for e in g.in_edges(node))  # (T, B, *shape)
        scale = built.scale_in[node]
        z = scale * (drive.mean(0) + op.bias)
        counts = res.values[node]
        phi = plan.unit * counts.sum(0) / steps
        u, k = plan.unit, plan.levels
        target = np.maximum(z, 0)
        clipped = np.clip(z, 0, k * u)
        quant = u * np.clip(np.floor((steps * z + plan.v_init) / u), 0, k * steps) / steps
        norm = float(np.linalg.norm(target)) or 1.0
        rows.append(LayerErrors(
            site,
            float(np.linalg.norm(target - clipped)) / norm,
            float(np.linalg.norm(clipped - quant)) / norm,
            float(np.linalg.norm(quant - phi)) / norm,
            float(np.count_nonzero(counts)) / batch,
            float(np.abs(counts).sum()) / batch,
        ))
    return rows


def accuracies(ann: AnnGraph, graph, x: np.ndarray, y: np.ndarray | None, steps_list: list[int]) -> dict:
    """ANN accuracy and SNN accuracy / agreement with the ANN per T (percent)."""
    import torch

    with torch.no_grad():
        ann_pred = forward(ann, x).argmax(1).numpy()
    out: dict = {"samples": int(len(x)), "ann": None, "snn": {}, "agreement": {}}
    if y is not None:
        out["ann"] = round(100.0 * float((ann_pred == y).mean()), 2)
    for t in steps_list:
        pred = snn_predict(graph, x, t)
        out["agreement"][str(t)] = round(100.0 * float((pred == ann_pred).mean()), 2)
        if y is not None:
            out["snn"][str(t)] = round(100.0 * float((pred == y).mean()), 2)
    return out
