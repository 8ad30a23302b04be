"""Fused neuron updates for the runtime on the CPU (fixed-point and float graphs).

In torch, one neuron step is a chain of element-wise calls, each a pass over the batch's states:
about fifteen int64 calls for a fixed-point LIF (decay products, truncating divisions, wraps,
comparisons, resets; 60 % of the fixed runtime's time on the bundled model), six to eight float32
calls for a float one (40 % of the float runtime's at B=1024, the rest being the matmuls snnTorch
makes too). Here each population's step is one pass: the C text of the population's loop body is
generated from its family's definition (the family's ``step`` run with a C primitive set:
``backends/c/neurons.CPrims`` for fixed families, the text ``model.c`` holds;
``backends/gpu/c_float.CFloatPrims`` for float ones, ``TorchFloat`` rule for rule), wrapped in a
per-sample function whose pointers are ``restrict`` parameters (gcc vectorizes it) that reads the
old state tensors and writes new ones (per-neuron parameters are pointer arguments too, so the
text does not grow with the population), compiled once per graph into a shared library in the C
cache (``backends/c/cache.py``; keyed by the text, the flags and the toolchain) and called
through ctypes on the tensors' memory.

Exact:
- fixed: the body is the C model's, which the test suite checks value for value against the
  reference interpreter; the C primitives are the integer rules of docs/fixed-point.md §2 without
  undefined behaviour as long as every intermediate fits int64, which ``check_graph`` proves (the
  kernels are used only for graphs it accepts and runs whose integer inputs fit int32, the C
  target's input contract);
- float: every product, sum and difference is one IEEE float32 operation in the definition's
  order (``-ffp-contract=off``, no fast-math: no fused multiply-add), constants are rounded to
  float32 as torch rounds a scalar, comparisons answer NaN as torch's sign/clamp does — so the
  values equal ``run_float`` (and hence snnTorch) bit for bit.
States stay torch tensors; a step allocates its new state tensors and writes nothing in place,
like the torch kernels. A step whose inputs the kernel was not compiled for (fewer input terms
in the first steps of a delayed edge) runs the torch kernels on the same states.

Used when the device is the CPU, a C compiler is present and the run is large enough to repay a
compile (``RSNNC_RUNTIME_FUSED``: ``auto`` (default: from the first run of at least
``AUTO_MIN_NEURON_STEPS`` neuron-steps on, every later run of the same runtime included), ``1``
always, ``0`` never). Not on CUDA (it would need a CUDA compiler; the torch kernels run there).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rsnn_compiler import progress
from rsnn_compiler.errors import RsnncError, UserInputError
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.neurons.family import Population

from rsnn_compiler.backends.c.cache import cached_build, load_shared
from rsnn_compiler.backends.c.neurons import CPrims, lit, member, neuron_code
from rsnn_compiler.backends.c.runtime import FIXED_H
from rsnn_compiler.backends.c.toolchain import accepts, compile_c, compiler, simulator_flags, toolchain_id
from rsnn_compiler.backends.gpu.c_float import FLOAT_HELPERS, CFloatPrims, float_lit

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


#: the C type of a term / output / state pointer by torch dtype, and back
C_TYPES = {torch.int64: "int64_t", torch.float32: "float", torch.int32: "int32_t", torch.int16: "int16_t",
           torch.int8: "int8_t"}
TORCH_TYPES = {c: t for t, c in C_TYPES.items()}

#: the (term dtype, output dtype) variants compiled for a fixed family: int64 values, or exact
#: integers carried as float32 (runtime.plan_carriers: the synapse products that feed a population
#: and the spikes it sends to float32 matmuls stay float32, no cast on either side); converted to
#: int64 inside the loop (exact: every carried value is an integer below 2^24)
FIXED_VARIANTS = tuple((t, y) for t in (torch.int64, torch.float32) for y in (torch.int64, torch.float32))


@dataclass
class FusedKernel:
    """One population's compiled step: ``fns[(term dtype, output dtype)](pointers, batch)``; the
    pointers are the input terms (one per input edge), the output, every state of ``names`` old,
    every state of ``names`` new, then the per-neuron parameter arrays ``params`` (kept alive
    here). States are kept in ``state_dtypes`` whatever the variant."""

    names: tuple[str, ...]
    stored: tuple[str, ...]
    size: int
    terms: int = 1  # input terms, one per input edge (summed in C for fixed families)
    dtype: torch.dtype = torch.int64  # the family's own value type (states)
    params: list = field(default_factory=list)  # per-neuron parameter tensors, last pointers
    variants: tuple = ()  # (term dtype, output dtype) pairs, entry points rsnn_fused_<index><suffix>
    out_state: str | None = None  # the stored state, of the family's own type, the output equals
    state_dtypes: tuple = ()  # per name: the tensor type the kernel keeps the state in
    fns: dict = field(default_factory=dict)

    @staticmethod
    def suffix(variant: tuple, base: tuple) -> str:
        """Entry point suffix: '' for the family's own types, else '_' + i/f per term and output."""
        if variant == base:
            return ""
        return "_" + "".join("f" if d == torch.float32 else "i" for d in variant)


def population_source(op, index: int, name: str, n_terms: int = 1) -> tuple[str, FusedKernel]:
    """C text of ``void rsnn_fused_<index><suffix>(void *const *p, long batch)`` for population
    ``op``: int64 for a fixed family (``CPrims``; one entry point per ``FIXED_VARIANTS`` pair),
    float for a float one (``CFloatPrims``, whose step takes ``n_terms`` input terms, one per input
    edge in edge order)."""
    from rsnn_compiler.ir.dynamics import domain_of, family_of
    from rsnn_compiler.neurons import Domain

    fixed = domain_of(op) is Domain.FIXED
    ctype, prims = ("int64_t", CPrims) if fixed else ("float", CFloatPrims)
    cid = f"p{index}"
    size = int(np.prod(op.shape)) if op.shape else 1
    arrays: list[np.ndarray] = []  # per-neuron parameters, passed by pointer at each call

    def param(pname: str, arr) -> str:
        """A literal when uniform; else ``prm<j>[k]``, a pointer argument: the text (and the
        compile) does not grow with the population, and graphs that differ only in per-neuron
        values share one library."""
        arr = np.array(arr, dtype=np.int64 if fixed else np.float32).reshape(-1)  # own, writable copy
        text = lit if fixed else float_lit
        if arr.size == 0 or (arr == arr[0]).all() and (fixed or len({np.signbit(v) for v in arr}) == 1):
            return text(arr[0]) if arr.size else text(0)
        if not (fixed or np.isfinite(arr).all()):
            raise ValueError(f"a non-finite value in parameter '{pname}'")
        arrays.append(arr)
        return f"prm{len(arrays) - 1}[k]"

    family = family_of(op)
    # every input edge's term is its own pointer: a float family takes the list (and adds the
    # terms in its own rounding order); a fixed family's input is their integer sum, taken here
    # in edge order (exact: int64 addition is associative), which saves the runtime a summing call
    terms = max(n_terms, 1)
    if family.takes_terms:
        x_in, pre = [prims.expr(f"x{j}[k]") for j in range(terms)], []
    else:
        x_in, pre = prims.expr("x_in"), ["const {ctype} x_in = {sum};"]
    # fixed families keep each stored state in the narrowest integer type its proven range allows
    # (neuron_code(narrow=True): read widened, stored with a cast; the arithmetic is unchanged)
    code = neuron_code(op, cid, param, store="n", prims_type=prims, x=x_in, narrow=fixed)
    names = family.states + tuple(h for h in family.hidden if h not in family.states)
    stc = [code.state_ctypes.get(n, ctype) for n in names]
    # one row (sample) per call of a static function whose pointers are restrict parameters, so
    # the compiler vectorizes the loop (no tensor aliases another: fresh outputs, distinct states)
    lines = []
    for line in pre + code.body:
        for n in names:
            m = member(n)
            line = line.replace(f"s->{m}_{cid}[k]", f"s_{m}[k]").replace(f"n->{m}_{cid}[k]", f"n_{m}[k]")
        if "s->" in line or "n->" in line:
            raise RsnncError(f"fused neuron kernel: unexpected state reference in '{line}'")
        lines.append(line)
    if not lines[-1].startswith("y[k] = ") or not lines[-1].endswith(";"):
        raise RsnncError(f"fused neuron kernel: the step does not end with its output ('{lines[-1]}')")
    own = TORCH_TYPES[ctype]
    base = (own, own)
    # an output equal to a stored state (a spike kept for the next step's reset): in the variants
    # whose output type is the state's, the state tensor is returned as the output and the loop
    # writes one stream less (safe: no tensor is written after its step)
    out_value = lines[-1][len("y[k] = "):-1]
    # (a state kept narrower is stored through a cast and so never matches: the output keeps its type)
    out_state = next((n for n in code.stored if f"n_{member(n)}[k] = {out_value};" in lines), None)
    variants = FIXED_VARIANTS if fixed else (base,)
    params = "".join(f", const {stc[i]} *restrict s_{member(n)}, {stc[i]} *restrict n_{member(n)}"
                     for i, n in enumerate(names))
    params += "".join(f", const {ctype} *restrict prm{j}" for j in range(len(arrays)))
    used = "".join(f"    (void)s_{member(n)};\n    (void)n_{member(n)};\n" for n in names)
    first = terms + 1  # p: inputs, output, old states, new states
    args = "".join(f", (const {stc[i]} *)p[{first + i}] + off, ({stc[i]} *)p[{first + len(names) + i}] + off"
                   for i, n in enumerate(names))
    args += "".join(f", (const {ctype} *)p[{first + 2 * len(names) + j}]" for j in range(len(arrays)))
    label = "".join(c if c.isprintable() and c not in "*/" else "_" for c in name)
    text = f"/* population '{label}': {code.doc.replace('*/', '* /')} */\n"
    for variant in variants:
        tt, yt = (C_TYPES[d] for d in variant)
        fn = f"rsnn_fused_{index}{FusedKernel.suffix(variant, base)}"
        read = (lambda j: f"x{j}[k]") if tt == ctype else (lambda j: f"({ctype})x{j}[k]")
        body = list(lines)
        if pre:  # the first line sums the terms (fixed families)
            body[0] = body[0].format(ctype=ctype, sum=" + ".join(read(j) for j in range(terms)))
        if yt != ctype:
            body[-1] = f"y[k] = ({yt})({out_value});"
        elif out_state is not None:
            body[-1] = "(void)y;"
        xs = "".join(f"const {tt} *restrict x{j}, " for j in range(terms))
        x_args = "".join(f"(const {tt} *)p[{j}] + off, " for j in range(terms))
        lines_text = "".join(f"        {line}\n" for line in body)
        text += (
            f"static void {fn}_row({xs}{yt} *restrict y{params})\n{{\n"
            f"    long k;\n{used}"
            f"    for (k = 0; k < {size}L; ++k) {{\n{lines_text}    }}\n}}\n\n"
            f"void {fn}(void *const *p, long batch)\n{{\n"
            f"    long b;\n"
            f"#ifdef _OPENMP\n#pragma omp parallel for schedule(static) if (batch * {size}L >= RSNN_PARALLEL_MIN)\n#endif\n"
            f"    for (b = 0; b < batch; ++b) {{\n"
            f"        const long off = b * {size}L;\n"
            f"        {fn}_row({x_args}({yt} *)p[{terms}] + off{args});\n"
            f"    }}\n}}\n\n"
        )
    kernel = FusedKernel(tuple(names), code.stored, size, terms, own,
                         params=[torch.from_numpy(a) for a in arrays], variants=variants, out_state=out_state,
                         state_dtypes=tuple(TORCH_TYPES[c] for c in stc))
    return text, kernel


@dataclass
class FusedLibrary:
    """Every eligible population of one graph, compiled together (slot index -> kernel)."""

    kernels: dict[int, FusedKernel] = field(default_factory=dict)
    source: str = ""

    def load(self) -> None:
        flags = compile_flags()
        key = hashlib.sha256((toolchain_id() + "\0" + " ".join(flags) + "\0" + self.source).encode()).hexdigest()

        def fill(work: Path) -> None:
            (work / "rsnn_fixed.h").write_text(FIXED_H)
            (work / "neurons.c").write_text(self.source)

        path = cached_build("fused-" + key, LIBRARY, fill,
                            lambda work: compile_c(["neurons.c"], LIBRARY, work, extra_flags=flags))
        lib = load_shared(path)
        for index, kernel in self.kernels.items():
            for variant in kernel.variants:
                fn = getattr(lib, f"rsnn_fused_{index}{FusedKernel.suffix(variant, (kernel.dtype, kernel.dtype))}")
                fn.argtypes = [ctypes.c_void_p, ctypes.c_long]
                fn.restype = None
                kernel.fns[variant] = fn


#: float kernels must round like torch: one IEEE operation per product and sum (no contraction
#: into fused multiply-adds, no fast-math); integer kernels are unaffected
FLAGS = ("-fPIC", "-shared", "-Wno-unused", "-ffp-contract=off", "-fno-fast-math")
#: the samples of a step are split over OpenMP threads from this many neurons x samples on (torch's
#: element-wise grain size). Linked with -fopenmp, the library needs ``libgomp.so.1``, which the
#: dynamic linker resolves to the copy torch has already loaded: the kernels share torch's thread
#: pool and its ``torch.set_num_threads`` (no second pool competing for the cores). Samples are
#: independent, so the values do not depend on the split. Without OpenMP support: one thread.
PARALLEL_MIN = 32768
OPENMP_FLAGS = ("-fopenmp",)


def compile_flags() -> tuple[str, ...]:
    """The flags the kernels are compiled with (besides the C target's), also part of their cache
    key: the simulator's, ``FLAGS``, ``-fopenmp`` where the compiler takes it (else a
    pragma-tolerant single-threaded build), the parallel cut, libm."""
    parallel = OPENMP_FLAGS if accepts(OPENMP_FLAGS) else ("-Wno-unknown-pragmas",)
    return (*simulator_flags(), *FLAGS, *parallel, f"-DRSNN_PARALLEL_MIN={PARALLEL_MIN}L", "-lm")


def build_fused(graph: Graph, slots) -> FusedLibrary | None:
    """The fused kernels of ``graph``'s neuron slots, or None when none applies, no C compiler is
    found, or (fixed graphs) the C check finds a value it cannot keep exact in int64. A population
    whose step has no C form (e.g. a non-finite constant) keeps the torch kernels."""
    from rsnn_compiler.backends.c.check import check_graph

    chosen = [s for s in slots if isinstance(s.kernel, FusedPopulation)]
    if not chosen:
        return None
    try:
        compiler()
    except UserInputError:
        return None
    fixed = graph.attrs.domain is Domain.FIXED
    if fixed and check_graph(graph):
        return None
    lib = FusedLibrary()
    parts = ['#include <stdint.h>\n#include "rsnn_fixed.h"\n' + ("" if fixed else FLOAT_HELPERS) + "\n"]
    for slot in chosen:
        try:
            text, kernel = population_source(slot.op, slot.index, slot.name, max(len(slot.edges), 1))
        except (TypeError, ValueError, AttributeError, RsnncError) as exc:
            progress.step(f"runtime: population '{slot.name}' keeps torch's kernels ({exc})")
            continue
        parts.append(text + "\n")
        lib.kernels[slot.index] = kernel
    lib.source = "".join(parts)
    return lib if lib.kernels else None


class FusedPopulation:
    """A CPU population for the runtime: the torch kernels (``pop``), or its fused C step once
    ``kernel`` is attached and ``active`` (``attach`` decides per run). Same interface as
    ``Population``; a step whose inputs the kernel was not compiled for (fewer input terms in
    the first steps of a delayed edge, mixed dtypes) runs the torch kernels on the same states.

    Fixed families also take their terms as exact integers carried in float32, and write their
    output as float32 when ``out_float`` (``runtime.plan_carriers`` sets it where every reader
    takes float32); the torch kernels always see int64 terms and give int64 outputs."""

    def __init__(self, pop: Population):
        self.pop = pop
        self.takes_terms = True  # the schedule passes the terms; summed here for a fixed family
        self.state_names = pop.state_names
        self.kernel: FusedKernel | None = None
        self.active = False
        self.out_float = False

    def init(self, batch: int):
        return self.pop.init(batch)

    def states(self, st) -> dict:
        """The states as the torch kernels keep them (int64 for fixed families)."""
        own = self.kernel.dtype if self.kernel is not None else None
        return {n: v.to(own) if own is not None and isinstance(v, torch.Tensor) and v.dtype != own else v
                for n, v in self.pop.states(st).items()}

    def _torch_step(self, st, xs: list):
        if self.kernel is not None and self.kernel.dtype == torch.int64:  # carried float32 -> int64
            xs = [t.to(torch.int64) if isinstance(t, torch.Tensor) and t.dtype == torch.float32 else t
                  for t in xs]
            for n in self.kernel.names:  # states the kernel kept narrow: int64 again
                v = getattr(st, n)
                if isinstance(v, torch.Tensor) and v.dtype != torch.int64:
                    setattr(st, n, v.to(torch.int64))
        if self.pop.takes_terms:
            return self.pop.step(st, xs)
        total = xs[0]
        for t in xs[1:]:  # the schedule's summed(): edge order
            total = total + t
        return self.pop.step(st, total)

    def _variant(self, xs: list):
        """The compiled entry point for these terms, or None (torch kernels)."""
        kernel = self.kernel
        if not self.active or kernel is None or len(xs) != kernel.terms:
            return None
        dtypes = {t.dtype if isinstance(t, torch.Tensor) else None for t in xs}
        if len(dtypes) != 1:
            return None
        out = torch.float32 if self.out_float else kernel.dtype
        return kernel.fns.get((dtypes.pop(), out))

    def step(self, st, x):
        xs = list(x)
        fn = self._variant(xs)
        if fn is None:
            return self._torch_step(st, xs)
        kernel = self.kernel
        shape = xs[0].shape
        xs = [t.contiguous() if t.shape == shape else t.expand(shape).contiguous() for t in xs]
        # the initial states and those a torch step left are int64: into the kernel's types (the
        # ranges are proven, so the conversion is exact)
        old = [getattr(st, n).to(d).contiguous() for n, d in zip(kernel.names, kernel.state_dtypes)]
        new = [torch.empty_like(o) if n in kernel.stored else o for n, o in zip(kernel.names, old)]
        if kernel.out_state is not None and not self.out_float:  # the state is the output
            y = new[kernel.names.index(kernel.out_state)]
        else:
            y = torch.empty(shape, dtype=torch.float32 if self.out_float else kernel.dtype)
        ptrs = (ctypes.c_void_p * (len(xs) + 1 + 2 * len(old) + len(kernel.params)))(
            *(t.data_ptr() for t in xs), y.data_ptr(), *(t.data_ptr() for t in old), *(t.data_ptr() for t in new),
            *(t.data_ptr() for t in kernel.params))
        fn(ptrs, y.numel() // kernel.size)
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
    contract = not runtime.fixed or runtime.input_float or input_bound < INT32_LIMIT
    want = want and runtime.device.type == "cpu" and contract
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
