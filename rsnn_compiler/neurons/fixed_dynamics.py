"""Fixed-point neuron families (docs/fixed-point.md §3), each defined once over a primitive set.

Notation: ``ovf_v`` / ``ovf_i`` is the overflow rule of the membrane / current (``v_bits``,
``v_overflow`` / ``u_bits``, ``u_overflow``), ``decay(x, d) = trunc0(x*(4096 - d) >> 12)``,
``cmp`` is ``>`` or ``>=``, ``s_prev`` the previous step's output, ``x`` the summed input.

    current   i = ovf_i(decay(i, du + du_offset) + (x << input_shift))
              base = ovf_v(decay(v, dv) + i + bias)                 bias = shift(bias_mant, bias_exp)
    lif       current; fire-and-reset with theta = vth << vth_shift
    alif      lif with theta = (vth << vth_shift) + a; then a = ovf_v(decay(a, da) + a_inc*s)
    li        current; v = base; emits v
    dual_if   m = ovf_v(v + (x << input_shift) + bias); s = +1 if cmp(m, theta),
              -1 if m < theta_neg and c > 0, else 0; v = ovf_v(m - s*theta); c = c + s
    mtn       m = ovf_v(v + (x << input_shift) + bias); n = clip(floor(m / theta), 0, levels);
              v = ovf_v(m - n*theta) (reset subtract) or v_init (reset zero); emits n

Fire and reset (``base`` the integrated membrane):
    zero              s = cmp(base, theta); v = s ? v_reset : base
    subtract          s = cmp(base, theta); v = ovf_v(base - s*theta)
    subtract_deferred v = ovf_v(base - s_prev*theta); s = cmp(v, theta)
    subtract_nodelay  r = cmp(v_prev, theta); m = ovf_v(base - r*theta); s = cmp(m, theta);
                      v = ovf_v(m - (s - r)*theta)
    zero_hold         v = s_prev ? 0 : base; s = cmp(v, theta)
    none              v = base; s = cmp(v, theta)
"""

from __future__ import annotations

from .enums import Comparator, Overflow, ResetMode
from .family import Domain, Family, Namespace, Param
from . import intmath

FIXED = Domain.FIXED

# ---- parameters (names, defaults and per-neuron-ness as the IR ops spell them) ---------------
MEMBRANE = (
    Param("bias_mant", 0), Param("bias_exp", 0), Param("v_init", 0),
    Param("input_shift", 6, per_neuron=False), Param("v_bits", 24, per_neuron=False),
    Param("v_overflow", Overflow.SATURATE_SYM, per_neuron=False, choices=Overflow),
)
CURRENT = (
    Param("du", 4095), Param("dv", 0),
    Param("du_offset", 1, per_neuron=False), Param("u_bits", 24, per_neuron=False),
    Param("u_overflow", Overflow.WRAP_ONCE, per_neuron=False, choices=Overflow),
)
THRESHOLD = (Param("vth"), Param("vth_shift", 6, per_neuron=False))
DIVIDING_THRESHOLD = (Param("vth", positive=True),) + THRESHOLD[1:]  # families that divide by theta
RESET = (
    Param("v_reset", 0),
    Param("reset", ResetMode.ZERO, per_neuron=False, choices=ResetMode),
    Param("comparator", Comparator.GT, per_neuron=False, choices=Comparator),
)
ADAPTATION = (Param("da", 0), Param("a_inc", 0))


def derive(p: Namespace) -> Namespace:
    """Derived constants: bias = shift(bias_mant, bias_exp), theta = vth << vth_shift,
    theta_neg = vth_neg << vth_shift, du_total = du + du_offset."""
    d = p.copy()
    d.bias = intmath.shift(p.bias_mant, p.bias_exp)
    if hasattr(p, "vth"):
        d.theta = intmath.i64(p.vth) << p.vth_shift
    if hasattr(p, "vth_neg"):
        d.theta_neg = intmath.i64(p.vth_neg) << p.vth_shift
    if hasattr(p, "du"):
        d.du_total = intmath.i64(p.du) + p.du_offset
    return d


# ---- shared pieces ------------------------------------------------------------------------
def ovf_v(P, p, y, state: str = "v"):
    return P.ovf(y, p.v_bits, p.v_overflow, state)


def current(P, p, st, x):
    """Current then membrane integration; updates ``st.i`` and returns ``base``."""
    st.i = P.let(P.ovf(P.decay(st.i, p.du_total) + P.lshift(x, p.input_shift),
                       p.u_bits, p.u_overflow, "i"), "u")
    return P.let(ovf_v(P, p, P.decay(st.v, p.dv) + st.i + p.bias), "base")


def fire_and_reset(P, p, st, base, theta):
    """The reset ladder of the module docstring; returns (v, s). Reads ``st.v``/``st.s`` (previous)."""
    cmp, mode = p.comparator, p.reset
    if mode is ResetMode.ZERO:
        s = P.let(P.cmp(base, theta, cmp), "sp")
        return P.where(P.fired(s), p.v_reset, base), s
    if mode is ResetMode.SUBTRACT:
        s = P.let(P.cmp(base, theta, cmp), "sp")
        return ovf_v(P, p, base - s * theta), s
    if mode is ResetMode.SUBTRACT_DEFERRED:
        v = P.let(ovf_v(P, p, base - st.s * theta), "vr")
        return v, P.cmp(v, theta, cmp)
    if mode is ResetMode.SUBTRACT_NODELAY:
        r = P.let(P.cmp(st.v, theta, cmp), "r")
        m = P.let(ovf_v(P, p, base - r * theta), "m")
        s = P.let(P.cmp(m, theta, cmp), "sp")
        return ovf_v(P, p, m - (s - r) * theta), s
    if mode is ResetMode.ZERO_HOLD:
        v = P.let(P.where(P.fired(st.s), 0, base), "vr")
        return v, P.cmp(v, theta, cmp)
    return base, P.cmp(base, theta, cmp)  # ResetMode.NONE


def soma_input(P, p, st, x):
    """m = ovf_v(v + (x << input_shift) + bias) (IF integration of the conversion neurons)."""
    return P.let(ovf_v(P, p, st.v + P.lshift(x, p.input_shift) + p.bias), "m")


# ---- families -----------------------------------------------------------------------------
def lif_step(P, p, st, x):
    base = current(P, p, st, x)
    v, s = fire_and_reset(P, p, st, base, p.theta)
    st.v, st.s = v, s
    return s


def alif_step(P, p, st, x):
    base = current(P, p, st, x)
    theta = P.let(p.theta + st.a, "theta")
    v, s = fire_and_reset(P, p, st, base, theta)
    st.a = ovf_v(P, p, P.decay(st.a, p.da) + s * p.a_inc, "a")
    st.v, st.s = v, s
    return s


def li_step(P, p, st, x):
    st.v = current(P, p, st, x)
    return st.v


def dual_if_step(P, p, st, x):
    m = soma_input(P, p, st, x)
    pos = P.let(P.cmp(m, p.theta, p.comparator), "pos")
    neg = P.lt(m, p.theta_neg) * P.positive(st.c)
    s = P.let(pos - neg * (1 - pos), "sp")
    st.v = ovf_v(P, p, m - s * p.theta)
    st.c = st.c + s
    st.s = s
    return s


def mtn_step(P, p, st, x):
    m = soma_input(P, p, st, x)
    n = P.let(P.clip(P.floor_div(m, p.theta), 0, p.levels), "level")
    st.v = P.full_like(p.v_init, m) if p.reset is ResetMode.ZERO else ovf_v(P, p, m - n * p.theta)
    st.s = n
    return n


_V0 = {"v": "v_init"}

BASE_FIXED_FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("lif", FIXED, MEMBRANE + CURRENT + THRESHOLD + RESET, ("i", "v"), lif_step, derive,
           initial=_V0, binary=True, doc="Lava-style CUBA LIF (IF with dv = 0, plain LIF with du = 4095)"),
    Family("alif", FIXED, MEMBRANE + CURRENT + THRESHOLD + RESET + ADAPTATION, ("i", "v", "a"),
           alif_step, derive, initial=_V0, binary=True, doc="lif with an adaptive threshold"),
    Family("li", FIXED, MEMBRANE + CURRENT, ("i", "v"), li_step, derive, spiking=False,
           hidden=(), initial=_V0, doc="leaky-integrator readout: lif's integration, emits v"),
    Family("dual_if", FIXED, MEMBRANE + THRESHOLD + (
        Param("vth_neg", 0), Param("comparator", Comparator.GE, per_neuron=False, choices=Comparator)),
        ("v", "c"), dual_if_step, derive, initial=_V0, doc="dual-threshold IF (signed spikes)"),
    Family("mtn", FIXED, MEMBRANE + DIVIDING_THRESHOLD + (
        Param("levels", 1, per_neuron=False),
        Param("reset", ResetMode.SUBTRACT, per_neuron=False, choices=ResetMode,
              allowed=(ResetMode.SUBTRACT, ResetMode.ZERO))),
        ("v",), mtn_step, derive, initial=_V0, doc="multi-threshold neuron (graded spikes 0..levels)"),
)}
