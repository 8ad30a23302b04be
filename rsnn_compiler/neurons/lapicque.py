"""snnTorch's ``Lapicque`` neuron: an RC membrane with snnTorch's own three roundings of the input.

With ``r`` = R, ``rc_inv`` = 1/(R*C), ``ts`` = time_step and ``keep`` = 1 - time_step/(R*C), each
as snnTorch computes them in float32 (once, on import), and x the summed input (x_1 + x_2 ...),
float32, no fused multiply-add:

    base = ((x*r)*rc_inv)*ts + keep*v
    fire and reset as the IR's LIF (docs/ir.md): snnTorch's reset_mechanism 'subtract' is
    subtract_deferred, 'zero' is zero_hold, 'none' is none (the reset signal is the previous
    membrane above threshold); comparator gt

Quantized as a LIF (``rewrite``): beta = keep, gain = r*rc_inv*ts, bias = 0.
"""

from __future__ import annotations

import numpy as np

from .enums import Comparator, ResetMode
from .family import Domain, Extension, Family, Param
from . import float_dynamics as fl

RESETS = (ResetMode.SUBTRACT_DEFERRED, ResetMode.ZERO_HOLD, ResetMode.NONE)
PARAMS = ("r", "rc_inv", "ts", "keep", "theta", "v_reset", "v_init")


def float_step(P, p, st, xs):
    base = ((fl.summed(xs) * p.r) * p.rc_inv) * p.ts + p.keep * st.v
    return fl.fire(P, p, st, base, p.theta)


def rewrite(values: dict) -> tuple[str, dict]:
    """The LIF with the same real-valued update."""
    f64 = {k: np.asarray(values[k], np.float64) for k in ("r", "rc_inv", "ts")}
    return "lif", dict(
        beta=values["keep"], gain=(f64["r"] * f64["rc_inv"] * f64["ts"]).astype(np.float32),
        bias=np.zeros_like(np.asarray(values["keep"], np.float32)),
        theta=values["theta"], v_reset=values["v_reset"], v_init=values["v_init"],
        reset=values["reset"], comparator=values["comparator"],
    )


FLOAT = Family(
    "lapicque", Domain.FLOAT,
    tuple(Param(n) for n in PARAMS) + (
        Param("reset", ResetMode.SUBTRACT_DEFERRED, per_neuron=False, choices=ResetMode, allowed=RESETS),
        Param("comparator", Comparator.GT, per_neuron=False, choices=Comparator)),
    ("v",), float_step, fl.derive, initial={"v": "v_init"}, takes_terms=True,
    doc="snnTorch Lapicque (RC membrane)")

EXTENSIONS = (Extension("Lapicque", FLOAT, rewrite=rewrite),)
