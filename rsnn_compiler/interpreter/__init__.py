"""Reference interpreters: the meaning of the IR."""

from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.interpreter.result import RunResult

__all__ = ["RunResult", "run_float"]
