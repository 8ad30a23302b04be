"""SFN: multi-threshold (graded) neurons at T = 1 with a searched threshold scale.

An MTN at one step with theta_M and v(0) = theta_M/2 computes
    a = theta_M * clip(floor(z / theta_M + 1/2), 0, N)
which is the QCFS activation with lam = N*theta_M and L = N. So:
- a QCFS site (lam, L, shift) with N = L converts exactly: theta_M = lam/L, v(0) = shift*theta_M;
- any other site uses theta_M = alpha_l * A_l / N, A_l = the clip level lam, or the 99.9th
  percentile of its calibration activations for a ReLU; alpha_l is searched layer by layer
  (coordinate descent over ``ALPHAS``) to minimise KL(softmax(ANN) || softmax(SNN)) on the
  calibration data, the SNN at T = 1 being simulated exactly as the ANN with that activation.
With T > 1 the neuron keeps its residual (reset subtract: a burst neuron, up to N per step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler.frontends.ann_graph import ActKind, AnnGraph, forward
from rsnn_compiler.frontends.maxnorm import layer_scale
from rsnn_compiler.frontends.snn_build import NeuronKind, SitePlan
from rsnn_compiler.ir.ops import ResetMode

ALPHAS = tuple(float(a) for a in np.round(np.arange(0.4, 1.601, 0.05), 3))
DEFAULT_LEVELS = 16
SEARCH_SAMPLES = 2048


@dataclass
class SfnSearch:
    alphas: dict[str, float] = field(default_factory=dict)
    kl_before: float | None = None
    kl_after: float | None = None
    exact_sites: list[str] = field(default_factory=list)


def mtn_activation(plan: SitePlan):
    """The one-step MTN as an ANN activation (ANN units)."""
    def act(z: torch.Tensor) -> torch.Tensor:
        u = plan.unit
        return u * torch.clamp(torch.floor((z + plan.v_init) / u), 0, plan.levels)
    return act


def simulate_t1(ann: AnnGraph, plans: dict[str, SitePlan], x: np.ndarray) -> torch.Tensor:
    fns = {k: mtn_activation(p) for k, p in plans.items()}
    with torch.no_grad():
        return forward(ann, x, override=lambda node, z: fns[node.name](z))


def _kl(teacher: torch.Tensor, student: torch.Tensor) -> float:
    return float(F.kl_div(F.log_softmax(student, 1), F.log_softmax(teacher, 1), log_target=True,
                          reduction="batchmean"))


def plan_sfn(ann: AnnGraph, calib_x: np.ndarray | None, acts: dict[str, np.ndarray] | None,
             levels: int | None, steps: int = 1, search: bool = True) -> tuple[dict[str, SitePlan], SfnSearch]:
    info = SfnSearch()
    reset = ResetMode.ZERO if steps == 1 else ResetMode.SUBTRACT
    plans: dict[str, SitePlan] = {}
    base: dict[str, float] = {}
    for node in ann.acts():
        spec = node.p("spec")
        if spec.kind is ActKind.QUANT and levels in (None, spec.levels):
            unit = spec.lam / spec.levels
            plans[node.name] = SitePlan(node.name, NeuronKind.MTN, theta=unit, v_init=spec.shift * unit, unit=unit,
                                        levels=spec.levels, reset=reset, origin="QCFS activation (exact)")
            info.exact_sites.append(node.name)
            continue
        n = levels or (spec.levels if spec.kind is ActKind.QUANT else DEFAULT_LEVELS)
        a = None if acts is None else acts[node.name]
        if spec.kind in (ActKind.CLIP, ActKind.QUANT):
            top, origin = float(spec.lam), "activation's clip level"
        else:
            top, origin = layer_scale(a, 99.9, None, node.where or node.name)
        base[node.name] = top
        unit = top / n
        plans[node.name] = SitePlan(node.name, NeuronKind.MTN, theta=unit, v_init=unit / 2, unit=unit, levels=n,
                                    reset=reset, origin=origin)
    if search and base and calib_x is not None:
        _search(ann, plans, base, calib_x[:SEARCH_SAMPLES], info)
    return plans, info


def _search(ann, plans, base, x, info: SfnSearch) -> None:
    with torch.no_grad():
        teacher = forward(ann, x)
    def kl() -> float:
        return _kl(teacher, simulate_t1(ann, plans, x))
    info.kl_before = kl()
    best_total = info.kl_before
    origins = {site: plans[site].origin for site in base}
    for _round in range(2):
        for site, top in base.items():
            plan = plans[site]
            best_alpha, best = info.alphas.get(site, 1.0), best_total
            for alpha in ALPHAS:
                unit = alpha * top / plan.levels
                plan.theta = plan.unit = unit
                plan.v_init = unit / 2
                value = kl()
                if value < best - 1e-9:
                    best, best_alpha = value, alpha
            unit = best_alpha * top / plan.levels
            plan.theta = plan.unit = unit
            plan.v_init = unit / 2
            plan.origin = f"{origins[site]} x {best_alpha:g} (searched)"
            info.alphas[site] = best_alpha
            best_total = best
    info.kl_after = best_total
