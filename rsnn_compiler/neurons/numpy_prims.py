"""The integer primitive set on numpy int64 arrays: the fixed-point interpreter's and the Lava
processes' arithmetic. Optionally counts overflow events per state (``stats``)."""

from __future__ import annotations

import numpy as np

from .enums import Comparator, Overflow
from . import intmath

I64 = np.int64


class NumpyInt:
    """Primitives of ``family.Family.step`` on int64 arrays (docs/fixed-point.md §2).

    With ``stats`` (a dict), ``ovf`` adds the number of elements its rule changed under
    ``"<state>/<node>"``.
    """

    def __init__(self, stats: dict | None = None, node: str = ""):
        self.stats, self.node = stats, node

    # binding and state
    @staticmethod
    def param(name: str, value: np.ndarray) -> np.ndarray:
        return np.asarray(value, dtype=I64)

    @staticmethod
    def initial(value, batch: int, shape: tuple[int, ...]) -> np.ndarray:
        if value is None:
            return np.zeros((batch, *shape), I64)
        return np.broadcast_to(value, (batch, *shape)).astype(I64)

    @staticmethod
    def let(value, name: str = ""):
        return value

    # arithmetic
    @staticmethod
    def lshift(x, n: int):
        return x << n if n else x

    @staticmethod
    def decay(x, d):
        return intmath.decay(x, d)

    @staticmethod
    def mul_shift(a, b, n: int):
        """trunc0(a*b / 2^n): a product scaled down, rounded toward zero."""
        return intmath.trunc_shift(intmath.i64(a) * b, n)

    def ovf(self, x, bits: int, mode: Overflow, state: str = ""):
        out = intmath.overflow(x, bits, mode)
        if self.stats is not None:
            key = f"{state}/{self.node}"
            self.stats[key] = self.stats.get(key, 0) + int(np.count_nonzero(out != x))
        return out

    @staticmethod
    def cmp(v, theta, comparator: Comparator):
        return (v >= theta if comparator is Comparator.GE else v > theta).astype(I64)

    @staticmethod
    def lt(a, b):
        return (a < b).astype(I64)

    @staticmethod
    def positive(x):
        return (x > 0).astype(I64)

    @staticmethod
    def fired(s):
        return s > 0

    @staticmethod
    def where(cond, a, b):
        return np.where(cond, a, b).astype(I64)

    @staticmethod
    def floor_div(x, y):
        return intmath.floor_div(x, y)

    @staticmethod
    def clip(x, lo, hi):
        return np.clip(x, lo, hi)

    @staticmethod
    def full_like(value, like):
        return np.broadcast_to(value, np.shape(like)).astype(I64)
