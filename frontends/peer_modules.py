"""Neuron modules of the other PyTorch SNN libraries, imported directly (no NIR exporter).

Each supported module maps to an IR neuron whose float32 arithmetic is the library's own,
operation for operation (the update forms of ``rsnn_compiler/neurons``); everything else is
refused naming what the IR lacks. One module per library:

    SpikingJelly 2.0  IFNode, LIFNode, ParametricLIFNode       ``peer_spikingjelly``
    Sinabs 3.1        IAF, LIF, IAFRecurrent, LIFRecurrent,     ``peer_sinabs``
                      ExpLeak, their Squeeze variants (single, multi and max spikes)
    Norse 1.1         LIF/LIFBox/LI/IAF cells, LIFRecurrentCell,  ``peer_norse``
                      LSNN cells, and their sequence modules

Single-step modules (SpikingJelly ``step_mode='s'``, Norse cells) are stepped per time step;
multi-step ones (SpikingJelly ``step_mode='m'`` and Norse sequence modules: x (T, batch, ...);
Sinabs layers: x (batch, T, ...)) process the whole sequence in one call (``sequence_axis``);
Sinabs ``*Squeeze`` layers take it folded, (batch*T, ...) (``fold``, ``folded_time``).
Norse modules take and return their state explicitly (``explicit_state``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.ops import Op

from rsnn_compiler.frontends.folded_time import Fold

# library module path prefix -> library name
LIBRARIES = {
    "spikingjelly.activation_based": "SpikingJelly",
    "sinabs": "Sinabs",
    "norse": "Norse",
}


@dataclass(frozen=True)
class PeerNeuron:
    """The IR of one peer neuron module: the neuron op, and the connections the module itself
    holds (Norse recurrent cells: input and recurrent weights; Sinabs: ``rec_connect``)."""

    op: Op
    sequence_axis: int | None  # 0: (T, batch, ...) per call; 1: (batch, T, ...); None: one step per call
    note: str
    input_weight: Op | None = None  # applied to the module's input before the neuron
    input_delay: int = 0  # steps between the input and the neuron (Norse LSNN integrates it a step late)
    recurrent: Op | None = None  # the module's recurrent connection (neuron -> recurrent -> neuron)
    recurrent_delays: tuple[int, int] = (1, 0)  # delays of neuron -> recurrent and recurrent -> neuron


def library_of(module: nn.Module) -> str | None:
    mod = type(module).__module__
    for prefix, name in LIBRARIES.items():
        if mod.startswith(prefix):
            return name
    return None


def _library_module(lib: str):
    from rsnn_compiler.frontends import peer_norse, peer_sinabs, peer_spikingjelly

    return {"SpikingJelly": peer_spikingjelly, "Sinabs": peer_sinabs, "Norse": peer_norse}[lib]


def is_peer_neuron(module: nn.Module) -> bool:
    """A neuron module of SpikingJelly, Sinabs or Norse (supported or refused)."""
    lib = library_of(module)
    return lib is not None and _library_module(lib).is_neuron(module)


def peer_neuron(module: nn.Module, path: str, shape: tuple[int, ...]) -> PeerNeuron:
    """The IR neuron of a peer module (module docstring), or a one-line refusal."""
    lib = library_of(module)
    return _library_module(lib).neuron(module, path, shape)


def sequence_axis(module: nn.Module) -> int | None:
    """Where time is in the tensors a peer neuron takes per call (None: one step per call)."""
    lib = library_of(module)
    return _library_module(lib).sequence_axis(module) if lib is not None else None


def fold(module: nn.Module) -> Fold | None:
    """How a neuron module unfolds a (batch*T, ...) input (Sinabs squeeze layers), else None."""
    return _library_module("Sinabs").fold(module) if library_of(module) == "Sinabs" else None


def explicit_state(module: nn.Module) -> bool:
    """Whether the module takes its state as an argument and returns it (Norse)."""
    return library_of(module) == "Norse"


def state_outputs(module: nn.Module) -> int:
    """How many state tensors a module with explicit state passes (its call's state arguments)."""
    return _library_module("Norse").state_size(module)


def reset_state(module: nn.Module) -> None:
    """Put a peer neuron back at rest (SpikingJelly ``reset``, Sinabs ``reset_states``)."""
    if hasattr(module, "reset_states"):
        module.reset_states()
    elif hasattr(module, "reset") and callable(module.reset):
        module.reset()


# ---- helpers shared by the library modules ----------------------------------------------------
def scalar(value, what: str, path: str) -> float:
    """One float32 value (a layer-wide parameter)."""
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float32)
    if arr.size != 1:
        raise UserInputError(f"module '{path}': {what} of shape {arr.shape}; rsnnc imports one value per layer here")
    return float(arr.reshape(-1)[0])


def per_neuron(value, shape, what: str, path: str, lib: str = "") -> np.ndarray:
    """A float32 parameter (scalar or per neuron) broadcast to the population ``shape``."""
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float32)
    try:
        return np.broadcast_to(arr, shape).copy()
    except ValueError:
        raise UserInputError(
            f"{lib + ' ' if lib else ''}module '{path}': {what} of shape {arr.shape} does not fit the layer shape"
            f" {tuple(shape)}; give one value per neuron or a scalar"
        ) from None


def full(shape, value) -> np.ndarray:
    return np.full(shape, value, np.float32)


def refuse(lib: str, kind: str, path: str, why: str) -> UserInputError:
    return UserInputError(f"{lib} {kind} '{path}' cannot be imported exactly: {why}")
