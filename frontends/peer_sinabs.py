"""Sinabs 3.1 layers, imported with their own arithmetic (``rsnn_compiler/neurons/sinabs.py``).

    IAF, LIF                 i = x (or a_syn*(i + x) with tau_syn); v = beta*v + g*i   -> Sinabs
                             (IAF: beta = 1; LIF: beta = exp(-1/tau_mem) as Sinabs computes it,
                             g = 1 - beta with norm_input)
    IAFRecurrent, LIFRecurrent  the same on x + rec_connect(s) of the previous step    -> Sinabs + rec
    ExpLeak                  v = beta*v + g*x, emits v                                -> LI
    spike_fn SingleSpike (v >= theta), MultiSpike ((v > 0)*floor(v/theta)), MaxSpike(m) (at most m);
    reset_fn MembraneSubtract (v - n*theta), MembraneReset(r) (v*(n == 0) + r)

Layers take (batch, T, ...): the whole sequence in one call (sequence axis 1). The ``*Squeeze``
variants (IAFSqueeze, LIFSqueeze, ExpLeakSqueeze) are the same neuron on (batch*T, ...) folded
batch-major (``fold``; the layout is ``folded_time``'s).
"""

from __future__ import annotations

import torch
from torch import nn

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.family_ops import Sinabs
from rsnn_compiler.ir.ops import LI, Affine, ResetMode
from rsnn_compiler.neurons.sinabs import Spikes, Synapse

from rsnn_compiler.frontends._common import to_array
from rsnn_compiler.frontends.folded_time import Fold
from rsnn_compiler.frontends.peer_modules import PeerNeuron, full, per_neuron, refuse, scalar

LIB = "Sinabs"
SUPPORTED = ("IAF", "LIF", "IAFRecurrent", "LIFRecurrent", "ExpLeak", "IAFSqueeze", "LIFSqueeze", "ExpLeakSqueeze")
SQUEEZE = "Squeeze"
REFUSED = {
    "ALIF": "Sinabs' ALIF adapts its threshold with its own decay and update order, which no IR family"
            " computes yet",
    "ALIFRecurrent": "Sinabs' ALIF adapts its threshold with its own decay and update order, which no IR"
                     " family computes yet",
}


def is_neuron(module: nn.Module) -> bool:
    return hasattr(module, "spike_fn") or hasattr(module, "v_mem") or type(module).__name__ in REFUSED


def sequence_axis(module: nn.Module) -> int | None:
    return None if fold(module) is not None else 1


def fold(module: nn.Module) -> Fold | None:
    """How a squeeze layer unfolds its (batch*T, ...) input (None: not a squeeze layer)."""
    if not type(module).__name__.endswith(SQUEEZE):
        return None
    batch, steps = int(module.batch_size), int(module.num_timesteps)
    return Fold(batch_size=batch if batch > 0 else None, num_timesteps=steps if steps > 0 else None)


def _spikes(m, kind: str, path: str) -> tuple[Spikes, int, str]:
    from sinabs.activation import MaxSpike, MultiSpike, SingleSpike

    fn = m.spike_fn
    if fn is SingleSpike:
        return Spikes.SINGLE, 0, "SingleSpike"
    if fn is MultiSpike:
        return Spikes.MULTI, 0, "MultiSpike"
    if isinstance(fn, MaxSpike):
        levels = int(fn.max_num_spikes_per_bin or 0)
        return Spikes.MULTI, levels, f"MaxSpike({levels or None})"
    name = getattr(fn, "__name__", type(fn).__name__)
    raise UserInputError(f"{LIB} {kind} '{path}': spike_fn={name} is not supported; use SingleSpike,"
                         " MultiSpike or MaxSpike")


def _reset(m, kind: str, path: str, theta: float) -> tuple[ResetMode, float, str]:
    from sinabs.activation import MembraneReset, MembraneSubtract

    reset = m.reset_fn
    if isinstance(reset, MembraneSubtract):
        if reset.subtract_value is not None and float(reset.subtract_value) != theta:
            raise UserInputError(f"{LIB} {kind} '{path}': MembraneSubtract(subtract_value) != spike_threshold"
                                 " is not supported; leave subtract_value=None")
        return ResetMode.SUBTRACT, 0.0, "MembraneSubtract"
    if isinstance(reset, MembraneReset):
        value = float(reset.reset_value)
        return ResetMode.ZERO, value, f"MembraneReset({value:g})"
    raise UserInputError(f"{LIB} {kind} '{path}': reset_fn {type(reset).__name__} is not supported")


def _folded(m: nn.Module) -> str:
    f = fold(m)
    return "" if f is None else f" on its (batch*T, ...) input unfolded batch-major ({f.describe()})"


def neuron(m: nn.Module, path: str, shape) -> PeerNeuron:
    kind = type(m).__name__
    if kind in REFUSED:
        raise refuse(LIB, kind, path, REFUSED[kind])
    if kind not in SUPPORTED:
        raise UserInputError(f"{LIB} module '{path}' ({kind}) is not supported; supported: {', '.join(SUPPORTED)}"
                             " (see docs/frontends.md)")
    if getattr(m, "min_v_mem", None) is not None:
        raise UserInputError(f"{LIB} {kind} '{path}': min_v_mem clamps the membrane, which the IR cannot; use min_v_mem=None")
    with torch.no_grad():
        beta = per_neuron(m.alpha_mem_calculated.detach().float(), shape, "tau_mem", path)  # what Sinabs multiplies by
        gain = per_neuron(1 - m.alpha_mem_calculated.detach().float(), shape, "tau_mem", path) if m.norm_input \
            else full(shape, 1.0)
    base = kind.removesuffix(SQUEEZE)  # a squeeze layer is its base layer on the unfolded input
    where = "exp(-1/tau_mem)*v" if base.startswith("LIF") or base == "ExpLeak" else "v"
    what = f"{where} + {'(1 - exp(-1/tau_mem))*' if m.norm_input else ''}"
    if base == "ExpLeak":
        op = LI(beta=beta, gain=gain, bias=full(shape, 0.0), v_init=full(shape, 0.0))
        return PeerNeuron(op, sequence_axis(m), f"'{path}': {LIB} {kind}: v = {what}x{_folded(m)}")
    theta = scalar(m.spike_threshold, "spike_threshold", path)
    spikes, levels, spike_name = _spikes(m, kind, path)
    if spikes is Spikes.MULTI and not theta > 0:
        raise UserInputError(f"{LIB} {kind} '{path}': {spike_name} counts floor(v/spike_threshold) spikes, which needs"
                             f" spike_threshold > 0 (got {theta:g})")
    reset, v_reset, reset_name = _reset(m, kind, path, theta)
    syn = getattr(m, "tau_syn", None) is not None or getattr(m, "alpha_syn", None) is not None
    a_syn = per_neuron(m.alpha_syn_calculated.detach().float(), shape, "tau_syn", path) if syn else full(shape, 0.0)
    op = Sinabs(a_syn=a_syn, beta=beta, gain=gain, theta=full(shape, theta), v_reset=full(shape, v_reset),
                v_init=full(shape, 0.0), synapse=Synapse.EXP if syn else Synapse.NONE, spikes=spikes,
                levels=levels, reset=reset)
    current = "i = exp(-1/tau_syn)*(i + x)" if syn else "i = x"
    note = f"'{path}': {LIB} {kind}: {current}, v = {what}i, {spike_name}, {reset_name}{_folded(m)}"
    if not base.endswith("Recurrent"):
        return PeerNeuron(op, sequence_axis(m), note)
    rec = m.rec_connect
    if not isinstance(rec, nn.Linear):
        raise UserInputError(f"{LIB} {kind} '{path}': rec_connect {type(rec).__name__} is not supported; use nn.Linear")
    w_rec = Affine(weight=to_array(rec.weight), bias=None if rec.bias is None else to_array(rec.bias))
    # Sinabs feeds rec_connect(s[t]) back at t + 1 and nothing (no bias either) at t = 0
    return PeerNeuron(op, sequence_axis(m), note + "; the recurrent input is added to x before integrating",
                      recurrent=w_rec, recurrent_delays=(0, 1))
