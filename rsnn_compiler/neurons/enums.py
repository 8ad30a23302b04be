"""The choices a neuron definition branches on: numeric domain, reset mode, comparator, overflow.

Part of the self-contained neuron definition (imports only the standard library), so the Lava
environment can load it by path; the IR re-exports these enums (``rsnn_compiler.ir.ops``).
"""

from __future__ import annotations

import enum


class StrChoice(str, enum.Enum):
    """An enum whose members are also their string values (compare, hash, print and serialise as
    the value); ``enum.StrEnum`` is Python 3.11+, and this module also runs on Lava's 3.10."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Domain(StrChoice):
    """Numeric domain of a graph, a family, an executor run: float32 or exact integers."""

    FLOAT = "float"
    FIXED = "fixed"


class ResetMode(enum.Enum):
    """What happens to the membrane after a spike (equations: docs/ir.md)."""

    ZERO = "zero"  # v <- v_reset in the spiking step
    SUBTRACT = "subtract"  # v <- v - theta in the spiking step
    SUBTRACT_DEFERRED = "subtract_deferred"  # snnTorch default: theta subtracted next step
    SUBTRACT_NODELAY = "subtract_nodelay"  # snnTorch subtract with reset_delay=False
    ZERO_HOLD = "zero_hold"  # snnTorch zero reset with reset_delay on Synaptic/RLeaky
    NONE = "none"


class Comparator(enum.Enum):
    GT = "gt"  # spike when v > theta (NIR, snnTorch, Lava)
    GE = "ge"  # spike when v >= theta (SpikingJelly, Sinabs)


class Overflow(enum.Enum):
    """How a value is brought back into ``bits`` (signed) after an update."""

    WRAP = "wrap"  # two's complement: [-2^(b-1), 2^(b-1))
    WRAP_ONCE = "wrap_once"  # Lava's u: one add/subtract of 2^b into (-2^(b-1), 2^(b-1)]
    SATURATE = "saturate"  # clip to [-2^(b-1), 2^(b-1) - 1]
    SATURATE_SYM = "saturate_sym"  # clip to [-(2^(b-1) - 1), 2^(b-1) - 1] (Lava's v)
