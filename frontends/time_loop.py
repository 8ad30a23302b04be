"""Models whose ``forward`` loops over time (the snnTorch tutorial pattern).

    def forward(self, x):                       # x: (T, batch, *features)
        mem1 = self.lif1.init_leaky()
        spk_rec = []
        for step in range(x.shape[0]):
            cur1 = self.fc1(x[step])
            spk1, mem1 = self.lif1(cur1, mem1)
            ...
            spk_rec.append(spk2)
        return torch.stack(spk_rec), torch.stack(mem_rec)

Method: ``forward`` is run once, eagerly, on a short input of ``TRACE_STEPS`` steps. Leaf modules
(Linear, Conv, snnTorch neurons, ...) are recorded through forward hooks as single calls; the
torch operations between them are recorded through a ``TorchFunctionMode`` with the line of the
user's code that issued them. The k-th call of a module belongs to step k; an operation belongs
to the latest step of its operands (``x[step]`` to ``step``). Step 1 is the template of the
per-step graph; every later step must repeat it exactly, and a tensor a step reads from the step
before becomes an edge with delay 1. A neuron's state arguments (``mem``, ``syn``, ``spk`` of
RLeaky/RSynaptic) must be its own outputs of the previous step, and zeros (or ``init_leaky()``'s
empty tensor) at step 0. The first value ``forward`` returns must be a per-step value stacked
over time (``torch.stack(spk_rec)``); it becomes the graph output.

A forward that feeds the same input to every step of a fixed-length loop (``self.fc1(x)`` inside
``for step in range(num_steps)``, x shaped (batch, ...)) is a static-input model: it is traced
again on one (batch, ...) input and the graph reads x[t] at every step, so its data files hold x
repeated over the ``num_steps`` steps.

Operations allowed between modules: indexing the input over time (``x[step]``, ``for x_t in x``,
``x.unbind(0)``, ``x.select(0, step)``), flattening the features (``view/reshape(batch, -1)``,
``flatten(1)``), and value-preserving ones (``clone``, ``detach``, ``contiguous``, ``float``).
Anything else is refused with one line naming the operation and where it is in the user's code.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from rsnn_compiler.errors import UserInputError

TRACE_STEPS = 3
TRACE_BATCH = 2
_LIBRARY_PREFIXES = ("torch", "snntorch", "rsnn_compiler", "contextlib", "importlib", "nirtorch")
# operations whose result is the same value (aliases in the dataflow)
_IDENTITY_OPS = {"clone", "detach", "contiguous", "float", "to", "type_as", "requires_grad_", "detach_"}
_FLATTEN_OPS = {"view", "reshape", "flatten"}
_TIME_INDEX_OPS = {"__getitem__", "select", "unbind", "__iter__"}
_STACK_OPS = {"stack"}
# calls that only read metadata (never values in the dataflow)
_IGNORED = {"__get__", "size", "dim", "numel", "__len__", "__format__", "__repr__", "__bool__", "item",
            "tolist", "__index__", "__int__", "__float__", "is_floating_point", "data_ptr", "__hash__",
            "__eq__", "__ne__", "get_device", "__contains__", "element_size", "stride", "is_contiguous"}
# neuron state arguments: positional index -> index in the module's outputs
INTERNAL_STATE = "internal"  # modules that keep their own state (SpikingJelly, Sinabs)
STATE_OF = {
    INTERNAL_STATE: {},
    "Leaky": {1: 1},
    "Synaptic": {1: 1, 2: 2},
    "RLeaky": {1: 0, 2: 1},
    "RSynaptic": {1: 0, 2: 1, 3: 2},
    "Alpha": {1: 1, 2: 2, 3: 3},
    "Lapicque": {1: 1},
}
# Norse cells: ``z, state = cell(x, state)`` with state None at the first step; the state tuple's
# tensors are the call's arguments 1..n and its outputs 1..n (after the spikes)
NORSE_STATE = {name: {k: k for k in range(1, n + 1)} for name, n in (
    ("LIFCell", 2), ("LIFRecurrentCell", 3), ("LIFBoxCell", 1), ("LICell", 2), ("IAFCell", 1),
    ("LSNNCell", 3), ("LSNNRecurrentCell", 4))}
STATE_OF.update(NORSE_STATE)


def user_location() -> str:
    """``file.py:LINE in function`` of the innermost frame outside torch/snnTorch/rsnnc."""
    frame = sys._getframe(1)
    while frame is not None:
        mod = str(frame.f_globals.get("__name__", ""))
        if not mod.startswith(_LIBRARY_PREFIXES) and not mod.startswith("frontends"):
            code = frame.f_code
            return f"{code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno} in {code.co_name}"
        frame = frame.f_back
    return "<unknown location>"


@dataclass
class Ref:
    """Where a tensor argument came from: a recorded call's output, the model input, or outside."""

    call: int | None  # index into Trace.calls; None for the model input or an outside tensor
    out: int = 0
    is_input: bool = False


@dataclass
class Call:
    index: int
    module: str | None  # module path for a module call, None for an operation
    op: str  # operation name, or the module class name
    where: str
    args: list[Ref | None]  # one entry per positional argument (None: not a tensor)
    params: list  # the positional arguments that are not tensors (ints, dims, shapes)
    outputs: list[torch.Tensor]
    arg_tensors: list[torch.Tensor | None] = field(default_factory=list)
    step: int = -1


@dataclass
class Trace:
    calls: list[Call]
    x: torch.Tensor
    result: object  # what forward returned
    result_refs: list  # Ref(s) of the first returned value


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [v for item in value for v in _tensors(item)]
    return []


class _Recorder(TorchFunctionMode):
    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.x = x
        self.calls: list[Call] = []
        self.producer: dict[int, tuple[int, int]] = {}
        self.keep: list = []  # keeps recorded tensors alive so their ids stay unique
        self.depth = 0

    def ref(self, t) -> Ref | None:
        if not isinstance(t, torch.Tensor):
            return None
        if t is self.x:
            return Ref(None, is_input=True)
        hit = self.producer.get(id(t))
        return Ref(*hit) if hit else Ref(None)

    def record(self, module: str | None, op: str, args: list, outputs: list[torch.Tensor], where: str) -> Call:
        flat_args: list = []
        for a in args:  # one level of lists (torch.stack([...]))
            flat_args.extend(a if isinstance(a, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in a) else [a])
        call = Call(
            index=len(self.calls), module=module, op=op, where=where,
            args=[self.ref(a) for a in flat_args],
            params=[a for a in flat_args if not isinstance(a, torch.Tensor)],
            outputs=outputs, arg_tensors=[a if isinstance(a, torch.Tensor) else None for a in flat_args],
        )
        self.calls.append(call)
        for k, t in enumerate(outputs):
            if all(t is not u for u in outputs[:k]):  # a tensor returned twice is its first output
                self.producer[id(t)] = (call.index, k)
        self.keep.append((flat_args, outputs))
        return call

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if self.depth > 0 or name in _IGNORED:
            return func(*args, **kwargs)
        if name == "__iter__" and args and isinstance(args[0], torch.Tensor):
            parts = tuple(args[0].unbind(0))
            self.record(None, "unbind", [args[0], 0], list(parts), user_location())
            return iter(parts)
        out = func(*args, **kwargs)
        tensors = _tensors(out)
        if tensors:
            params = list(args) + [v for _k, v in sorted(kwargs.items())]
            self.record(None, name, params, tensors, user_location())
        return out


def trace_forward(model: nn.Module, leaves: dict[nn.Module, str], x: torch.Tensor) -> Trace:
    """Run ``model(x)`` once, recording leaf-module calls and the operations between them."""
    rec = _Recorder(x)
    hooks = []

    def pre(mod, args, kwargs):
        rec.depth += 1

    def post(mod, args, kwargs, out):
        rec.depth -= 1
        if rec.depth == 0:
            params = list(args) + [v for _k, v in sorted(kwargs.items())]
            rec.record(leaves[mod], type(mod).__name__, params, _tensors(out), user_location())

    for mod in leaves:
        hooks.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
        hooks.append(mod.register_forward_hook(post, with_kwargs=True))
    try:
        with torch.no_grad(), rec:
            result = model(x)
    finally:
        for h in hooks:
            h.remove()
    first = result[0] if isinstance(result, (tuple, list)) and result else result
    refs = [rec.ref(first)] if isinstance(first, torch.Tensor) else []
    return Trace(calls=rec.calls, x=x, result=result, result_refs=refs)


# ------------------------------------------------------------------------------------------
# Steps
# ------------------------------------------------------------------------------------------
def _time_index(call: Call, trace: Trace) -> int | None:
    """The step a call extracts from the model input (``x[t]``), else None."""
    if not call.args or call.args[0] is None or not call.args[0].is_input:
        return None
    if call.op == "__getitem__" and len(call.params) == 1 and isinstance(call.params[0], int):
        return call.params[0] % trace.x.shape[0]
    if call.op == "select" and len(call.params) == 2 and call.params[0] == 0:
        return int(call.params[1]) % trace.x.shape[0]
    return None


def assign_steps(trace: Trace) -> dict[str, int]:
    """Set ``call.step``; return the number of calls per module."""
    counts: dict[str, int] = {}
    for call in trace.calls:
        if call.module is not None:
            call.step = counts.get(call.module, 0)
            counts[call.module] = call.step + 1
            continue
        t = _time_index(call, trace)
        if t is not None:
            call.step = t
            continue
        if call.op == "unbind" and call.args and call.args[0] is not None and call.args[0].is_input:
            call.step = -2  # one output per step; resolved per output (see producer_step)
            continue
        steps = [producer_step(trace, a) for a in call.args if a is not None]
        call.step = max([s for s in steps if s is not None], default=-1)
    return counts


def producer_step(trace: Trace, ref: Ref) -> int | None:
    """The step of a tensor argument (-1 for constants, None for the whole model input)."""
    if ref.is_input:
        return None
    if ref.call is None:
        return -1
    call = trace.calls[ref.call]
    if call.step == -2:  # unbind of the input: output k is step k
        return ref.out
    return call.step


def refuse(call: Call, what: str, fix: str) -> UserInputError:
    return UserInputError(f"{call.where}: {what}; {fix}")


def is_loop(counts: dict[str, int], neurons: set[str]) -> bool:
    return any(counts.get(n, 0) > 1 for n in neurons)


def flatten_shape(call: Call, in_features: tuple[int, ...]) -> bool:
    """True when a view/reshape/flatten keeps the batch dim and flattens every feature dim."""
    out = tuple(call.outputs[0].shape)
    return len(out) == 2 and out[1] == math.prod(in_features)


# ------------------------------------------------------------------------------------------
# The per-step program
# ------------------------------------------------------------------------------------------
INPUT_KEY = "__input__"


class NodeKind:
    INPUT = "input"
    MODULE = "module"
    FLATTEN = "flatten"


@dataclass
class StepNode:
    key: str  # module path, or "op@where#k" for an operation
    kind: str  # NodeKind
    call: Call | None  # the call at the template step (None for the input)
    srcs: list[tuple[str, int]] = field(default_factory=list)  # (source key, delay in steps)


@dataclass
class StepProgram:
    nodes: list[StepNode]
    output: str  # key of the node whose per-step value forward returns first
    steps: int
    notes: list[str]
    static_input: bool = False  # forward feeds the same x (batch, ...) to all ``steps`` steps


def _keys_of_step(calls: list[Call]) -> dict[int, str]:
    seen: dict[tuple[str, str], int] = {}
    keys = {}
    for c in calls:
        if c.module is not None:
            keys[c.index] = c.module
        else:
            k = seen.get((c.op, c.where), 0)
            seen[(c.op, c.where)] = k + 1
            keys[c.index] = f"{c.op}@{c.where}#{k}"
    return keys


def reads_whole_input(trace: Trace) -> bool:
    """True when a module takes the model input itself (not x[step]): a static-input loop."""
    return any(c.module is not None and any(a is not None and a.is_input for a in c.args) for c in trace.calls)


def step_program(trace: Trace, counts: dict[str, int], neurons: dict[str, str], static: bool = False) -> StepProgram:
    """The graph of one step, checked to repeat over every traced step (module docstring).

    ``static``: ``trace.x`` is one input (batch, ...) that every step reads whole; the number of
    steps is then the number of calls per module (a fixed ``num_steps`` in the user's code).
    """
    steps = max(counts.values()) if static else trace.x.shape[0]
    for module, n in counts.items():
        if n != steps:
            call = next(c for c in trace.calls if c.module == module)
            raise refuse(call, f"module '{module}' runs {n} times for an input of {steps} steps",
                         "call every module once per step of a loop over x.shape[0] (input shaped (T, batch, ...))")
    by_step: dict[int, list[Call]] = {}
    for c in trace.calls:
        by_step.setdefault(c.step, []).append(c)
    keys = {}
    for calls in by_step.values():
        keys.update(_keys_of_step(calls))
    alias: dict[tuple[int, int], tuple[int, int]] = {}  # (call, out) -> what it is an alias of

    def resolve(ref: Ref) -> Ref:
        seen = (ref.call, ref.out)
        while seen in alias:
            seen = alias[seen]
        return Ref(seen[0], seen[1], is_input=ref.is_input)

    programs: dict[int, list[StepNode]] = {}
    outputs_of: dict[str, int] = {}
    for s in range(steps):
        nodes: list[StepNode] = [StepNode(INPUT_KEY, NodeKind.INPUT, None)]
        for c in by_step.get(s, []):
            if c.module is not None:
                data = [a for a in c.args if a is not None]
                if not data:
                    raise refuse(c, f"module '{c.module}' is called without a tensor input", "pass the layer input")
                node = StepNode(keys[c.index], NodeKind.MODULE, c)
                _check_state(trace, c, neurons, s, keys, resolve)
                src = _source(trace, c, resolve(data[0]), s, keys, neurons, static)
                if src is not None:
                    node.srcs.append(src)
                nodes.append(node)
                continue
            op = c.op
            if _time_index(c, trace) is not None:
                continue
            if op == "unbind" and c.args and c.args[0] is not None and c.args[0].is_input:
                continue
            data = [a for a in c.args if a is not None]
            if op in _IDENTITY_OPS and len(data) == 1:
                r = resolve(data[0])
                alias[(c.index, 0)] = (r.call, r.out)
                continue
            if op in _FLATTEN_OPS and len(data) == 1:
                r = resolve(data[0])
                src_t = trace.calls[r.call].outputs[r.out] if r.call is not None else None
                in_feat = tuple(src_t.shape[1:]) if src_t is not None else ()
                if src_t is None or not flatten_shape(c, in_feat):
                    raise refuse(c, f"'{op}' reshapes a tensor other than flattening its features",
                                 "flatten with x.view(x.shape[0], -1), x.flatten(1) or nn.Flatten()")
                if len(in_feat) <= 1:
                    alias[(c.index, 0)] = (r.call, r.out)
                    continue
                node = StepNode(keys[c.index], NodeKind.FLATTEN, c)
                node.srcs.append(_source(trace, c, r, s, keys, neurons, static))
                nodes.append(node)
                continue
            if op in _STACK_OPS:
                continue
            if op in ("zeros", "zeros_like", "empty", "ones", "ones_like", "full", "full_like") or not data:
                continue  # constants; a constant is only accepted where zeros are (state at step 0)
            raise refuse(c, f"'{op}' between layers cannot be compiled",
                         "express it as a module (nn.Linear, nn.Flatten, ...) or move it out of forward")
        programs[s] = nodes
    template = programs[min(1, steps - 1)]
    sig = [(n.key, n.kind, n.srcs) for n in template]
    for s in range(1, steps):
        got = [(n.key, n.kind, n.srcs) for n in programs[s]]
        if got != sig:
            where = next((n.call.where for n in programs[s] if n.call), "forward")
            raise UserInputError(
                f"{where}: step {s} of forward does not repeat step 1 (the layers or their inputs"
                " change from step to step); write the loop body the same for every step"
            )
    first = [(n.key, n.kind, [(k, d) for k, d in n.srcs if d == 0]) for n in programs[0]]
    if first != [(n.key, n.kind, [(k, d) for k, d in n.srcs if d == 0]) for n in template]:
        where = next((n.call.where for n in programs[0] if n.call), "forward")
        raise UserInputError(f"{where}: step 0 of forward differs from later steps; write the loop body"
                             " the same for every step")
    output = _output_key(trace, keys, resolve, steps)
    notes = [f"time loop in forward traced over {steps} steps; every step runs the same {len(template) - 1} layer(s)"]
    extra = len(trace.result) - 1 if isinstance(trace.result, (tuple, list)) else 0
    if extra:
        notes.append(f"forward returns {extra + 1} values; the first (stacked per-step outputs) is the graph output")
    if static:
        notes.append(
            f"forward feeds the same input to all {steps} steps (static input, as in the snnTorch tutorials):"
            f" the graph reads x[t] every step, so give data files x repeated over {steps} steps"
            f" (np.repeat(x[None], {steps}, 0))"
        )
    return StepProgram(nodes=template, output=output, steps=steps, notes=notes, static_input=static)


def _source(trace: Trace, c: Call, r: Ref, s: int, keys: dict[int, str],
            neurons: dict[str, str], static: bool = False) -> tuple[str, int] | None:
    """(source key, delay) of a data argument of call ``c`` at step ``s``."""
    if r.is_input and static:
        return INPUT_KEY, 0
    if r.is_input:
        raise refuse(c, "a layer consumes the whole input (all steps at once)",
                     "index the input per step inside the loop (x[step])")
    if r.call is None:
        raise refuse(c, "a layer input is a tensor from outside the traced computation",
                     "compute every layer input from the model input inside forward")
    src = trace.calls[r.call]
    src_step = producer_step(trace, r)
    if _time_index(src, trace) is not None or src.step == -2:
        if src_step != s:
            raise refuse(c, f"step {s} reads the input of step {src_step}", "use x[step] in the loop over step")
        return INPUT_KEY, 0
    if src_step == -1:
        t = src.outputs[r.out]
        if s == 0 and (t.numel() == 0 or not bool(t.any())):
            return None  # zeros before the first step: the delayed edge reads zero at t = 0
        raise refuse(c, "a layer input is a constant tensor", "feed layers only values computed from the input")
    if src.module is not None and src.module in neurons and r.out != 0:
        raise refuse(c, f"a layer is fed the membrane (or current) of '{src.module}'",
                     "pass the spikes (the first output of an snnTorch neuron) between layers")
    delay = s - src_step
    if delay not in (0, 1):
        raise refuse(c, f"a layer reads a value from {delay} steps before", "use values of this step or the previous one")
    key = src.module if src.module is not None else keys[src.index]
    if delay == 1 and (src.module is None or src.module not in neurons):
        raise refuse(c, "a layer reads the previous step's value of a non-neuron",
                     "feed back only spikes (or use snn.RLeaky / snn.RSynaptic)")
    return key, delay


def _check_state(trace: Trace, c: Call, neurons: dict[str, str], s: int, keys, resolve) -> None:
    """A neuron's state arguments are its own outputs of the step before (zeros at step 0)."""
    kind = neurons.get(c.module)
    if kind is None:
        if len([a for a in c.args if a is not None]) > 1:
            raise refuse(c, f"module '{c.module}' is called with several tensors", "call it on one input")
        return
    state = STATE_OF[kind]
    n_tensors = len([a for a in c.args if a is not None])
    if kind in NORSE_STATE and (n_tensors == 1) != (s == 0):
        raise refuse(c, f"Norse {kind} '{c.module}' is called with {'no' if n_tensors == 1 else 'a'} state at step {s}",
                     "pass state=None at the first step and then the state the cell returned, unchanged")
    if n_tensors == 1:
        return  # init_hidden: the module keeps its own state (reset before the trace)
    if c.args[0] is None or n_tensors != 1 + len(state):
        raise refuse(c, f"{kind} '{c.module}' is called with {n_tensors} tensor(s)",
                     f"call it as {kind.lower()}(input, {', '.join(['state'] * len(state))}) with its own state")
    for pos, out in state.items():
        r = resolve(c.args[pos])
        t = c.arg_tensors[pos]
        if s == 0:
            ok = r.call is None and not r.is_input and (t.numel() == 0 or not bool(t.any()))
            ok = ok or (r.call is not None and producer_step(trace, r) == -1 and (t.numel() == 0 or not bool(t.any())))
            if not ok:
                raise refuse(c, f"the initial state of '{c.module}' is not zero",
                             f"start from {c.module}.init_{kind.lower()}() or zeros")
            continue
        prev = trace.calls[r.call] if r.call is not None else None
        own = prev is not None and prev.module == c.module and prev.step == s - 1
        if not own or not (r.out == out or (out < len(prev.outputs) and prev.outputs[r.out] is prev.outputs[out])):
            raise refuse(c, f"state argument {pos} of '{c.module}' is not its own output of the previous step",
                         "pass the state the neuron returned at the previous step, unchanged")


def _output_key(trace: Trace, keys: dict[int, str], resolve, steps: int) -> str:
    if not trace.result_refs:
        raise UserInputError(
            "forward returns no tensor; return the per-step outputs stacked over time, e.g. torch.stack(spk_rec)"
        )
    r = resolve(trace.result_refs[0])
    call = trace.calls[r.call] if r.call is not None else None
    if call is None or call.op not in _STACK_OPS or call.module is not None:
        where = call.where if call else "forward"
        raise UserInputError(
            f"{where}: the first value forward returns is not a per-step output stacked over time;"
            " return torch.stack(spk_rec) (shape (T, batch, ...)) first"
        )
    dim = call.params[0] if call.params else 0
    entries = [a for a in call.args if a is not None]
    if dim not in (0, -len(call.outputs[0].shape)) or len(entries) != steps:
        raise refuse(call, "the returned stack is not over time (dim 0, one entry per step)",
                     "stack one output per step along dim 0")
    srcs = set()
    for t, a in enumerate(entries):
        ra = resolve(a)
        src = trace.calls[ra.call] if ra.call is not None else None
        if src is None or producer_step(trace, ra) != t or src.module is None:
            raise refuse(call, f"entry {t} of the returned stack is not a layer output of step {t}",
                         "append the layer output of each step (spk_rec.append(spk2))")
        if ra.out != 0:
            raise refuse(call, f"the returned stack holds the membrane of '{src.module}', not its spikes",
                         "return the spikes first (torch.stack(spk_rec), torch.stack(mem_rec))")
        srcs.add(src.module)
    if len(srcs) != 1:
        raise refuse(call, "the returned stack mixes outputs of different layers", "stack one layer's outputs")
    return srcs.pop()
