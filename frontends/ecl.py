"""ECL-style conversion (Liu et al., ICML 2025; reconstruction, see docs/conversion.md):
a clipping threshold lam per layer, dual-threshold IF neurons, membrane initialised at theta/2.

- lam is read from a clip / QCFS activation already in the ANN. For a ReLU ANN it is learned by
  a short fine-tune on the calibration data: every ReLU becomes the T-level clip
      a = lam/T * clip(floor(z T / lam + 1/2), 0, T)     (straight-through floor)
  with lam a trainable scalar per call site (initialised at the 99th percentile), trained with
  the weights against the ANN's own outputs (KL divergence) plus cross-entropy when labels are
  given. Neurons then use theta = lam.
- Neuron: m = v + x + b; +1 if m >= theta; -1 if m < theta_neg and the net count c > 0;
  v = m - s*theta; v(0) = theta/2; theta_neg = ``theta_neg`` * theta (default 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontends.ann_graph import ActKind, ActSpec, AnnGraph, AnnKind, forward, with_params
from rsnn_compiler.frontends.snn_build import NeuronKind, SitePlan


@dataclass
class FinetuneInfo:
    epochs: int = 0
    samples: int = 0
    lam_init: dict[str, float] = field(default_factory=dict)
    lam: dict[str, float] = field(default_factory=dict)
    loss_first: float | None = None
    loss_last: float | None = None
    used_labels: bool = False


def _ste_floor(u: torch.Tensor) -> torch.Tensor:
    return u + (torch.floor(u) - u).detach()


def finetune_clip(ann: AnnGraph, x: np.ndarray, y: np.ndarray | None, acts: dict[str, np.ndarray],
                  steps: int, epochs: int = 30, lr: float = 3e-3, seed: int = 0,
                  batch: int = 64) -> tuple[AnnGraph, FinetuneInfo]:
    """Learn lam per ReLU/clip site (and adapt the weights) for ``steps`` quantisation levels."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is much faster than contended ones
    try:
        return _finetune(ann, x, y, acts, steps, epochs, lr, seed, batch)
    finally:
        torch.set_num_threads(threads)


def _finetune(ann, x, y, acts, steps, epochs, lr, seed, batch) -> tuple[AnnGraph, FinetuneInfo]:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    info = FinetuneInfo(epochs=epochs, samples=len(x), used_labels=y is not None)
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

    def act(node, z):
        lam = lams[node.name].clamp_min(1e-4)
        return lam / steps * torch.clamp(_ste_floor(z * steps / lam + 0.5), 0, steps)

    xt = torch.as_tensor(np.asarray(x, np.float32))
    with torch.no_grad():
        teacher = forward(ann, xt)
    yt = None if y is None else torch.as_tensor(np.asarray(y, np.int64))
    weights = [p for d in params.values() for p in d.values()]
    opt = torch.optim.Adam([{"params": weights, "lr": lr}, {"params": list(lams.values()), "lr": 10 * lr}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    n = len(xt)
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            out = forward(ann, xt[idx], override=act, params=params)
            loss = F.kl_div(F.log_softmax(out, 1), F.log_softmax(teacher[idx], 1), log_target=True,
                            reduction="batchmean")
            if yt is not None:
                loss = loss + F.cross_entropy(out, yt[idx])
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


def needs_finetune(ann: AnnGraph) -> bool:
    return any(n.p("spec").kind is ActKind.RELU for n in ann.acts())
