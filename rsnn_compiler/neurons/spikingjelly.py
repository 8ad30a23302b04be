"""SpikingJelly's ``LIFNode`` and ``ParametricLIFNode`` charge equations (activation_based, 2.0).

With x the summed input (x_1 + x_2 ...) and k the node's tau (``LIFNode``, divided by) or
sigmoid(w) (``ParametricLIFNode``, multiplied by, as SpikingJelly's float32 ``w.sigmoid()``),
float32, no fused multiply-add, in SpikingJelly's order (``_ops/lif/reference.py``):

    charge tau_input    h = v + (x - (v - v_reset)) / k       (LIFNode, decay_input=True)
    charge tau          h = (v - (v - v_reset) / k) + x       (LIFNode, decay_input=False)
    charge rate_input   h = v + (x - (v - v_reset)) * k       (ParametricLIFNode, decay_input=True)
    charge rate         h = (v - (v - v_reset) * k) + x       (ParametricLIFNode, decay_input=False)
    s = h >= theta   (comparator ge)
    reset zero (hard, v_reset given):  v = s ? v_reset : h
    reset subtract (soft, v_reset=None, charged with v_reset = 0):  v = h - theta*s

Membranes start at v_reset (hard) or 0 (soft). Quantized as a LIF (``rewrite``): with d = 1/k
(tau) or k (rate), beta = 1 - d, gain = d (``*_input``) or 1, bias = d*v_reset.
"""

from __future__ import annotations

import enum

import numpy as np

from .enums import Comparator, ResetMode
from .family import Domain, Extension, Family, Param
from . import float_dynamics as fl


class Charge(enum.Enum):
    """SpikingJelly's charge equation (module docstring)."""

    TAU_INPUT = "tau_input"
    TAU = "tau"
    RATE_INPUT = "rate_input"
    RATE = "rate"


DIVIDES = (Charge.TAU_INPUT, Charge.TAU)
INPUT_DECAYS = (Charge.TAU_INPUT, Charge.RATE_INPUT)
RESETS = (ResetMode.ZERO, ResetMode.SUBTRACT)


def float_step(P, p, st, xs):
    x = fl.summed(xs)
    offset = st.v - p.v_reset
    if p.charge is Charge.TAU_INPUT:
        h = st.v + (x - offset) / p.k
    elif p.charge is Charge.TAU:
        h = (st.v - offset / p.k) + x
    elif p.charge is Charge.RATE_INPUT:
        h = st.v + (x - offset) * p.k
    else:
        h = (st.v - offset * p.k) + x
    return fl.fire(P, p, st, h, p.theta)


def rewrite(values: dict) -> tuple[str, dict]:
    """The LIF with the same real-valued update."""
    k = np.asarray(values["k"], np.float64)
    d = 1.0 / k if values["charge"] in DIVIDES else k
    gain = d if values["charge"] in INPUT_DECAYS else np.ones_like(d)
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return "lif", dict(
        beta=f32(1.0 - d), gain=f32(gain), bias=f32(d * np.asarray(values["v_reset"], np.float64)),
        theta=values["theta"], v_reset=values["v_reset"], v_init=values["v_init"],
        reset=values["reset"], comparator=values["comparator"],
    )


FLOAT = Family(
    "sj_lif", Domain.FLOAT,
    (Param("k", positive=True),) + tuple(Param(n) for n in ("theta", "v_reset", "v_init")) + (
        Param("charge", Charge.TAU_INPUT, per_neuron=False, choices=Charge),
        Param("reset", ResetMode.ZERO, per_neuron=False, choices=ResetMode, allowed=RESETS),
        Param("comparator", Comparator.GE, per_neuron=False, choices=Comparator)),
    ("v",), float_step, fl.derive, initial={"v": "v_init"}, takes_terms=True,
    doc="SpikingJelly LIFNode / ParametricLIFNode")

EXTENSIONS = (Extension("SJLIF", FLOAT, rewrite=rewrite),)
