"""Sinabs' ``IAF``/``LIF`` layers and their recurrent variants (sinabs 3.1, ``layers.functional.lif``).

Sinabs adds the recurrent input to the layer input before integrating (``x + rec_connect(s)``),
so x is the summed input x_1 + x_2 ... Float32, no fused multiply-add, in Sinabs' order:

    synapse exp:   i = a_syn*(i + x)        synapse none:  i = x          (tau_syn, a_syn = exp(-1/tau_syn))
    v = beta*v + g*i                        (IAF: beta = 1, g = 1; LIF: beta = exp(-1/tau_mem),
                                             g = 1 - beta with norm_input, else 1)
    spike single:  n = v >= theta           (SingleSpike: v - theta >= 0)
    spike multi:   n = (v > 0) * floor(v / theta), at most ``levels`` (MultiSpike: levels 0,
                   no bound; MaxSpike(m): levels m)
    reset subtract: v = v - n*theta         (MembraneSubtract)
    reset zero:     v = (n > 0 ? 0 : v) + v_reset     (MembraneReset(reset_value): the value is
                                             added to every neuron every step, as Sinabs does)

Membranes and currents start at 0. Quantized (``rewrite``) as a LIF / CubaLIF (single spike) or a
multi-spike LIF (``multispike``): alpha = a_syn and gain_i = a_syn with a synapse, gain_v = g;
MembraneReset(r) becomes a zero reset of w = v - r: bias = beta*r, v_init = v_init - r.
"""

from __future__ import annotations

import enum

import numpy as np

from .enums import Comparator, ResetMode
from .family import Domain, Extension, Family, Param
from . import float_dynamics as fl
from .multispike import FLOAT as LIF_MULTI

UNBOUNDED_LEVELS = 1 << 16  # the multi-spike LIF's bound for MultiSpike (no bound in Sinabs)


class Synapse(enum.Enum):
    NONE = "none"  # i = x
    EXP = "exp"  # i = a_syn*(i + x)


class Spikes(enum.Enum):
    SINGLE = "single"  # SingleSpike
    MULTI = "multi"  # MultiSpike / MaxSpike


RESETS = (ResetMode.SUBTRACT, ResetMode.ZERO)


def float_step(P, p, st, xs):
    x = fl.summed(xs)
    st.i = p.a_syn * (st.i + x) if p.synapse is Synapse.EXP else x
    v = p.beta * st.v + P.gain(p.gain, st.i)
    if p.spikes is Spikes.SINGLE:
        n = P.fires(v, p.theta, Comparator.GE)
    else:
        n = P.fires(v, 0.0, Comparator.GT) * P.floor(v / p.theta)
        if p.levels:
            n = P.clamp(n, 0.0, float(p.levels))
    if p.reset is ResetMode.ZERO:
        st.v = P.where(P.fired(n), 0.0, v) + p.v_reset
    else:
        st.v = v - P.nograd(n) * p.theta
    st.s = n
    return n


def rewrite(values: dict) -> tuple[str, dict]:
    """The LIF, CubaLIF or multi-spike LIF with the same real-valued update (module docstring)."""
    beta = np.asarray(values["beta"], np.float64)
    r = np.asarray(values["v_reset"], np.float64) if values["reset"] is ResetMode.ZERO else np.zeros_like(beta)
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    ones = np.ones_like(beta)
    a_syn = np.asarray(values["a_syn"], np.float64)
    syn = values["synapse"] is Synapse.EXP
    common = dict(beta=f32(beta), bias=f32(beta * r), theta=values["theta"], v_reset=f32(np.zeros_like(beta)),
                  v_init=f32(np.asarray(values["v_init"], np.float64) - r), reset=values["reset"])
    if values["spikes"] is Spikes.MULTI:
        return LIF_MULTI.name, dict(common, alpha=f32(a_syn if syn else 0 * ones), gain_i=f32(a_syn if syn else ones),
                                    gain_v=f32(values["gain"]), levels=int(values["levels"]) or UNBOUNDED_LEVELS)
    common["comparator"] = Comparator.GE
    if syn:
        return "cuba_lif", dict(common, alpha=f32(a_syn), gain_i=f32(a_syn), gain_v=f32(values["gain"]))
    return "lif", dict(common, gain=f32(values["gain"]))


FLOAT = Family(
    "sinabs", Domain.FLOAT,
    tuple(Param(n) for n in ("a_syn", "beta", "gain")) + (Param("theta", positive=True),)
    + tuple(Param(n) for n in ("v_reset", "v_init")) + (
        Param("synapse", Synapse.NONE, per_neuron=False, choices=Synapse),
        Param("spikes", Spikes.MULTI, per_neuron=False, choices=Spikes),
        Param("levels", 0, per_neuron=False),
        Param("reset", ResetMode.SUBTRACT, per_neuron=False, choices=ResetMode, allowed=RESETS)),
    ("i", "v"), float_step, fl.derive, initial={"v": "v_init"}, takes_terms=True,
    doc="Sinabs IAF / LIF (single or multi spike)")

EXTENSIONS = (Extension("Sinabs", FLOAT, rewrite=rewrite),)
