"""GLIF: the gated LIF of Yao et al. (NeurIPS 2022), float and fixed point.

Three gates in [0, 1] blend two choices each: ``alpha`` exponential decay (tau) vs linear leak,
``beta`` conductance-scaled vs plain integration, ``gamma`` hard vs soft reset (applied at the
next step from the previous spike). With the gates already squashed (the trainable module keeps
their logits):

    float   keep = 1 - alpha*(1 - tau);  g_in = 1 - beta*(1 - conduct)   (derived once, float32)
            kv = keep*v
            u = ((kv - (1 - alpha)*leak) + x_1*g_in + x_2*g_in ...) + bias
            u = (u - (kv*gamma)*s_prev) - ((1 - gamma)*v_subreset)*s_prev
            s = cmp(u, theta);  v = u
    fixed   kv = frac(v, keep)
            u = kv - leak + frac(x << input_shift, g_in) + bias - s_prev*(frac(kv, gamma) + subreset)
            v = ovf_v(u);  s = cmp(v, theta)
    frac(y, k) = trunc0(y*k / 4096) with k a 12-bit fraction; leak, subreset in state units:
    the fixed op holds keep, g_in, gamma as fractions and leak = (1 - alpha)*leak*S,
    subreset = (1 - gamma)*v_subreset*S.

SpikingJelly's ``GatedLIFNode`` has the same update with one conductance per time step; the IR
(and ``rsnn_compiler.nn.GLIF``) has one per neuron.
"""

from __future__ import annotations

import numpy as np

from .enums import Comparator
from .intmath import DECAY_ONE
from .family import Domain, Family, Namespace, Param
from . import fixed_dynamics as fx
from . import float_dynamics as fl

OP_NAME = "GLIF"  # the IR ops: GLIF (float) and FixedGLIF (generated, ir/family_ops.py)
FRAC_ONE = DECAY_ONE  # 12-bit fractions k/4096, as the decays
GATES = ("alpha", "beta", "gamma", "tau", "conduct")
_CMP = Param("comparator", Comparator.GE, per_neuron=False, choices=Comparator)


def float_derive(p: Namespace) -> Namespace:
    """keep, g_in, leak and soft-reset terms in the parameters' float32 (numpy arrays or torch
    tensors alike: a Python 1.0 does not widen them), in the reference order."""
    d = fl.derive(p)
    d.keep = 1.0 - p.alpha * (1.0 - p.tau)
    d.g_in = 1.0 - p.beta * (1.0 - p.conduct)
    d.leak_term = (1.0 - p.alpha) * p.leak
    d.soft = (1.0 - p.gamma) * p.v_subreset
    return d


def float_step(P, p, st, xs):
    kv = p.keep * st.v
    u = fl.accumulate(P, kv - p.leak_term, p.g_in, xs) + p.bias
    prev = P.nograd(st.s)
    u = (u - (kv * p.gamma) * prev) - p.soft * prev
    s = P.fires(u, p.theta, p.comparator)
    st.v, st.s = u, s
    return s


def fixed_step(P, p, st, x):
    kv = P.let(P.mul_shift(st.v, p.keep, 12), "kv")
    u = (kv - p.leak + P.mul_shift(P.lshift(x, p.input_shift), p.g_in, 12) + p.bias
         - st.s * (P.mul_shift(kv, p.gamma, 12) + p.subreset))
    v = P.let(fx.ovf_v(P, p, u), "vn")
    s = P.cmp(v, p.theta, p.comparator)
    st.v, st.s = v, s
    return s


def quantize(values: dict, S: float, common: dict) -> dict:
    """Fixed GLIF parameters for float ``values`` at state scale ``S``."""
    r = lambda a: np.sign(a) * np.floor(np.abs(a) + 0.5)  # noqa: E731 (round half away)
    f = {k: np.asarray(values[k], np.float64) for k in GATES + ("leak", "v_subreset", "theta", "v_init")}
    hi = (1 << (common["v_bits"] - 1)) - 1
    frac = lambda a: np.clip(r(a * FRAC_ONE), 0, FRAC_ONE)  # noqa: E731
    return dict(
        common, comparator=values["comparator"],
        keep=frac(1 - f["alpha"] * (1 - f["tau"])), g_in=frac(1 - f["beta"] * (1 - f["conduct"])),
        gamma=frac(f["gamma"]),
        leak=np.clip(r((1 - f["alpha"]) * f["leak"] * S), -hi, hi),
        subreset=np.clip(r((1 - f["gamma"]) * f["v_subreset"] * S), -hi, hi),
        vth=np.clip(r(f["theta"] * S / 2.0 ** common["vth_shift"]), 1, None),
        v_init=np.clip(r(f["v_init"] * S), -hi, hi),
    )


FLOAT = Family(
    "glif", Domain.FLOAT,
    tuple(Param(n) for n in GATES + ("leak", "v_subreset", "bias", "theta", "v_init")) + (_CMP,),
    ("v",), float_step, float_derive, initial={"v": "v_init"}, takes_terms=True,
    doc="gated LIF (leak, integration and reset gates)")

FIXED = Family(
    "glif", Domain.FIXED,
    fx.MEMBRANE + tuple(Param(n) for n in ("keep", "g_in", "gamma", "leak", "subreset"))
    + fx.THRESHOLD + (_CMP,),
    ("v",), fixed_step, fx.derive, initial={"v": "v_init"}, binary=True,
    doc="gated LIF (leak, integration and reset gates)")
