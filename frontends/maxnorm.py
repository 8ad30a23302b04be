"""Max-norm / robust-norm thresholds (Diehl 2015, Rueckauer 2017): the conversion baseline.

theta_l = max (or the p-th percentile over the whole layer tensor) of the ANN activation a_l on
the calibration data; soft-reset IF neurons (v -= theta on a spike, spike when v >= theta), spike
value theta_l folded into the next weights, v(0) = 0 (``v_init=half`` gives theta/2). A clip or
QCFS activation with a known lam and no calibration data uses theta = lam.
"""

from __future__ import annotations

import numpy as np

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontends.ann_graph import AnnGraph
from rsnn_compiler.frontends.snn_build import NeuronKind, SitePlan


def layer_scale(a: np.ndarray | None, percentile: float, lam: float | None, where: str) -> tuple[float, str]:
    """(scale, origin): percentile/max of the activations, else the activation's own lam."""
    if a is None:
        if lam is None:
            raise UserInputError(f"activation {where} is a ReLU with no known range; give --calib FILE.npz")
        return float(lam), "activation's clip level"
    value = float(np.max(a)) if percentile >= 100 else float(np.percentile(a, percentile))
    origin = "max of calibration activations" if percentile >= 100 else f"{percentile:g}th percentile of calibration activations"
    if not value > 0:
        return float(lam or 1.0), "layer silent on calibration data (theta set to its clip level or 1)"
    return value, origin


def plan_maxnorm(ann: AnnGraph, acts: dict[str, np.ndarray] | None, percentile: float = 100.0,
                 half_init: bool = False) -> dict[str, SitePlan]:
    plans = {}
    for node in ann.acts():
        spec = node.p("spec")
        a = None if acts is None else acts[node.name]
        theta, origin = layer_scale(a, percentile, spec.lam, node.where or node.name)
        plans[node.name] = SitePlan(node.name, NeuronKind.IF, theta=theta, v_init=theta / 2 if half_init else 0.0,
                                    unit=theta, origin=origin)
    return plans
