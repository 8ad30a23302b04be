"""Izhikevich neuron (Izhikevich 2003), one forward-Euler step per IR step, float and fixed.

With the quadratic coefficients as parameters (0.04, 5, 140 in the paper's mV/ms units), ``dt``
the step (ms) and ``a`` the recovery rate per step (the paper's a times dt):

    float   m = (((p2*v)*v + p1*v) + p0) - w + g*x_1 + g*x_2 ...   (inputs one at a time)
            v' = v + dt*m;  w' = w + a*(b*v - w)            (both from the previous v, w)
            s = cmp(v', theta)   (theta = 30 mV peak; comparator ge)
            v = s ? c : v';  w = w' + d*s
    fixed   q = trunc0(v*v / 2^sq_shift)                    (v^2 in state units: sq_shift = log2 S)
            m = frac(q, p2) + frac(v, p1) + p0 - w + (x << input_shift) + bias
                                               (bias: the feeding synapses' biases, in state units)
            v' = ovf_v(v + frac(m, dt));  w' = ovf_v(w + frac(frac(v, b) - w, a))
            s = cmp(v', theta);  v = s ? c : v';  w = ovf_v(w' + d*s)
    frac(y, k) = trunc0(y*k / 4096) with k a 12-bit fixed-point factor (5.0 -> 20480)

Quantization at state scale S = 2^k: p2, p1, dt, a, b -> round(x*4096); p0, c, d, theta, v_init,
w_init -> round(x*S); sq_shift = k. The recovery state is called ``w`` (``u`` is a current
elsewhere in the compiler).
"""

from __future__ import annotations

import math

import numpy as np

from .enums import Comparator
from .intmath import DECAY_ONE
from .family import Domain, Family, Param
from . import fixed_dynamics as fx
from . import float_dynamics as fl

OP_NAME = "Izhikevich"  # the IR ops: Izhikevich (float) and FixedIzhikevich (generated, ir/family_ops.py)
FRAC_ONE = DECAY_ONE  # 12-bit fractions k/4096, as the decays

_CMP = Param("comparator", Comparator.GE, per_neuron=False, choices=Comparator)
COEFFS = ("p2", "p1", "p0", "dt", "a", "b", "c", "d")


def float_step(P, p, st, xs):
    m = fl.accumulate(P, ((p.p2 * st.v) * st.v + p.p1 * st.v) + p.p0 - st.w, p.gain, xs)
    v = st.v + p.dt * m
    w = st.w + p.a * (p.b * st.v - st.w)
    s = P.fires(v, p.theta, p.comparator)
    st.v = P.where(P.fired(s), p.c, v)
    st.w = w + p.d * P.nograd(s)
    st.s = s
    return s


def fixed_step(P, p, st, x):
    q = P.mul_shift(st.v, st.v, p.sq_shift)
    m = P.let(P.mul_shift(q, p.p2, 12) + P.mul_shift(st.v, p.p1, 12) + p.p0 - st.w
              + P.lshift(x, p.input_shift) + p.bias, "m")
    v = P.let(fx.ovf_v(P, p, st.v + P.mul_shift(m, p.dt, 12)), "vn")
    w = P.let(fx.ovf_v(P, p, st.w + P.mul_shift(P.mul_shift(st.v, p.b, 12) - st.w, p.a, 12), "w"), "wn")
    s = P.let(P.cmp(v, p.theta, p.comparator), "sp")
    st.v = P.where(P.fired(s), p.c, v)
    st.w = fx.ovf_v(P, p, w + s * p.d, "w")
    st.s = s
    return s


def quantize(values: dict, S: float, common: dict) -> dict:
    """Fixed Izhikevich parameters for float ``values`` at state scale ``S`` (a power of two)."""
    r = lambda a: np.sign(a) * np.floor(np.abs(a) + 0.5)  # noqa: E731 (round half away)
    f64 = lambda name: np.asarray(values[name], np.float64)  # noqa: E731
    hi = (1 << (common["v_bits"] - 1)) - 1
    out = dict(common, sq_shift=int(round(math.log2(S))), comparator=values["comparator"])
    for name in ("p2", "p1", "dt", "a", "b"):
        out[name] = r(f64(name) * FRAC_ONE)
    for name in ("p0", "c", "d", "v_init", "w_init"):
        out[name] = np.clip(r(f64(name) * S), -hi, hi)
    out["vth"] = np.clip(r(f64("theta") * S / 2.0 ** common["vth_shift"]), 1, None)
    return out


FLOAT = Family(
    "izhikevich", Domain.FLOAT,
    tuple(Param(n) for n in COEFFS + ("gain", "theta", "v_init", "w_init")) + (_CMP,),
    ("v", "w"), float_step, fl.derive, initial={"v": "v_init", "w": "w_init"}, takes_terms=True,
    doc="Izhikevich neuron, forward Euler")

FIXED = Family(
    "izhikevich", Domain.FIXED,
    fx.MEMBRANE + tuple(Param(n) for n in COEFFS) + (Param("w_init", 0), Param("sq_shift", 0, per_neuron=False))
    + fx.THRESHOLD + (_CMP,),
    ("v", "w"), fixed_step, fx.derive, initial={"v": "v_init", "w": "w_init"}, binary=True,
    squares_states=True,
    doc="Izhikevich neuron with the v^2 term in fixed point")
