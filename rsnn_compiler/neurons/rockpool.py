"""Rockpool's ``LIFTorch`` (rockpool 3.1, ``nn.modules.torch.lif_torch``): exact exponential
decays and spike counts.

With alpha = exp(-dt/tau_mem) and beta = exp(-dt/tau_syn) as Rockpool computes them in float32
(``torch.exp(-dt / tau)``, once on import), one synapse per neuron, inputs (then the recurrent
input ``W_rec s``) added one at a time onto the current, float32, no fused multiply-add:

    i = ((i + x_1) + x_2 ...) * beta           (the input is scaled by beta in its first step)
    v = (alpha*v + i) + bias
    n = (v >= theta) * floor(v / theta), at most ``levels`` (max_spikes_per_dt, 2^16 by default)
    v = v - n*theta

Membranes and currents start at 0. Quantized (``rewrite``) as a multi-spike LIF: alpha = beta,
gain_i = beta (i(t) = beta*i(t-1) + beta*x(t)), beta = alpha, gain_v = 1.
"""

from __future__ import annotations

import numpy as np

from .enums import Comparator, ResetMode
from .family import Domain, Extension, Family, Param
from . import float_dynamics as fl
from .multispike import FLOAT as LIF_MULTI


def float_step(P, p, st, xs):
    st.i = p.beta * fl.accumulate(P, st.i, None, xs)
    v = (p.alpha * st.v + st.i) + p.bias
    n = P.clamp(P.fires(v, p.theta, Comparator.GE) * P.floor(v / p.theta), 0.0, float(p.levels))
    st.v = v - P.nograd(n) * p.theta
    st.s = n
    return n


def rewrite(values: dict) -> tuple[str, dict]:
    """The multi-spike LIF with the same real-valued update."""
    beta = np.asarray(values["beta"], np.float32)
    return LIF_MULTI.name, dict(
        alpha=beta, gain_i=beta, beta=values["alpha"], gain_v=np.ones_like(beta), bias=values["bias"],
        theta=values["theta"], v_reset=np.zeros_like(beta), v_init=values["v_init"], levels=int(values["levels"]),
        reset=ResetMode.SUBTRACT,
    )


FLOAT = Family(
    "rockpool", Domain.FLOAT,
    tuple(Param(n) for n in ("alpha", "beta", "bias")) + (Param("theta", positive=True), Param("v_init")) + (Param("levels", 1 << 16, per_neuron=False),),
    ("i", "v"), float_step, fl.derive, initial={"v": "v_init"}, takes_terms=True,
    doc="Rockpool LIFTorch (exact decays, spike counts)")

EXTENSIONS = (Extension("Rockpool", FLOAT, rewrite=rewrite),)
