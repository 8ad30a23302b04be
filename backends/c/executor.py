"""``rsnnc run --executor c``: run a build's compiled C model and return a ``RunResult``.

Inputs: C has no floats, so when the graph's Input feeds only Quantize nodes (``host_quantize``
mode, see ``c_plan``) the executor applies those Quantize ops in Python exactly as the reference
does (docs/fixed-point.md §3.1) and streams the integer codes; otherwise it streams the integer
inputs unchanged. Either way the binary sees little-endian int32 rows, time-major.
The binary is ``<build>/c/rsnn_run`` when its stamp matches the sources and this machine's
toolchain; otherwise it is rebuilt from the shipped sources into a cache folder (the build folder
is never modified, so its manifest hashes stay valid).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import ClassVar

import numpy as np

from rsnn_compiler import progress
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.executors import load_build_graph, target_program
from rsnn_compiler.interpreter.fixed_interp import quantize_input
from rsnn_compiler.interpreter.float_interp import check_inputs
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.ir.fixed_ops import FixedNeuron
from rsnn_compiler.ir.graph import Domain, Graph

from rsnn_compiler.backends.c.backend import STAMP_SUFFIX, build_binary, present_sources
from rsnn_compiler.backends.c.cache import cached_build, copy_sources
from rsnn_compiler.backends.c.chunks import records_in_chunks
from rsnn_compiler.backends.c.plan import HOST_QUANTIZE
from rsnn_compiler.backends.c.spec import C_SPEC
from rsnn_compiler.backends.c.library import ensure_library, inprocess_enabled, open_library, run_records_inprocess
from rsnn_compiler.backends.c.toolchain import CCompileError, sources_digest

INT32 = np.iinfo(np.int32)


def ensure_binary(cdir: Path) -> Path:
    """A binary built from ``cdir``'s sources with this machine's toolchain (rebuilt if stale)."""
    names = present_sources(cdir)
    digest = sources_digest(cdir, names)
    binary = cdir / C_SPEC.binary
    stamp = cdir / (C_SPEC.binary + STAMP_SUFFIX)
    if binary.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return binary
    return cached_build(digest, C_SPEC.binary, copy_sources(cdir, names), build_binary)


def encode_inputs(graph: Graph, layout: dict, x: np.ndarray) -> np.ndarray:
    """The int32 array (T, B, n_in) the C model consumes (host-side Quantize if needed)."""
    x = check_inputs(graph, x)
    steps, batch = x.shape[:2]
    if layout["input"]["mode"] == HOST_QUANTIZE:
        xf = np.asarray(x, dtype=np.float64)
        parts = [quantize_input(graph.nodes[q], xf).reshape(steps, batch, -1) for q in layout["input"]["quantize_nodes"]]
        ints = np.concatenate(parts, axis=2) if parts else np.zeros((steps, batch, 0), np.int64)
    else:
        if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
            if not np.array_equal(x, np.round(x)):
                raise UserInputError(
                    "this fixed-point graph takes integer inputs (its Input feeds integer ops directly);"
                    " pass integers or add a Quantize node after the Input"
                )
        ints = np.asarray(x).astype(np.int64).reshape(steps, batch, -1)
    if ints.size and (ints.min() < INT32.min or ints.max() > INT32.max):
        raise UserInputError("the C model takes int32 inputs; an input value is outside the int32 range")
    return ints.astype(np.int32)


def default_threads(batch: int) -> int:
    """Harness threads for ``batch`` samples: one per core, at least 32 samples per thread."""
    return max(1, min(os.cpu_count() or 1, batch // 32, 16))


def run_records(binary: Path, ints: np.ndarray, record_len: int, max_batch: int,
                out_only: bool = False, threads: int | None = None) -> np.ndarray:
    """Stream ``ints`` (T, B, n_in) through the binary in batch chunks; records (T, B, L) as
    int32 when every value fits, else int64 (L = the output node's size with ``out_only``).

    Inputs and records go through files in a temporary folder (much faster than pipes for
    the tens of MB a full record holds). Records are requested as int32 (``-r 4``), which
    halves the bytes; the binary refuses (exit status 6) when a value needs more, and the run
    is repeated with int64 records. ``threads`` (default ``default_threads``) splits each
    step's samples over that many threads of the harness; results do not depend on it.
    """
    steps = ints.shape[0]
    with tempfile.TemporaryDirectory(prefix="rsnnc-c-") as tmp:
        fin, fout = Path(tmp) / "x.bin", Path(tmp) / "records.bin"

        def run_part(part: np.ndarray, rwidth: int):
            nb = part.shape[1]
            part.astype("<i4", copy=False).tofile(fin)
            res = subprocess.run([str(binary), "-w", "4", "-r", str(rwidth), "-j", str(threads or default_threads(nb)),
                                  *(["-q"] if out_only else []), str(steps), str(nb), str(fin), str(fout)],
                                 capture_output=True)
            if res.returncode != 0:
                return res.returncode, None, res.stderr.decode(errors="replace").strip() or f"exit status {res.returncode}"
            rec = np.fromfile(fout, dtype=f"<i{rwidth}")
            return 0, (rec.reshape(steps, nb, -1) if rec.size else np.zeros((steps, nb, record_len), np.int64)), ""

        return records_in_chunks(ints, max_batch, (4, 8), run_part, record_len)


def decode(graph: Graph, layout: dict, records: np.ndarray, x: np.ndarray) -> RunResult:
    """Split records (T, B, L) into a RunResult laid out like ``run_fixed``'s."""
    steps, batch = records.shape[:2]
    values: dict[str, np.ndarray] = {}
    states: dict[str, np.ndarray] = {}
    for f in layout["record"]["fields"]:
        size = int(np.prod(f["shape"])) if f["shape"] else 1
        arr = records[:, :, f["offset"]:f["offset"] + size].reshape(steps, batch, *f["shape"])
        kind, name = f["key"].split("/", 1)
        if kind == "values":
            values[name] = arr.astype(np.int64)  # one copy: contiguous and widened
        else:
            states[f["key"]] = arr.astype(np.int64)
    if layout["input"]["mode"] == HOST_QUANTIZE:
        values[graph.input_name] = np.asarray(x, dtype=np.float64)
    ordered = {n: values[n] for n in graph.nodes if n in values}
    result = RunResult(out=ordered[graph.output_name])
    result.values = ordered
    result.spikes = {
        n: ordered[n] for n, op in graph.nodes.items() if isinstance(op, FixedNeuron) and op.spiking
    }
    result.states = states
    return result


def run_c(binary: Path, layout: dict, graph: Graph, x: np.ndarray) -> RunResult:
    """Run ``graph``'s compiled C model ``binary`` (layout from its layout.json) on ``x``."""
    ints = encode_inputs(graph, layout, x)
    records = run_records(binary, ints, layout["record"]["length"], layout["max_batch"])
    return decode(graph, layout, records, x)


def run_c_inprocess(library: Path, layout: dict, graph: Graph, x: np.ndarray) -> RunResult:
    """``run_c`` through the shared library built from the same sources (library.py)."""
    ints = encode_inputs(graph, layout, x)
    records = run_records_inprocess(open_library(library), ints, layout["record"]["length"],
                                    layout["output"]["size"], layout["max_batch"],
                                    threads=default_threads(min(ints.shape[1], layout["max_batch"])),
                                    scratch=True)
    return decode(graph, layout, records, x)  # copies every field out of the scratch records


def run_build_c(cdir: Path, layout: dict, graph: Graph, x: np.ndarray) -> RunResult:
    """Run a build's C model in this process (library.py), or as the binary in a subprocess
    with ``RSNNC_C_INPROCESS=0`` or where the toolchain cannot make a shared library."""
    if inprocess_enabled():
        try:
            library = ensure_library(cdir)
        except CCompileError as exc:
            progress.step(f"c: no shared library ({exc}); running the binary instead")
        else:
            return run_c_inprocess(library, layout, graph, x)
    return run_c(ensure_binary(cdir), layout, graph, x)


class CExecutor:
    name: ClassVar[str] = "c"
    domains: ClassVar[tuple[str, ...]] = ("fixed",)  # rsnnc run picks fixed without --domain

    def run(self, build: Path, manifest: dict, domain: Domain, profile: str | None, x: np.ndarray) -> RunResult:
        cdir, key = target_program(build, manifest, domain, profile, "c", "C", "layout.json")
        graph = load_build_graph(build, manifest, key)
        layout = json.loads((cdir / "layout.json").read_text())
        return run_build_c(cdir, layout, graph, x)
