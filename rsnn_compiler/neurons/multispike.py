"""Multi-spike LIF: a CUBA LIF that emits, each step, how many thresholds its membrane holds.

Sinabs' default spike function (``MultiSpike``) and Rockpool's ``LIFTorch`` emit spike counts;
their float forms (``sinabs``, ``rockpool``) quantize through this family. Per step, inputs added
one at a time in edge-list order, float32, no fused multiply-add:

    float   i = (alpha*i + g_i*x_1) + g_i*x_2 ...
            m = (beta*v + g_v*i) + bias
            n = clip(floor(m / theta), 0, levels)                          (emits n)
            reset subtract: v = m - theta*n        reset zero: v = n > 0 ? v_reset : m
    fixed   i = ovf_i(decay(i, du + du_offset) + (x << input_shift))
            m = ovf_v(decay(v, dv) + i + bias)
            n = clip(floor_div(m, theta), 0, levels)                        theta = vth << vth_shift
            reset subtract: v = ovf_v(m - n*theta)   reset zero: v = n > 0 ? v_reset : m

Quantization at state scale S, as for CubaLIF: du = round((1 - alpha)*4096) - du_offset,
dv = round((1 - beta)*4096), vth = round(theta*S) >> vth_shift, v_reset and v_init
round(value*S); the gains g_i*g_v fold into the feeding synapses (``linear``).
"""

from __future__ import annotations

import numpy as np

from .enums import ResetMode
from .family import Domain, Extension, Family, LinearForm, Param
from .intmath import DECAY_ONE
from . import fixed_dynamics as fx
from . import float_dynamics as fl

RESETS = (ResetMode.SUBTRACT, ResetMode.ZERO)
_RESET = Param("reset", ResetMode.SUBTRACT, per_neuron=False, choices=ResetMode, allowed=RESETS)
_LEVELS = Param("levels", 1 << 16, per_neuron=False)


def float_step(P, p, st, xs):
    m = p.beta * st.v + fl.cuba_current(P, p, st, xs) + p.bias
    n = P.clamp(P.floor(m / p.theta), 0.0, float(p.levels))
    if p.reset is ResetMode.ZERO:
        st.v = P.where(P.fired(n), p.v_reset, m)
    else:
        st.v = m - p.theta * P.nograd(n)
    st.s = n
    return n


def fixed_step(P, p, st, x):
    m = fx.current(P, p, st, x)
    n = P.let(P.clip(P.floor_div(m, p.theta), 0, p.levels), "level")
    if p.reset is ResetMode.ZERO:
        st.v = P.where(P.fired(n), p.v_reset, m)
    else:
        st.v = fx.ovf_v(P, p, m - n * p.theta)
    st.s = n
    return n


def round_half_away(a) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return np.sign(a) * np.floor(np.abs(a) + 0.5)


def decay_const(keep, offset: int = 0) -> np.ndarray:
    """12-bit decay from a float keep factor: round((1 - keep)*4096) - offset, in 0..4095."""
    return np.clip(round_half_away((1.0 - np.asarray(keep, np.float64)) * DECAY_ONE) - offset, 0, DECAY_ONE - 1)


def state_values(values, S: float, common: dict, *names: str) -> dict:
    """round(value*S) within the membrane range for each named parameter."""
    hi = (1 << (common["v_bits"] - 1)) - 1
    return {n: np.clip(round_half_away(np.asarray(values[n], np.float64) * S), -hi, hi) for n in names}


def threshold(theta, S: float, common: dict) -> np.ndarray:
    """vth = round(theta*S) >> vth_shift, at least 1."""
    return np.clip(round_half_away(np.asarray(theta, np.float64) * S / 2.0 ** common["vth_shift"]), 1, None)


def quantize(values: dict, S: float, common: dict) -> dict:
    """Fixed multi-spike LIF parameters at state scale ``S`` (``common``: the membrane and current
    fields quantize_state chose, bias included)."""
    offset = int(common.get("du_offset", 1))
    return dict(
        common, du=decay_const(values["alpha"], offset), dv=decay_const(values["beta"]),
        vth=threshold(values["theta"], S, common), levels=int(values["levels"]), reset=values["reset"],
        **state_values(values, S, common, "v_reset", "v_init"),
    )


def linear(values: dict) -> LinearForm:
    gain = np.asarray(values["gain_i"], np.float64) * np.asarray(values["gain_v"], np.float64)
    return LinearForm(gain=gain, bias=np.asarray(values["bias"], np.float64),
                      alpha=np.asarray(values["alpha"], np.float64))


FLOAT = Family(
    "lif_multi", Domain.FLOAT,
    tuple(Param(n) for n in ("alpha", "beta", "gain_i", "gain_v", "bias")) + (Param("theta", positive=True),)
    + tuple(Param(n) for n in ("v_reset", "v_init"))
    + (_LEVELS, _RESET),
    ("i", "v"), float_step, fl.derive, initial={"v": "v_init"}, takes_terms=True,
    doc="multi-spike CUBA LIF (emits spike counts)")

FIXED = Family(
    "lif_multi", Domain.FIXED,
    fx.MEMBRANE + fx.CURRENT + fx.DIVIDING_THRESHOLD + (Param("v_reset", 0), _LEVELS, _RESET),
    ("i", "v"), fixed_step, fx.derive, initial={"v": "v_init"},
    doc="multi-spike CUBA LIF (emits spike counts)")

EXTENSIONS = (Extension("LIFMulti", FLOAT, FIXED, quantize=quantize, linear=linear),)
