"""Shared helpers of the pruning passes: calibration runs, accuracy.

Accuracy is in percent. With labels it is the usual top-1 accuracy of ``argmax(out.sum(0))``;
without labels it is the agreement (percent) with the predictions of a reference graph (the
unpruned one), so the tolerance checks also work on unlabelled calibration data.
"""

from __future__ import annotations

import numpy as np

from rsnn_compiler.accounting import SynOpsAccount, account_float
from rsnn_compiler.errors import PipelineError, UserInputError
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.passes_api import Prop


def require_unquantized(graph: Graph, pass_name: str) -> None:
    """Pruning runs on the float model, before any quantization (DESIGN §5: prune -> quantize).

    Each pruning pass checks its own input graph, so calling it directly on a weight-quantized
    or fixed-point graph is refused just like a pipeline in the wrong order."""
    props = graph.attrs.properties
    if graph.attrs.domain is not Domain.FLOAT or Prop.QUANTIZED in props:
        state = "a fixed-point graph"
    elif Prop.WEIGHTS_QUANTIZED in props:
        state = "a graph whose weights are already quantized"
    else:
        return
    raise PipelineError(
        f"{pass_name} cannot run on {state}: prune the float model first, then quantize"
        " (DESIGN §5: prune -> quantize_weights -> quantize_state)"
    )


def graph_steps(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The first ``graph.attrs.steps`` steps of ``x`` (all of them when the graph records none)."""
    steps = graph.attrs.steps
    return x if steps is None else x[:steps]


def predictions(out: np.ndarray) -> np.ndarray:
    """``argmax(out.sum(0))`` per sample, out shaped (T, B, *outputs)."""
    total = out.sum(0)
    return total.reshape(total.shape[0], -1).argmax(axis=1)


def accuracy(graph: Graph, x: np.ndarray, labels: np.ndarray) -> float:
    out = run_float(graph, graph_steps(graph, x), record=False).out
    return float((predictions(out) == labels).mean() * 100.0)


def reference_labels(graph: Graph, x: np.ndarray, y: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Labels to score against: the true ones, or the reference graph's own predictions."""
    if y is not None:
        return np.asarray(y), "accuracy"
    out = run_float(graph, graph_steps(graph, x), record=False).out
    return predictions(out), "agreement_with_unpruned"


def account(graph: Graph, x: np.ndarray | None) -> SynOpsAccount | None:
    return None if x is None else account_float(graph, graph_steps(graph, x))[0]


def summary(acc: SynOpsAccount | None) -> dict:
    return {} if acc is None else acc.summary()
