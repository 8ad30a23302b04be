"""Float32 primitive sets of the neuron definition (``rsnn_compiler.neurons.float_dynamics``).

``TorchFloat`` is the meaning of the float IR (float interpreter, GPU runtime: the same calls
give bit-identical results on the CPU); ``SurrogateFloat`` is the same forward with a
fast-sigmoid surrogate gradient for the spike and the reset terms detached (training):

    forward  s = H(v - theta)          backward  ds/dv = 1 / (1 + k |v - theta|)^2
"""

from __future__ import annotations

import numpy as np
import torch

from rsnn_compiler.neurons import Comparator

F32 = torch.float32


def fires(v: torch.Tensor, theta: torch.Tensor, cmp: Comparator) -> torch.Tensor:
    """1.0 where v > theta (v >= theta for ``Comparator.GE``), else 0.0.

    Computed as clamp(sign(v - theta), 0) (GE: 1 - clamp(sign(theta - v), 0)): an IEEE difference
    of finite floats is zero only for equal operands and has the sign of their order, so this is
    exactly the comparison, and on CPU it costs a third of a comparison plus a bool-to-float cast.
    """
    if cmp is Comparator.GE:
        return 1.0 - (theta - v).sign_().clamp_(min=0)
    return (v - theta).sign_().clamp_(min=0)


class TorchFloat:
    """Float32 primitives on ``device`` (inference: no gradient tricks)."""

    def __init__(self, device=None):
        self.device = torch.device("cpu") if device is None else device

    def param(self, name: str, value: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(value, dtype=np.float32)).to(self.device)

    def initial(self, value, batch: int, shape: tuple[int, ...]) -> torch.Tensor:
        if value is None:
            return torch.zeros((batch, *shape), dtype=F32, device=self.device)
        return value.expand((batch, *shape)).clone()

    @staticmethod
    def let(value, name: str = ""):
        return value

    @staticmethod
    def gain(g, x):
        return x if g is None else g * x

    @staticmethod
    def fires(v, theta, cmp: Comparator):
        return fires(v, theta, cmp)

    @staticmethod
    def nograd(x):
        return x

    @staticmethod
    def fired(s):
        return s > 0

    @staticmethod
    def where(cond, a, b):
        return torch.where(cond, a, b)

    @staticmethod
    def lt(a, b):
        return (a < b).to(F32)

    @staticmethod
    def positive(x):
        return (x > 0).to(F32)

    @staticmethod
    def floor(x):
        return torch.floor(x)

    @staticmethod
    def clamp(x, lo, hi):
        return torch.clamp(x, lo, hi)

    @staticmethod
    def full_like(value, like):
        return value.expand_as(like).clone()


class _FastSigmoidSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor, slope: float, ge: bool) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.slope = slope
        return (u >= 0 if ge else u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (u,) = ctx.saved_tensors
        return grad / (1.0 + ctx.slope * u.abs()) ** 2, None, None


def spike(v: torch.Tensor, theta: torch.Tensor, cmp: Comparator, slope: float) -> torch.Tensor:
    """Heaviside with a fast-sigmoid surrogate gradient (``>`` or ``>=`` per ``cmp``)."""
    return _FastSigmoidSpike.apply(v - theta, slope, cmp is Comparator.GE)


class _StraightFloor(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class SurrogateFloat(TorchFloat):
    """``TorchFloat`` with surrogate spike gradients, detached reset terms and a
    straight-through floor (graded spikes)."""

    def __init__(self, slope: float = 25.0, device=None):
        super().__init__(device)
        self.slope = slope

    def fires(self, v, theta, cmp: Comparator):
        return spike(v, theta, cmp, self.slope)

    @staticmethod
    def nograd(x):
        return x.detach()

    @staticmethod
    def floor(x):
        return _StraightFloor.apply(x)
