"""The C harness's record I/O: int32 records (``-r 4``) when every value fits, and the
executor's fallback to int64 records when one does not (exit status 6)."""

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
