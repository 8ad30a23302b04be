"""Models whose neurons take batch and time folded into one dimension (Sinabs ``*Squeeze`` layers).

Sinabs' ``SqueezeMixin`` layers (``IAFSqueeze``, ``LIFSqueeze``, ``ExpLeakSqueeze``) take a
``(batch*T, ...)`` tensor X and unfold it batch-major before running the ordinary layer:

    X.reshape(batch_size, num_timesteps, ...)     row b*T + t of X is sample b at step t

one of the two given at construction (the other is -1, inferred from X). The layers between them
(Linear, Conv, Pool, Flatten(start_dim=1)) act on each row alone, so the whole model is the same
network as with the non-squeeze layers; the compiler's input is time-major, so

    x (T, batch, ...) = X.reshape(batch, T, ...).swapaxes(0, 1)      X = x.swapaxes(0, 1).reshape(batch*T, ...)

This module checks that a model folds time one way only (``model_fold``), picks the fidelity input
the folded model accepts (``fidelity_input``) and runs the model's own forward on it
(``run_folded``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rsnn_compiler.errors import UserInputError


@dataclass(frozen=True)
class Fold:
    """How a layer unfolds its ``(batch*T, ...)`` input: ``X.reshape(batch_size, num_timesteps, ...)``;
    None where the layer infers that size from the input (Sinabs stores -1)."""

    batch_size: int | None
    num_timesteps: int | None

    def describe(self) -> str:
        parts = [f"batch_size={self.batch_size}" if self.batch_size else "",
                 f"num_timesteps={self.num_timesteps}" if self.num_timesteps else ""]
        return ", ".join(p for p in parts if p)

    def layout(self) -> str:
        """The input layout line of the import report."""
        b = self.batch_size or "B"
        t = self.num_timesteps or "T"
        return (f"WARNING: input layout: the model takes X ({b}*{t}, ...) with time folded into the batch dim"
                f" batch-major ({self.describe()}: row b*{t} + t is sample b at step t); rsnnc's data (calibration,"
                f" validation) and the built executors take x ({t}, {b}, ...) = X.reshape({b}, {t}, ...)"
                f".swapaxes(0, 1), and their outputs unfold back with out.swapaxes(0, 1).reshape({b}*{t}, ...)")


def model_fold(model: nn.Module, neurons: dict[str, Fold | None], custom: bool) -> Fold | None:
    """The one fold of a model's neuron layers (path -> its fold, None: not a squeeze layer), or
    None when no layer folds; refuses (one line) what the time-major graph cannot express."""
    folded = {p: f for p, f in neurons.items() if f is not None}
    if not folded:
        return None
    name = type(model).__name__
    first = next(iter(folded))
    plain = [p for p, f in neurons.items() if f is None]
    if plain:
        raise UserInputError(
            f"{name} mixes Sinabs squeeze layers ('{first}', input (batch*T, ...)) with neuron layers that take"
            f" another layout ('{plain[0]}'); use the squeeze variant for every neuron layer, or none (then the"
            " model takes (batch, T, ...))"
        )
    if custom:
        raise UserInputError(
            f"{name}: Sinabs squeeze layers take (batch*T, ...) tensors whose rows only nn.Sequential keeps"
            " apart; put the layers in an nn.Sequential to import them"
        )
    fold = folded[first]
    for path, other in folded.items():
        if other != fold:
            raise UserInputError(
                f"{name}: Sinabs squeeze layers '{first}' ({fold.describe()}) and '{path}' ({other.describe()})"
                " unfold (batch*T, ...) differently; give every squeeze layer the same batch_size (or the same"
                " num_timesteps)"
            )
    return fold


def fidelity_input(fold: Fold, calib_x, shape: tuple[int, ...], steps: int, batch: int,
                   max_batch: int) -> tuple[np.ndarray, str]:
    """x (T, batch, ...) for the fidelity check that the folded model accepts: the calibration data
    where it has enough steps and samples for the fixed sizes, else uniform [0, 1) random input."""
    if calib_x is not None:
        x = np.asarray(calib_x, dtype=np.float32)
        t = fold.num_timesteps or x.shape[0]
        b = fold.batch_size or min(x.shape[1], max_batch)
        if x.shape[0] >= t and x.shape[1] >= b:
            return x[:t, :b], f"calibration data (first {t} steps, {b} samples)"
    t = fold.num_timesteps or steps
    b = fold.batch_size or batch
    x = np.random.default_rng(0).random((t, b, *shape), dtype=np.float32)
    return x, f"uniform [0, 1) random input, seed 0, {t} steps, batch {b}"


def run_folded(model: nn.Module, modules: dict[str, nn.Module], x: np.ndarray) -> dict[str, np.ndarray]:
    """The model's own forward on X = x.swapaxes(0, 1).reshape(batch*T, ...) (x (T, batch, ...)),
    from rest: each path's output in ``modules``, unfolded to (T, batch, ...)."""
    steps, batch = x.shape[:2]
    rec: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, p=p: rec.__setitem__(p, out.detach().clone()))
             for p, m in modules.items()]
    folded = torch.as_tensor(np.ascontiguousarray(np.swapaxes(x, 0, 1))).reshape(batch * steps, *x.shape[2:])
    try:
        with torch.no_grad():
            model(folded)
    finally:
        for h in hooks:
            h.remove()
    return {p: v.reshape(batch, steps, *v.shape[1:]).transpose(0, 1).numpy() for p, v in rec.items()}
