"""Norse's forward-Euler cells (norse 1.1, ``norse.torch.functional``), in Norse's float32 order.

Norse integrates dv/dt = tau_mem_inv*((v_leak - v) + i) with a step dt; the per-step factors are
k_mem = dt*tau_mem_inv and k_syn = -dt*tau_syn_inv (float32, computed on import exactly as Norse
computes them: ``dt * p.tau_mem_inv``). Inputs are added one at a time onto the current, in
edge-list order (``i + W x + W_rec z``), or summed first where Norse has no current. Float32,
no fused multiply-add:

    norse_lif      i = (i + x_1) + x_2 ...                           (LIFCell, LIFRecurrentCell)
                   v' = v + k_mem*((v_leak - v) + i)
                   i = i + k_syn*i
                   s = v' > theta ;  v = s ? v_reset : v'
    norse_lif_box  v' = v + k_mem*((x + v_leak) - v)   (x = x_1 + x_2 ...)     (LIFBoxCell)
                   s = v' > theta ;  reset zero: v = s ? v_reset : v' ;  subtract: v = v' - theta*s
    norse_li       as norse_lif without the spike: emits v' (v = v')          (LICell)
    norse_lsnn     norse_lif with an adaptive threshold b (starts at theta)   (LSNNCell)
                   b' = b + k_adapt*(theta - b) ;  s = v' > b' ;  v = s ? v_reset : v'
                   b = b' + s*b_inc

Membranes start at v_leak. ``LSNNCell`` integrates the current of the step before (its input
enters i after the membrane update); the importer delays its input edges by one step, which
makes it exactly ``norse_lsnn`` (docs/frontends.md).

Quantization: norse_lif -> CubaLIF (alpha = 1 + k_syn, beta = 1 - k_mem, gain_i = 1,
gain_v = k_mem, bias = k_mem*v_leak), norse_lif_box -> LIF, norse_li -> CubaLI (``rewrite``);
norse_lsnn -> the fixed ALIF (``quantize``): its current as CubaLIF's, da = round(k_adapt*4096),
a_inc = round((1 - k_adapt)*b_inc*S) (the ALIF's a is (1 - k_adapt)*(b - theta)).
"""

from __future__ import annotations

import numpy as np

from .enums import Comparator, ResetMode
from .family import Domain, Extension, Family, LinearForm, Param
from . import float_dynamics as fl
from .multispike import decay_const, round_half_away, state_values, threshold

_GT = Param("comparator", Comparator.GT, per_neuron=False, choices=Comparator)
_ZERO = Param("reset", ResetMode.ZERO, per_neuron=False, choices=ResetMode, allowed=(ResetMode.ZERO,))
_V0 = {"v": "v_init"}


def euler(P, p, st, xs):
    """Norse's current and membrane step; returns v' (``st.i`` updated)."""
    i = fl.accumulate(P, st.i, None, xs)
    v = st.v + p.k_mem * ((p.v_leak - st.v) + i)
    st.i = i + p.k_syn * i
    return v


def lif_step(P, p, st, xs):
    return fl.fire(P, p, st, euler(P, p, st, xs), p.theta)


def box_step(P, p, st, xs):
    v = st.v + p.k_mem * ((fl.summed(xs) + p.v_leak) - st.v)
    return fl.fire(P, p, st, v, p.theta)


def li_step(P, p, st, xs):
    st.v = euler(P, p, st, xs)
    return st.v


def lsnn_step(P, p, st, xs):
    v = euler(P, p, st, xs)
    b = st.b + p.k_adapt * (p.theta - st.b)
    s = P.fires(v, b, p.comparator)
    st.v = P.where(P.fired(s), p.v_reset, v)
    st.b = b + P.nograd(s) * p.b_inc
    st.s = s
    return s


def _f64(values, *names):
    return [np.asarray(values[n], np.float64) for n in names]


def _cuba(values) -> dict:
    k_mem, k_syn, v_leak = _f64(values, "k_mem", "k_syn", "v_leak")
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return dict(alpha=f32(1.0 + k_syn), beta=f32(1.0 - k_mem), gain_i=f32(np.ones_like(k_mem)),
                gain_v=f32(k_mem), bias=f32(k_mem * v_leak), v_init=values["v_init"])


def lif_rewrite(values: dict) -> tuple[str, dict]:
    return "cuba_lif", dict(_cuba(values), theta=values["theta"], v_reset=values["v_reset"],
                            reset=values["reset"], comparator=values["comparator"])


def li_rewrite(values: dict) -> tuple[str, dict]:
    return "cuba_li", _cuba(values)


def box_rewrite(values: dict) -> tuple[str, dict]:
    k_mem, v_leak = _f64(values, "k_mem", "v_leak")
    return "lif", dict(
        beta=(1.0 - k_mem).astype(np.float32), gain=k_mem.astype(np.float32),
        bias=(k_mem * v_leak).astype(np.float32), theta=values["theta"],
        v_reset=values["v_reset"], v_init=values["v_init"], reset=values["reset"], comparator=values["comparator"],
    )


def lsnn_linear(values: dict) -> LinearForm:
    k_mem, k_syn, v_leak = _f64(values, "k_mem", "k_syn", "v_leak")
    return LinearForm(gain=k_mem, bias=k_mem * v_leak, alpha=1.0 + k_syn)


def lsnn_quantize(values: dict, S: float, common: dict) -> dict:
    """Fixed ALIF parameters for a norse_lsnn population at state scale ``S`` (module docstring)."""
    k_mem, k_syn, k_adapt, b_inc = _f64(values, "k_mem", "k_syn", "k_adapt", "b_inc")
    hi = (1 << (common["v_bits"] - 1)) - 1
    return dict(
        common, du=decay_const(1.0 + k_syn, int(common.get("du_offset", 1))), dv=decay_const(1.0 - k_mem),
        vth=threshold(values["theta"], S, common), da=decay_const(1.0 - k_adapt),
        a_inc=np.clip(round_half_away((1.0 - k_adapt) * b_inc * S), 0, hi),
        reset=ResetMode.ZERO, comparator=values["comparator"],
        **state_values(values, S, common, "v_reset", "v_init"),
    )


_P = lambda *names: tuple(Param(n) for n in names)  # noqa: E731

LIF = Family("norse_lif", Domain.FLOAT, _P("k_mem", "k_syn", "v_leak", "theta", "v_reset", "v_init") + (_ZERO, _GT),
             ("i", "v"), lif_step, fl.derive, initial=_V0, takes_terms=True, doc="Norse LIFCell")
BOX = Family("norse_lif_box", Domain.FLOAT, _P("k_mem", "v_leak", "theta", "v_reset", "v_init") + (
    Param("reset", ResetMode.ZERO, per_neuron=False, choices=ResetMode, allowed=(ResetMode.ZERO, ResetMode.SUBTRACT)),
    _GT), ("v",), box_step, fl.derive, initial=_V0, takes_terms=True, doc="Norse LIFBoxCell")
LI = Family("norse_li", Domain.FLOAT, _P("k_mem", "k_syn", "v_leak", "v_init"), ("i", "v"), li_step, fl.derive,
            spiking=False, hidden=(), initial=_V0, takes_terms=True, doc="Norse LICell")
LSNN = Family("norse_lsnn", Domain.FLOAT,
              _P("k_mem", "k_syn", "k_adapt", "b_inc", "v_leak", "theta", "v_reset", "v_init") + (_GT,),
              ("i", "v", "b"), lsnn_step, fl.derive, initial={"v": "v_init", "b": "theta"}, takes_terms=True,
              doc="Norse LSNNCell (adaptive threshold)")

EXTENSIONS = (
    Extension("NorseLIF", LIF, rewrite=lif_rewrite),
    Extension("NorseLIFBox", BOX, rewrite=box_rewrite),
    Extension("NorseLI", LI, rewrite=li_rewrite),
    Extension("NorseLSNN", LSNN, quantize=lsnn_quantize, linear=lsnn_linear, fixed_family="alif"),
)
