"""Norse 1.1 cells and layers, imported with Norse's own forward Euler (``rsnn_compiler/neurons/norse.py``).

k_mem = dt*tau_mem_inv, k_syn = -dt*tau_syn_inv and k_adapt = dt*tau_adapt_inv are computed with
torch exactly as Norse computes them each step, from the module's own ``dt``:

    LIFCell, LIF                  i += x; v' = v + k_mem*((v_leak - v) + i); i += k_syn*i  -> NorseLIF
    LIFRecurrentCell, LIFRecurrent  the same with i += W_in x + W_rec z (z of the step before)
    LIFBoxCell                    v' = v + k_mem*((x + v_leak) - v)                        -> NorseLIFBox
    LICell, LI                    NorseLIF without the spike (emits v)                     -> NorseLI
    IAFCell, IAF                  v = v + x; s = v > v_th; v = s ? v_reset : v             -> IF
    LSNNCell, LSNN                NorseLIF integrating the previous step's current, with a
                                  threshold b = b + k_adapt*(v_th - b), b += s*beta         -> NorseLSNN
    LSNNRecurrentCell, LSNNRecurrent  the same with i += W_in x + W_rec z

fire: z = v' > v_th (Norse's heaviside); reset v = (1 - z)*v' + z*v_reset (LIFBox also
reset_subtract); membranes start at v_leak (IAF: v_reset), thresholds at v_th. ``*Cell``
modules take one step and their state, the others the whole (T, batch, ...) sequence. LSNN
cells add the input to the current after the membrane update: the input reaches the membrane
one step later, which the IR expresses as a one-step delay on the edge into the neuron (and two
on its recurrent connection).
"""

from __future__ import annotations

import torch
from torch import nn

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.family_ops import NorseLI, NorseLIF, NorseLIFBox, NorseLSNN
from rsnn_compiler.ir.ops import IF, Affine, Comparator, ResetMode

from rsnn_compiler.frontends._common import to_array
from rsnn_compiler.frontends.peer_modules import PeerNeuron, full, per_neuron, refuse

LIB = "Norse"
DETERMINISTIC = ("super", "heaviside", "triangle", "tanh", "circ", "heavi_erfc")  # forward: heaviside
# class -> (IR kind, state tensors in the call, recurrent weights)
KINDS = {
    "LIFCell": ("lif", 2, False), "LIF": ("lif", 2, False),
    "LIFRecurrentCell": ("lif", 3, True), "LIFRecurrent": ("lif", 3, True),
    "LIFBoxCell": ("box", 1, False),
    "LICell": ("li", 2, False), "LI": ("li", 2, False),
    "IAFCell": ("iaf", 1, False), "IAF": ("iaf", 1, False),
    "LSNNCell": ("lsnn", 3, False), "LSNN": ("lsnn", 3, False),
    "LSNNRecurrentCell": ("lsnn", 4, True), "LSNNRecurrent": ("lsnn", 4, True),
}
SEQUENCES = ("LIF", "LIFRecurrent", "LI", "IAF", "LSNN", "LSNNRecurrent")


def is_neuron(module: nn.Module) -> bool:
    return type(module).__name__ in KINDS or type(module).__module__.startswith("norse.torch.module.") and \
        hasattr(module, "state_fallback")


def sequence_axis(module: nn.Module) -> int | None:
    return 0 if type(module).__name__ in SEQUENCES else None


def state_size(module: nn.Module) -> int:
    return KINDS.get(type(module).__name__, ("", 1, False))[1]


def _k(dt: float, rate, shape, what: str, path: str, sign: float = 1.0):
    """dt*rate (or -dt*rate) as Norse computes it: a Python float times a float32 tensor."""
    with torch.no_grad():
        value = (-dt if sign < 0 else dt) * torch.as_tensor(rate)
    return per_neuron(value.float(), shape, what, path)


def neuron(m: nn.Module, path: str, shape) -> PeerNeuron:
    kind = type(m).__name__
    if kind not in KINDS:
        raise UserInputError(f"{LIB} module '{path}' ({kind}) is not supported; supported: {', '.join(KINDS)}"
                             " (see docs/frontends.md)")
    family, _, recurrent = KINDS[kind]
    p, dt = m.p, float(m.dt)
    method = getattr(p, "method", "super")
    if method not in DETERMINISTIC or "adjoint" in getattr(m.activation, "__name__", ""):
        raise refuse(LIB, kind, path, f"method '{method}' is not a heaviside forward (use 'super' or 'heaviside')")
    if recurrent:
        shape = (int(m.hidden_size),)
    pn = lambda name: per_neuron(getattr(p, name), shape, name, path)  # noqa: E731
    note = f"'{path}': {LIB} {kind} (dt {dt:g}), fires on v > v_th"
    if family == "iaf":
        op = IF(gain=full(shape, 1.0), bias=full(shape, 0.0), theta=pn("v_th"), v_reset=pn("v_reset"),
                v_init=pn("v_reset"), reset=ResetMode.ZERO, comparator=Comparator.GT)
        return PeerNeuron(op, sequence_axis(m), note)
    k_mem = _k(dt, p.tau_mem_inv, shape, "tau_mem_inv", path)
    if family == "box":
        from norse.torch.functional.reset import reset_subtract, reset_value

        if p.reset_method not in (reset_value, reset_subtract):
            raise refuse(LIB, kind, path, "reset_method must be norse's reset_value or reset_subtract")
        reset = ResetMode.ZERO if p.reset_method is reset_value else ResetMode.SUBTRACT
        op = NorseLIFBox(k_mem=k_mem, v_leak=pn("v_leak"), theta=pn("v_th"), v_reset=pn("v_reset"),
                         v_init=pn("v_leak"), reset=reset, comparator=Comparator.GT)
        return PeerNeuron(op, sequence_axis(m), note)
    common = dict(k_mem=k_mem, k_syn=_k(dt, p.tau_syn_inv, shape, "tau_syn_inv", path, -1.0),
                  v_leak=pn("v_leak"), v_init=pn("v_leak"))
    if family == "li":
        return PeerNeuron(NorseLI(**common), sequence_axis(m), f"'{path}': {LIB} {kind} (dt {dt:g})")
    spiking = dict(theta=pn("v_th"), v_reset=pn("v_reset"), comparator=Comparator.GT)
    if family == "lif":
        op = NorseLIF(**common, **spiking, reset=ResetMode.ZERO)
        delay, rec_delays = 0, (1, 0)
    else:
        op = NorseLSNN(**common, **spiking, k_adapt=_k(dt, p.tau_adapt_inv, shape, "tau_adapt_inv", path),
                       b_inc=pn("beta"))
        delay, rec_delays = 1, (1, 1)
        note += "; the input reaches the membrane one step later (LSNN integrates the previous current)"
    if not recurrent:
        return PeerNeuron(op, sequence_axis(m), note, input_delay=delay)
    w_in = Affine(weight=to_array(m.input_weights), bias=None)
    w_rec = Affine(weight=to_array(m.recurrent_weights), bias=None)
    return PeerNeuron(op, sequence_axis(m), note, input_weight=w_in, input_delay=delay, recurrent=w_rec,
                      recurrent_delays=rec_delays)
