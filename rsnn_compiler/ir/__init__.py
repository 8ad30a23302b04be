"""The rsnnc graph IR: ops, graph container, verifier, text form, hash and serialization."""

from rsnn_compiler.ir.graph import Domain, Edge, Graph, GraphAttrs, GraphBuilder
from rsnn_compiler.ir.ops import (
    ALIF, IF, LI, LIF, Affine, BatchNorm, Comparator, Conv1d, Conv2d, CubaLI, CubaLIF, Delay,
    Flatten, Identity, Input, NeuronOp, Op, OpKind, Output, Pool, PoolMode, ResetMode, Scale,
    Threshold, broadcast_params,
)
from rsnn_compiler.ir.fixed_ops import (
    FixedALIF, FixedConv1d, FixedConv2d, FixedDense, FixedDualIF, FixedLI, FixedLIF,
    FixedMultiThreshold, Quantize,
)
from rsnn_compiler.ir.serialize import load_graph, save_graph
from rsnn_compiler.ir.text import structural_hash, to_text
from rsnn_compiler.ir.verify import verify, verify_or_raise

__all__ = [
    "ALIF", "IF", "LI", "LIF", "Affine", "BatchNorm", "Comparator", "Conv1d", "Conv2d", "CubaLI",
    "CubaLIF", "Delay", "Domain", "Edge", "Flatten", "Graph", "GraphAttrs", "GraphBuilder",
    "Identity", "Input", "NeuronOp", "Op", "OpKind", "Output", "Pool", "PoolMode", "ResetMode",
    "Scale", "Threshold", "broadcast_params", "load_graph", "save_graph", "structural_hash",
    "to_text", "verify", "verify_or_raise",
    "FixedALIF", "FixedConv1d", "FixedConv2d", "FixedDense", "FixedDualIF", "FixedLI", "FixedLIF",
    "FixedMultiThreshold", "Quantize",
]
