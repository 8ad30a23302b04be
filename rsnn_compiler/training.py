"""The training loop every fine-tune runs: ``passes/finetune.py`` (float graph, surrogate
gradients: pruning and ``--stock-neurons``) and ``backends/gpu/qat_finetune.py`` (the integer
model, straight-through gradients: ``rsnnc finetune``). The caller supplies one update step; the
loop owns the batch order, the learning-rate schedule, the progress display and the per-epoch loss.

For N samples in batches of B over E epochs there are U = E · ⌈N / B⌉ updates; update u
(0-based) gets the learning rate

    lr_u = lr · ½ (1 + cos(π u / U))        (cosine-annealed to 0; ``lr`` when ``cosine`` is off)

Epoch e visits the samples in the order of ``torch.randperm(N)`` drawn from one generator seeded
with ``seed`` (the last batch may be short): deterministic on the CPU. The loss recorded for an
epoch is the sample-weighted mean of the step losses.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from rsnn_compiler import progress


@dataclass(frozen=True)
class LoopConfig:
    epochs: int
    batch_size: int
    lr: float
    seed: int = 0
    cosine: bool = True


@dataclass
class LoopResult:
    updates: int = 0
    loss_per_epoch: list[float] = field(default_factory=list)
    train_seconds: float = 0.0  # time inside the update steps (not in ``after_epoch``)


Step = Callable[[np.ndarray, float], float]  # (sample indices, learning rate) -> batch loss


def train_loop(n: int, config: LoopConfig, step: Step, description: str,
               after_epoch: Callable[[int, float], str] | None = None) -> LoopResult:
    """Run ``config.epochs`` epochs of ``step`` over ``n`` samples; ``after_epoch(epoch, loss)``
    returns extra text for the progress line (e.g. a held-out accuracy)."""
    gen = torch.Generator().manual_seed(config.seed)
    per_epoch = -(-n // config.batch_size)
    total = max(config.epochs * per_epoch, 1)
    result = LoopResult()
    extra = ""
    with progress.task(description, config.epochs, "epoch") as bar:
        for epoch in range(config.epochs):
            order = torch.randperm(n, generator=gen).numpy()
            running = 0.0
            started = time.perf_counter()
            for b in range(per_epoch):
                idx = order[b * config.batch_size:(b + 1) * config.batch_size]
                lr = config.lr * 0.5 * (1 + math.cos(math.pi * result.updates / total)) if config.cosine else config.lr
                loss = step(idx, lr)
                result.updates += 1
                running += loss * len(idx)
                bar.advance(0, f"batch {b + 1}/{per_epoch}  loss {loss:.3f}{extra}")
            result.train_seconds += time.perf_counter() - started
            result.loss_per_epoch.append(running / max(n, 1))
            extra = after_epoch(epoch, result.loss_per_epoch[-1]) if after_epoch else ""
            bar.advance(1, f"loss {result.loss_per_epoch[-1]:.3f}{extra}")
    return result


__all__ = ["LoopConfig", "LoopResult", "Step", "train_loop"]
