"""Neuron modules of the other PyTorch SNN libraries, imported directly (no NIR exporter).

Each supported module maps to an IR neuron whose float32 arithmetic is the library's own,
operation for operation; everything else is refused naming what the IR lacks.

    SpikingJelly 2.0  neuron.IFNode            v = v + x; s = [v - v_th >= 0];
                                               hard: v = s*v_reset + (1 - s)*v   -> IF, ge, zero (v_init = v_reset)
                                               soft (v_reset=None): v = v - v_th*s -> IF, ge, subtract
    Sinabs 3.1        layers.IAF               v = 1*v + x                        -> IF, ge
                      layers.LIF               v = a*v + (1 - a)*x, a = exp(-1/tau) (float32, as Sinabs computes it)
                                                                                  -> LIF, beta = a, gain = 1 - a, ge
                      SingleSpike: s = [v - theta >= 0]; MembraneSubtract: v = v - s*theta (subtract);
                      MembraneReset(0): v = v*(s == 0) + 0 (zero)

Single-step modules (SpikingJelly ``step_mode='s'``) are stepped per time step; multi-step ones
(SpikingJelly ``step_mode='m'``: x (T, batch, ...); Sinabs IAF/LIF: x (batch, T, ...)) process
the whole sequence in one call (``sequence_axis``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.ops import IF, LIF, Comparator, Op, ResetMode

_ORDER = ("the IR's neurons compute beta*v + gain*x + bias with each float32 operation rounded in that order,"
          " which is not this module's arithmetic; it needs a new update form of the neuron definition (issue 13)")

# library module path prefix -> library name
LIBRARIES = {
    "spikingjelly.activation_based": "SpikingJelly",
    "sinabs": "Sinabs",
    "norse": "Norse",
}
# modules known to need arithmetic the IR does not have yet: (library, class) -> what is missing
REFUSED = {
    ("SpikingJelly", "LIFNode"): "LIFNode computes v + (v_reset - v + x)/tau (decay_input=True) or"
                                 " v + (v_reset - v)/tau + x; " + _ORDER,
    ("SpikingJelly", "ParametricLIFNode"): "ParametricLIFNode computes v + (v_reset - v + x)*sigmoid(w); " + _ORDER,
    ("Norse", "LIFCell"): "LIFCell integrates current and membrane with forward Euler in Norse's order"
                          " (v + dt*tau_mem_inv*((v_leak - v) + i)); " + _ORDER,
    ("Norse", "LIFBoxCell"): "LIFBoxCell computes v + dt*tau_mem_inv*(x + v_leak - v); " + _ORDER,
    ("Norse", "LIF"): "Norse's LIF integrates with forward Euler in Norse's order; " + _ORDER,
    ("Norse", "LIFBox"): "Norse's LIFBox computes v + dt*tau_mem_inv*(x + v_leak - v); " + _ORDER,
    ("Norse", "LIFRecurrentCell"): "LIFRecurrentCell adds the recurrent input before Norse's Euler step; " + _ORDER,
    ("Norse", "LIFRecurrent"): "LIFRecurrent adds the recurrent input before Norse's Euler step; " + _ORDER,
    ("Norse", "LIFBoxRecurrentCell"): "LIFBoxRecurrentCell adds the recurrent input before Norse's Euler step; " + _ORDER,
    ("Norse", "IAFCell"): "IAFCell integrates with Norse's forward Euler; " + _ORDER,
    ("Norse", "LICell"): "LICell integrates with Norse's forward Euler; " + _ORDER,
    ("Sinabs", "IAFRecurrent"): "IAFRecurrent adds the recurrent input to x before integrating (v + (x + W s)),"
                                " while the IR adds it onto the membrane ((v + x) + W s); " + _ORDER,
    ("Sinabs", "LIFRecurrent"): "LIFRecurrent adds the recurrent input to x before integrating; " + _ORDER,
    ("Sinabs", "ExpLeak"): "ExpLeak is a non-spiking exponential leak; " + _ORDER,
    ("Sinabs", "ALIF"): "Sinabs' ALIF adapts its threshold with its own decay; " + _ORDER,
}
SUPPORTED = {("SpikingJelly", "IFNode"), ("Sinabs", "IAF"), ("Sinabs", "LIF"), ("Sinabs", "IAFSqueeze"),
             ("Sinabs", "LIFSqueeze")}


def library_of(module: nn.Module) -> str | None:
    mod = type(module).__module__
    for prefix, name in LIBRARIES.items():
        if mod.startswith(prefix):
            return name
    return None


def is_peer_neuron(module: nn.Module) -> bool:
    """A neuron module of SpikingJelly, Sinabs or Norse (supported or refused)."""
    lib = library_of(module)
    if lib is None:
        return False
    key = (lib, type(module).__name__)
    if key in SUPPORTED or key in REFUSED:
        return True
    if lib == "SpikingJelly":
        return type(module).__module__.startswith("spikingjelly.activation_based.neuron")
    if lib == "Sinabs":
        return hasattr(module, "spike_fn") or hasattr(module, "v_mem")
    return lib == "Norse" and type(module).__module__.startswith("norse.torch.module")


@dataclass(frozen=True)
class PeerNeuron:
    op: Op
    sequence_axis: int | None  # 0: (T, batch, ...) per call; 1: (batch, T, ...); None: one step per call
    note: str


def _float(value, what: str, path: str) -> float:
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float32)
    if arr.size != 1:
        raise UserInputError(f"module '{path}': {what} of shape {arr.shape}; rsnnc imports one value per layer here")
    return float(arr.reshape(-1)[0])


def peer_neuron(module: nn.Module, path: str, shape: tuple[int, ...]) -> PeerNeuron:
    """The IR neuron of a peer module (module docstring), or a one-line refusal."""
    lib = library_of(module)
    kind = type(module).__name__
    if (lib, kind) in REFUSED:
        raise UserInputError(f"{lib} {kind} '{path}' cannot be imported exactly: {REFUSED[(lib, kind)]}")
    if (lib, kind) not in SUPPORTED:
        raise UserInputError(
            f"{lib} module '{path}' ({kind}) is not supported; supported: SpikingJelly IFNode, Sinabs IAF/LIF"
            " (SingleSpike), see docs/frontends.md"
        )
    if lib == "SpikingJelly":
        return _spikingjelly_if(module, path, shape)
    return _sinabs(module, path, shape, kind)


def _full(shape, value) -> np.ndarray:
    return np.full(shape, value, np.float32)


def _spikingjelly_if(m, path: str, shape) -> PeerNeuron:
    if getattr(m, "backend", "torch") != "torch":
        raise UserInputError(f"SpikingJelly IFNode '{path}': backend '{m.backend}'; use backend='torch'")
    theta = _float(m.v_threshold, "v_threshold", path)
    hard = m.v_reset is not None
    v_reset = _float(m.v_reset, "v_reset", path) if hard else 0.0
    op = IF(gain=_full(shape, 1.0), bias=_full(shape, 0.0), theta=_full(shape, theta),
            v_reset=_full(shape, v_reset), v_init=_full(shape, v_reset),
            reset=ResetMode.ZERO if hard else ResetMode.SUBTRACT, comparator=Comparator.GE)
    axis = 0 if getattr(m, "step_mode", "s") == "m" else None
    mode = f"hard reset to {v_reset:g}" if hard else "soft reset (subtract v_threshold)"
    return PeerNeuron(op, axis, f"'{path}': SpikingJelly IFNode, {mode}, fires on v >= {theta:g}")


def _sinabs(m, path: str, shape, kind: str) -> PeerNeuron:
    from sinabs.activation import MembraneReset, MembraneSubtract, SingleSpike

    if m.spike_fn is not SingleSpike:
        name = getattr(m.spike_fn, "__name__", type(m.spike_fn).__name__)
        raise UserInputError(
            f"Sinabs {kind} '{path}': spike_fn={name} emits several spikes per step, which the IR has no neuron"
            " for yet; use spike_fn=sinabs.activation.SingleSpike"
        )
    if getattr(m, "min_v_mem", None) is not None:
        raise UserInputError(f"Sinabs {kind} '{path}': min_v_mem clamps the membrane, which the IR cannot; use min_v_mem=None")
    if getattr(m, "tau_syn", None) is not None:
        raise UserInputError(
            f"Sinabs {kind} '{path}': tau_syn computes i = a_syn*(i + x), not the IR's i = alpha*i + gain*x; use tau_syn=None"
        )
    theta = _float(m.spike_threshold, "spike_threshold", path)
    reset = m.reset_fn
    if isinstance(reset, MembraneSubtract):
        if reset.subtract_value is not None and reset.subtract_value != theta:
            raise UserInputError(f"Sinabs {kind} '{path}': MembraneSubtract(subtract_value) != spike_threshold is not supported")
        mode = ResetMode.SUBTRACT
    elif isinstance(reset, MembraneReset):
        if reset.reset_value != 0:
            raise UserInputError(
                f"Sinabs {kind} '{path}': MembraneReset(reset_value={reset.reset_value}) adds the reset value to every"
                " neuron each step (v*(s == 0) + value); only reset_value=0 is a reset the IR expresses"
            )
        mode = ResetMode.ZERO
    else:
        raise UserInputError(f"Sinabs {kind} '{path}': reset_fn {type(reset).__name__} is not supported")
    zeros = _full(shape, 0.0)
    common = dict(bias=zeros, theta=_full(shape, theta), v_reset=zeros, v_init=zeros, reset=mode,
                  comparator=Comparator.GE)
    if kind.startswith("IAF"):
        op: Op = IF(gain=_full(shape, 1.0), **common)
        what = "IAF: v = v + x"
    else:
        alpha = m.alpha_mem_calculated.detach().to(torch.float32)  # what Sinabs multiplies by
        gain = (1 - alpha) if m.norm_input else torch.ones_like(alpha)
        beta = np.broadcast_to(alpha.cpu().numpy(), shape).astype(np.float32)
        op = LIF(beta=beta, gain=np.broadcast_to(gain.cpu().numpy(), shape).astype(np.float32), **common)
        what = "LIF: v = exp(-1/tau)*v + (1 - exp(-1/tau))*x" if m.norm_input else "LIF: v = exp(-1/tau)*v + x"
    axis = None if kind.endswith("Squeeze") else 1
    if kind.endswith("Squeeze"):
        raise UserInputError(
            f"Sinabs {kind} '{path}' folds time into the batch dim; use the non-squeeze layer ({kind[:-7]}) for import"
        )
    return PeerNeuron(op, axis, f"'{path}': Sinabs {what}, SingleSpike (v >= {theta:g}), {mode.value} reset")


def sequence_axis(module: nn.Module) -> int | None:
    """Where time is in the tensors a peer neuron takes per call (None: one step per call)."""
    lib = library_of(module)
    if lib == "SpikingJelly":
        return 0 if getattr(module, "step_mode", "s") == "m" else None
    if lib == "Sinabs" and not type(module).__name__.endswith("Squeeze"):
        return 1
    return None


def reset_state(module: nn.Module) -> None:
    """Put a peer neuron back at rest (SpikingJelly ``reset``, Sinabs ``reset_states``)."""
    if hasattr(module, "reset_states"):
        module.reset_states()
    elif hasattr(module, "reset") and callable(module.reset):
        module.reset()
