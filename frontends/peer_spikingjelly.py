"""SpikingJelly 2.0 (``activation_based.neuron``) neurons, imported with their own arithmetic.

    IFNode             v = v + x; s = v >= v_threshold                        -> IF, ge
    LIFNode            h = v + (x - (v - v_reset))/tau   (decay_input=True)   -> SJLIF, charge tau_input
                       h = v - (v - v_reset)/tau + x     (decay_input=False)  -> SJLIF, charge tau
    ParametricLIFNode  the same with *sigmoid(w) in place of /tau             -> SJLIF, charge rate[_input]
    hard reset (v_reset given): v = s ? v_reset : h, membranes start at v_reset (reset zero);
    soft reset (v_reset=None): v = h - v_threshold*s, charged with v_reset = 0 (reset subtract)

Step mode 's' is stepped per time step, 'm' takes the whole (T, batch, ...) sequence.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.family_ops import SJLIF
from rsnn_compiler.ir.ops import IF, Comparator, ResetMode
from rsnn_compiler.neurons.spikingjelly import Charge

from rsnn_compiler.frontends.peer_modules import PeerNeuron, full, per_neuron, refuse, scalar

LIB = "SpikingJelly"
SUPPORTED = ("IFNode", "LIFNode", "ParametricLIFNode")


def is_neuron(module: nn.Module) -> bool:
    return type(module).__module__.startswith("spikingjelly.activation_based.neuron")


def sequence_axis(module: nn.Module) -> int | None:
    return 0 if getattr(module, "step_mode", "s") == "m" else None


def neuron(m: nn.Module, path: str, shape) -> PeerNeuron:
    kind = type(m).__name__
    if kind not in SUPPORTED:
        raise UserInputError(
            f"{LIB} module '{path}' ({kind}) is not supported; supported: {', '.join(SUPPORTED)}"
            " (see docs/frontends.md)"
        )
    if getattr(m, "backend", "torch") != "torch":
        raise UserInputError(f"{LIB} {kind} '{path}': backend '{m.backend}'; use backend='torch'")
    if getattr(m, "_neuron_precision", None) is not None:
        raise refuse(LIB, kind, path, "an explicit neuron precision runs in reduced float formats; import it in fp32")
    theta = scalar(m.v_threshold, "v_threshold", path)
    hard = m.v_reset is not None
    v_reset = scalar(m.v_reset, "v_reset", path) if hard else 0.0
    reset = ResetMode.ZERO if hard else ResetMode.SUBTRACT
    common = dict(theta=full(shape, theta), v_reset=full(shape, v_reset), v_init=full(shape, v_reset),
                  reset=reset, comparator=Comparator.GE)
    mode = f"hard reset to {v_reset:g}" if hard else "soft reset (subtract v_threshold)"
    if kind == "IFNode":
        op = IF(gain=full(shape, 1.0), bias=full(shape, 0.0), **common)
        return PeerNeuron(op, sequence_axis(m), f"'{path}': {LIB} IFNode, {mode}, fires on v >= {theta:g}")
    if kind == "LIFNode":
        k = full(shape, np.float32(m.tau))  # SpikingJelly divides by the Python float tau, as float32
        charge = Charge.TAU_INPUT if m.decay_input else Charge.TAU
        what = f"tau {float(k.reshape(-1)[0]):g}"
    else:
        with torch.no_grad():
            q = m.w.detach().float().sigmoid()  # what SpikingJelly multiplies by
        k = per_neuron(q, shape, "w", path)
        charge = Charge.RATE_INPUT if m.decay_input else Charge.RATE
        what = f"sigmoid(w) {float(k.reshape(-1)[0]):g}"
    op = SJLIF(k=k, charge=charge, **common)
    return PeerNeuron(op, sequence_axis(m), f"'{path}': {LIB} {kind} ({what}, decay_input={m.decay_input}),"
                                            f" {mode}, fires on v >= {theta:g}")
