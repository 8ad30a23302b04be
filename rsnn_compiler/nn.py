"""Trainable PyTorch modules for the neuron families added through the definition.

``TCLIF``, ``GLIF`` and ``Izhikevich`` are stateful cells (one time step per call, like snnTorch
cells with ``init_hidden=True``; ``reset_mem()`` starts a new sequence) whose forward is the
family's float definition (``rsnn_compiler.neurons``) run with the surrogate primitive set: the
IR's float semantics exactly, with a fast-sigmoid surrogate gradient for the spike and the reset
terms detached. ``to_ir_op()`` gives the IR op with the current values, so a model trained with
them imports exactly (``rsnnc build pkg.module:factory --weights ...``: the PyTorch importer
maps every ``NeuronCell``).

Parameters squashed into [0, 1] (TC-LIF's couplings, GLIF's gates and decays) are trained as
logits: the IR holds ``sigmoid(logit)`` in float32, computed by the same torch call.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from rsnn_compiler.interpreter.float_prims import SurrogateFloat
from rsnn_compiler.ir.catalogue import neuron_op_class
from rsnn_compiler.neurons import FLOAT_FAMILIES, Domain, Namespace
from rsnn_compiler.neurons.family import initial_state


class NeuronCell(nn.Module):
    """A population of ``size`` neurons of one float family (see the module docstring).

    Keyword arguments give parameter values (scalars or per-neuron), choices (``reset``,
    ``comparator``) and ``slope`` (surrogate steepness). ``trainable`` names the parameters
    that get gradients; the others are buffers.
    """

    family: ClassVar[str]
    squashed: ClassVar[tuple[str, ...]] = ()  # stored as logits, used as sigmoid(logit)
    trainable: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict] = {}
    init_hidden = True  # keeps its own state between calls (what the PyTorch importer expects)

    def __init__(self, size: int, slope: float = 25.0, **values):
        super().__init__()
        self.size, self.slope = int(size), float(slope)
        self.definition = FLOAT_FAMILIES[self.family]
        given = {**self.defaults, **values}
        self.choices = {}
        for q in self.definition.params:
            value = given.get(q.name, q.default)
            if q.choices is not None:
                self.choices[q.name] = q.choices(getattr(value, "value", value))
                continue
            if not q.per_neuron:
                self.choices[q.name] = value
                continue
            if value is None:
                raise ValueError(f"{type(self).__name__}: parameter '{q.name}' is required")
            t = torch.as_tensor(np.broadcast_to(np.asarray(value, np.float32), (self.size,)).copy())
            if q.name in self.squashed:
                t = torch.logit(t.double()).float()
            if q.name in self.trainable:
                self.register_parameter(q.name, nn.Parameter(t))
            else:
                self.register_buffer(q.name, t)
        self._state: Namespace | None = None

    def ir_values(self) -> dict[str, torch.Tensor]:
        """The IR parameter values (float32 tensors, differentiable) and the choices."""
        out = dict(self.choices)
        for q in self.definition.params:
            if q.name in out:
                continue
            t = getattr(self, q.name)
            out[q.name] = torch.sigmoid(t) if q.name in self.squashed else t
        return out

    def reset_mem(self) -> None:
        self._state = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One time step on ``x`` (batch, size): returns the spikes (batch, size)."""
        prims = SurrogateFloat(self.slope, x.device)
        p = self.definition.derive(Namespace(**self.ir_values()))
        if self._state is None or self._state.v.shape[0] != x.shape[0]:
            self._state = initial_state(prims, self.definition, p, x.shape[0], (self.size,))
        return self.definition.step(prims, p, self._state, [x])

    def to_ir_op(self):
        """The IR op with the current values (exactly what ``forward`` computes with)."""
        cls = neuron_op_class(Domain.FLOAT, self.family)
        with torch.no_grad():
            values = {k: (v.detach().cpu().numpy().astype(np.float32) if isinstance(v, torch.Tensor) else v)
                      for k, v in self.ir_values().items()}
        return cls(**values)


class TCLIF(NeuronCell):
    """TC-LIF (Zhang et al. 2024): dendrite-soma coupling beta_d, beta_s (trained as logits, the
    reference's ``decay_factor``), soft reset gamma/theta; comparator ``ge`` as the reference."""

    family = "tclif"
    squashed = ("beta_d", "beta_s")
    trainable = ("beta_d", "beta_s")
    defaults = dict(beta_d=0.5, beta_s=0.5, gamma=0.5, gain=1.0, bias=0.0, theta=1.0, v_reset=0.0, v_init=0.0)


class GLIF(NeuronCell):
    """GLIF (Yao et al. 2022): gates alpha, beta, gamma and tau, conduct trained as logits;
    leak, v_subreset, theta trainable as they are."""

    family = "glif"
    squashed = ("alpha", "beta", "gamma", "tau", "conduct")
    trainable = squashed + ("leak", "v_subreset", "theta")
    defaults = dict(alpha=0.5, beta=0.5, gamma=0.5, tau=0.25, conduct=0.5, leak=0.01, v_subreset=0.5,
                    bias=0.0, theta=0.5, v_init=0.0)


class Izhikevich(NeuronCell):
    """Izhikevich (2003) regular spiking defaults (mV, ms); ``a`` is per step (a * dt);
    ``a``, ``b``, ``c``, ``d`` trainable."""

    family = "izhikevich"
    trainable = ("a", "b", "c", "d")
    defaults = dict(p2=0.04, p1=5.0, p0=140.0, dt=0.5, a=0.01, b=0.2, c=-65.0, d=8.0, gain=1.0,
                    theta=30.0, v_init=-65.0, w_init=-13.0)


CELLS: dict[str, type[NeuronCell]] = {c.family: c for c in (TCLIF, GLIF, Izhikevich)}

__all__ = ["CELLS", "GLIF", "Izhikevich", "NeuronCell", "TCLIF"]
