"""The float neuron definition's primitive set on C float expressions (the runtime's fused float
kernels, fused_neurons.py).

``CFloatPrims`` is ``interpreter.float_prims.TorchFloat`` written as C ``float`` text, rule for
rule, so a population's loop computes what torch computes on the CPU bit for bit: every product,
sum and difference is one IEEE float32 operation in the definition's order (compiled without
contraction into fused multiply-adds, ``-ffp-contract=off``, and without fast-math), constants
are rounded to float32 first as torch rounds a Python scalar against a float32 tensor, and the
comparisons keep torch's answers on NaN:

    fires, GT   clamp(sign(v - theta), 0)       -> (v - theta) > 0 ? 1 : 0     (sign(NaN) = 0)
    fires, GE   1 - clamp(sign(theta - v), 0)   -> 1 - ((theta - v) > 0 ? 1 : 0)
    clamp(x, lo, hi) = min(max(x, lo), hi), NaN stays NaN; floor = floorf
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from rsnn_compiler.neurons import Comparator

from rsnn_compiler.backends.c.neurons import CExpr, CParam, CPrims


def float_lit(value) -> str:
    """``value`` rounded to float32 (as torch rounds a scalar), as an exact C hex literal."""
    f = np.float32(value)
    if not np.isfinite(f):
        raise ValueError(f"a non-finite constant ({value!r}) in a float neuron step")
    return f"{float(f).hex()}f" if f != 0 else ("-0.0f" if np.signbit(f) else "0.0f")


class FloatCExpr(CExpr):
    """A C float expression (``CExpr`` arithmetic; constants as float32 literals)."""

    __slots__ = ()

    @staticmethod
    def of(value) -> CExpr:
        return value if isinstance(value, CExpr) else FloatCExpr(float_lit(value))

    def _new(self, text: str, bound=None) -> CExpr:
        return FloatCExpr(text)  # float values: no integer bound

    def __truediv__(self, o):
        return self._bin("/", o)

    def __rtruediv__(self, o):
        return self._bin("/", o, True)

    def __neg__(self):
        return FloatCExpr(f"(-{self})")


class FloatCParam(CParam, FloatCExpr):
    """A float parameter, its C text made on first use (see ``CParam``)."""

    __slots__ = ()


class CFloatPrims(CPrims):
    """``TorchFloat`` as C float text (the module docstring gives the rules)."""

    expr = FloatCExpr
    ctype = "float"

    def __init__(self, param: Callable[[str, np.ndarray], str]):
        super().__init__(param)

    def param(self, name: str, value: np.ndarray) -> CExpr:
        return FloatCParam(lambda: self._param(name, value))

    @staticmethod
    def gain(g, x):
        return x if g is None else g * x

    @staticmethod
    def fires(v, theta, cmp: Comparator) -> CExpr:
        if cmp is Comparator.GE:
            return FloatCExpr(f"(1.0f - (({FloatCExpr.of(theta)} - {v}) > 0.0f ? 1.0f : 0.0f))")
        return FloatCExpr(f"((({v} - {FloatCExpr.of(theta)}) > 0.0f) ? 1.0f : 0.0f)")

    @staticmethod
    def nograd(x):
        return x

    @classmethod
    def boolean(cls, cond: str) -> CExpr:
        return FloatCExpr(f"(({cond}) ? 1.0f : 0.0f)")

    @staticmethod
    def floor(x) -> CExpr:
        return FloatCExpr(f"floorf({x})")

    @staticmethod
    def clamp(x, lo, hi) -> CExpr:
        return FloatCExpr(f"rsnn_clampf({FloatCExpr.of(x)}, {FloatCExpr.of(lo)}, {FloatCExpr.of(hi)})")

    # the integer primitives do not exist for float steps (where, fired, lt, positive and
    # full_like are CPrims's, in float32 through ``expr`` and ``boolean``)
    lshift = mul_shift = decay = ovf = cmp = floor_div = clip = None


#: helpers the float kernels' text uses (torch.clamp: max with lo, then min with hi; NaN stays)
FLOAT_HELPERS = r"""#include <math.h>
static inline float rsnn_clampf(float x, float lo, float hi)
{
    const float t = x < lo ? lo : x;
    return t > hi ? hi : t;
}
"""
