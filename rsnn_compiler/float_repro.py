"""Float32 matrix products that do not depend on batch layout or thread count (MKL strict CNR).

The float interpreter reproduces a source model's float32 spikes bit for bit by making the same
torch calls on the same operands (docs/design.md §3, float neuron semantics). On x86, PyTorch's
float32 ``F.linear`` / ``matmul`` run in Intel oneMKL, whose default dispatch chooses kernels by
matrix shape and ISA. On an AVX-512 Xeon an (M, 64) x (64, 5) product rounds 659 of 1,000
outputs differently for M = 2 and M = 200 (measured, torch 2.13 / oneMKL 2024.2; an AMD EPYC
happened to agree), so a model whose layers see all time steps in one call (Sinabs squeeze layers
fold time into the batch, SpikingJelly multi-step containers) and the interpreter's one call per
step disagree in the last bit, and a non-spiking readout's membrane differs.

oneMKL's strict conditional numerical reproducibility mode fixes the reduction order of every
output element. Measured over 616 (K, N, rows per call) combinations, 1 and 2 threads: on the AVX2
and AVX-512 branches every row gets the same bits whatever the row count; on the SSE branches
(``COMPATIBLE``, ``SSE4_2``) 486-502 combinations still differ. ``rsnn_compiler`` asks for
``AUTO,STRICT``: the CPU's own branch (an AVX-512 one on this project's Xeons; cost under 5 %
except narrow outputs, an (M, 128) x (128, 10) product 2.2x slower at M = 1024). Naming a branch
would not help elsewhere: oneMKL supports only ``AUTO`` and ``COMPATIBLE`` on non-Intel CPUs (it
uses ``AUTO`` for any other request there), and on AVX-512 the AVX2 branch runs large products
1.7x slower. ``row_independent`` says whether the process actually runs strict on an AVX2-or-newer
branch; only then does the float runtime batch products over time, and a fidelity mismatch
without it names the fix. (On a CPU where AUTO resolves lower, the bit-exact float checks hold
where the shapes happen to agree, as under ``COMPATIBLE,STRICT`` the whole test suite did.)

oneMKL reads the setting once, when it initialises (the process's first MKL call), so
``rsnn_compiler`` requests it at import, before it runs anything, unless ``MKL_CBWR`` is already
set (the user's choice wins). A program that ran torch matrix products before importing
``rsnn_compiler`` keeps MKL's default dispatch: the float runtime then steps one call per step,
and the import fidelity checks name the fix instead of blaming the model.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

ENV = "MKL_CBWR"
STRICT_SETTING = "AUTO,STRICT"  # the one branch oneMKL supports on every vendor's CPU besides COMPATIBLE
_MKL_CBWR_BRANCH = 1  # mkl_cbwr_get(MKL_CBWR_BRANCH): the branch setting
_MKL_CBWR_ALL = -1  # mkl_cbwr_get(MKL_CBWR_ALL): branch | STRICT flag
_MKL_CBWR_STRICT = 0x10000
_MKL_CBWR_AUTO = 2
_MKL_CBWR_AVX2 = 10  # branches from here up (AVX2, AVX-512 variants) measured row-count independent


def request_strict_blas() -> None:
    """Ask oneMKL for strict reproducibility unless the user set ``MKL_CBWR`` (read when MKL
    initialises; child processes inherit it)."""
    os.environ.setdefault(ENV, STRICT_SETTING)


_FUNCTIONS: dict[str, object] = {}  # oneMKL service functions found in the loaded torch (the runtime asks every run)


def _mkl(name: str):
    """``int name(int)`` (or ``int name(void)``) of the oneMKL torch has loaded, or None."""
    fn = _FUNCTIONS.get(name)
    if fn is not None:
        return fn
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        fn = getattr(ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so")), name)
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int
    _FUNCTIONS[name] = fn
    return fn


def strict_mode() -> bool | None:
    """True when torch's oneMKL runs in strict CNR mode, False when it does not (it initialised
    before ``MKL_CBWR`` was set, or the user chose a non-strict setting), None when torch is not
    loaded or is not built with oneMKL."""
    get = _mkl("mkl_serv_cbwr_get")
    if get is None:
        return None
    return bool(get(_MKL_CBWR_ALL) & _MKL_CBWR_STRICT)


def row_independent() -> bool | None:
    """True when a float32 product row's bits do not depend on the rows beside it in the call:
    strict mode on an AVX2-or-newer branch (``AUTO`` resolved to the branch it runs); False
    otherwise; None without oneMKL (unknown)."""
    strict = strict_mode()
    if not strict:
        return strict
    return _branch()[1] >= _MKL_CBWR_AVX2


def _branch() -> tuple[int, int]:
    """(the branch setting, the branch oneMKL runs: ``AUTO`` resolved); oneMKL must be loaded."""
    setting = _mkl("mkl_serv_cbwr_get")(_MKL_CBWR_BRANCH)
    auto = _mkl("mkl_serv_cbwr_get_auto_branch")
    return setting, auto() if setting == _MKL_CBWR_AUTO and auto is not None else setting


def layout_hint() -> str:
    """One clause naming the fix when float products may depend on batch layout, else ''."""
    if row_independent() is not False:
        return ""
    return (f"; this process's float32 matrix products depend on batch layout (oneMKL runs without a"
            f" strict AVX2-or-newer reproducibility mode, e.g. torch ran a product before rsnn_compiler"
            f" was imported, or {ENV} was set to another mode): import rsnn_compiler first or set"
            f" {ENV}={STRICT_SETTING} in the environment, then import again")


#: oneMKL's CNR branch numbers (mkl_service.h), for messages
BRANCH_NAMES = {0: "OFF", 1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 5: "SSE3", 6: "SSSE3", 7: "SSE4_1",
                8: "SSE4_2", 9: "AVX", 10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1",
                14: "AVX512_E1"}


def describe() -> str:
    """One line on this process's float32 products (``rsnnc targets --check``)."""
    import torch  # noqa: F401  (loads oneMKL's library so it can be asked)

    setting = os.environ.get(ENV, "unset")
    independent = row_independent()
    if independent is None:
        return f"float32 products: this torch has no oneMKL, batch-layout dependence unknown ({ENV}={setting})"
    setting_branch, runs = _branch()
    name = BRANCH_NAMES.get(setting_branch, str(setting_branch))
    if runs != setting_branch:
        name += f" = {BRANCH_NAMES.get(runs, str(runs))}"
    mode = "strict" if strict_mode() else "not strict"
    verdict = ("independent of the rows per call and the thread count" if independent else
               f"may depend on the rows per call (bit-exact float checks can fail; set {ENV}={STRICT_SETTING}"
               " before the first torch product)")
    return f"float32 products: {verdict} (oneMKL {mode}, branch {name}; {ENV}={setting})"
