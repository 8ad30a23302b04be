"""C text for a fixed neuron population, generated from its definition (``rsnn_compiler.neurons``).

``CPrims`` is the neuron definition's primitive set on C expressions: running a family's ``step``
with it writes the per-neuron body of the population's loop instead of computing numbers. Values
are ``CExpr`` (C text with ``+ - *``); ``let`` binds a value used more than once to a
``const int64_t`` temporary; states read as ``s-><state>_<cid>[k]`` (the previous output ``s`` as
``s->sp_<cid>[k]``), and new states are stored after every new value has been computed, so the
body has the definition's semantics (reads see old states unless the step reassigned them).
Every primitive is a function of ``rsnn_fixed.h`` (``c/runtime.py``) or a C operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from rsnn_compiler.fixed.arith import Overflow, signed_range
from rsnn_compiler.ir.dynamics import family_of, op_values
from rsnn_compiler.neurons import Comparator
from rsnn_compiler.neurons.family import bind

INT32_MAX = (1 << 31) - 1
OVERFLOW_FN = {
    Overflow.WRAP: "rsnn_wrap",
    Overflow.WRAP_ONCE: "rsnn_wrap_once",
    Overflow.SATURATE: "rsnn_saturate",
    Overflow.SATURATE_SYM: "rsnn_saturate_sym",
}
_SIMPLE = re.compile(r"^-?[A-Za-z0-9_]+(\(-?[0-9]+\))?$")  # a name or a literal (INT64_C(...))
_RESERVED = {"s", "k", "x", "y"}  # names of the surrounding C function


def lit(v: int) -> str:
    """A C literal for an int64 value (a float that is not a whole number is refused, not cut)."""
    if isinstance(v, (float, np.floating)) and not float(v).is_integer():
        raise TypeError(f"integer C code got the non-integer constant {v!r}")
    v = int(v)
    return str(v) if -INT32_MAX <= v <= INT32_MAX else f"INT64_C({v})"


Bound = tuple[int, int] | None  # inclusive (lo, hi) of an integer expression's values, None: unknown
INT64_BOUND = (-(1 << 63), (1 << 63) - 1)


def _checked(lo: int, hi: int) -> Bound:
    """(lo, hi) when int64 holds it (the C arithmetic stays exact), else unknown."""
    return (lo, hi) if INT64_BOUND[0] <= lo and hi <= INT64_BOUND[1] else None


def union(*bounds: Bound) -> Bound:
    """The bound of a value that is one of several (None when any is unknown)."""
    if not bounds or any(b is None for b in bounds):
        return None
    return min(b[0] for b in bounds), max(b[1] for b in bounds)


def _interval(op: str, a: Bound, b: Bound) -> Bound:
    """Interval arithmetic for ``+ - *`` on integer bounds."""
    if a is None or b is None:
        return None
    if op == "+":
        return _checked(a[0] + b[0], a[1] + b[1])
    if op == "-":
        return _checked(a[0] - b[1], a[1] - b[0])
    if op == "*":
        corners = [x * y for x in a for y in b]
        return _checked(min(corners), max(corners))
    return None


class CExpr:
    """C expression text; arithmetic with ints and other CExprs builds bigger expressions.
    ``bound``: the inclusive range of the expression's values where the primitives prove one
    (overflow rules, comparisons, clips, literals, parameters, and ``+ - *`` of bounded values by
    interval arithmetic); None where nothing is known (e.g. a state read, an input). The fused
    runtime kernels store a state in the narrowest integer type its bound allows."""

    __slots__ = ("text", "bound")

    def __init__(self, text: str, bound: Bound = None):
        self.text = text
        self.bound = bound

    def __str__(self) -> str:
        return self.text

    @staticmethod
    def of(value) -> "CExpr":
        if isinstance(value, CExpr):
            return value
        return CExpr(lit(value), (int(value), int(value)))

    def _new(self, text: str, bound: Bound = None) -> "CExpr":
        """An expression of this one's kind (int64 here; float32 in the runtime's float kernels)."""
        return CExpr(text, bound)

    def _bin(self, op: str, other, swap: bool = False) -> "CExpr":
        a, b = (self.of(other), self) if swap else (self, self.of(other))
        return self._new(f"({a} {op} {b})", _interval(op, a.bound, b.bound))

    def __add__(self, o):
        return self._bin("+", o)

    def __radd__(self, o):
        return self._bin("+", o, True)

    def __sub__(self, o):
        return self._bin("-", o)

    def __rsub__(self, o):
        return self._bin("-", o, True)

    def __mul__(self, o):
        return self._bin("*", o)

    def __rmul__(self, o):
        return self._bin("*", o, True)

    @property
    def simple(self) -> bool:
        return bool(_SIMPLE.match(self.text))


class CParam(CExpr):
    """A parameter whose C text (a literal, or a ``static const`` array emitted on first use) is
    made only when an expression uses it, so unused parameters leave no unused arrays."""

    __slots__ = ("_make", "_text")

    def __init__(self, make: Callable[[], str], bound: Bound = None):
        self._make, self._text = make, None
        self.bound = bound

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self._make()
        return self._text


def member(state: str) -> str:
    """The C member name of a state (the previous output ``s`` is ``sp``)."""
    return "sp" if state == "s" else state


class CState:
    """States of one neuron as C lvalues; records which old states the step reads. A state kept
    in a narrower type (``narrow``: name -> C type) is read cast to the value type ``wide``."""

    def __init__(self, cid: str, names: tuple[str, ...], expr: type = CExpr,
                 narrow: dict[str, str] | None = None, wide: str = "int64_t"):
        object.__setattr__(self, "_cid", cid)
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_expr", expr)
        object.__setattr__(self, "_narrow", narrow or {})
        object.__setattr__(self, "_wide", wide)
        object.__setattr__(self, "new", {})
        object.__setattr__(self, "reads", set())

    def storage(self, name: str, struct: str = "s") -> str:
        return f"{struct}->{member(name)}_{self._cid}[k]"

    def __getattr__(self, name: str) -> CExpr:
        if name not in self._names:
            raise AttributeError(name)
        if name in self.new:
            return self.new[name]
        self.reads.add(name)
        text = self.storage(name)
        return self._expr(f"(({self._wide}){text})" if name in self._narrow else text)

    def store(self, name: str, value, struct: str) -> str:
        """The statement storing ``value`` as the new ``name`` (cast explicitly into a narrow
        type: exact, the value is inside the proven range the type was chosen by)."""
        ctype = self._narrow.get(name)
        return f"{self.storage(name, struct)} = {value if ctype is None else f'({ctype})({value})'};"

    def __setattr__(self, name: str, value) -> None:
        if name not in self._names:
            raise AttributeError(f"the family has no state '{name}'")
        self.new[name] = self._expr.of(value)


class CPrims:
    """The primitive set of ``neurons.family`` emitting C (see the module docstring)."""

    expr = CExpr  # the kind of expression (and ``let`` variable type) this set builds
    ctype = "int64_t"

    def __init__(self, param: Callable[[str, np.ndarray], str]):
        self._param = param
        self.lines: list[str] = []
        self._used: dict[str, int] = {}

    def param(self, name: str, value: np.ndarray) -> CExpr:
        return CParam(lambda: self._param(name, value), _array_bound(value))

    def let(self, value, name: str = "t") -> CExpr:
        value = self.expr.of(value)
        if value.simple:
            return value
        count = self._used.get(name, 0) + 1
        self._used[name] = count
        var = name if count == 1 and name not in _RESERVED else f"{name}_{count}"
        self.lines.append(f"const {self.ctype} {var} = {value};")
        return self.expr(var, value.bound)

    @staticmethod
    def lshift(x, n: int) -> CExpr:
        x = CExpr.of(x)
        return CExpr(f"rsnn_shl({x}, {n})", _interval("*", x.bound, (1 << n, 1 << n))) if n else x

    @staticmethod
    def mul_shift(a, b, n: int) -> CExpr:
        prod = CExpr.of(a) * b
        bound = None if prod.bound is None else (_trunc(prod.bound[0], n), _trunc(prod.bound[1], n))
        return CExpr(f"rsnn_trunc_shift({prod}, {n})", bound)

    @staticmethod
    def decay(x, d) -> CExpr:
        x = CExpr.of(x)  # |decay(x, d)| <= |x|, toward zero
        bound = None if x.bound is None else (min(x.bound[0], 0), max(x.bound[1], 0))
        return CExpr(f"rsnn_decay({x}, {CExpr.of(d)})", bound)

    @staticmethod
    def ovf(x, bits: int, mode: Overflow, state: str = "") -> CExpr:
        return CExpr(f"{OVERFLOW_FN[mode]}({x}, {bits})", _overflow_bound(CExpr.of(x).bound, bits, mode))

    @classmethod
    def boolean(cls, cond: str) -> CExpr:
        """1 where the C condition holds, else 0, in this set's value type."""
        return cls.expr(f"(int64_t)({cond})", (0, 1))

    @classmethod
    def cmp(cls, v, theta, comparator: Comparator) -> CExpr:
        op = ">=" if comparator is Comparator.GE else ">"
        return cls.boolean(f"{v} {op} {cls.expr.of(theta)}")

    @classmethod
    def lt(cls, a, b) -> CExpr:
        return cls.boolean(f"{cls.expr.of(a)} < {cls.expr.of(b)}")

    @classmethod
    def positive(cls, x) -> CExpr:
        return cls.boolean(f"{x} > 0")

    @classmethod
    def fired(cls, s) -> CExpr:
        return cls.expr(f"({s} > 0)")

    @classmethod
    def where(cls, cond, a, b) -> CExpr:
        a, b = cls.expr.of(a), cls.expr.of(b)
        return cls.expr(f"({cond} ? {a} : {b})", union(a.bound, b.bound))

    @staticmethod
    def floor_div(x, y) -> CExpr:
        return CExpr(f"rsnn_floor_div({x}, {CExpr.of(y)})")

    @staticmethod
    def clip(x, lo: int, hi: int) -> CExpr:
        return CExpr(f"rsnn_clip({x}, {lit(lo)}, {lit(hi)})", (int(lo), int(hi)))

    @classmethod
    def full_like(cls, value, like) -> CExpr:
        return cls.expr.of(value)


def _trunc(v: int, n: int) -> int:
    """v / 2^n rounded toward zero (monotonic, so it maps a bound's ends)."""
    return v >> n if v >= 0 else -((-v) >> n)


def _array_bound(value) -> Bound:
    """(min, max) of an integer parameter array, else unknown."""
    arr = np.asarray(value)
    if arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        return None
    return int(arr.min()), int(arr.max())


def _overflow_bound(x: Bound, bits: int, mode: Overflow) -> Bound:
    """What ``ovf(x, bits, mode)`` can produce: the rule's range, except that ``wrap_once``
    wraps once and so bounds only inputs within three half-ranges (``arith.overflow``)."""
    if bits >= 64:
        return x
    lo, hi = signed_range(bits, mode)
    if mode is Overflow.WRAP_ONCE:
        half = 1 << (bits - 1)
        return (lo, hi) if x is not None and -3 * half < x[0] and x[1] <= 3 * half else None
    return lo, hi


@dataclass(frozen=True)
class NeuronCode:
    """The loop body (statements for neuron ``k``, input ``x[k]``, output ``y[k]``), the states
    it stores, and whether it reads the previous output (then the struct keeps ``sp_<cid>``)."""

    body: list[str]
    stored: tuple[str, ...]
    reads_prev_output: bool
    doc: str
    #: every state's values over a whole run (initial value and every stored value), where the
    #: definition proves a range; None: unknown (``CExpr.bound``)
    state_bounds: dict = field(default_factory=dict)
    #: the stored states kept in a narrower C type than the value type (``neuron_code(narrow=True)``)
    state_ctypes: dict = field(default_factory=dict)


def narrow_c_type(bound: Bound) -> str:
    """The narrowest signed C integer type holding every value of ``bound`` (int64_t when
    unknown)."""
    if bound is not None:
        for ctype, bits in (("int8_t", 8), ("int16_t", 16), ("int32_t", 32)):
            if -(1 << (bits - 1)) <= bound[0] and bound[1] < (1 << (bits - 1)):
                return ctype
    return "int64_t"


def neuron_code(op, cid: str, param: Callable[[str, np.ndarray], str], store: str = "s",
                prims_type: type = CPrims, x=None, narrow: bool = False) -> NeuronCode:
    """Run ``op``'s family step with ``prims_type`` (``CPrims``: int64 C); ``param(name, array)``
    gives a parameter's C text, ``x`` the step's input (default ``x[k]``). States are read
    through the struct pointer ``s`` and stored through ``store`` (the same struct in the C model;
    the runtime's fused kernels read old and write new tensors).

    ``narrow``: each stored state whose range over a run (``state_bounds``) fits a narrower signed
    type than int64 is kept in it (``state_ctypes``): read widened to int64, stored with an
    explicit cast, so the arithmetic is the same. (The types come from a first run of the step;
    its ``param`` is not called, so callers that collect parameter arrays see each once.)"""
    narrow_types: dict[str, str] = {}
    if narrow:
        probe = _neuron_code(op, cid, lambda name, arr: name, store, prims_type, x, {})
        narrow_types = {n: t for n in probe.stored
                        if (t := narrow_c_type(probe.state_bounds.get(n))) != prims_type.ctype}
    return _neuron_code(op, cid, param, store, prims_type, x, narrow_types)


def _neuron_code(op, cid: str, param, store: str, prims_type: type, x, narrow_types: dict[str, str]) -> NeuronCode:
    family = family_of(op)
    prims = prims_type(param)
    derived = family.derived(op_values(op), tuple(op.shape))
    p = bind(prims, family, derived)
    st = CState(cid, family.states + family.hidden, prims.expr, narrow_types, prims_type.ctype)
    out = prims.expr.of(family.step(prims, p, st, prims.expr("x[k]") if x is None else x))
    keep = [n for n in st.new if n != "s" or "s" in st.reads]  # the previous output only if read
    final = {}
    for name in keep:  # compute every new state before storing any
        value = st.new[name]
        final[name] = value if value.simple and "s->" not in value.text else prims.let(value, f"new_{name}")
    lines = list(prims.lines)
    stored = tuple(final)
    lines += [st.store(name, value, store) for name, value in final.items()]
    out_text = next((str(final[n]) for n in keep if st.new[n].text == out.text), str(out))
    lines.append(f"y[k] = {out_text};")
    choices = [f"{q.name} {getattr(getattr(derived, q.name), 'value', getattr(derived, q.name))}"
               for q in family.params if not q.per_neuron]
    doc = (f"family '{family.name}' ({family.doc}), defined in rsnn_compiler/neurons/fixed_dynamics.py;"
           f" {', '.join(choices)}")
    bounds = {}
    for name in family.states + tuple(h for h in family.hidden if h not in family.states):
        start = _array_bound(getattr(derived, family.initial[name])) if name in family.initial else (0, 0)
        bounds[name] = union(start, final[name].bound) if name in final else start
    return NeuronCode(lines, stored, "s" in st.reads, doc, bounds, narrow_types)


def reads_prev_output(op) -> bool:
    """Whether ``op``'s step reads its previous output (so C keeps it in the state struct)."""
    return neuron_code(op, "probe", lambda name, arr: name).reads_prev_output
