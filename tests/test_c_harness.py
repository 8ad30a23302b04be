"""The C harness's record I/O: int32 records (``-r 4``) when every value fits, and the
executor's fallback to int64 records when one does not (exit status 6); the executor's in-process
path (the same sources as a shared library) against the binary."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from rsnn_compiler.interpreter import run_fixed
from rsnn_compiler.ir import FixedDense, FixedLIF, GraphBuilder, Input, Output, verify
from rsnn_compiler.ir.fixed_ops import make_neuron
from rsnn_compiler.ir.graph import Domain, Graph

from rsnn_compiler.backends.c.backend import CBackend
from rsnn_compiler.backends.c.executor import ensure_binary, run_c, run_records

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc").split()[0]) is None,
                                reason="no C compiler")


def wide_graph(weight_exp: int) -> Graph:
    """Input -> FixedDense (48-bit accumulator) -> LIF: the dense value reaches 2^(10 + 11 + e)."""
    b = GraphBuilder(f"wide_{weight_exp}")
    b.add("in", Input(shape=(2,)))
    b.add("fc", FixedDense(weight=np.array([[1000, -1000], [7, 3]]), weight_exp=np.full(2, weight_exp),
                           weight_bits=12, acc_bits=48))
    b.add("h", make_neuron(FixedLIF, (2,), vth=1 << 20, v_bits=48, u_bits=48))
    b.add("out", Output(shape=(2,)))
    b.chain("in", "fc", "h", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="fpga")
    assert not verify(g), verify(g)
    return g


@pytest.mark.parametrize("weight_exp,record_width", [(0, 4), (20, 8)])
def test_records_are_int32_when_they_fit_and_int64_otherwise(tmp_path, weight_exp, record_width):
    g = wide_graph(weight_exp)
    CBackend().emit(g, tmp_path / "c")
    binary = ensure_binary(tmp_path / "c")
    layout = __import__("json").loads((tmp_path / "c" / "layout.json").read_text())
    x = np.random.default_rng(0).integers(-1000, 1000, (6, 3, 2))
    # the binary's own answer to -r 4: 0 when every recorded value fits int32, else 6
    part = np.ascontiguousarray(x.astype("<i4"))
    res = subprocess.run([str(binary), "-w", "4", "-r", "4", "6", "3"], input=part.tobytes(), capture_output=True)
    assert res.returncode == (0 if record_width == 4 else 6), res.stderr
    if record_width == 8:
        assert b"rerun with -r 8" in res.stderr
    got = run_c(binary, layout, g, x)
    want = run_fixed(g, x)
    assert np.abs(want.values["fc"]).max() >= (1 << 31 if record_width == 8 else 1)
    for name, ref in want.values.items():
        assert np.array_equal(got.values[name], ref), name
    for key, ref in want.states.items():
        assert np.array_equal(got.states[key], ref), key
    outs = run_records(binary, x, layout["record"]["length"], 2, out_only=True)  # 2 batch chunks
    assert np.array_equal(outs, want.out.reshape(outs.shape))


def test_threads_split_samples_without_changing_records(tmp_path):
    """-j N splits each step's samples over N threads; records are identical to -j 1 and to
    the reference, also with uneven splits and more threads than samples."""
    from rsnn_compiler.testing.random_graphs import random_fixed_graph, random_input

    g = random_fixed_graph(11, "fpga", recurrent=True, delays=True, max_delay=3)
    CBackend().emit(g, tmp_path / "c")
    binary = ensure_binary(tmp_path / "c")
    layout = __import__("json").loads((tmp_path / "c" / "layout.json").read_text())
    x = random_input(g, 12, 7, seed=3)
    L = layout["record"]["length"]
    one = run_records(binary, x, L, 256, threads=1)
    for threads in (2, 3, 16):
        assert np.array_equal(run_records(binary, x, L, 256, threads=threads), one), threads
    want = run_fixed(g, x)
    got = run_c(binary, layout, g, x)
    for name, ref in want.values.items():
        assert np.array_equal(got.values[name], ref), name
    bad = subprocess.run([str(binary), "-j", "0", "1", "1"], input=b"", capture_output=True)
    assert bad.returncode == 2 and b"-j 1.." in bad.stderr


def test_int32_accumulators_only_where_the_bound_proves_them(tmp_path):
    """Dense sums use int32_t locals only when c_check's bounds keep every partial sum inside
    int32; the random graphs of the differential tests exercise both forms."""
    from rsnn_compiler.backends.c.codegen import int32_accumulators
    from rsnn_compiler.testing.random_graphs import random_fixed_graph

    assert int32_accumulators(wide_graph(20)) == set()  # raw int32 inputs times 1000: may overflow
    narrow = total = 0
    for i in range(24):
        g = random_fixed_graph(i, ("loihi2", "fpga")[i % 2], recurrent=True)
        narrow += len(int32_accumulators(g))
        total += len(g.names_of(FixedDense))
    assert 0 < narrow < total
    g = random_fixed_graph(0, "loihi2", recurrent=True)
    CBackend().emit(g, tmp_path / "c")
    text = (tmp_path / "c" / "model.c").read_text()
    assert ("int32_t acc[" in text) == bool(int32_accumulators(g))


def test_weights_bin_loads_refuses_other_files_and_converts_to_const_arrays(tmp_path):
    """Every array in weights.bin (blob_min_values=0): the binary reproduces the reference; a
    weights.bin changed by one byte is refused (exit 9); ``make rsnn_run_const`` (the arrays as
    const C from rsnn_bin2c, -DRSNN_CONST_WEIGHTS, no weights.bin needed) gives the same records."""
    from dataclasses import replace

    from rsnn_compiler.backends.c.spec import C_SPEC
    from rsnn_compiler.testing.random_graphs import random_fixed_graph, random_input

    g = random_fixed_graph(5, "loihi2", recurrent=True, delays=True, max_delay=2)
    cdir = tmp_path / "c"
    CBackend(spec=replace(C_SPEC, blob_min_values=0)).emit(g, cdir)
    assert (cdir / "weights.bin").stat().st_size > 0 and "static const int" not in (cdir / "model.c").read_text()
    binary = cdir / "rsnn_run"
    layout = __import__("json").loads((cdir / "layout.json").read_text())
    x = random_input(g, 9, 4, seed=2)
    L = layout["record"]["length"]
    want = run_fixed(g, x)
    got = run_c(binary, layout, g, x)
    for name, ref in want.values.items():
        assert np.array_equal(got.values[name], ref), name
    recs = run_records(binary, x, L, 256)

    blob = bytearray((cdir / "weights.bin").read_bytes())
    blob[len(blob) // 2] ^= 1
    (tmp_path / "other.bin").write_bytes(bytes(blob))
    part = np.ascontiguousarray(x.astype("<i4"))
    res = subprocess.run([str(binary), "-w", "4", "-W", str(tmp_path / "other.bin"), "9", "4"],
                         input=part.tobytes(), capture_output=True)
    assert res.returncode == 9 and b"not this model's weights" in res.stderr

    cc = os.environ.get("CC", "cc")
    res = subprocess.run(["make", "-s", f"CC={cc}", "rsnn_run_const"], cwd=cdir, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    const_dir = tmp_path / "const"  # no weights.bin next to it
    const_dir.mkdir()
    shutil.copy(cdir / "rsnn_run_const", const_dir / "rsnn_run")
    assert np.array_equal(run_records(const_dir / "rsnn_run", x, L, 256), recs)


def test_weights_bin_checksum_spans_many_blocks(tmp_path):
    """The loader's Adler-32 reduces every 5552 bytes; on a 40,000-byte blob (8 blocks) it accepts
    the file the compiler wrote (the run equals the reference) and refuses one changed in the
    last block (exit 9)."""
    r = np.random.default_rng(3)
    b = GraphBuilder("blocks")
    b.add("in", Input(shape=(200,)))
    b.add("fc", FixedDense(weight=r.integers(-120, 121, (200, 200)), weight_exp=np.zeros(200), weight_bits=8))
    b.add("lif", make_neuron(FixedLIF, (200,), vth=200, dv=100))
    b.add("out", Output(shape=(200,)))
    b.chain("in", "fc", "lif", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="fpga")
    assert verify(g) == [], verify(g)
    cdir = tmp_path / "c"
    CBackend().emit(g, cdir)
    blob = bytearray((cdir / "weights.bin").read_bytes())
    assert len(blob) >= 40_000
    layout = __import__("json").loads((cdir / "layout.json").read_text())
    x = r.integers(0, 2, (6, 3, 200))
    assert np.array_equal(run_c(cdir / "rsnn_run", layout, g, x).out, run_fixed(g, x).out)
    blob[-3] ^= 4
    (tmp_path / "other.bin").write_bytes(bytes(blob))
    res = subprocess.run([str(cdir / "rsnn_run"), "-w", "4", "-W", str(tmp_path / "other.bin"), "6", "3"],
                         input=np.ascontiguousarray(x.astype("<i4")).tobytes(), capture_output=True)
    assert res.returncode == 9 and b"not this model's weights" in res.stderr


# ---------------------------------------------------------------------------------------------
# the executor's in-process path (backends/c/library.py): the same records as the binary's
# ---------------------------------------------------------------------------------------------
def _inprocess_case(name: str) -> Graph:
    from rsnn_compiler.testing.random_graphs import random_fixed_graph

    if name.startswith("wide"):
        return wide_graph(int(name[4:]))
    if name == "graded":
        return random_fixed_graph(0, "fpga", quantize_input=True, graded=True)
    return random_fixed_graph(7, "loihi2", recurrent=True, delays=True, max_delay=3)


@pytest.mark.parametrize("case", ["wide0", "wide20", "recurrent", "graded"])
def test_inprocess_library_records_equal_the_binarys(tmp_path, monkeypatch, case):
    """The shared library (built into the cache from the build's sources) returns the binary's
    records value for value: int32 records where they fit and int64 where the binary needs -r 8
    (wide20), every thread count, output-only records, batch chunks; and the binary streaming
    its files one step per chunk (-DRSNN_CHUNK_BYTES=1) writes the same bytes as in one chunk."""
    import json
    from dataclasses import replace

    from rsnn_compiler.backends.c.library import ensure_library, open_library, run_records_inprocess
    from rsnn_compiler.backends.c.spec import C_SPEC
    from rsnn_compiler.backends.c.toolchain import compile_c
    from rsnn_compiler.testing.random_graphs import random_input

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    g = _inprocess_case(case)
    cdir = tmp_path / "c"
    CBackend(spec=replace(C_SPEC, blob_min_values=0)).emit(g, cdir)  # weights through weights.bin
    layout = json.loads((cdir / "layout.json").read_text())
    L, n_out = layout["record"]["length"], layout["output"]["size"]
    if case.startswith("wide"):
        x = np.random.default_rng(0).integers(-1000, 1000, (6, 5, 2))
    else:
        from rsnn_compiler.backends.c.executor import encode_inputs

        x = encode_inputs(g, layout, random_input(g, 9, 5, seed=4))
    binary = cdir / "rsnn_run"
    want = run_records(binary, x, L, 256, threads=1)
    assert want.dtype == (np.int64 if case == "wide20" else np.int32)
    library = ensure_library(cdir)
    assert library.parent.parent == tmp_path / "cache" / "rsnnc" / "c"
    lib = open_library(library)
    for threads in (1, 2, 3, 8):
        got = run_records_inprocess(lib, x, L, n_out, 256, threads=threads)
        assert got.dtype == want.dtype and np.array_equal(got, want), threads
    assert np.array_equal(run_records_inprocess(lib, x, L, n_out, 2, threads=2), want)  # 3 batch chunks
    outs = run_records_inprocess(lib, x, L, n_out, 256, out_only=True, threads=2)
    assert outs.dtype == np.int64
    assert np.array_equal(outs, run_records(binary, x, L, 256, out_only=True).astype(np.int64))
    assert np.array_equal(outs, want[:, :, layout["output"]["offset"]:layout["output"]["offset"] + n_out])

    compile_c(["harness.c", "model.c"], "rsnn_run_steps", cdir, extra_flags=("-DRSNN_CHUNK_BYTES=1",))
    part = np.ascontiguousarray(x.astype("<i4")).tobytes()
    for args in (["-r", "8"], ["-r", "8", "-q", "-j", "2"], ["-r", "4", "-q"]):
        one = subprocess.run([str(binary), "-w", "4", *args, str(x.shape[0]), "5"], input=part, capture_output=True)
        steps = subprocess.run([str(cdir / "rsnn_run_steps"), "-w", "4", *args, str(x.shape[0]), "5"], input=part,
                               capture_output=True)
        assert one.returncode == steps.returncode and one.stdout == steps.stdout, args


def test_inprocess_scratch_records_are_reused_and_decoded_into_new_arrays(tmp_path, monkeypatch):
    """``scratch=True`` writes into this thread's reused buffer (same object for the same shape);
    the executor decodes it into new arrays, so an earlier RunResult keeps its values after the
    next run overwrote the buffer."""
    import json

    from rsnn_compiler.backends.c.executor import run_c_inprocess
    from rsnn_compiler.backends.c.library import ensure_library, open_library, run_records_inprocess
    from rsnn_compiler.testing.random_graphs import random_fixed_graph, random_input

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    g = random_fixed_graph(2, "loihi2", recurrent=True)
    CBackend().emit(g, tmp_path / "c")
    layout = json.loads((tmp_path / "c" / "layout.json").read_text())
    library = ensure_library(tmp_path / "c")
    lib = open_library(library)
    L, n_out = layout["record"]["length"], layout["output"]["size"]
    x1, x2 = random_input(g, 7, 3, seed=1), random_input(g, 7, 3, seed=2)
    a = run_records_inprocess(lib, x1, L, n_out, 256, scratch=True)
    want_a = a.copy()
    b = run_records_inprocess(lib, x2, L, n_out, 256, scratch=True)
    assert b is a and not np.array_equal(b, want_a)  # the same buffer, overwritten
    assert np.array_equal(run_records_inprocess(lib, x1, L, n_out, 256), want_a)  # fresh: not the buffer
    r1 = run_c_inprocess(library, layout, g, x1)
    r2 = run_c_inprocess(library, layout, g, x2)
    ref1, ref2 = run_fixed(g, x1), run_fixed(g, x2)
    for name in ref1.values:
        assert np.array_equal(r1.values[name], ref1.values[name]), name
        assert np.array_equal(r2.values[name], ref2.values[name]), name


def test_inprocess_run_refuses_like_the_binary(tmp_path, monkeypatch):
    """Through the library: an input outside the model's input contract is refused (the binary's
    exit 8, as one line), weights.bin that is not the model's is refused on loading (exit 9), and
    ``rsnnc``'s executor (CExecutor) uses the library unless RSNNC_C_INPROCESS=0."""
    import json
    from dataclasses import replace

    from rsnn_compiler.backends.c import library
    from rsnn_compiler.backends.c.executor import run_build_c
    from rsnn_compiler.backends.c.spec import C_SPEC
    from rsnn_compiler.errors import UserInputError
    from rsnn_compiler.testing.random_graphs import random_fixed_graph, random_input

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    g = random_fixed_graph(0, "fpga", quantize_input=True, graded=True)
    cdir = tmp_path / "c"
    CBackend(spec=replace(C_SPEC, blob_min_values=0)).emit(g, cdir)
    layout = json.loads((cdir / "layout.json").read_text())
    lib = library.open_library(library.ensure_library(cdir))
    x = np.full((2, 1, layout["input"]["size"]), 1 << 30, dtype=np.int32)
    with pytest.raises(UserInputError, match="outside the range the model was compiled for"):
        library.run_records_inprocess(lib, x, layout["record"]["length"], layout["output"]["size"], 256)

    calls = []
    real = library.run_records_inprocess
    monkeypatch.setattr("rsnn_compiler.backends.c.executor.run_records_inprocess",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    xf = random_input(g, 5, 3, seed=1)
    got = run_build_c(cdir, layout, g, xf)
    assert calls and np.array_equal(got.out, run_fixed(g, xf).out)
    monkeypatch.setenv("RSNNC_C_INPROCESS", "0")
    assert np.array_equal(run_build_c(cdir, layout, g, xf).out, got.out) and len(calls) == 1

    other = tmp_path / "other"
    shutil.copytree(cdir, other)
    blob = bytearray((other / "weights.bin").read_bytes())
    blob[len(blob) // 2] ^= 1
    (other / "weights.bin").write_bytes(bytes(blob))
    for _ in range(2):  # refused every time: a library whose weights failed is never handed out
        with pytest.raises(UserInputError, match="not this model's"):
            library.open_library(library.ensure_library(other))
