"""Fixed-point arithmetic (``arith``) and per-target constants (``profiles``); see docs/fixed-point.md."""

from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.fixed.profiles import FPGA, LOIHI2, FpgaSpec, Loihi2Spec, get_profile

__all__ = ["FPGA", "LOIHI2", "FpgaSpec", "Loihi2Spec", "Overflow", "get_profile"]
