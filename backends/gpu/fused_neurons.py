"""Fused fixed-point neuron updates for the runtime on the CPU.

In torch, one fixed-point neuron step is about fifteen int64 element-wise calls (decay products,
truncating divisions, wraps, comparisons, resets), each a pass over the batch's states; on the
bundled model they were 60 % of the fixed runtime's time. Here each population's step is one
pass: the C text of the population's loop body is generated from its family's definition by the
C backend's generator (``backends/c/neurons.neuron_code``: the family's ``step`` run with the C
primitive set, the same text ``model.c`` holds), wrapped in a loop over the batch that reads the
old state tensors and writes new ones, compiled once per graph into a shared library in the C
cache (``backends/c/cache.py``; keyed by the text and the toolchain) and called through ctypes
on the tensors' memory.

Exact: the body is the C model's, which the test suite checks value for value against the
reference interpreter; the C primitives are the integer rules of docs/fixed-point.md §2 without
undefined behaviour as long as every intermediate fits int64, which ``check_graph`` proves for
the graph's values (the kernels are used only when it finds no problem, and only for runs whose
integer inputs fit int32, the C target's input contract). States stay int64 torch tensors; a step
allocates its new state tensors and writes nothing in place, like the torch kernels.

Used when the device is the CPU, a C compiler is present, the graph passes ``check_graph``, and
the run is large enough to repay a compile (``RSNNC_RUNTIME_FUSED``: ``auto`` (default: from the
first run of at least ``AUTO_MIN_NEURON_STEPS`` neuron-steps on, every later run of the same
runtime included), ``1`` always, ``0`` never). Families whose
step takes the list of input terms keep the torch kernels. Not on CUDA (it would need a CUDA
compiler; the torch kernels run there).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rsnn_compiler import progress
from rsnn_compiler.errors import RsnncError, UserInputError
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.neurons.family import Population

from rsnn_compiler.backends.c.cache import cached_build
from rsnn_compiler.backends.c.neurons import lit, member, neuron_code
from rsnn_compiler.backends.c.runtime import FIXED_H
from rsnn_compiler.backends.c.toolchain import compile_c, compiler, simulator_flags, toolchain_id

FUSED_ENV = "RSNNC_RUNTIME_FUSED"
#: ``auto``: fuse when a run has at least this many neuron-steps (T x B x neurons): a compile
#: costs ~0.2-0.4 s once per graph and machine (then a cached library), the fused step saves
#: ~10 ns per neuron-step against torch's calls (bundled model: 2.4M neuron-steps, 0.6x the time)
AUTO_MIN_NEURON_STEPS = 1_000_000
LIBRARY = "librsnn_neurons.so"
INT32_LIMIT = 1 << 31


def fused_mode() -> str:
    """``auto`` | ``on`` | ``off`` from ``RSNNC_RUNTIME_FUSED``."""
    raw = os.environ.get(FUSED_ENV, "auto").strip().lower()
    return {"1": "on", "on": "on", "0": "off", "off": "off"}.get(raw, "auto")


@dataclass
class FusedKernel:
    """One population's compiled step: ``fn(pointers, batch)``; the pointers are the summed input,
    the output, then every state of ``names`` old, then every state of ``names`` new."""

    names: tuple[str, ...]
    stored: tuple[str, ...]
    size: int
    fn: object = None


def population_source(op, index: int, name: str) -> tuple[str, FusedKernel]:
    """C text of ``void rsnn_fused_<index>(void *const *p, long batch)`` for population ``op``."""
    cid = f"p{index}"
    size = int(np.prod(op.shape)) if op.shape else 1
    consts: list[str] = []

    def param(pname: str, arr) -> str:
        arr = np.asarray(arr, dtype=np.int64).reshape(-1)
        if arr.size == 0 or (arr == arr[0]).all():
            return lit(arr[0]) if arr.size else "0"
        cname = f"{cid}_{''.join(c if c.isalnum() else '_' for c in pname)}"
        consts.append(f"static const int64_t {cname}[{arr.size}] = {{{', '.join(lit(v) for v in arr)}}};\n")
        return f"{cname}[k]"

    code = neuron_code(op, cid, param, store="n")
    from rsnn_compiler.ir.dynamics import family_of

    family = family_of(op)
    names = family.states + tuple(h for h in family.hidden if h not in family.states)
    # one row (sample) per call of a static function whose pointers are restrict parameters, so
    # the compiler vectorizes the loop (no tensor aliases another: fresh outputs, distinct states)
    lines = []
    for line in code.body:
        for n in names:
            m = member(n)
            line = line.replace(f"s->{m}_{cid}[k]", f"s_{m}[k]").replace(f"n->{m}_{cid}[k]", f"n_{m}[k]")
        if "s->" in line or "n->" in line:
            raise RsnncError(f"fused neuron kernel: unexpected state reference in '{line}'")
        lines.append(line)
    params = "".join(f", const int64_t *restrict s_{member(n)}, int64_t *restrict n_{member(n)}" for n in names)
    used = "".join(f"    (void)s_{member(n)};\n    (void)n_{member(n)};\n" for n in names)
    args = "".join(f", (const int64_t *)p[{2 + i}] + off, (int64_t *)p[{2 + len(names) + i}] + off"
                   for i, n in enumerate(names))
    body = "".join(f"        {line}\n" for line in lines)
    label = "".join(c if c.isprintable() and c not in "*/" else "_" for c in name)
    text = (
        "".join(consts)
        + f"/* population '{label}': {code.doc.replace('*/', '* /')} */\n"
        f"static void rsnn_fused_row_{index}(const int64_t *restrict x, int64_t *restrict y{params})\n{{\n"
        f"    long k;\n{used}"
        f"    for (k = 0; k < {size}L; ++k) {{\n{body}    }}\n}}\n\n"
        f"void rsnn_fused_{index}(void *const *p, long batch)\n{{\n"
        f"    long b;\n"
        f"    for (b = 0; b < batch; ++b) {{\n"
        f"        const long off = b * {size}L;\n"
        f"        rsnn_fused_row_{index}((const int64_t *)p[0] + off, (int64_t *)p[1] + off{args});\n"
        f"    }}\n}}\n"
    )
    return text, FusedKernel(tuple(names), code.stored, size)


@dataclass
class FusedLibrary:
    """Every eligible population of one graph, compiled together (slot index -> kernel)."""

    kernels: dict[int, FusedKernel] = field(default_factory=dict)
    source: str = ""

    def load(self) -> None:
        key = hashlib.sha256((toolchain_id() + "\0" + self.source).encode()).hexdigest()
        folder = Path(tempfile.mkdtemp(prefix="rsnnc-fused-src-"))
        try:
            (folder / "rsnn_fixed.h").write_text(FIXED_H)
            (folder / "neurons.c").write_text(self.source)
            path = cached_build(folder, ["rsnn_fixed.h", "neurons.c"], "fused-" + key, LIBRARY, _compile)
        finally:
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()
        lib = _load(path)
        for index, kernel in self.kernels.items():
            fn = getattr(lib, f"rsnn_fused_{index}")
            fn.argtypes = [ctypes.c_void_p, ctypes.c_long]
            fn.restype = None
            kernel.fn = fn


_loaded: dict[Path, ctypes.CDLL] = {}


def _load(path: Path) -> ctypes.CDLL:
    path = Path(path).resolve()
    if path not in _loaded:
        _loaded[path] = ctypes.CDLL(str(path))
    return _loaded[path]


def _compile(folder: Path) -> None:
    compile_c(["neurons.c"], LIBRARY, folder, extra_flags=(*simulator_flags(), "-fPIC", "-shared", "-Wno-unused"))


def build_fused(graph: Graph, slots) -> FusedLibrary | None:
    """The fused kernels of ``graph``'s neuron slots, or None when none applies or the C check
    finds a value it cannot keep exact in int64."""
    from rsnn_compiler.backends.c.check import check_graph

    chosen = [s for s in slots if isinstance(s.kernel, FusedPopulation) and not s.kernel.takes_terms]
    if not chosen:
        return None
    try:
        compiler()
    except UserInputError:
        return None
    if check_graph(graph):
        return None
    lib = FusedLibrary()
    parts = ['#include <stdint.h>\n#include "rsnn_fixed.h"\n\n']
    for slot in chosen:
        text, kernel = population_source(slot.op, slot.index, slot.name)
        parts.append(text + "\n")
        lib.kernels[slot.index] = kernel
    lib.source = "".join(parts)
    return lib


class FusedPopulation:
    """A fixed population for the runtime: the torch kernels (``pop``), or its fused C step once
    ``kernel`` is attached (``GraphRuntime`` decides per run). Same interface as ``Population``."""

    def __init__(self, pop: Population):
        self.pop = pop
        self.takes_terms = pop.takes_terms
        self.state_names = pop.state_names
        self.kernel: FusedKernel | None = None
        self.active = False

    def init(self, batch: int):
        return self.pop.init(batch)

    def states(self, st) -> dict:
        return self.pop.states(st)

    def step(self, st, x):
        kernel = self.kernel
        if not self.active or kernel is None or not isinstance(x, torch.Tensor) or x.dtype != torch.int64:
            return self.pop.step(st, x)
        x = x.contiguous()
        y = torch.empty_like(x)
        old = [getattr(st, n).contiguous() for n in kernel.names]
        new = [torch.empty_like(o) if n in kernel.stored else o for n, o in zip(kernel.names, old)]
        ptrs = (ctypes.c_void_p * (2 + 2 * len(old)))(
            x.data_ptr(), y.data_ptr(), *(t.data_ptr() for t in old), *(t.data_ptr() for t in new))
        kernel.fn(ptrs, x.numel() // kernel.size)
        for n, t in zip(kernel.names, new):
            setattr(st, n, t)
        return y


def attach(runtime, steps: int, batch: int, input_bound: int) -> bool:
    """Compile (once) and switch the runtime's populations to their fused kernels for this run
    when the mode, device, input contract and size allow; otherwise the torch kernels. Returns
    whether the fused kernels run."""
    mode = fused_mode()
    neurons = [s for s in runtime.slots if isinstance(s.kernel, FusedPopulation)]
    size = sum(int(np.prod(s.op.shape)) if s.op.shape else 1 for s in neurons)
    big = steps * batch * size >= AUTO_MIN_NEURON_STEPS
    want = mode == "on" or (mode == "auto" and (big or bool(runtime._fused)))  # built once: always
    want = want and runtime.device.type == "cpu" and (runtime.input_float or input_bound < INT32_LIMIT)
    if want and runtime._fused is None:
        try:
            lib = build_fused(runtime.graph, runtime.slots)
            if lib is not None:
                lib.load()
        except (RsnncError, OSError, AttributeError) as exc:
            progress.step(f"runtime: fused neuron kernels unavailable ({exc}); using torch's")
            lib = None
        runtime._fused = lib or False
        if lib:
            for s in neurons:
                s.kernel.kernel = lib.kernels.get(s.index)
    on = bool(want and runtime._fused)
    for s in neurons:
        s.kernel.active = on and s.kernel.kernel is not None
    return on
