"""snnTorch 1.0's ``Alpha`` and ``Lapicque`` neurons as IR ops with snnTorch's own arithmetic.

Their per-step constants are computed with torch from the module's own tensors, exactly as
snnTorch's forward computes them each step, and stored as float32:

    Alpha     alpha, beta clamped to [0, 1]; tau = log(alpha)/(log(beta) - log(alpha)) + 1   -> Alpha
    Lapicque  r = R, rc_inv = 1/(R*C), ts = time_step, keep = 1 - time_step/(R*C)           -> Lapicque

Both reset from the previous membrane (snnTorch's ``mem_reset``): reset_mechanism 'subtract' is
the IR's subtract_deferred, 'zero' zero_hold, 'none' none (equations: rsnn_compiler/neurons/alpha.py,
lapicque.py). Both fire on mem > threshold.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.family_ops import Alpha, Lapicque
from rsnn_compiler.ir.ops import Comparator, Op, ResetMode

from rsnn_compiler.frontends.peer_modules import per_neuron

CELLS = ("Alpha", "Lapicque")
RESETS = {0: ResetMode.SUBTRACT_DEFERRED, 1: ResetMode.ZERO_HOLD, 2: ResetMode.NONE}


def _f32(value: torch.Tensor, shape, what: str, path: str) -> np.ndarray:
    return per_neuron(value, tuple(shape), what, path, "snnTorch")


def _float32_tensors(m: nn.Module, names, path: str) -> None:
    """Per-neuron float64 buffers make snnTorch compute in float64, which the IR does not."""
    for name in names:
        t = getattr(m, name)
        if isinstance(t, torch.Tensor) and t.dim() > 0 and t.dtype == torch.float64:
            raise UserInputError(f"snnTorch module '{path}': {name} is a float64 tensor, so snnTorch computes in"
                                 " float64; give it as float32")


def cell_op(m: nn.Module, path: str, shape) -> tuple[Op, str]:
    """The IR op of an snnTorch Alpha or Lapicque module and a note for the import report."""
    kind = type(m).__name__
    reset = RESETS[int(m.reset_mechanism_val)]
    theta = _f32(torch.as_tensor(m.threshold), shape, "threshold", path)
    zeros = np.zeros(shape, np.float32)
    with torch.no_grad():
        if kind == "Alpha":
            _float32_tensors(m, ("alpha", "beta", "threshold"), path)
            a, b = m.alpha.clamp(0, 1), m.beta.clamp(0, 1)
            tau = torch.log(a) / (torch.log(b) - torch.log(a)) + 1  # snnTorch's tau_alpha
            op = Alpha(alpha=_f32(a, shape, "alpha", path), beta=_f32(b, shape, "beta", path),
                       tau=_f32(tau, shape, "alpha", path), theta=theta, v_init=zeros, reset=reset,
                       comparator=Comparator.GT)
            return op, f"'{path}': snnTorch Alpha, tau_alpha {float(np.max(op.tau)):g}, reset {reset.value}"
        _float32_tensors(m, ("R", "C", "time_step", "threshold"), path)
        R, C, ts = m.R, m.C, m.time_step
        op = Lapicque(r=_f32(torch.as_tensor(R) * 1.0, shape, "R", path),
                      rc_inv=_f32(1 / (R * C), shape, "C", path), ts=_f32(ts * 1.0, shape, "time_step", path),
                      keep=_f32(1 - (ts / (R * C)), shape, "C", path), theta=theta, v_reset=zeros, v_init=zeros,
                      reset=reset, comparator=Comparator.GT)
    if not np.all(np.isfinite(op.keep)) or np.any(op.keep < 0) or np.any(op.keep > 1):
        raise UserInputError(f"snnTorch Lapicque '{path}': 1 - time_step/(R*C) = {float(np.min(op.keep)):g} is not a"
                             " decay in [0, 1]; give time_step <= R*C")
    return op, f"'{path}': snnTorch Lapicque, keep {float(np.max(op.keep)):g}, reset {reset.value}"
