"""Float semantics of the ANN-to-SNN conversion neurons (``rsnn_compiler.ir.conversion_ops``).

Inputs are added onto the membrane one edge at a time in edge-list order, then the bias, in
float32 (as the IF neuron of ``float_interp``):

    DualThresholdIF   m = v + x + bias
                      s = +1 if cmp(m, theta); else -1 if m < theta_neg and c > 0; else 0
                      v = m - s*theta;  c = c + s
    MultiThreshold    m = v + x + bias;  n = clip(floor(m / theta), 0, levels)
                      v = m - n*theta (reset subtract)  or  v = v_init (reset zero)

The returned tensor is the node's output (s or n); the state object keeps ``v``, ``c`` and ``s``.
"""

from __future__ import annotations

import numpy as np
import torch

from rsnn_compiler.ir.conversion_ops import CONVERSION_OP_CLASSES, DualThresholdIF, MultiThreshold
from rsnn_compiler.ir.ops import Comparator, NeuronOp, ResetMode

DTYPE = torch.float32


def _t(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, dtype=np.float32))


def handles(op: NeuronOp) -> bool:
    return isinstance(op, CONVERSION_OP_CLASSES)


def _membrane(op, st, xs: list[torch.Tensor]) -> torch.Tensor:
    m = st.v
    for x in xs:
        m = m + x
    return m + _t(op.bias)


def step(op: NeuronOp, st, xs: list[torch.Tensor]) -> torch.Tensor:
    """Advance ``st`` (a ``float_interp.NeuronState``) one step; return s or n."""
    m = _membrane(op, st, xs)
    theta = _t(op.theta)
    if isinstance(op, DualThresholdIF):
        c = getattr(st, "c", None)
        if c is None or c.shape != m.shape:
            c = torch.zeros_like(m)
        pos = (m >= theta) if op.comparator is Comparator.GE else (m > theta)
        neg = (m < _t(op.theta_neg)) & (c > 0) & ~pos
        s = pos.to(DTYPE) - neg.to(DTYPE)
        st.v = m - theta * s
        st.c = c + s
    elif isinstance(op, MultiThreshold):
        s = torch.clamp(torch.floor(m / theta), 0.0, float(op.levels))
        if op.reset is ResetMode.ZERO:
            st.v = _t(op.v_init).expand_as(m).clone()
        else:
            st.v = m - theta * s
    else:  # pragma: no cover - guarded by handles()
        raise TypeError(type(op).__name__)
    st.s = s
    return s
