"""TC-LIF: the two-compartment LIF of Zhang et al. (AAAI 2024), float and fixed point.

A dendritic compartment ``d`` integrates the input and is coupled to the somatic membrane ``v``,
which fires; a spike resets both (soft reset, the paper's default) or sets v to v_reset (hard).
Per step, inputs added one at a time in edge-list order, float32, no fused multiply-add:

    float   d = ((d - beta_d*v) + g*x_1 + g*x_2 ...) + bias
            v = v + beta_s*d
            s = cmp(v, theta)
            reset subtract: d = d - gamma*s; v = v - theta*s      reset zero: v = s ? v_reset : v
    fixed   d = ovf_v(d - frac(v, beta_d) + (x << input_shift) + bias)
            v = ovf_v(v + frac(d, beta_s))
            s = cmp(v, theta)                                      theta = vth << vth_shift
            reset subtract: d = ovf_v(d - gamma*s); v = ovf_v(v - theta*s)
            reset zero: v = s ? v_reset : v
    frac(y, k) = trunc0(y*k / 4096): k is a 12-bit fraction (beta 0.25 -> 1024)

The reference implementation computes beta_d = sigmoid(c_1), beta_s = sigmoid(c_2) from its
trainable ``decay_factor`` and spikes when v - theta >= 0 (comparator ``ge``).
Quantization: both compartments share the state scale S; beta -> round(beta*4096),
gamma -> round(gamma*S), theta -> vth as for LIF.
"""

from __future__ import annotations

import numpy as np

from .enums import Comparator, ResetMode
from .intmath import DECAY_ONE
from .family import Domain, Family, Namespace, Param
from . import fixed_dynamics as fx
from . import float_dynamics as fl

OP_NAME = "TCLIF"  # the IR ops: TCLIF (float) and FixedTCLIF (generated, ir/family_ops.py)
FRAC_ONE = DECAY_ONE  # 12-bit fractions k/4096, as the decays

RESETS = (ResetMode.SUBTRACT, ResetMode.ZERO)
_RESET = Param("reset", ResetMode.SUBTRACT, per_neuron=False, choices=ResetMode, allowed=RESETS)
_CMP = Param("comparator", Comparator.GE, per_neuron=False, choices=Comparator)


def float_step(P, p, st, xs):
    st.d = fl.accumulate(P, st.d - p.beta_d * st.v, p.gain, xs) + p.bias
    v = st.v + p.beta_s * st.d
    s = P.fires(v, p.theta, p.comparator)
    if p.reset is ResetMode.ZERO:
        st.v = P.where(P.fired(s), p.v_reset, v)
    else:
        st.d = st.d - p.gamma * P.nograd(s)
        st.v = v - p.theta * P.nograd(s)
    st.s = s
    return s


def fixed_step(P, p, st, x):
    d = P.let(fx.ovf_v(P, p, st.d - P.mul_shift(st.v, p.beta_d, 12) + P.lshift(x, p.input_shift)
                       + p.bias, "d"), "dend")
    v = P.let(fx.ovf_v(P, p, st.v + P.mul_shift(d, p.beta_s, 12)), "soma")
    s = P.let(P.cmp(v, p.theta, p.comparator), "sp")
    if p.reset is ResetMode.ZERO:
        st.d, st.v = d, P.where(P.fired(s), p.v_reset, v)
    else:
        st.d = fx.ovf_v(P, p, d - s * p.gamma, "d")
        st.v = fx.ovf_v(P, p, v - s * p.theta)
    st.s = s
    return s


def quantize(values: dict, S: float, common: dict) -> dict:
    """Fixed TC-LIF parameters for float ``values`` at state scale ``S`` (``common``: the
    membrane fields quantize_state chose: bias, input_shift, v_bits, v_overflow, vth_shift)."""
    r = lambda a: np.sign(a) * np.floor(np.abs(a) + 0.5)  # noqa: E731 (round half away)
    lo, hi = -(1 << (common["v_bits"] - 1)) + 1, (1 << (common["v_bits"] - 1)) - 1
    vth_shift = common["vth_shift"]
    return dict(
        common,
        beta_d=np.clip(r(np.asarray(values["beta_d"], np.float64) * FRAC_ONE), 0, FRAC_ONE),
        beta_s=np.clip(r(np.asarray(values["beta_s"], np.float64) * FRAC_ONE), 0, FRAC_ONE),
        gamma=np.clip(r(np.asarray(values["gamma"], np.float64) * S), lo, hi),
        vth=np.clip(r(np.asarray(values["theta"], np.float64) * S / 2.0 ** vth_shift), 1, None),
        v_reset=np.clip(r(np.asarray(values["v_reset"], np.float64) * S), lo, hi),
        v_init=np.clip(r(np.asarray(values["v_init"], np.float64) * S), lo, hi),
        reset=values["reset"], comparator=values["comparator"],
    )


FLOAT = Family(
    "tclif", Domain.FLOAT,
    tuple(Param(n) for n in ("beta_d", "beta_s", "gamma", "gain", "bias", "theta", "v_reset", "v_init"))
    + (_RESET, _CMP),
    ("d", "v"), float_step, fl.derive, initial={"v": "v_init"}, takes_terms=True,
    doc="two-compartment LIF (dendrite d, soma v)")

FIXED = Family(
    "tclif", Domain.FIXED,
    fx.MEMBRANE + (Param("beta_d"), Param("beta_s"), Param("gamma", 0)) + fx.THRESHOLD
    + (Param("v_reset", 0), _RESET, _CMP),
    ("d", "v"), fixed_step, fx.derive, initial={"v": "v_init"}, binary=True,
    doc="two-compartment LIF (dendrite d, soma v)")

