"""Float ops in torch with the reference interpreter's exact arithmetic (float_interp.py).

Stateless ops: the interpreter's own kernels (``float_interp.stateless_kernel``: parameters
converted to tensors once, on the runtime's device). Neurons: their families in
``rsnn_compiler.neurons.float_dynamics`` run with the interpreter's primitive set ``TorchFloat`` on the runtime's device. Elementwise float32 ops are
correctly rounded, so results are bit-identical to the interpreter on the CPU (reductions —
matmul, conv — use the same kernels with the same shapes there). On CUDA, reductions sum in a
different order: results are float32-accurate but not bit-identical to the CPU.
"""

from __future__ import annotations

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.float_interp import stateless_kernel  # noqa: F401 (the runtime's)
from rsnn_compiler.interpreter.float_prims import TorchFloat
from rsnn_compiler.ir.dynamics import has_family, population
from rsnn_compiler.ir.ops import NeuronOp

def neuron_kernel(op: NeuronOp, device):
    """One float population: its family run with ``TorchFloat`` on ``device``."""
    if not has_family(op):
        raise UserInputError(f"the GPU runtime cannot evaluate {type(op).__name__}")
    return population(TorchFloat(device), op)
