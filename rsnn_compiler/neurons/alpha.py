"""snnTorch's ``Alpha`` neuron: two synaptic currents whose difference is an alpha kernel.

An excitatory current ``exc`` and an inhibitory one ``inh`` (decays alpha > beta) receive the
input with opposite signs; the membrane is their sum times tau = log(alpha)/(log(beta) -
log(alpha)) + 1 (snnTorch's float32 ``tau_alpha``, computed once on import). The reset signal r
is the previous membrane above threshold (snnTorch's ``mem_reset``), so resets act one step
late. Per step, with x the summed input (x_1 + x_2 ...), float32, no fused multiply-add:

    float   r = cmp(v, theta)
            exc' = alpha*exc + x ;  inh' = beta*inh - x ;  m = tau*(exc' + inh')
            reset subtract_deferred: exc' = exc' - theta*r ; inh' = inh' - inh'*r ; m = m - (-inh)*r
            reset zero_hold:         exc' = exc' - exc'*r ; inh' = inh' - inh'*r ; m = m - m*r
            reset none:              nothing
            s = cmp(m, theta) ;  v = m
    fixed   r = cmp(v, theta)                                         theta = vth << vth_shift
            u = (x << input_shift) + bias                             (bias: the synapses' biases)
            exc' = ovf_v(decay(exc, d_exc) + u) ;  inh' = ovf_v(decay(inh, d_inh) - u)
            m = ovf_v(frac(exc' + inh', tau))
            subtract_deferred: exc' = ovf_v(exc' - r*theta) ; inh' = r ? 0 : inh' ; m = ovf_v(m + r*inh)
            zero_hold: exc', inh', m = r ? 0 : (exc', inh', m)
            s = cmp(m, theta) ;  v = m
    frac(y, k) = trunc0(y*k / 4096): tau is a 12-bit fixed-point factor (1.9 -> 7782)

(snnTorch writes the subtract reset as ``mem -= -syn_inh*reset`` with the inhibitory current of
the previous step; ``inh'*r`` and ``exc'*r`` subtract a state from itself.) Quantization at
state scale S (all three states): d_exc = round((1 - alpha)*4096), d_inh = round((1 - beta)*4096),
tau -> round(tau*4096), theta -> vth as for LIF.
"""

from __future__ import annotations

import numpy as np

from .enums import Comparator, ResetMode
from .family import Domain, Extension, Family, Param
from .intmath import DECAY_ONE
from . import fixed_dynamics as fx
from . import float_dynamics as fl
from .multispike import decay_const, round_half_away, state_values, threshold

RESETS = (ResetMode.SUBTRACT_DEFERRED, ResetMode.ZERO_HOLD, ResetMode.NONE)
_RESET = Param("reset", ResetMode.ZERO_HOLD, per_neuron=False, choices=ResetMode, allowed=RESETS)
_CMP = Param("comparator", Comparator.GT, per_neuron=False, choices=Comparator)


def float_step(P, p, st, xs):
    x = fl.summed(xs)
    r = P.nograd(P.fires(st.v, p.theta, p.comparator))
    exc = p.alpha * st.exc + x
    inh = p.beta * st.inh - x
    m = p.tau * (exc + inh)
    if p.reset is ResetMode.SUBTRACT_DEFERRED:
        m = m - (-st.inh) * r
        exc = exc - p.theta * r
        inh = inh - inh * r
    elif p.reset is ResetMode.ZERO_HOLD:
        exc, inh, m = exc - exc * r, inh - inh * r, m - m * r
    s = P.fires(m, p.theta, p.comparator)
    st.exc, st.inh, st.v, st.s = exc, inh, m, s
    return s


def fixed_step(P, p, st, x):
    r = None if p.reset is ResetMode.NONE else P.let(P.cmp(st.v, p.theta, p.comparator), "r")
    u = P.let(P.lshift(x, p.input_shift) + p.bias, "u")
    exc = P.let(fx.ovf_v(P, p, P.decay(st.exc, p.d_exc) + u, "exc"), "exc_n")
    inh = P.let(fx.ovf_v(P, p, P.decay(st.inh, p.d_inh) - u, "inh"), "inh_n")
    m = P.let(fx.ovf_v(P, p, P.mul_shift(exc + inh, p.tau, 12)), "m")
    if p.reset is ResetMode.SUBTRACT_DEFERRED:
        m = fx.ovf_v(P, p, m + r * st.inh)
        exc = fx.ovf_v(P, p, exc - r * p.theta, "exc")
        inh = P.where(P.fired(r), 0, inh)
    elif p.reset is ResetMode.ZERO_HOLD:
        exc, inh, m = (P.where(P.fired(r), 0, y) for y in (exc, inh, m))
    m = P.let(m, "vn")
    s = P.cmp(m, p.theta, p.comparator)
    st.exc, st.inh, st.v, st.s = exc, inh, m, s
    return s


def quantize(values: dict, S: float, common: dict) -> dict:
    """Fixed Alpha parameters at state scale ``S`` (module docstring)."""
    return dict(
        common, d_exc=decay_const(values["alpha"]), d_inh=decay_const(values["beta"]),
        tau=round_half_away(np.asarray(values["tau"], np.float64) * DECAY_ONE),
        vth=threshold(values["theta"], S, common), reset=values["reset"], comparator=values["comparator"],
        **state_values(values, S, common, "v_init"),
    )


FLOAT = Family(
    "alpha", Domain.FLOAT, tuple(Param(n) for n in ("alpha", "beta", "tau", "theta", "v_init")) + (_RESET, _CMP),
    ("exc", "inh", "v"), float_step, fl.derive, initial={"v": "v_init"}, takes_terms=True,
    doc="snnTorch Alpha (excitatory and inhibitory currents)")

FIXED = Family(
    "alpha", Domain.FIXED,
    fx.MEMBRANE + (Param("d_exc"), Param("d_inh"), Param("tau")) + fx.THRESHOLD + (_RESET, _CMP),
    ("exc", "inh", "v"), fixed_step, fx.derive, initial={"v": "v_init"}, binary=True,
    doc="snnTorch Alpha (excitatory and inhibitory currents)")

EXTENSIONS = (Extension("Alpha", FLOAT, FIXED, quantize=quantize, bound_states=("exc", "inh")),)
