"""Reference interpreters: the meaning of the IR."""

from rsnn_compiler.interpreter.fixed_interp import run_fixed
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.interpreter.result import RunResult

__all__ = ["RunResult", "run_fixed", "run_float"]
