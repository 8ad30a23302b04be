"""Float32 matrix products that do not depend on batch layout or thread count (MKL strict CNR).

The float interpreter reproduces a source model's float32 spikes bit for bit by making the same
torch calls on the same operands (docs/design.md §3, float neuron semantics). On x86, PyTorch's float32 ``F.linear`` /
``matmul`` run in Intel oneMKL, whose default dispatch chooses kernels by matrix shape and ISA. On
an AVX-512 Xeon an (M, 64) x (64, 5) product rounds 659 of 1,000 outputs differently for M = 2
and M = 200 (measured, torch 2.13 / oneMKL 2024.2; an AMD EPYC happened to agree), so a model
whose layers see all time steps in one call (Sinabs squeeze layers fold time into the batch,
SpikingJelly multi-step containers) and the interpreter's one call per step disagree in the last
bit, and a non-spiking readout's membrane differs. oneMKL's strict conditional numerical
reproducibility mode, ``MKL_CBWR=AUTO,STRICT``, fixes the reduction order of every output
element: products are then independent of M and of the number of threads (0 differences in the
same measurement; the cost, measured: under 5 % except narrow outputs, an (M, 128) x (128, 10)
product 2.2x slower at M = 1024). ``AUTO`` keeps the CPU's own vector unit; ``AVX2,STRICT``
would also give one result across CPU models but runs large products 1.7x slower on AVX-512.

oneMKL reads the setting once, when it initialises (the process's first MKL call), so
``rsnn_compiler`` requests it at import, before it runs anything, unless ``MKL_CBWR`` is already
set (the user's choice wins). ``strict_mode`` reports whether it took effect: a program that ran
torch matrix products before importing ``rsnn_compiler`` keeps MKL's default dispatch, and the
import fidelity checks then name the fix instead of blaming the model.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

ENV = "MKL_CBWR"
STRICT_SETTING = "AUTO,STRICT"
_MKL_CBWR_ALL = -1  # mkl_cbwr_get(MKL_CBWR_ALL): branch | STRICT flag
_MKL_CBWR_STRICT = 0x10000


def request_strict_blas() -> None:
    """Ask oneMKL for strict reproducibility unless the user set ``MKL_CBWR`` (read when MKL
    initialises; child processes inherit it)."""
    os.environ.setdefault(ENV, STRICT_SETTING)


def strict_mode() -> bool | None:
    """True when torch's oneMKL runs in strict CNR mode, False when it does not (it initialised
    before ``MKL_CBWR`` was set, or the user chose a non-strict setting), None when torch is not
    loaded or is not built with oneMKL (its products' layout dependence is then unknown)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    lib_path = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        get = ctypes.CDLL(str(lib_path)).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.argtypes, get.restype = [ctypes.c_int], ctypes.c_int
    return bool(get(_MKL_CBWR_ALL) & _MKL_CBWR_STRICT)


def layout_hint() -> str:
    """One clause naming the fix when float products may depend on batch layout, else ''."""
    if strict_mode() is not False:
        return ""
    return (f"; this process's float32 matrix products depend on batch layout (oneMKL initialised without"
            f" {ENV}={STRICT_SETTING}, e.g. torch ran a product before rsnn_compiler was imported):"
            f" import rsnn_compiler first or set {ENV}={STRICT_SETTING} in the environment, then import again")
