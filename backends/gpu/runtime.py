"""Batched PyTorch runtime for float and fixed-point graphs (``--target gpu``).

``GraphRuntime(graph, device=None, record=True)`` compiles the graph once: evaluation order,
per-node input edges and every parameter as a device tensor. ``run(x)`` then loops over time
in Python and evaluates each node on the whole batch, with the interpreters' timing
(docs/fixed-point.md §1): per step t nodes run in ``topology.evaluation_order``; a node's input
is the sum over its edges ``(src, dst, delay)`` of ``value[src][t − delay]`` (zero before step
0); a ``Delay`` node with ``steps >= 1`` emits what its inputs summed to ``steps`` steps ago.

Exactness (docs/gpu-runtime.md):
- float graphs: float32 with the interpreter's operation order — bit-identical to ``run_float``
  on the CPU; on CUDA float32-accurate (TF32 off), not bit-identical.
- fixed graphs: every value is an exact integer (int64; on the CPU float32 where that provably
  holds it, ``plan_carriers``) and every elementwise rule is the integer rule, on any device.
  Dense/conv sums use float64 BLAS (CPU) or float32 / float64 / float64 limbs (CUDA), chosen
  from static value bounds so that every partial sum is exactly representable, and int64
  kernels on the CPU beyond 2^53 (``gpu_exact.choose_plan``). Bit-identical to ``run_fixed``
  on every device. The stateless layers fed only by the input (input quantizer, first
  dense/conv layer) run for a chunk of steps in one call (``schedule.execute(whole_time=True)``):
  exact by construction, since an integer sum does not depend on the rows computed beside it.
- on the CPU, neuron populations step through fused C loops generated from their families'
  definitions once a run is large enough (``fused_neurons.py``; same values, one pass per step).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.float_interp import check_inputs
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.interpreter.schedule import (  # noqa: F401 (Slot, execute re-exported)
    DELAY, INPUT, NEURON, Slot, build_schedule, execute, output_index, zero_inputs,
)
from rsnn_compiler.ir.fixed_ops import FixedNeuron, Quantize
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import Affine, BatchNorm, Flatten, Identity, NeuronOp, Output, Scale, Threshold
from rsnn_compiler.float_repro import row_independent
from rsnn_compiler.threads import compute_threads

from rsnn_compiler.backends.gpu import fixed_ops as fx
from rsnn_compiler.backends.gpu import float_ops as fl
from rsnn_compiler.backends.gpu.exact import FLOAT32_EXACT, UNKNOWN_BOUND, cap, choose_plan, exact_float_context
from rsnn_compiler.backends.gpu.fused_neurons import FusedPopulation, attach as attach_fused

DEVICE_ENV = "RSNNC_GPU_DEVICE"
#: float ops whose per-row float32 result is the same in a call of any row count once oneMKL is
#: strict (``F.linear`` is an MKL product; the others are element-wise or per-row reshapes)
FLOAT_ROW_INDEPENDENT = (Affine, Scale, Flatten, Identity, Output, Threshold, BatchNorm)



def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, else $RSNNC_GPU_DEVICE, else CUDA when available, else CPU."""
    if device is None:
        device = os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"device '{device}' requested but CUDA is not available; use device='cpu'")
    return dev


@dataclass
class Trace:
    """Device tensors of one run, shaped (time, batch, *features)."""

    out: torch.Tensor
    values: dict[str, torch.Tensor] = field(default_factory=dict)
    spikes: dict[str, torch.Tensor] = field(default_factory=dict)
    states: dict[str, torch.Tensor] = field(default_factory=dict)

    def to_result(self) -> RunResult:
        np_ = lambda t: t.detach().cpu().numpy()  # noqa: E731
        return RunResult(
            out=np_(self.out),
            values={k: np_(v) for k, v in self.values.items()},
            spikes={k: np_(v) for k, v in self.spikes.items()},
            states={k: np_(v) for k, v in self.states.items()},
        )


def fixed_input_is_float(graph: Graph) -> bool:
    """The Input's values stay float only when every reader is a Quantize node."""
    readers = [graph.nodes[e.dst] for e in graph.out_edges(graph.input_name)]
    return bool(readers) and all(isinstance(r, Quantize) for r in readers)


class GraphRuntime:
    """A graph compiled for batched execution on one device.

    ``int_matmul`` picks how fixed-point dense/conv sums are computed: ``auto`` (CPU: float64
    below 2^53, else int64; CUDA: like ``float``), ``int64``, ``float`` (float32 below 2^24, else
    float64, limbs above 2^53), a forced ``float32``/``float64`` (falling back where the forced
    type would round) or ``limbs`` (always split; for tests).
    """

    def __init__(self, graph: Graph, device: str | torch.device | None = None, record: bool = True,
                 int_matmul: str = "auto", threads: int | None = None):
        from rsnn_compiler.backends.gpu.backend import unsupported

        problems = unsupported(graph)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise UserInputError(f"the GPU runtime cannot run this graph: {problems[0]}{more}")
        self.graph = graph
        self.device = resolve_device(device)
        self.record = record
        self.int_matmul = int_matmul
        self.threads = threads  # CPU torch threads per run; None: rsnn_compiler.threads decides
        self.fixed = graph.attrs.domain is Domain.FIXED
        # the input-fed stateless layers run for many steps per call: fixed graphs (exact: integer
        # sums do not depend on the rows beside them); float graphs on the CPU when oneMKL is in
        # its row-count-independent mode (``float_whole_time``), else step by step
        self.whole_time = self.fixed
        self._fused = None  # fused CPU neuron kernels (fused_neurons.py): None = not built yet
        cpu = self.device.type == "cpu"
        if self.fixed:
            self.slots = build_schedule(
                graph, lambda op, _name: (FusedPopulation(fx.neuron_kernel(op, self.device)) if cpu
                                          else fx.neuron_kernel(op, self.device)),
                lambda op, _name: fx.stateless_kernel(op, self.device),
            )
            self.input_float = fixed_input_is_float(graph)
            choose_plan(int_matmul, self.device, 0, 0)  # validates the policy for this device
        else:
            self.slots = build_schedule(
                graph, lambda op, _name: (FusedPopulation(fl.neuron_kernel(op, self.device)) if cpu
                                          else fl.neuron_kernel(op, self.device)),
                lambda op, _name: fl.stateless_kernel(op, self.device),
            )
        self.by_name = {s.name: s for s in self.slots}
        self.output = self.by_name[graph.output_name].index
        self._plans_for: int | None = None
        self._bounds: dict[str, int] = {}

    # ---- inputs ------------------------------------------------------------------------
    def prepare_input(self, x) -> torch.Tensor:
        """Check ``x`` (time, batch, *input_shape) and move it to the device with the
        interpreter's dtype: float32 (float graphs), float64 (fixed, Quantize-only input) or int64."""
        if isinstance(x, torch.Tensor):
            return self._prepare_tensor(x)
        x = check_inputs(self.graph, x)
        if not self.fixed:
            return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        if self.input_float:
            return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).to(self.device)
        if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
            if not np.array_equal(x, np.round(x)):
                raise UserInputError(
                    "this fixed-point graph takes integer inputs (its Input feeds integer ops"
                    " directly); pass integers or add a Quantize node after the Input"
                )
        return torch.from_numpy(np.ascontiguousarray(x.astype(np.int64))).to(self.device)

    def _prepare_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``prepare_input`` for a tensor (any device), without a round trip through numpy."""
        shape = tuple(self.graph.nodes[self.graph.input_name].in_shape)
        if x.ndim < 2 or tuple(x.shape[2:]) != shape:
            raise UserInputError(
                f"inputs have shape {tuple(x.shape)} but the graph expects (time, batch,"
                f" {', '.join(map(str, shape))}); reshape the data or rebuild the model")
        x = x.detach().to(self.device)
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise UserInputError("inputs contain NaN or Inf; clean the data before running")
        if not self.fixed:
            return x.to(torch.float32).contiguous()
        if self.input_float:
            return x.to(torch.float64).contiguous()
        if x.is_floating_point() and not bool((x == torch.round(x)).all()):
            raise UserInputError(
                "this fixed-point graph takes integer inputs (its Input feeds integer ops"
                " directly); pass integers or add a Quantize node after the Input")
        return x.to(torch.int64).contiguous()

    def float_whole_time(self):
        """For a float graph on the CPU whose process runs oneMKL in a strict reproducibility mode
        on an AVX2-or-newer branch (``float_repro.row_independent``): a predicate admitting into
        the time-batched prefix the ops whose float32 result for a row does not depend on the
        other rows of the call there (``FLOAT_ROW_INDEPENDENT``: MKL products and element-wise
        ops; convolutions run in oneDNN, which has no such mode, and stay per step). Else False
        (one call per step)."""
        if self.fixed or self.device.type != "cpu" or row_independent() is not True:
            return False
        return lambda slot: isinstance(slot.op, FLOAT_ROW_INDEPENDENT)

    # ---- exact-sum planning (fixed graphs) ---------------------------------------------------
    def value_bounds(self, input_bound: int) -> dict[str, int]:
        """Static max |value| per node (fixpoint over the graph; cycles that keep growing are UNKNOWN)."""
        bound = {s.name: 0 for s in self.slots}
        bound[self.graph.input_name] = cap(input_bound)
        for _ in range(len(self.slots) + 2):
            changed = False
            for s in self.slots:
                if s.kind == INPUT:
                    continue
                ins = cap(sum(bound[self.slots[src].name] for src, _d in s.edges))
                new = cap(fx.output_bound(s.op, ins))
                if new != bound[s.name]:
                    bound[s.name], changed = new, True
            if not changed:
                return bound
        return {k: (UNKNOWN_BOUND if v else 0) for k, v in bound.items()}

    def plan_synapses(self, input_bound: int = UNKNOWN_BOUND) -> dict[str, str]:
        """Choose each synapse's exact strategy for inputs with max |x| = ``input_bound``."""
        bounds = self._bounds = self.value_bounds(input_bound)
        plans = {}
        for s in self.slots:
            if isinstance(s.kernel, fx.SynapseKernel):
                xb = cap(sum(bounds[self.slots[src].name] for src, _d in s.edges))
                s.kernel.set_bound(choose_plan(self.int_matmul, self.device, s.kernel.linear.row_bound, xb),
                                   cap(s.kernel.linear.row_bound * xb))
                plans[s.name] = s.kernel.plan.describe()
        self._plans_for = input_bound
        return plans

    def plan_carriers(self) -> set[str]:
        """Mark the values carried as float32 instead of int64 in this run (fixed graphs, fused
        CPU kernels active) and return their nodes. A value is carried when float32 holds it
        exactly (every value an integer of magnitude < 2^24: ``value_bounds``, or a one-limb
        float32 product, whose partial sums the plan bounds below 2^24) and every reader takes
        float32 without converting it: a synapse product that only fused populations read
        (they convert each term in their loop), a fused population's or a Quantize's output
        that only float32-plan synapses (which would cast to float32 anyway) or the Output
        read. No value is ever rounded: the same integers, another container; the Output's
        values and every recorded value are int64 again when a run returns."""
        readers: dict[int, list] = {s.index: [] for s in self.slots}
        for s in self.slots:
            for src, _d in s.edges:
                readers[src].append(s)

        def fused(r) -> bool:
            return isinstance(r.kernel, FusedPopulation) and r.kernel.active

        def takes_float32(r) -> bool:
            if r.index == self.output:
                return len(r.edges) == 1
            k = r.kernel
            return isinstance(k, fx.SynapseKernel) and k.plan.dtype == "float32" and k.plan.limbs == 1

        for s in self.slots:
            k, rs = s.kernel, readers[s.index]
            exact = self._bounds.get(s.name, UNKNOWN_BOUND) < FLOAT32_EXACT
            if isinstance(k, fx.SynapseKernel):
                k.out_float = bool(rs) and k.direct_float32() and all(fused(r) for r in rs)
            elif isinstance(k, fx.QuantizeKernel):
                k.out_float = bool(rs) and exact and all(takes_float32(r) for r in rs)
            elif isinstance(k, FusedPopulation):
                k.out_float = (bool(rs) and k.active and exact and k.kernel is not None
                               and k.kernel.dtype == torch.int64 and all(takes_float32(r) for r in rs))
        return {s.name for s in self.slots if getattr(s.kernel, "out_float", False)}

    def _input_bound(self, x: torch.Tensor) -> int:
        if self.input_float or x.numel() == 0:
            return 0
        return int(x.abs().max().item())

    # ---- running -------------------------------------------------------------------------
    def zeros(self, batch: int) -> list[torch.Tensor]:
        dtype = torch.int64 if self.fixed else torch.float32
        return zero_inputs(self.slots, batch, lambda shape: torch.zeros(shape, dtype=dtype, device=self.device))

    def run_tensors(self, x, record: bool | None = None) -> Trace:
        """Run on ``x`` (array or tensor, (time, batch, *input_shape)); results stay on the device."""
        record = self.record if record is None else record
        xt = self.prepare_input(x)
        if xt.shape[0] == 0:
            raise UserInputError("inputs have no time steps; give at least one step")
        bound = 0
        if self.fixed:
            bound = self._input_bound(xt)
            if self._plans_for is None or (self._plans_for < bound):
                self.plan_synapses(max(bound, 1))
        attach_fused(self, xt.shape[0], xt.shape[1], bound)
        if self.fixed:
            self.plan_carriers()
        for s in self.slots:
            if isinstance(s.kernel, fx.SynapseKernel):
                s.kernel.cache_casts = not record  # exact.as_dtype: one cast per spike tensor
        threads = compute_threads(self.threads) if self.device.type == "cpu" else contextlib.nullcontext()
        with torch.no_grad(), exact_float_context(self.device, cpu_too=self.fixed), threads:
            hist, rec = execute(self.slots, xt, self.zeros(xt.shape[1]), record, self.output,
                                whole_time=self.whole_time or self.float_whole_time())
        stack = self._stack_int if self.fixed else torch.stack
        trace = Trace(out=stack(hist[self.output]))
        if record:
            trace.values = {s.name: stack(hist[s.index]) for s in self.slots}
            trace.spikes = {
                s.name: trace.values[s.name] for s in self.slots
                if isinstance(s.op, NeuronOp) and s.op.spiking
                and (not self.fixed or isinstance(s.op, FixedNeuron))
            }
            trace.states = {k: torch.stack(v) for k, v in rec.items()}
        return trace

    @staticmethod
    def _stack_int(seq: list) -> torch.Tensor:
        """Steps stacked, with values carried as float32 (``plan_carriers``; exact integers)
        back in int64; a float64 input (Quantize-only Input) stays float64."""
        if any(t.dtype == torch.float32 for t in seq):
            seq = [t.to(torch.int64) for t in seq]
        return torch.stack(seq)

    def run(self, x, record: bool | None = None) -> RunResult:
        """Run on ``x`` shaped (time, batch, *input_shape); numpy results like the interpreters."""
        return self.run_tensors(x, record).to_result()
