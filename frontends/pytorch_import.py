"""PyTorch / snnTorch 1.0 importer (and SpikingJelly/Sinabs neurons, ``peer_modules``).

Supported models: ``nn.Sequential`` (nested allowed), plain module containers whose ``forward``
is a sequential chain of their children in registration order (checked by tracing one step with
forward hooks: every child must consume the previous child's output), and models whose
``forward`` loops over time with explicit state (traced by ``time_loop``). Factories, model
files and checkpoints are resolved by ``checkpoints``. Layers:
``nn.Linear``, ``nn.Conv1d/2d``, ``nn.AvgPool1d/2d``, ``nn.MaxPool1d/2d``, ``nn.Flatten``,
``nn.BatchNorm1d/2d`` (eval statistics; canonicalize folds it), ``nn.Identity``/``nn.Dropout``
(dropped), ``snn.Leaky``, ``snn.Synaptic``, ``snn.RLeaky``, ``snn.RSynaptic``, ``snn.Alpha`` and
``snn.Lapicque`` (``snntorch_cells``); Sinabs squeeze layers on folded (batch*T, ...) input
(``folded_time``).

snnTorch is already discrete: beta/alpha are copied (clamped to [0, 1] as snnTorch does at run
time), gains are 1, and the reset maps to the IR as

    reset_mechanism  reset_delay  Leaky               Synaptic / RLeaky     RSynaptic
    subtract         True         subtract_deferred   subtract_deferred     subtract_deferred
    subtract         False        subtract_nodelay    subtract_nodelay      subtract_deferred (*)
    zero             True         zero                zero_hold             zero_hold
    zero             False        zero                zero                  zero_hold (*)
    none             any          none                none                  none
(*) snnTorch 1.0's RSynaptic applies its reset_delay=False reset to local variables it then
discards (rsynaptic.py), so the module behaves as reset_delay=True; rsnnc reproduces that.

Recurrent cells become ``neuron -> w_rec`` (delay 1) and ``w_rec -> neuron`` (delay 0), with the
feed-forward edge first, so the neuron computes ``(beta*v + input) + W s[t-1] + b`` from t = 0,
exactly like snnTorch.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rsnn_compiler.errors import CheckFailed, UserInputError
from rsnn_compiler.frontend_api import ImportOptions, ImportReport, ImportResult
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.float_repro import layout_hint
from rsnn_compiler.nn import NeuronCell
from rsnn_compiler.ir.graph import Edge, Graph, GraphAttrs
from rsnn_compiler.ir.ops import (
    LIF, Affine, BatchNorm, Conv1d, Conv2d, CubaLIF, Flatten, Input, Op, Output, Pool, PoolMode,
    ResetMode, Scale,
)
from rsnn_compiler.passes_api import Prop

from rsnn_compiler.frontends._common import finish_graph, sanitize_name, to_array
from rsnn_compiler.user_code import first_line, guard
from rsnn_compiler.frontends.checkpoints import build_model
from rsnn_compiler.frontends.folded_time import fidelity_input, model_fold, run_folded
from rsnn_compiler.frontends.peer_modules import (
    PeerNeuron, explicit_state, fold as peer_fold, is_peer_neuron, library_of, peer_neuron, per_neuron, reset_state as reset_peer,
    sequence_axis as peer_sequence_axis,
)
from rsnn_compiler.frontends.snntorch_cells import CELLS, cell_op
from rsnn_compiler.frontends.time_loop import (
    INPUT_KEY, INTERNAL_STATE, TRACE_BATCH, TRACE_STEPS, NodeKind, StepProgram, assign_steps, is_loop,
    reads_whole_input, step_program,
    trace_forward,
)

SNNTORCH_DT = 1e-4
DISCRETISATION = "none needed: snnTorch models are discrete-time (beta, alpha per step; gains 1)"
NEURON_CLASSES = ("Leaky", "Synaptic", "RLeaky", "RSynaptic") + CELLS
PASSTHROUGH = (nn.Identity, nn.Dropout)
FIDELITY_STEPS = 100
FIDELITY_BATCH = 4
FIDELITY_MAX_BATCH = 64  # calibration samples used for the fidelity check


def _is_snn(module: nn.Module) -> bool:
    if isinstance(module, NeuronCell):  # rsnn_compiler.nn: its IR op is its own definition
        return True
    return type(module).__module__.startswith("snntorch") and type(module).__name__ in NEURON_CLASSES


def _supported_leaf(module: nn.Module) -> bool:
    return _is_snn(module) or is_peer_neuron(module) or isinstance(
        module,
        (nn.Linear, nn.Conv1d, nn.Conv2d, nn.AvgPool1d, nn.AvgPool2d, nn.MaxPool1d, nn.MaxPool2d,
         nn.Flatten, nn.BatchNorm1d, nn.BatchNorm2d, *PASSTHROUGH),
    )


@dataclass
class Layer:
    path: str  # dotted module path ("" for the model itself)
    module: nn.Module


# ------------------------------------------------------------------------------------------
# Layer discovery
# ------------------------------------------------------------------------------------------
def collect_layers(model: nn.Module, prefix: str = "") -> tuple[list[Layer], bool]:
    """Leaf layers in execution order, and whether a non-Sequential container was crossed."""
    if _supported_leaf(model):
        return [Layer(prefix or type(model).__name__, model)], False
    children = list(model.named_children())
    if not children:
        raise UserInputError(
            f"module '{prefix or type(model).__name__}' ({type(model).__name__}) is not supported;"
            " supported: Linear, Conv1d/2d, AvgPool, MaxPool, Flatten, BatchNorm, Dropout, Identity,"
            " snntorch Leaky/Synaptic/RLeaky/RSynaptic/Alpha/Lapicque, SpikingJelly IF/LIF/ParametricLIF nodes,"
            " Sinabs IAF/LIF/ExpLeak (recurrent, squeeze), Norse cells (see docs/frontends.md)"
        )
    layers: list[Layer] = []
    custom = not isinstance(model, nn.Sequential)
    for name, child in children:
        sub, sub_custom = collect_layers(child, f"{prefix}.{name}" if prefix else name)
        layers.extend(sub)
        custom = custom or sub_custom
    return layers, custom


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def check_chain(model: nn.Module, layers: list[Layer], example: torch.Tensor) -> None:
    """Trace one step: the leaf calls must be ``layers`` in order, each fed the previous output."""
    calls: list[tuple[str, object, object]] = []
    hooks = [
        layer.module.register_forward_hook(
            lambda mod, args, out, path=layer.path: calls.append((path, args[0] if args else None, out))
        )
        for layer in layers
    ]
    _reset_states(layers)
    try:
        with torch.no_grad():
            model(example)
    except Exception as err:
        raise UserInputError(
            f"cannot trace {type(model).__name__}.forward on one step of shape {tuple(example.shape)}"
            f" ({type(err).__name__}: {str(err)[:120]}); wrap the layers in nn.Sequential or give an"
            " example_input of one time step"
        ) from None
    finally:
        for h in hooks:
            h.remove()
        _reset_states(layers)
    n = len(layers)
    if len(calls) < n:
        missing = [l.path for l in layers if l.path not in {c[0] for c in calls}]
        raise UserInputError(
            f"{type(model).__name__}.forward does not call module '{missing[0] if missing else '?'}';"
            " only sequential chains of the registered children are supported"
        )
    prev = example
    for i, layer in enumerate(layers):
        path, arg, out = calls[i]
        if path != layer.path:
            raise UserInputError(
                f"{type(model).__name__}.forward calls '{path}' where '{layer.path}' was expected;"
                " register children in execution order, or use nn.Sequential"
            )
        if arg is not prev:
            raise UserInputError(
                f"module '{layer.path}' is not fed the previous layer's output (forward applies an"
                " operation between layers); express it as a module (e.g. nn.Flatten) in the chain"
            )
        prev = _first(out)


# ------------------------------------------------------------------------------------------
# Conversion
# ------------------------------------------------------------------------------------------
def reset_mode_of(module: nn.Module) -> tuple[ResetMode, str | None]:
    """IR reset of a snnTorch neuron (module docstring table) and an optional note."""
    kind = type(module).__name__
    val = int(getattr(module, "reset_mechanism_val", 0))
    delay = bool(getattr(module, "reset_delay", True))
    if val == 2:
        return ResetMode.NONE, None
    note = None
    if kind == "RSynaptic" and not delay:
        delay = True
        note = "snnTorch RSynaptic ignores reset_delay=False (resets local copies); imported as reset_delay=True"
    if val == 0:
        return (ResetMode.SUBTRACT_DEFERRED if delay else ResetMode.SUBTRACT_NODELAY), note
    if kind == "Leaky":
        return ResetMode.ZERO, note
    return (ResetMode.ZERO_HOLD if delay else ResetMode.ZERO), note


def _param(module, name: str, shape, path: str, clamp: bool = False) -> np.ndarray:
    arr = to_array(getattr(module, name, None), f"'{path}'.{name}").astype(np.float32)
    return per_neuron(np.clip(arr, 0.0, 1.0) if clamp else arr, tuple(shape), name, path, "snnTorch")


def _check_neuron(module, path: str) -> None:
    gsf = getattr(module, "graded_spikes_factor", 1.0)
    if float(torch.as_tensor(gsf).float().reshape(-1)[0]) != 1.0 or torch.as_tensor(gsf).numel() != 1:
        raise UserInputError(f"snnTorch module '{path}': graded_spikes_factor != 1 is not supported; use 1")
    if getattr(module, "inhibition", False):
        raise UserInputError(f"snnTorch module '{path}': inhibition=True is not supported; disable it")
    if getattr(module, "state_quant", False):
        raise UserInputError(f"snnTorch module '{path}': state_quant is not supported; quantize with rsnnc instead")


def _check_finite(layers: list[Layer]) -> None:
    for layer in layers:
        for pname, t in list(layer.module.named_parameters()) + list(layer.module.named_buffers()):
            if t is not None and t.is_floating_point() and not torch.isfinite(t).all():
                kind = "NaN" if torch.isnan(t).any() else "Inf"
                raise UserInputError(
                    f"module '{layer.path}' parameter '{pname}' contains {kind};"
                    " retrain or clean the checkpoint so every weight is finite"
                )


class _Builder:
    def __init__(self):
        self.nodes: dict[str, Op] = {}
        self.edges: list[Edge] = []
        self.taken: set[str] = set()
        self.neurons: dict[str, str] = {}  # module path -> IR node
        self.notes: list[str] = []

    def add(self, name: str, op: Op) -> str:
        name = sanitize_name(name, self.taken)
        self.nodes[name] = op
        return name


def _conv_padding(module, n: int) -> tuple[int, ...]:
    pad = module.padding
    if isinstance(pad, str):
        if pad == "valid":
            return (0,) * n
        totals = [module.dilation[i] * (module.kernel_size[i] - 1) for i in range(n)]
        if any(t % 2 for t in totals):
            raise UserInputError("padding='same' with an even kernel pads asymmetrically; use integer padding")
        return tuple(t // 2 for t in totals)
    return tuple(int(p) for p in pad)


def _convert_layer(layer: Layer, shape: tuple[int, ...], b: _Builder, prev: str) -> tuple[str, tuple[int, ...]]:
    """Append the IR of one layer after node ``prev``; return (last node, its output shape)."""
    m, path = layer.module, layer.path
    if isinstance(m, PASSTHROUGH):
        return prev, shape
    if isinstance(m, nn.Linear):
        op: Op = Affine(weight=to_array(m.weight), bias=None if m.bias is None else to_array(m.bias))
    elif isinstance(m, (nn.Conv1d, nn.Conv2d)):
        n = 1 if isinstance(m, nn.Conv1d) else 2
        if m.padding_mode != "zeros":
            raise UserInputError(f"module '{path}': padding_mode '{m.padding_mode}' is not supported; use 'zeros'")
        cls = Conv1d if n == 1 else Conv2d
        op = cls(
            weight=to_array(m.weight), bias=None if m.bias is None else to_array(m.bias),
            input_shape=shape, stride=tuple(m.stride), padding=_conv_padding(m, n),
            dilation=tuple(m.dilation), groups=m.groups,
        )
    elif isinstance(m, (nn.AvgPool1d, nn.AvgPool2d, nn.MaxPool1d, nn.MaxPool2d)):
        op = _pool(m, path, shape)
    elif isinstance(m, nn.Flatten):
        if m.start_dim == 0:
            raise UserInputError(f"module '{path}': Flatten(start_dim=0) flattens the batch; use start_dim=1")
        start = m.start_dim - 1 if m.start_dim > 0 else m.start_dim
        end = m.end_dim - 1 if m.end_dim > 0 else m.end_dim
        op = Flatten(input_shape=shape, start_dim=start, end_dim=end)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if m.running_mean is None:
            raise UserInputError(f"module '{path}': BatchNorm without running statistics cannot be imported")
        c = m.num_features
        op = BatchNorm(
            mean=to_array(m.running_mean), var=to_array(m.running_var),
            gamma=to_array(m.weight) if m.weight is not None else np.ones(c),
            beta=to_array(m.bias) if m.bias is not None else np.zeros(c),
            eps=m.eps, shape=shape,
        )
    elif is_peer_neuron(m):
        peer = peer_neuron(m, path, shape)
        b.notes.append(peer.note)
        return _add_peer(peer, path, b, prev)
    else:
        return _convert_neuron(m, path, shape, b, prev)
    name = b.add(path, op)
    b.edges.append(Edge(prev, name))
    return name, op.out_shape


def _add_peer(peer: PeerNeuron, path: str, b: _Builder, prev: str) -> tuple[str, tuple[int, ...]]:
    """A peer neuron with the connections its module holds: input weights before it, its own
    recurrent connection (``peer.recurrent_delays``), the input edge delayed ``peer.input_delay``."""
    if peer.input_weight is not None:
        w_in = b.add(f"{path}.w_in", peer.input_weight)
        b.edges.append(Edge(prev, w_in))
        prev = w_in
    name = b.add(path, peer.op)
    b.edges.append(Edge(prev, name, peer.input_delay))
    b.neurons[path] = name
    if peer.recurrent is not None:
        out_delay, back_delay = peer.recurrent_delays
        rname = b.add(f"{path}.w_rec", peer.recurrent)
        b.edges.append(Edge(name, rname, out_delay))
        b.edges.append(Edge(rname, name, back_delay))
    return name, peer.op.out_shape


def _pool(m, path: str, shape) -> Pool:
    n = 1 if isinstance(m, (nn.AvgPool1d, nn.MaxPool1d)) else 2
    if getattr(m, "ceil_mode", False):
        raise UserInputError(f"module '{path}': ceil_mode=True is not supported; use floor mode")
    is_avg = isinstance(m, (nn.AvgPool1d, nn.AvgPool2d))

    def tup(v):
        if v is None:
            return None
        return tuple(int(x) for x in (v if isinstance(v, (tuple, list)) else (v,) * n))

    kernel = tup(m.kernel_size)
    stride = tup(m.stride) or kernel
    padding = tup(m.padding)
    if is_avg:
        if getattr(m, "divisor_override", None):
            raise UserInputError(f"module '{path}': divisor_override is not supported")
        if max(padding) > 0 and not m.count_include_pad:
            raise UserInputError(f"module '{path}': count_include_pad=False with padding is not supported")
    elif max(tup(m.dilation)) != 1:
        raise UserInputError(f"module '{path}': MaxPool dilation != 1 is not supported")
    return Pool(mode=PoolMode.AVG if is_avg else PoolMode.MAX, kernel=kernel, stride=stride,
                padding=padding, input_shape=shape)


def _convert_neuron(m, path: str, shape, b: _Builder, prev: str) -> tuple[str, tuple[int, ...]]:
    kind = type(m).__name__
    if isinstance(m, NeuronCell):
        op = m.to_ir_op()
        if tuple(op.shape) != tuple(shape):
            raise UserInputError(f"'{path}' ({kind}) has {op.shape} neurons but receives {shape}; fix its size")
        name = b.add(path, op)
        b.edges.append(Edge(prev, name))
        b.neurons[path] = name
        return name, shape
    _check_neuron(m, path)
    if kind in CELLS:
        op, note = cell_op(m, path, shape)
        b.notes.append(note)
        name = b.add(path, op)
        b.edges.append(Edge(prev, name))
        b.neurons[path] = name
        return name, shape
    reset, note = reset_mode_of(m)
    if note:
        b.notes.append(f"'{path}': {note}")
    zeros = np.zeros(shape, np.float32)
    ones = np.ones(shape, np.float32)
    common = dict(
        beta=_param(m, "beta", shape, path, clamp=True), bias=zeros, theta=_param(m, "threshold", shape, path),
        v_reset=zeros, v_init=zeros, reset=reset,
    )
    if kind in ("Leaky", "RLeaky"):
        op: Op = LIF(gain=ones, **common)
    else:
        op = CubaLIF(alpha=_param(m, "alpha", shape, path, clamp=True), gain_i=ones, gain_v=ones, **common)
    name = b.add(path, op)
    b.edges.append(Edge(prev, name))
    b.neurons[path] = name
    if kind in ("RLeaky", "RSynaptic"):
        rec = _recurrent_op(m, path, shape)
        rname = b.add(f"{path}.w_rec", rec)
        b.edges.append(Edge(name, rname, 1))
        b.edges.append(Edge(rname, name, 0))
    return name, shape


def _recurrent_op(m, path: str, shape) -> Op:
    rec = getattr(m, "recurrent", None)
    if isinstance(rec, nn.Linear):
        return Affine(weight=to_array(rec.weight), bias=None if rec.bias is None else to_array(rec.bias))
    if isinstance(rec, nn.Conv2d):
        return Conv2d(
            weight=to_array(rec.weight), bias=None if rec.bias is None else to_array(rec.bias),
            input_shape=shape, stride=tuple(rec.stride), padding=tuple(int(p) for p in rec.padding),
            dilation=tuple(rec.dilation), groups=rec.groups,
        )
    if rec is not None and hasattr(rec, "V"):
        return Scale(scale=_param(rec, "V", shape, path + ".recurrent"))
    raise UserInputError(f"snnTorch module '{path}': unsupported recurrent connection {type(rec).__name__}")


def _input_shape(layers: list[Layer], example: torch.Tensor | None) -> tuple[int, ...]:
    if example is not None:
        return tuple(int(d) for d in example.shape[1:])
    for layer in layers:
        m = layer.module
        if isinstance(m, PASSTHROUGH):
            continue
        if isinstance(m, nn.Linear):
            return (m.in_features,)
        break
    raise UserInputError(
        f"cannot infer the model's input shape (first layer '{layers[0].path}' is"
        f" {type(layers[0].module).__name__}); pass example_input of one step, shaped (batch, *features),"
        " or calibration data"
    )


def _reset_states(layers: list[Layer]) -> None:
    for layer in layers:
        if _is_snn(layer.module) and hasattr(layer.module, "reset_mem"):
            layer.module.reset_mem()
        elif is_peer_neuron(layer.module):
            reset_peer(layer.module)


# ------------------------------------------------------------------------------------------
# Running the source model step by step (fidelity)
# ------------------------------------------------------------------------------------------
def run_source(layers: list[Layer], x: np.ndarray) -> dict[str, np.ndarray]:
    """Run the layer chain step by step with each snnTorch neuron's own state handling.

    States are passed explicitly (zeros at t = 0) unless the neuron uses ``init_hidden``.
    Returns spikes per neuron module path, shaped (time, batch, *shape).
    """
    _reset_states(layers)
    states: dict[str, tuple] = {}
    rec: dict[str, list[torch.Tensor]] = {l.path: [] for l in layers if _is_snn(l.module) or is_peer_neuron(l.module)}
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    with torch.no_grad():
        for t in range(xt.shape[0]):
            h = xt[t]
            for layer in layers:
                m = layer.module
                if is_peer_neuron(m) and explicit_state(m):  # Norse: z, state = cell(x, state)
                    h, states[layer.path] = m(h, states.get(layer.path))
                    rec[layer.path].append(h.clone())
                    continue
                if is_peer_neuron(m):
                    h = m(h)
                    rec[layer.path].append(h.clone())
                    continue
                if not _is_snn(m):
                    h = m(h)
                    continue
                if m.init_hidden:
                    spk = _first(m(h))
                else:
                    kind = type(m).__name__
                    st = states.get(layer.path)
                    if st is None:
                        z = torch.zeros_like(h)
                        st = {"Leaky": (z,), "Synaptic": (z, z), "RLeaky": (z, z), "RSynaptic": (z, z, z),
                              "Alpha": (z, z, z), "Lapicque": (z,)}[kind]
                    out = m(h, *st)
                    spk = out[0]
                    states[layer.path] = tuple(out) if kind in ("RLeaky", "RSynaptic") else tuple(out[1:])
                rec[layer.path].append(spk.clone())
                h = spk
    _reset_states(layers)
    return {k: torch.stack(v).numpy() for k, v in rec.items()}


def measure_fidelity(layers: list[Layer], graph: Graph, neurons: dict[str, str], x: np.ndarray, origin: str) -> dict:
    """Per neuron layer: fraction of equal spike events and mismatch counts (source vs run_float)."""
    return compare_spikes(run_source(layers, x), graph, neurons, x, origin)


def compare_spikes(src: dict[str, np.ndarray], graph: Graph, neurons: dict[str, str], x: np.ndarray,
                   origin: str) -> dict:
    """Spikes (a non-spiking neuron's membrane: Sinabs ExpLeak, Norse LI) of the source model per
    module path against ``run_float`` of the graph, bit for bit."""
    run = run_float(graph, x)
    per_layer, total = {}, 0
    for path, node in neurons.items():
        a, b = src[path], run.spikes.get(node, run.values[node])
        mism = int(np.count_nonzero(a != b))
        total += mism
        per_layer[node] = {
            "agreement": 1.0 - mism / max(a.size, 1),
            "mismatches": mism,
            "events": int(a.size),
            "spikes_source": int(a.sum()),
            "spikes_ir": int(b.sum()),
        }
    return {
        "input": origin, "steps": int(x.shape[0]), "batch": int(x.shape[1]),
        "layers": per_layer, "total_mismatches": total, "exact": total == 0,
    }


# ------------------------------------------------------------------------------------------
# Models whose forward loops over time (frontends/time_loop.py)
# ------------------------------------------------------------------------------------------
def _trace(module: nn.Module, layers: list[Layer], x: torch.Tensor):
    """``trace_forward`` from rest, leaving every neuron at rest; (trace, None) or (None, the error)."""
    _reset_states(layers)
    try:
        return trace_forward(module, {l.module: l.path for l in layers}, x), None
    except UserInputError:
        raise
    except Exception as err:
        return None, f"{type(err).__name__}: {' '.join(str(err).split())[:100]}"
    finally:
        _reset_states(layers)


def _chain_or_loop(module: nn.Module, layers: list[Layer], shape, example) -> StepProgram | None:
    """The per-step program of a time-loop forward, or None after checking a one-step chain."""
    neurons = {l.path: type(l.module).__name__ for l in layers if _is_snn(l.module)}
    neurons.update({l.path: type(l.module).__name__ if explicit_state(l.module) else INTERNAL_STATE
                    for l in layers if is_peer_neuron(l.module)})
    loop_error = None
    if neurons:
        gen = torch.Generator().manual_seed(0)
        trace, loop_error = _trace(module, layers, torch.rand((TRACE_STEPS, TRACE_BATCH, *shape), generator=gen))
        counts = assign_steps(trace) if trace is not None else {}
        if trace is not None and is_loop(counts, set(neurons)):
            if max(counts.values()) != TRACE_STEPS and reads_whole_input(trace):
                return _static_program(module, layers, shape, neurons)
            return step_program(trace, counts, neurons)
    try:
        check_chain(module, layers, example if example is not None else torch.zeros((1, *shape)))
    except UserInputError as err:
        if loop_error is None:
            raise
        raise UserInputError(
            f"{type(module).__name__}.forward is neither a loop over time on x shaped (T, batch, *{tuple(shape)})"
            f" ({loop_error}) nor a one-step chain of its layers ({err})"
        ) from None
    return None


@contextlib.contextmanager
def _single_step(module: nn.Module, axis: int | None):
    """SpikingJelly multi-step models are traced in single-step mode (their per-step graph)."""
    if axis != 0:
        yield
        return
    from spikingjelly.activation_based import functional

    functional.set_step_mode(module, "s")
    try:
        yield
    finally:
        functional.set_step_mode(module, "m")


def _static_program(module: nn.Module, layers: list[Layer], shape, neurons: dict[str, str]) -> StepProgram:
    """Trace a static-input loop again on one input (batch, *features)."""
    x = torch.rand((TRACE_BATCH, *shape), generator=torch.Generator().manual_seed(0))
    trace, error = _trace(module, layers, x)
    if trace is None:
        raise UserInputError(
            f"{type(module).__name__}.forward fails on one input shaped {tuple(x.shape)} ({error});"
            " give it x (T, batch, ...) and loop over x[step]"
        )
    return step_program(trace, assign_steps(trace), neurons, static=True)


def _build_loop(program: StepProgram, layers: list[Layer], b: _Builder) -> str:
    """Add the nodes of one step of ``program`` to ``b``; return the node feeding the output."""
    by_path = {l.path: l for l in layers}
    node_of = {INPUT_KEY: "input"}
    pending: list[tuple[int, str, int]] = []  # (edge index, source key, delay)
    for node in program.nodes[1:]:
        call = node.call
        data = next(t for t in call.arg_tensors if t is not None)
        in_shape = tuple(int(d) for d in data.shape[1:])
        if len(node.srcs) != 1:
            raise UserInputError(f"{call.where}: '{node.key}' has {len(node.srcs)} inputs in a step; feed each layer one value")
        src_key, delay = node.srcs[0]
        first_edge = len(b.edges)
        if node.kind == NodeKind.FLATTEN:
            name = b.add("flatten", Flatten(input_shape=in_shape))
            b.edges.append(Edge("?", name))
        else:
            name, _shape = _convert_layer(by_path[node.key], in_shape, b, "?")
            if name == "?":  # Identity / Dropout
                if delay or src_key not in node_of:
                    raise UserInputError(f"{call.where}: '{node.key}' passes on a value of the previous step; remove it")
                node_of[node.key] = node_of[src_key]
                continue
        pending.append((first_edge, src_key, delay))
        node_of[node.key] = name
    for index, src_key, delay in pending:
        edge = b.edges[index]  # its own delay: a module that integrates its input late (Norse LSNN)
        b.edges[index] = Edge(node_of[src_key], edge.dst, delay + edge.delay)
    return node_of[program.output]


def run_loop_source(module: nn.Module, layers: list[Layer], paths: list[str], x: np.ndarray,
                    axis: int = 0, static: bool = False) -> dict[str, np.ndarray]:
    """Run the model's own ``forward`` on the whole sequence ``x`` (T, batch, ...), given with time
    at ``axis`` (``static``: on ``x[0]`` alone, for a static-input loop); spikes per neuron module
    path as (T, batch, ...), from one call per step or one call per sequence."""
    rec: dict[str, list[torch.Tensor]] = {p: [] for p in paths}
    by_path = {l.path: l.module for l in layers}
    hooks = [
        by_path[p].register_forward_hook(lambda mod, args, out, p=p: rec[p].append(_first(out).detach().clone()))
        for p in paths
    ]
    _reset_states(layers)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    try:
        with torch.no_grad():
            module(xt[0] if static else xt.transpose(0, 1) if axis == 1 else xt)
    finally:
        for h in hooks:
            h.remove()
        _reset_states(layers)
    out = {}
    for p, v in rec.items():
        if len(v) == 1 and v[0].dim() >= 2 and v[0].shape[axis] == xt.shape[0] and xt.shape[0] > 1:
            out[p] = (v[0].transpose(0, 1) if axis == 1 else v[0]).numpy()  # one call for the whole sequence
        else:
            out[p] = torch.stack(v).numpy()
    return out


def _run_folded_source(module: nn.Module, layers: list[Layer], paths: list[str], x: np.ndarray) -> dict:
    """``run_folded`` from rest, leaving every neuron at rest."""
    by_path = {l.path: l.module for l in layers}
    _reset_states(layers)
    try:
        return run_folded(module, {p: by_path[p] for p in paths}, x)
    finally:
        _reset_states(layers)


def _sequence_axis(module: nn.Module, layers: list[Layer], custom: bool) -> int | None:
    """Where time is in the model's input when its neurons take whole sequences (None: per step)."""
    axes = {peer_sequence_axis(l.module) for l in layers if is_peer_neuron(l.module)}
    if len(axes) > 1:
        raise UserInputError(
            f"{type(module).__name__} mixes single-step and multi-step neuron modules; use one step mode for all"
        )
    axis = axes.pop() if axes else None
    if axis == 1 and custom:
        raise UserInputError(
            f"{type(module).__name__}: Sinabs layers take (batch, time, ...) sequences; put the layers in an"
            " nn.Sequential to import them"
        )
    return axis


def _neuron_libraries(layers) -> str:
    """The libraries whose neuron modules the model uses ("snnTorch", "Norse, snnTorch", ...)."""
    names = {library_of(l.module) or "snnTorch" for l in layers
             if _is_snn(l.module) or is_peer_neuron(l.module)}
    return ", ".join(sorted(names)) or "snnTorch"


# ------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------
def import_module(module: nn.Module, example_input=None, options: ImportOptions | None = None,
                  source: str = "<module>", notes: list[str] | None = None) -> ImportResult:
    """Import a PyTorch/snnTorch module; ``example_input`` is one step shaped (batch, *features)."""
    options = options or ImportOptions()
    start = time.perf_counter()
    if not isinstance(module, nn.Module):
        raise UserInputError(f"expected a torch.nn.Module, got {type(module).__name__}")
    was_training = module.training
    module.eval()
    try:
        return _import(module, example_input, options, source, start, list(notes or []))
    finally:
        module.train(was_training)


def _import(module, example_input, options, source, start, notes: list[str]) -> ImportResult:
    layers, custom = collect_layers(module)
    _check_finite(layers)
    example = None
    if example_input is not None:
        example = torch.as_tensor(np.asarray(to_array(example_input), dtype=np.float32))
    elif options.calib_x is not None:
        example = torch.as_tensor(np.asarray(options.calib_x[0], dtype=np.float32))
    shape = _input_shape(layers, example)
    program = None
    fold = model_fold(module, {l.path: peer_fold(l.module) for l in layers
                               if _is_snn(l.module) or is_peer_neuron(l.module)}, custom)
    axis = _sequence_axis(module, layers, custom) if fold is None else None
    if custom:
        with _single_step(module, axis):
            program = _chain_or_loop(module, layers, shape, example)

    b = _Builder()
    b.notes.extend(notes)
    if fold is not None:
        b.notes.append(fold.layout())
    b.taken.update({"input", "output"})
    b.nodes["input"] = Input(shape=shape)
    if program is not None:
        prev = _build_loop(program, layers, b)
        shape = b.nodes[prev].out_shape
        b.notes.extend(program.notes)
    else:
        prev = "input"
        for layer in layers:
            prev, shape = _convert_layer(layer, shape, b, prev)
    b.nodes["output"] = Output(shape=shape)
    b.edges.append(Edge(prev, "output"))
    if not b.neurons:
        b.notes.append("the model has no spiking neurons")
    libraries = _neuron_libraries(layers)
    if options.reset is not None:
        b.notes.append(f"--reset {ResetMode(options.reset).value} ignored: {libraries} modules define their own reset")

    dt = float(options.dt) if options.dt is not None else SNNTORCH_DT
    dt_origin = "option" if options.dt is not None else (
        f"{libraries} modules are discrete-time (one call per step, any physical dt is inside their"
        " parameters); recorded as 1e-4 s, snnTorch's export_to_nir convention")
    name = sanitize_name(options.extra.get("name") or type(module).__name__, set())
    attrs = GraphAttrs(name=name, dt=dt, properties=frozenset({Prop.DISCRETIZED}))
    graph = finish_graph(Graph(b.nodes, b.edges, attrs))

    resets = sorted({graph.nodes[n].reset.value for n in b.neurons.values() if hasattr(graph.nodes[n], "reset")})
    fidelity: dict = {}
    if b.neurons and not options.extra.get("skip_fidelity", False):
        if fold is not None:
            x, origin = fidelity_input(fold, options.calib_x, graph.nodes["input"].shape, FIDELITY_STEPS,
                                       FIDELITY_BATCH, FIDELITY_MAX_BATCH)
        elif options.calib_x is not None:
            x = np.asarray(options.calib_x, dtype=np.float32)[:, :FIDELITY_MAX_BATCH]
            origin = f"calibration data (first {x.shape[1]} samples)"
        else:
            gen = np.random.default_rng(0)
            x = gen.random((FIDELITY_STEPS, FIDELITY_BATCH, *graph.nodes["input"].shape), dtype=np.float32)
            origin = f"uniform [0, 1) random input, seed 0, {FIDELITY_STEPS} steps, batch {FIDELITY_BATCH}"
        try:
            if program is not None and program.static_input:
                x = np.repeat(x[:1], program.steps, axis=0)
                origin += f"; static input: the first step's x repeated over {program.steps} steps"
                src = run_loop_source(module, layers, list(b.neurons), x, static=True)
                fidelity = compare_spikes(src, graph, b.neurons, x, origin)
            elif fold is not None:
                fidelity = compare_spikes(_run_folded_source(module, layers, list(b.neurons), x), graph,
                                          b.neurons, x, origin)
            elif program is not None or axis is not None:
                src = run_loop_source(module, layers, list(b.neurons), x, axis or 0)
                fidelity = compare_spikes(src, graph, b.neurons, x, origin)
            else:
                fidelity = measure_fidelity(layers, graph, b.neurons, x, origin)
        except Exception as err:  # the source model itself may fail (snnTorch bugs)
            fidelity = {"error": f"{type(err).__name__}: {str(err)[:200]}"}
            b.notes.append(f"fidelity check could not run the source model: {fidelity['error']}")
        if fidelity.get("total_mismatches"):
            worst = max(fidelity["layers"].items(), key=lambda kv: kv[1]["mismatches"])
            what = (f"the imported graph differs from {type(module).__name__}'s own forward in"
                    f" {fidelity['total_mismatches']} spike event(s) ({worst[1]['mismatches']} in '{worst[0]}') on"
                    f" {fidelity['input']}; nothing was built")
            hint = layout_hint()
            if hint:  # the environment, not the model: exit 2 with the fix
                raise UserInputError(what + hint)
            raise CheckFailed(what + ": please report this model (a bug in rsnnc)")
    report = ImportReport(
        name="import",
        source=source,
        source_format="pytorch",
        dt=dt,
        dt_origin=dt_origin,
        reset=", ".join(resets) if resets else "none (no spiking neurons)",
        reset_origin=f"{libraries} modules' own reset settings (see docs/frontends.md)",
        discretisation=DISCRETISATION if libraries == "snnTorch" else (
            f"none added: each step is computed as {libraries} computes it (update forms in docs/ir.md)"),
        source_library=libraries,
        conventions=[] if fold is None else [fold.layout().removeprefix("WARNING: ")],
        nodes=len(graph.nodes),
        edges=len(graph.edges),
        fidelity=fidelity,
        notes=b.notes,
        changed=True,
        reason=f"{type(module).__name__}: {len(layers)} layers -> {len(graph.nodes)} nodes",
        wall_time_s=time.perf_counter() - start,
    )
    return ImportResult(graph=graph, report=report)


def _from_checkpoint(path: str, options: ImportOptions) -> nn.Module:
    if not options.trust_checkpoint:
        raise UserInputError(
            f"'{path}' would be unpickled, and unpickling runs arbitrary code; pass --trust-checkpoint"
            " if you trust its origin, or use pkg.module:factory --weights STATE_DICT instead"
        )
    if not os.path.exists(path):
        raise UserInputError(f"checkpoint '{path}' does not exist; check the path")
    try:
        with guard(f"checkpoint '{path}'"):
            obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise UserInputError(f"cannot unpickle '{path}' ({type(err).__name__}: {str(err)[:120]})") from None
    if not isinstance(obj, nn.Module):
        raise UserInputError(
            f"'{path}' holds a {type(obj).__name__}, not a whole module; for a state_dict use"
            " pkg.module:factory --weights FILE"
        )
    return obj


def load(source: str, options: ImportOptions | None = None) -> ImportResult:
    """``pkg.module:factory`` (with optional ``options.weights``) or a pickled ``.pt``/``.pth`` module."""
    options = options or ImportOptions()
    source = str(source)
    notes: list[str] = []
    if source.endswith((".pt", ".pth")) and ":" not in os.path.basename(source):
        model = _from_checkpoint(source, options)
    else:
        model = build_model(source, options.factory_args, options.weights, options.initial_weights, notes)
    example = options.extra.get("example_input")
    return import_module(model, example, options, source=source, notes=notes)
