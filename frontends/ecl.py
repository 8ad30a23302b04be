"""ECL-style conversion (Liu et al., ICML 2025; reconstruction, see docs/conversion.md):
a clipping threshold lam per layer, dual-threshold IF neurons, membrane initialised at theta/2.

- lam is learned by a short fine-tune on the calibration data (``finetune_clip``): lam is a
  trainable scalar per call site (initialised at the ANN's clip level, or the 99th percentile of
  a ReLU site's activations) and the weights adapt with it. The forward pass is the exact T-step
  dual-threshold SNN (the batch stacked T times: every non-neuron op is linear and
  time-invariant); gradients flow straight through the T-level staircase of the neuron's mean
  input, ``lam/T * clip(floor(z T / lam + 1/2), 0, T)`` (straight-through floor), which is the
  neuron's rate for a constant input. Loss: distillation from the ANN's own outputs
  (temperature-softened KL), plus cross-entropy when labels are given and ``ce`` > 0.
  ``forward_mode="staircase"`` trains the staircase ANN instead (cheaper, less faithful).
  Without calibration data lam is read from a clip / QCFS activation already in the ANN.
  Neurons then use theta = lam.
- Neuron: m = v + x + b; +1 if m >= theta; -1 if m < theta_neg and the net count c > 0;
  v = m - s*theta; v(0) = theta/2; theta_neg = ``theta_neg`` * theta (default 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler import progress
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.float_prims import TorchFloat
from rsnn_compiler.neurons import FLOAT_FAMILIES, Comparator, Namespace
from rsnn_compiler.frontends.ann_graph import ActKind, ActSpec, AnnGraph, AnnKind, forward, with_params
from rsnn_compiler.frontends.snn_build import NeuronKind, SitePlan


@dataclass
class FinetuneInfo:
    epochs: int = 0
    samples: int = 0
    forward: str = "snn"
    temperature: float = 1.0
    ce_weight: float = 0.0
    lam_init: dict[str, float] = field(default_factory=dict)
    lam: dict[str, float] = field(default_factory=dict)
    loss_first: float | None = None
    loss_last: float | None = None
    used_labels: bool = False
    wall_time_s: float = 0.0


FORWARDS = ("snn", "staircase")


def _ste_floor(u: torch.Tensor) -> torch.Tensor:
    return u + (torch.floor(u) - u).detach()


def staircase(z: torch.Tensor, lam: torch.Tensor, steps: int) -> torch.Tensor:
    """lam/T * clip(floor(z T/lam + 1/2), 0, T): the T-step neuron's rate for a constant input z."""
    return lam / steps * torch.clamp(_ste_floor(z * steps / lam + 0.5), 0, steps)


def dual_if_steps(zt: torch.Tensor, theta, theta_neg, v_init) -> torch.Tensor:
    """Exact dual-threshold IF over time: zt (T, B, ...) input per step -> counts s (T, B, ...)
    in {-1, 0, 1}; the IR's ``DualThresholdIF`` (comparator >=, no bias) from the one neuron
    definition (``rsnn_compiler.neurons``, family ``dual_if``)."""
    family = FLOAT_FAMILIES["dual_if"]
    prims = TorchFloat(zt.device)
    p = Namespace(bias=0.0, theta=theta, theta_neg=theta_neg, comparator=Comparator.GE)
    zero = torch.zeros_like(zt[0])
    st = Namespace(v=zero + v_init, c=zero, s=zero)
    return torch.stack([family.step(prims, p, st, [zt[t]]) for t in range(zt.shape[0])])


def finetune_clip(ann: AnnGraph, x: np.ndarray, y: np.ndarray | None, acts: dict[str, np.ndarray],
                  steps: int, epochs: int = 40, lr: float = 3e-3, seed: int = 0, batch: int = 64,
                  theta_neg: float = 0.0, temperature: float = 4.0, ce_weight: float = 0.0,
                  forward_mode: str = "snn") -> tuple[AnnGraph, FinetuneInfo]:
    """Learn lam per activation site (and adapt the weights) for the T-step dual-IF SNN."""
    if forward_mode not in FORWARDS:
        raise UserInputError(f"ecl fine-tune forward must be one of: {', '.join(FORWARDS)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is much faster than contended ones
    try:
        return _finetune(ann, x, y, acts, steps, epochs, lr, seed, batch, theta_neg, temperature,
                         ce_weight, forward_mode)
    finally:
        torch.set_num_threads(threads)


def _finetune(ann, x, y, acts, steps, epochs, lr, seed, batch, theta_neg, temperature, ce_weight,
              forward_mode) -> tuple[AnnGraph, FinetuneInfo]:
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    use_ce = y is not None and ce_weight > 0
    info = FinetuneInfo(epochs=epochs, samples=len(x), forward=forward_mode, temperature=temperature,
                        ce_weight=ce_weight if use_ce else 0.0, used_labels=use_ce)
    params: dict[str, dict[str, torch.nn.Parameter]] = {}
    for node in ann.nodes:
        if node.kind in (AnnKind.DENSE, AnnKind.CONV):
            w = torch.nn.Parameter(torch.tensor(node.p("weight")))
            b0 = node.p("bias")
            b = torch.nn.Parameter(torch.tensor(b0) if b0 is not None else torch.zeros(w.shape[0]))
            params[node.name] = {"weight": w, "bias": b}
    lams: dict[str, torch.nn.Parameter] = {}
    for node in ann.acts():
        spec = node.p("spec")
        init = spec.lam if spec.lam is not None else float(np.percentile(acts[node.name], 99.0))
        init = max(init, 1e-3)
        info.lam_init[node.name] = init
        lams[node.name] = torch.nn.Parameter(torch.tensor(float(init)))

    def act_staircase(node, z):
        return staircase(z, lams[node.name].clamp_min(1e-4), steps)

    def act_snn(node, z):
        # forward: the exact T-step dual-IF outputs; backward: the staircase of the mean input
        lam = lams[node.name].clamp_min(1e-4)
        zt = z.reshape(steps, -1, *z.shape[1:])
        with torch.no_grad():
            th = lam.detach()
            exact = dual_if_steps(zt, th, theta_neg * th, th / 2) * th
        sur = staircase(zt.mean(0), lam, steps).unsqueeze(0)
        return (sur + (exact - sur).detach()).reshape(z.shape)

    xt = torch.as_tensor(np.asarray(x, np.float32))
    with torch.no_grad():
        teacher = F.log_softmax(forward(ann, xt) / temperature, 1)
    yt = None if y is None else torch.as_tensor(np.asarray(y, np.int64))
    weights = [p for d in params.values() for p in d.values()]
    opt = torch.optim.Adam([{"params": weights, "lr": lr}, {"params": list(lams.values()), "lr": 10 * lr}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    n = len(xt)
    for epoch in progress.track(range(epochs), "ecl: fine-tune", unit="epoch"):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            if forward_mode == "snn":
                xb = xt[idx].repeat(steps, *([1] * (xt.dim() - 1)))  # (T*B, ...), step-major
                out = forward(ann, xb, override=act_snn, params=params)
                out = out.reshape(steps, len(idx), *out.shape[1:]).mean(0)  # readout value per step
            else:
                out = forward(ann, xt[idx], override=act_staircase, params=params)
            loss = temperature ** 2 * F.kl_div(F.log_softmax(out / temperature, 1), teacher[idx],
                                               log_target=True, reduction="batchmean")
            if use_ce:
                loss = loss + ce_weight * F.cross_entropy(out, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        if epoch == 0:
            info.loss_first = total / n
        info.loss_last = total / n
    updates: dict[str, dict] = {}
    for name, d in params.items():
        updates[name] = {k: v.detach().numpy().astype(np.float32) for k, v in d.items()}
    for name, lam in lams.items():
        info.lam[name] = float(lam.detach().clamp_min(1e-4))
        updates[name] = {"spec": ActSpec(ActKind.CLIP, lam=info.lam[name])}
    info.wall_time_s = round(time.perf_counter() - start, 2)
    return with_params(ann, updates), info


def plan_ecl(ann: AnnGraph, theta_neg: float = 0.0, origin: str = "activation's clip level") -> dict[str, SitePlan]:
    """Dual-threshold IF plans from the clip level of every site (ANN must be clip/QCFS)."""
    plans = {}
    for node in ann.acts():
        spec = node.p("spec")
        if spec.lam is None:
            raise UserInputError(f"activation {node.where or node.name} has no clipping threshold; ecl needs"
                                 " --calib FILE.npz to learn one")
        lam = float(spec.lam)
        plans[node.name] = SitePlan(node.name, NeuronKind.DUAL_IF, theta=lam, v_init=lam / 2, unit=lam,
                                    theta_neg=theta_neg * lam, origin=origin)
    return plans


def needs_finetune(ann: AnnGraph, steps: int, have_data: bool = True) -> bool:
    """``finetune=auto``: learn lam whenever there is calibration data, unless every site is
    already a QCFS staircase with T levels (the ANN is then quantised for this T); a ReLU site
    always needs it (the caller reports missing data)."""
    specs = [n.p("spec") for n in ann.acts()]
    if any(s.kind is ActKind.RELU for s in specs):
        return True
    if not have_data:
        return False
    return not all(s.kind is ActKind.QUANT and s.levels == steps and s.shift == 0.5 for s in specs)


# ------------------------------------------------------------------------------------------
# threshold refinement on the calibration data (the SNN at T steps, simulated exactly)
# ------------------------------------------------------------------------------------------
SCALES = tuple(float(a) for a in np.round(np.arange(0.5, 1.301, 0.05), 3))


def _dual_if_over_time(plan: SitePlan, steps: int):
    """Activation override: z stacked as (T*B, ...) -> the dual-IF outputs times theta."""
    def act(node, z: torch.Tensor) -> torch.Tensor:
        zt = z.reshape(steps, -1, *z.shape[1:])
        s = dual_if_steps(zt, plan.theta, plan.theta_neg, plan.v_init)
        return (s * plan.unit).reshape(z.shape)
    return act


def simulate(ann: AnnGraph, plans: dict[str, SitePlan], x: np.ndarray, steps: int) -> torch.Tensor:
    """Summed readout of the dual-IF SNN over ``steps`` (every non-neuron op is linear and
    time-invariant, so the ANN on the time-stacked batch gives each step's currents)."""
    fns = {k: _dual_if_over_time(p, steps) for k, p in plans.items()}
    xt = torch.as_tensor(np.asarray(x, np.float32))
    stacked = xt.repeat(steps, *([1] * (xt.dim() - 1)))
    with torch.no_grad():
        out = forward(ann, stacked, override=lambda node, z: fns[node.name](node, z))
    return out.reshape(steps, len(xt), -1).sum(0)


def refine_thresholds(ann: AnnGraph, plans: dict[str, SitePlan], x: np.ndarray, steps: int,
                      theta_neg: float, rounds: int = 2) -> dict[str, float]:
    """theta_l = alpha_l * lam_l with alpha_l searched layer by layer (coordinate descent) to
    minimise KL(softmax(ANN) || softmax(SNN summed over T)) on ``x``. Returns the alphas."""
    with torch.no_grad():
        teacher = F.log_softmax(forward(ann, x), 1)

    def kl() -> float:
        out = simulate(ann, plans, x, steps)
        return float(F.kl_div(F.log_softmax(out, 1), teacher, log_target=True, reduction="batchmean"))

    lam = {k: p.theta for k, p in plans.items()}
    alphas = {k: 1.0 for k in plans}

    def set_alpha(site: str, a: float) -> None:
        p = plans[site]
        p.theta = p.unit = a * lam[site]
        p.v_init, p.theta_neg = p.theta / 2, theta_neg * p.theta

    best = kl()
    for _ in progress.track(range(rounds), "ecl: threshold search", unit="round"):
        for site in plans:
            keep = alphas[site]
            for a in SCALES:
                set_alpha(site, a)
                value = kl()
                if value < best - 1e-9:
                    best, keep = value, a
            alphas[site] = keep
            set_alpha(site, keep)
    return alphas


def compensate_bias(ann: AnnGraph, plans: dict[str, SitePlan], x: np.ndarray, steps: int,
                    rounds: int = 2) -> tuple[AnnGraph, dict[str, float]]:
    """Per-channel bias compensation of the mean conversion error, layer by layer:
    b_c += E[clip(z, 0, lam)] - E[rate] over samples and positions, z the time-averaged input of
    the neuron (bias included) and rate its output; only for sites fed directly by a dense/conv.
    Returns the ANN with the new biases and the mean |shift| per site."""
    shifts: dict[str, float] = {}
    xt = torch.as_tensor(np.asarray(x, np.float32))
    stacked = xt.repeat(steps, *([1] * (xt.dim() - 1)))
    for _ in progress.track(range(rounds), "ecl: bias compensation", unit="round"):
        for node in ann.acts():
            prod = ann.node(node.inputs[0])
            if prod.kind not in (AnnKind.DENSE, AnnKind.CONV) or len(ann.consumers(prod.name)) != 1:
                continue
            plan = plans[node.name]
            record: dict[str, torch.Tensor] = {}
            fns = {k: _dual_if_over_time(p, steps) for k, p in plans.items()}

            def over(n, z, fns=fns, record=record, site=node.name):
                out = fns[n.name](n, z)
                if n.name == site:
                    record["z"], record["o"] = z, out
                return out

            with torch.no_grad():
                forward(ann, stacked, override=over)
            z = record["z"].reshape(steps, len(xt), *record["z"].shape[1:]).mean(0)
            rate = record["o"].reshape(steps, len(xt), *record["o"].shape[1:]).mean(0)
            target = torch.clamp(z, 0.0, plan.ceiling)
            dims = [0] + list(range(2, z.dim()))
            delta = (target - rate).mean(dim=dims).double().numpy()
            b = prod.p("bias")
            b = np.zeros(len(delta)) if b is None else b.astype(np.float64)
            ann = with_params(ann, {prod.name: {"bias": (b + delta).astype(np.float32)}})
            shifts[node.name] = shifts.get(node.name, 0.0) + float(np.abs(delta).mean())
    return ann, shifts
