"""Float neuron families (DESIGN §3, docs/ir.md), each defined once over a primitive set.

Arithmetic is float32 with every product and sum rounded separately (no fused multiply-add), in
exactly the order written here: this is what reproduces snnTorch spike for spike. Several input
edges are added one at a time, in edge-list order, onto the decayed state (snnTorch's
``beta*mem + input + recurrent(spk)``); ``g*x`` is ``x`` when every gain is 1.

    lif       base = ((beta*v + g*x_1) + g*x_2 ...) + bias
    if        base = (v + g*x_1 ...) + bias
    cuba_lif  i = (alpha*i + g_i*x_1 ...); base = (beta*v + g_v*i) + bias
    alif      base as lif; theta_eff = theta + kappa*a; after firing a = rho*a + s
    li        v = (beta*v + g*x_1 ...) + bias; emits v          cuba_li  cuba_lif's v, emits v
    dual_if   m = (v + x_1 ...) + bias; s = +1 if cmp(m, theta), -1 if m < theta_neg and c > 0,
              else 0; v = m - theta*s; c = c + s
    mtn       m = (v + x_1 ...) + bias; n = clip(floor(m / theta), 0, levels);
              v = m - theta*n (reset subtract) or v_init (reset zero); emits n

Fire and reset (``s_prev`` the previous spikes; ``nograd`` marks the terms training detaches):
    zero              s = cmp(base, theta); v = s ? v_reset : base
    subtract          s = cmp(base, theta); v = base - theta*s
    subtract_deferred v = base - theta*s_prev; s = cmp(v, theta)
    subtract_nodelay  r = cmp(v_prev, theta); b = base - theta*r; s = cmp(b, theta);
                      v = b - theta*(s - r)
    zero_hold         v = (1 - s_prev)*base; s = cmp(v, theta)
    none              v = base; s = cmp(v, theta)
"""

from __future__ import annotations

import numpy as np

from .enums import Comparator, ResetMode
from .family import Domain, Family, Namespace, Param

FLOAT = Domain.FLOAT

SPIKE = (
    Param("theta"), Param("v_reset"),
    Param("reset", ResetMode.ZERO, per_neuron=False, choices=ResetMode),
    Param("comparator", Comparator.GT, per_neuron=False, choices=Comparator),
)


def derive(p: Namespace) -> Namespace:
    """Gains that are all 1 become None (the step then adds x itself, with no multiply)."""
    d = p.copy()
    for name in ("gain", "gain_i", "gain_v"):
        value = getattr(p, name, None)
        if value is not None and bool((value == 1).all()):  # numpy arrays or torch tensors
            setattr(d, name, None)
    return d


# ---- shared pieces ------------------------------------------------------------------------
def accumulate(P, acc, gain, xs):
    """((acc + g*x_1) + g*x_2) ... in edge-list order."""
    for x in xs:
        acc = acc + P.gain(gain, x)
    return acc


def summed(xs):
    """x_1 + x_2 + ... in edge-list order: the input of libraries that add their inputs (e.g. the
    recurrent one) before integrating them."""
    total = xs[0]
    for x in xs[1:]:
        total = total + x
    return total


def cuba_current(P, p, st, xs):
    """i = (alpha*i + g_i*x_1 ...); returns g_v*i."""
    st.i = accumulate(P, p.alpha * st.i, p.gain_i, xs)
    return P.gain(p.gain_v, st.i)


def fire_and_reset(P, p, st, base, theta):
    """The reset ladder of the module docstring; returns (v, s). Reads ``st.v``/``st.s`` (previous)."""
    cmp, mode = p.comparator, p.reset
    if mode is ResetMode.ZERO:
        s = P.fires(base, theta, cmp)
        return P.where(P.fired(s), p.v_reset, base), s
    if mode is ResetMode.SUBTRACT:
        s = P.fires(base, theta, cmp)
        return base - theta * P.nograd(s), s
    if mode is ResetMode.SUBTRACT_DEFERRED:
        v = base - theta * P.nograd(st.s)
        return v, P.fires(v, theta, cmp)
    if mode is ResetMode.SUBTRACT_NODELAY:
        r = P.nograd(P.fires(st.v, theta, cmp))
        b = base - theta * r
        s = P.fires(b, theta, cmp)
        return b - theta * (P.nograd(s) - r), s
    if mode is ResetMode.ZERO_HOLD:
        v = (1.0 - P.nograd(st.s)) * base
        return v, P.fires(v, theta, cmp)
    return base, P.fires(base, theta, cmp)  # ResetMode.NONE


def fire(P, p, st, base, theta):
    v, s = fire_and_reset(P, p, st, base, theta)
    st.v, st.s = v, s
    return s


def soma_input(P, p, st, xs):
    """m = (v + x_1 ...) + bias (the conversion neurons have no gain)."""
    return accumulate(P, st.v, None, xs) + p.bias


# ---- families -----------------------------------------------------------------------------
def lif_step(P, p, st, xs):
    return fire(P, p, st, accumulate(P, p.beta * st.v, p.gain, xs) + p.bias, p.theta)


def if_step(P, p, st, xs):
    return fire(P, p, st, accumulate(P, st.v, p.gain, xs) + p.bias, p.theta)


def cuba_lif_step(P, p, st, xs):
    drive = cuba_current(P, p, st, xs)
    return fire(P, p, st, p.beta * st.v + drive + p.bias, p.theta)


def alif_step(P, p, st, xs):
    base = accumulate(P, p.beta * st.v, p.gain, xs) + p.bias
    s = fire(P, p, st, base, p.theta + p.kappa * st.a)
    st.a = p.rho * st.a + P.nograd(s)
    return s


def li_step(P, p, st, xs):
    st.v = accumulate(P, p.beta * st.v, p.gain, xs) + p.bias
    return st.v


def cuba_li_step(P, p, st, xs):
    st.v = p.beta * st.v + cuba_current(P, p, st, xs) + p.bias
    return st.v


def dual_if_step(P, p, st, xs):
    m = soma_input(P, p, st, xs)
    pos = P.fires(m, p.theta, p.comparator)
    neg = P.lt(m, p.theta_neg) * P.positive(st.c) * (1.0 - pos)
    s = pos - neg
    st.v = m - p.theta * P.nograd(s)
    st.c = st.c + P.nograd(s)
    st.s = s
    return s


def mtn_step(P, p, st, xs):
    m = soma_input(P, p, st, xs)
    n = P.clamp(P.floor(m / p.theta), 0.0, float(p.levels))
    st.v = P.full_like(p.v_init, m) if p.reset is ResetMode.ZERO else m - p.theta * P.nograd(n)
    st.s = n
    return n


_P = lambda *names: tuple(Param(n) for n in names)  # noqa: E731
_V0 = {"v": "v_init"}


def _family(name, params, states, step, spiking=True, doc=""):
    return Family(name, FLOAT, params, states, step, derive, spiking=spiking,
                  hidden=("s",) if spiking else (), initial=_V0, takes_terms=True, doc=doc)


BASE_FLOAT_FAMILIES: dict[str, Family] = {f.name: f for f in (
    _family("lif", _P("beta", "gain", "bias") + SPIKE + _P("v_init"), ("v",), lif_step),
    _family("if", _P("gain", "bias") + SPIKE + _P("v_init"), ("v",), if_step),
    _family("cuba_lif", _P("alpha", "beta", "gain_i", "gain_v", "bias") + SPIKE + _P("v_init"),
            ("i", "v"), cuba_lif_step),
    _family("li", _P("beta", "gain", "bias", "v_init"), ("v",), li_step, spiking=False),
    _family("cuba_li", _P("alpha", "beta", "gain_i", "gain_v", "bias", "v_init"), ("i", "v"),
            cuba_li_step, spiking=False),
    _family("alif", _P("beta", "gain", "bias", "theta", "rho", "kappa", "v_reset", "v_init")
            + SPIKE[2:], ("v", "a"), alif_step),
    _family("dual_if", _P("bias", "theta", "theta_neg", "v_init")
            + (Param("comparator", Comparator.GE, per_neuron=False, choices=Comparator),),
            ("v", "c"), dual_if_step),
    _family("mtn", _P("bias") + (Param("theta", positive=True),) + _P("v_init") + (
        Param("levels", 1, per_neuron=False),
        Param("reset", ResetMode.ZERO, per_neuron=False, choices=ResetMode,
              allowed=(ResetMode.SUBTRACT, ResetMode.ZERO))), ("v",), mtn_step),
)}
