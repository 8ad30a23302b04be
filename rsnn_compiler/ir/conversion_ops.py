"""Float neurons for ANN-to-SNN conversion (docs/design.md §3; docs/conversion.md).

They mirror the fixed ops of docs/fixed-point.md §3.7-3.8 parameter for parameter (float
``bias``/``theta``/``theta_neg`` are the values that ``bias_mant << bias_exp``, ``vth << vth_shift``
and ``vth_neg << vth_shift`` encode), so a quantization pass maps them one to one:

    DualThresholdIF  -> FixedDualIF        MultiThreshold -> FixedMultiThreshold (levels, reset)

Neither has an input gain: the synapse in front carries every scale. Per step, with ``x`` the
summed input (edges added one at a time in edge-list order, then the bias):

    DualThresholdIF   m = v + x + bias
                      s = +1 if cmp(m, theta); else -1 if m < theta_neg and c > 0; else 0
                      v = m - s*theta;  c = c + s          (v starts at v_init, c at 0)
    MultiThreshold    m = v + x + bias
                      n = clip(floor(m / theta), 0, levels)
                      v = m - n*theta   (reset subtract: burst neuron, residual kept)
                      v = v_init        (reset zero: memoryless SFN neuron)

The outputs are the signed count s in {-1, 0, 1} and the integer payload n in 0..levels (a
graded spike); the consumer's weights carry the value of one unit (theta in ANN units).
Semantics: ``rsnn_compiler.neurons.float_dynamics`` (families ``dual_if``, ``mtn``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rsnn_compiler.ir.ops import Comparator, NeuronOp, OpKind, ResetMode


@dataclass(frozen=True, eq=False, kw_only=True)
class DualThresholdIF(NeuronOp):
    """Soft-reset IF with a negative threshold that retracts over-firing (ECL / SNM neuron).

    m = v + x + bias; s = +1 if cmp(m, theta), -1 if m < theta_neg and c > 0, else 0;
    v = m - s*theta; c += s. The net count c never goes negative, so the output rate stays >= 0.
    """

    kind: ClassVar[OpKind] = OpKind.DUAL_IF
    family: ClassVar[str] = "dual_if"
    array_fields: ClassVar[tuple[str, ...]] = ("bias", "theta", "theta_neg", "v_init")
    state_names: ClassVar[tuple[str, ...]] = ("v", "c")
    bias: np.ndarray
    theta: np.ndarray
    theta_neg: np.ndarray
    v_init: np.ndarray
    comparator: Comparator = Comparator.GE

    def __post_init__(self) -> None:
        object.__setattr__(self, "comparator", Comparator(self.comparator))
        super().__post_init__()


@dataclass(frozen=True, eq=False, kw_only=True)
class MultiThreshold(NeuronOp):
    """Multi-threshold (SFN / burst) neuron emitting the graded spike n = clip(floor(m/theta), 0, N).

    m = v + x + bias; n = clip(floor(m / theta), 0, levels); v = m - n*theta (reset subtract) or
    v = v_init (reset zero). At one step with v_init = theta/2 this is round-to-nearest with
    N + 1 levels: the QCFS activation with L = N, exactly.
    """

    kind: ClassVar[OpKind] = OpKind.MTN
    family: ClassVar[str] = "mtn"
    array_fields: ClassVar[tuple[str, ...]] = ("bias", "theta", "v_init")
    bias: np.ndarray
    theta: np.ndarray
    v_init: np.ndarray
    levels: int = 1
    reset: ResetMode = ResetMode.ZERO

    def __post_init__(self) -> None:
        object.__setattr__(self, "reset", ResetMode(self.reset))
        object.__setattr__(self, "levels", int(self.levels))
        if self.levels < 1:
            raise ValueError(f"MultiThreshold: levels must be >= 1, got {self.levels}")
        if self.reset not in (ResetMode.SUBTRACT, ResetMode.ZERO):
            raise ValueError("MultiThreshold: reset must be 'subtract' or 'zero'")
        super().__post_init__()


CONVERSION_OP_CLASSES: tuple[type[NeuronOp], ...] = (DualThresholdIF, MultiThreshold)


def conversion_problems(name: str, op: NeuronOp) -> list[str]:
    """Verifier-style checks: thresholds must be positive and finite."""
    if not isinstance(op, CONVERSION_OP_CLASSES):
        return []
    bad = ~(op.theta > 0)
    if bad.any():
        return [f"node '{name}' ({type(op).__name__}): theta must be > 0 for every neuron;"
                " recompute the layer's threshold (a dead layer needs a small positive theta)"]
    return []
