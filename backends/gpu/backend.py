"""The ``gpu`` target: a batched PyTorch runtime for the float and the fixed-point graph.

``emit`` writes only ``gpu/runtime.json`` (device policy, dtypes, the exact strategy of every
synapse on CUDA); the runtime loads ``graph.float.rsnn`` and ``graph.<profile>.rsnn`` from the
build directory (``rsnnc run BUILD --executor gpu --domain float|fixed``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.ir.fixed_ops import (
    FIXED_OP_CLASSES, FixedDense, FixedMultiThreshold, FixedNeuron, Quantize, _CurrentNeuron, _FixedConv,
)
from rsnn_compiler.ir.dynamics import has_family
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import (
    Affine, BatchNorm, Conv1d, Conv2d, Delay, Flatten, Identity, Input, Output, Pool, PoolMode, Scale,
    Threshold,
)
from rsnn_compiler.target_api import Artifact, BackendDefaults, Diagnostic

RUNTIME_FILE = "runtime.json"
STRUCTURAL = (Input, Output, Identity, Flatten, Delay, Pool)
FLOAT_OPS = STRUCTURAL + (Affine, Scale, Conv1d, Conv2d, BatchNorm, Threshold)
FIXED_OPS = STRUCTURAL + tuple(FIXED_OP_CLASSES)
MAX_BITS = 62  # widths above this would overflow the int64 wrap/saturate constants


def unsupported(graph: Graph) -> list[Diagnostic]:
    """Everything in ``graph`` the GPU runtime cannot evaluate exactly, each with a fix."""
    fixed = graph.attrs.domain is Domain.FIXED
    allowed = FIXED_OPS if fixed else FLOAT_OPS
    out: list[Diagnostic] = []
    for kind, cls in (("Input", Input), ("Output", Output)):
        if len(graph.names_of(cls)) != 1:
            out.append(Diagnostic("graph", f"has {len(graph.names_of(cls))} {kind} nodes",
                                  f"give the graph exactly one {kind}"))
    for name, op in graph.nodes.items():
        where = f"node '{name}' ({type(op).__name__})"
        neuron = has_family(op) and isinstance(op, FixedNeuron) == fixed  # derived from its definition
        if not (neuron or isinstance(op, allowed)):
            domain = "fixed-point" if fixed else "float"
            out.append(Diagnostic(where, f"is not a {domain} op the runtime knows",
                                  "quantize the graph (fixed) or use the float graph (float)"))
            continue
        if fixed and isinstance(op, Pool) and op.mode is PoolMode.AVG:
            out.append(Diagnostic(where, "average pooling is fractional on integers",
                                  "fold it into the next layer (sum pooling + weight scale)"))
        if fixed and isinstance(op, Quantize) and not 1 <= op.bits <= MAX_BITS:
            out.append(Diagnostic(where, f"Quantize bits {op.bits} outside 1..{MAX_BITS}",
                                  "requantize the input with fewer bits"))
        for label, bits, mode in _widths(op):
            limit = 61 if mode is Overflow.WRAP_ONCE else MAX_BITS
            if not 2 <= bits <= limit:
                out.append(Diagnostic(where, f"{label} width {bits} bits is outside 2..{limit}",
                                      "choose a narrower state/accumulator width"))
        if isinstance(op, FixedMultiThreshold) and (op.vth <= 0).any():
            out.append(Diagnostic(where, "multi-threshold vth must be > 0 (division by theta)",
                                  "set every vth to a positive mantissa"))
    return out


def _widths(op) -> list[tuple[str, int, Overflow]]:
    if isinstance(op, (FixedDense, _FixedConv)):
        return [("accumulator", op.acc_bits, op.acc_overflow)]
    if isinstance(op, FixedNeuron):
        widths = [("membrane", op.v_bits, op.v_overflow)]
        if isinstance(op, _CurrentNeuron):
            widths.append(("current", op.u_bits, op.u_overflow))
        return widths
    return []


def runtime_description(graph: Graph) -> dict:
    """What ``runtime.json`` records: device policy, dtypes and the CUDA plan per synapse."""
    from rsnn_compiler.backends.gpu.runtime import DEVICE_ENV, GraphRuntime

    desc = {
        "format": "rsnnc-gpu/1",
        "graphs": {"float": "graph.float.rsnn"},
        "device_policy": f"${DEVICE_ENV} if set, else cuda when torch.cuda.is_available(), else cpu",
        "float": {"dtype": "float32", "tf32": False,
                  "exact": "bit-identical to the interpreter on cpu; float32-accurate on cuda"},
    }
    if graph.attrs.domain is Domain.FIXED:
        profile = graph.attrs.profile
        desc["profile"] = profile
        desc["graphs"][profile] = f"graph.{profile}.rsnn"
        cuda = GraphRuntime(graph, device="cpu", int_matmul="float")  # what CUDA picks
        cpu = GraphRuntime(graph, device="cpu", int_matmul="auto")
        desc["fixed"] = {
            "values": "int64 on every device; elementwise rules in int64",
            "sums": "exact: float64 BLAS (cpu) / float32, float64 or float64 limbs (cuda) while every"
                    " partial sum is representable, else int64 kernels (cpu); reduced-precision float32"
                    " (TF32, bf16) and cuDNN off. Plans below are for statically bounded values"
                    " (integer graph inputs count as unbounded here; the runtime uses the run's max |x|)",
            "cpu_plan": cpu.plan_synapses(),
            "cuda_plan": cuda.plan_synapses(),
        }
    return desc


@dataclass
class GpuBackend(BackendDefaults):
    name: ClassVar[str] = "gpu"
    description: ClassVar[str] = (
        "batched PyTorch runtime (CUDA when present, else CPU) for the float and fixed-point graph;"
        " fixed-point bit-exact"
    )
    uses_fixed: ClassVar[bool] = True
    requires_profile: ClassVar[str | None] = None
    lowering_passes: ClassVar[tuple[str, ...]] = ()

    def check(self, graph: Graph) -> list[Diagnostic]:
        return unsupported(graph)

    def emit(self, graph: Graph, outdir: Path) -> Artifact:
        outdir = Path(outdir)
        desc = runtime_description(graph)
        (outdir / RUNTIME_FILE).write_text(json.dumps(desc, indent=2, sort_keys=True) + "\n")
        return Artifact(target=self.name, files=[f"{self.name}/{RUNTIME_FILE}"],
                        summary=f"runtime.json ({desc.get('profile', 'float')}; loads graphs from the build)")
