"""qat_finetune: quantization-aware fine-tuning of a fixed-point graph (the deployed integers).

The forward pass is the integer model itself (``FixedPointModule``: exact int64 values with
straight-through gradients), so what is trained is exactly what every executor runs. Trainable:
synapse weight mantissas (through float64 shadows) and dense biases; neuron constants stay.
Zero mantissas stay zero (the module's mask), so a pruned graph keeps its sparsity.

Loss, per batch of (x (T, B, *in), y (B,)) with ``logits = scale · out.sum(0)``:

    CE(logits, y)                                             (no distillation)
    (1 − α) · CE(logits, y) + α · τ² · KL(p_teacher,τ ‖ p_student,τ)   (``distill``)

where p_·,τ = softmax(logits / τ) and the teacher logits are the float model's ``out.sum(0)``
with its own scale. ``scale`` is 0.5 for spike-count outputs (as the float fine-tune) and
4 / (99th percentile of |out.sum(0)| on the first training batch) for value readouts.

Optimiser: Adam with the step measured in mantissa units of each row: a weight with exponent e
in a ``b``-bit layer moves by about ``lr · 2^e · (2^(b−1) − 1)`` per update (the learning rate
is a fraction of the mantissa range, so 4-bit and 8-bit layers move alike); the learning rate is
cosine-annealed to 0 and batches are drawn with a seeded generator by the loop every fine-tune
shares (``rsnn_compiler.training``): deterministic on the CPU. The
weights after the last epoch are exported (no selection on held-out data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler.accuracy import EvalData
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.finetune_build import FINETUNE_PASS, QatOptions
from rsnn_compiler.ir.fixed_ops import FixedDense, _FixedConv
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.passes.finetune import float_logit_scale, spiking_output
from rsnn_compiler.passes_api import PassContext, PassReport, Prop
from rsnn_compiler.training import LoopConfig, train_loop

from rsnn_compiler.backends.gpu.qat import FixedPointModule
from rsnn_compiler.backends.gpu.runtime import GraphRuntime



@dataclass
class QatFinetuneReport(PassReport):
    epochs: int = 0
    updates: int = 0
    batch_size: int = 0
    lr: float = 0.0
    distill: bool = False
    train_data: str = ""
    train_samples: int = 0
    holdout_data: str | None = None
    holdout_samples: int = 0
    accuracy_before: float | None = None  # percent, on the held-out data (fixed-point graph)
    accuracy_after: float | None = None
    accuracy_per_epoch: list[float] = field(default_factory=list)  # held-out, percent
    loss_per_epoch: list[float] = field(default_factory=list)
    nonzero_weights_before: int = 0
    nonzero_weights_after: int = 0
    changed_weights: int = 0  # mantissas that differ from the input graph
    logit_scale: float = 0.0
    sample_steps_per_second: float = 0.0


def nonzero_weights(graph: Graph) -> int:
    return int(sum(np.count_nonzero(op.weight) for op in graph.nodes.values()
                   if isinstance(op, (FixedDense, _FixedConv))))


def predict(graph: Graph, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """``argmax(out.sum(0))`` of the exact integer run (GPU runtime, bit-identical to run_fixed)."""
    rt = GraphRuntime(graph, device="cpu", record=False)
    preds = []
    for start in range(0, x.shape[1], batch):
        out = rt.run(x[:, start:start + batch], record=False).out
        total = out.reshape(out.shape[0], out.shape[1], -1).astype(np.float64).sum(0)
        preds.append(total.argmax(axis=-1))
    return np.concatenate(preds) if preds else np.zeros(0, np.int64)


def accuracy_percent(graph: Graph, data: EvalData) -> float:
    return float(np.mean(predict(graph, data.x) == data.y) * 100.0)


def teacher_logits(teacher: Graph, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """The float model's ``out.sum(0)`` times the float fine-tune's logit scale."""
    from rsnn_compiler.interpreter.float_interp import run_float

    scale = float_logit_scale(teacher, x.shape[0])
    parts = []
    for start in range(0, x.shape[1], batch):
        out = run_float(teacher, x[:, start:start + batch], record=False).out
        parts.append(out.reshape(out.shape[0], out.shape[1], -1).astype(np.float64).sum(0) * scale)
    return np.concatenate(parts)


class _RowScaledAdam:
    """Adam whose step for each element is ``lr · unit`` (``unit`` broadcast per row)."""

    def __init__(self, params: list[torch.Tensor], units: list[torch.Tensor], betas=(0.9, 0.999), eps=1e-8):
        self.params, self.units, self.betas, self.eps = params, units, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self, lr: float) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, unit, m, v in zip(self.params, self.units, self.m, self.v):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.sub_(lr * unit * (m / c1) / ((v / c2).sqrt() + self.eps))


def _units(module: FixedPointModule) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    params, units = [], []
    for name, key in module.synapse_keys.items():
        op = module.graph.nodes[name]
        w = module.shadow_weights[key]
        e = torch.as_tensor(np.asarray(op.weight_exp, np.float64)).reshape((-1,) + (1,) * (w.ndim - 1))
        mant = float((1 << (op.weight_bits - 1)) - 1) if module.profile != "loihi2" else 254.0
        unit = (torch.exp2(e) * mant).to(w.device)
        params.append(w)
        units.append(unit)
        if key in module.shadow_biases:  # a bias moves like a full-range weight of its row
            b = module.shadow_biases[key]
            params.append(b)
            units.append(unit.reshape(-1).expand_as(b).clone() if unit.numel() == b.numel()
                         else torch.full_like(b, float(unit.mean())))
    return params, units


def train_fixed(graph: Graph, options: QatOptions, progress=lambda msg: None) -> tuple[Graph, QatFinetuneReport]:
    """Fine-tune ``graph`` (fixed point) on ``options.train``; returns the tuned graph and report."""
    cfg = options.config
    if graph.attrs.domain is not Domain.FIXED:
        raise UserInputError("qat_finetune needs a fixed-point graph; quantize the model first")
    train = options.train
    if train.y is None:
        raise UserInputError(f"{train.label} has no labels 'y'; the fine-tune needs labelled data")
    cfg.check()
    if cfg.distill and options.teacher is None:
        raise UserInputError("distillation needs the float model of the build (graph.float.rsnn)")
    report = QatFinetuneReport(
        name="qat_finetune", epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, distill=cfg.distill,
        train_data=train.label, train_samples=int(train.x.shape[1]),
        nonzero_weights_before=nonzero_weights(graph),
    )
    if options.holdout is not None:
        report.holdout_data = options.holdout.label
        report.holdout_samples = int(options.holdout.x.shape[1])
        report.accuracy_before = accuracy_percent(graph, options.holdout)

    torch.manual_seed(cfg.seed)
    module = FixedPointModule(graph, device="cpu", surrogate_slope=cfg.surrogate_slope)
    params, units = _units(module)
    opt = _RowScaledAdam(params, units)
    x_all = np.ascontiguousarray(train.x)
    y_all = torch.from_numpy(np.asarray(train.y, np.int64))
    n = x_all.shape[1]
    teacher = None
    if cfg.distill:
        progress("qat_finetune: running the float model on the training data (distillation targets)")
        teacher = torch.from_numpy(teacher_logits(options.teacher, x_all))
    scale = cfg.logit_scale
    if scale is None:
        if spiking_output(graph):
            scale = 0.5
        else:
            with torch.no_grad():
                first = module(x_all[:, : min(n, cfg.batch_size)]).sum(0)
            p99 = float(torch.quantile(first.abs().flatten(), 0.99)) if first.numel() else 0.0
            scale = 4.0 / p99 if p99 > 0 else 1.0
    report.logit_scale = float(scale)

    def step(idx: np.ndarray, lr: float) -> float:
        idx = np.sort(idx)
        logits = module(x_all[:, idx]).sum(0).reshape(len(idx), -1) * scale
        loss = F.cross_entropy(logits, y_all[idx])
        if teacher is not None:
            tau = cfg.temperature
            kd = F.kl_div(F.log_softmax(logits / tau, -1), F.log_softmax(teacher[idx] / tau, -1),
                          log_target=True, reduction="batchmean") * tau * tau
            loss = (1 - cfg.alpha) * loss + cfg.alpha * kd
        for p in params:
            p.grad = None
        loss.backward()
        if cfg.max_grad_norm:
            _clip_relative(params, units, cfg.max_grad_norm)
        opt.step(lr)
        return float(loss.detach())

    def after_epoch(epoch: int, loss: float) -> str:
        held = ""
        if options.holdout is not None:
            acc = accuracy_percent(module.export_fixed_graph(), options.holdout)
            report.accuracy_per_epoch.append(acc)
            held = f"  held-out {acc:.2f}%"
        progress(f"qat_finetune: epoch {epoch + 1}/{cfg.epochs}, training loss {loss:.4f}{held}")
        return held

    loop = train_loop(n, LoopConfig(cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed), step, "qat_finetune",
                      after_epoch)
    report.updates, report.loss_per_epoch = loop.updates, loop.loss_per_epoch
    train_time = loop.train_seconds
    steps = x_all.shape[0]
    report.sample_steps_per_second = cfg.epochs * n * steps / train_time if train_time > 0 else 0.0
    tuned = module.export_fixed_graph()
    report.nonzero_weights_after = nonzero_weights(tuned)
    report.changed_weights = int(sum(np.count_nonzero(op.weight != graph.nodes[k].weight)
                                     for k, op in tuned.nodes.items() if isinstance(op, (FixedDense, _FixedConv))))
    if options.holdout is not None:
        report.accuracy_after = report.accuracy_per_epoch[-1]
    return tuned, report


def _clip_relative(params, units, max_norm: float) -> None:
    """Clip the gradient measured in each parameter's own units (``unit · grad``) to ``max_norm``."""
    grads = [(p.grad * u) for p, u in zip(params, units) if p.grad is not None]
    if not grads:
        return
    norm = float(torch.sqrt(sum((g * g).sum() for g in grads)))
    if norm > max_norm:
        for p in params:
            if p.grad is not None:
                p.grad.mul_(max_norm / norm)


class QatFinetune:
    """Pass wrapper: reads ``ctx.options.of(QatOptions)`` (required: it holds the training data)."""

    name: ClassVar[str] = FINETUNE_PASS
    option_types: ClassVar[tuple[type, ...]] = (QatOptions,)
    requires: ClassVar[frozenset[str]] = frozenset({Prop.QUANTIZED})
    establishes: ClassVar[frozenset[str]] = frozenset()
    invalidates: ClassVar[frozenset[str]] = frozenset()
    forbids: ClassVar[frozenset[str]] = frozenset()

    def run(self, graph: Graph, ctx: PassContext) -> tuple[Graph, QatFinetuneReport]:
        if not ctx.options.given(QatOptions):
            raise UserInputError("qat_finetune needs training data: PassContext(options=[QatOptions(...)])")
        options = ctx.options.of(QatOptions)
        tuned, report = train_fixed(graph, options, ctx.progress)
        where = f" on {report.holdout_data}" if report.holdout_data else ""
        acc = (f"; accuracy {report.accuracy_before:.2f}% -> {report.accuracy_after:.2f}%{where}"
               if report.accuracy_after is not None else "")
        report.reason = (f"{report.epochs} epochs on {report.train_data} ({report.train_samples} samples"
                         f"{', distilled from the float model' if report.distill else ''}){acc}")
        return tuned, report


__all__ = ["QatFinetune", "QatFinetuneReport", "accuracy_percent", "nonzero_weights", "predict",
           "train_fixed"]
