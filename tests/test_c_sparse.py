"""Compressed (CSC) weights in the C backend: pruned layers store only their nonzeros and the
event loop visits only (nonzero input, nonzero weight) pairs, and the result stays bit-exact with
``run_fixed`` (every value and state at every step) on recurrent, delayed, graded and conv graphs,
with empty rows and columns and all-zero matrices; the storage choice is reported."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler.interpreter import run_fixed
from rsnn_compiler.ir import FixedDense, verify
from rsnn_compiler.ir.fixed_ops import _FixedConv
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.testing.random_graphs import random_fixed_graph

from rsnn_compiler.backends.c.backend import CBackend
from rsnn_compiler.backends.c.batch import build_many, run_entry
from rsnn_compiler.backends.c.codegen import generate, spike_input
from rsnn_compiler.backends.c.spec import C_SPEC, CSpec
from rsnn_compiler.backends.c.storage import CSC, DENSE, synapse_storage, type_bytes

from test_c_backend import (
    _knobs, _sanitizer_available, _sanitizer_flags, assert_same, inputs_for, structural_graph,
)

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc").split()[0]) is None,
                                reason="no C compiler")

ROOT = Path(__file__).resolve().parents[1]
ALWAYS_CSC = replace(C_SPEC, sparse_max_density=2.0, sparse_max_density_spikes=2.0, sparse_conv_max_density=2.0)
NEVER_CSC = replace(C_SPEC, sparse_max_density=0.0, sparse_max_density_spikes=0.0, sparse_conv_max_density=0.0)
MODES = ("random", "zero_rows", "zero_cols", "all_zero", "keep", "random")


def sparsify(g: Graph, seed: int) -> Graph:
    """Zero most weights of every synapse layer (as spatial pruning does), cycling through
    random masks (density 0.02..0.45), whole zero rows (dead outputs), whole zero columns
    (inputs that reach nothing), an all-zero matrix and an untouched (dense) layer."""
    r = np.random.default_rng(seed)
    for i, (name, op) in enumerate(list(g.nodes.items())):
        if not isinstance(op, (FixedDense, _FixedConv)):
            continue
        w = np.array(op.weight, dtype=np.int64)
        mode = MODES[(seed + i) % len(MODES)]
        if mode == "keep":
            continue
        w *= r.random(w.shape) < r.uniform(0.02, 0.45)
        if mode == "zero_rows":
            w[r.random(w.shape[0]) < 0.5] = 0
        elif mode == "zero_cols":
            w[:, r.random(w.shape[1]) < 0.5] = 0
        elif mode == "all_zero":
            w[:] = 0
        pruned = g.with_node(name, op.replace(weight=w))
        # Lava infers the sign mode from the matrix: a few-bit mixed-sign layer whose remaining
        # weights all share a sign may stop being Lava-exact; keep such a layer as it was
        if not any(f"'{name}'" in problem for problem in verify(pruned)):
            g = pruned
    assert verify(g) == [], verify(g)
    return g


def sparse_graphs(n: int, seed0: int = 0) -> list[Graph]:
    out = []
    for i in range(n):
        profile, knobs = _knobs(i)
        if i % 3 == 0:
            knobs = {**knobs, "width": 24}  # wide enough that rows / columns have many zeros
        out.append(sparsify(random_fixed_graph(seed0 + i, profile, **knobs), seed0 + i))
    return out


def differential(graphs: list[Graph], folder: Path, spec: CSpec = C_SPEC, steps: int = 16, batch: int = 3,
                 flags=("-O0",), env=None) -> None:
    for g in graphs:
        assert CBackend(spec).check(g) == [], g.attrs.name
    entries = build_many(graphs, folder, units=2, extra_flags=tuple(flags), spec=spec)
    for i, (g, entry) in enumerate(zip(graphs, entries)):
        x = inputs_for(g, steps, batch, seed=2000 + i)
        assert_same(run_fixed(g, x), run_entry(entry, g, x, env=env), g.attrs.name)


def storages(graphs: list[Graph], spec: CSpec = C_SPEC):
    return [synapse_storage(name, op, spec, spikes=spike_input(g, name)) for g in graphs
            for name, op in g.nodes.items() if isinstance(op, (FixedDense, _FixedConv))]


# ------------------------------------------------------------------------------------------
# bit-exact on pruned graphs
# ------------------------------------------------------------------------------------------
def test_pruned_random_graphs_match_reference(tmp_path):
    graphs = sparse_graphs(48) + [sparsify(structural_graph(s), s) for s in range(6)]
    st = storages(graphs)
    csc = [s for s in st if s.format == CSC]
    # the cases this test is about are all present
    assert {s.op for s in csc} >= {"FixedDense", "FixedConv1d", "FixedConv2d"}
    assert any(s.nonzeros == 0 for s in csc), "an all-zero matrix"
    assert any(s.format == DENSE for s in st)
    assert len(csc) > len(st) // 2
    assert {g.attrs.profile for g in graphs} == {"loihi2", "fpga"}
    dense_ops = [(g, n) for g in graphs for n, op in g.nodes.items() if isinstance(op, FixedDense)]
    assert any(e.delay >= 1 and e.src != e.dst for g, n in dense_ops for e in g.in_edges(n))  # recurrent / delayed
    assert any(not np.asarray(g.nodes[n].weight).any(axis=0).all() for g, n in dense_ops)  # empty columns
    assert any(not np.asarray(g.nodes[n].weight).any(axis=1).all() for g, n in dense_ops)  # empty rows
    differential(graphs, tmp_path)


def test_every_layer_compressed_matches_reference(tmp_path):
    """CSC regardless of density (threshold above 1): the unpruned fuzz graphs, graded
    payloads, conv with groups/stride/dilation/padding, quantized inputs, overflow."""
    graphs = [random_fixed_graph(100 + i, _knobs(i)[0], **_knobs(i)[1]) for i in range(24)]
    graphs += [structural_graph(30 + s) for s in range(6)]
    assert all(s.format == CSC for s in storages(graphs, ALWAYS_CSC))
    differential(graphs, tmp_path, spec=ALWAYS_CSC)


def test_never_compressed_matches_reference(tmp_path):
    graphs = sparse_graphs(8, seed0=300)
    assert all(s.format == DENSE for s in storages(graphs, NEVER_CSC))
    differential(graphs, tmp_path, spec=NEVER_CSC)


def test_compressed_sanitizers_and_strict_warnings(tmp_path):
    graphs = sparse_graphs(6, seed0=400) + [sparsify(structural_graph(40), 41)]
    extra = ("-Wshadow", "-Wconversion", "-Wno-sign-conversion", "-Wstrict-prototypes", "-Wundef")
    build_many(graphs + [structural_graph(42)], tmp_path / "strict", units=1, extra_flags=extra, spec=ALWAYS_CSC)
    if not _sanitizer_available(tmp_path):
        pytest.skip("the C compiler has no AddressSanitizer/UBSan runtime (libasan/libubsan)")
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    differential(graphs, tmp_path / "san", spec=ALWAYS_CSC, steps=20, batch=2, flags=_sanitizer_flags(), env=env)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(3))
def test_pruned_sweep_slow(tmp_path, chunk):
    graphs = sparse_graphs(200, seed0=10_000 + 200 * chunk) + [
        sparsify(structural_graph(700 + 30 * chunk + s), s) for s in range(30)]
    differential(graphs, tmp_path, steps=40, batch=4, flags=("-O2",))


# ------------------------------------------------------------------------------------------
# the storage choice: emitted arrays, threshold, byte counts, report
# ------------------------------------------------------------------------------------------
def _dense_layer(n_out: int, n_in: int, density: float, seed: int = 0) -> FixedDense:
    r = np.random.default_rng(seed)
    w = r.integers(-100, 101, (n_out, n_in)) * (r.random((n_out, n_in)) < density)
    return FixedDense(weight=w, weight_exp=np.zeros(n_out, dtype=np.int64), acc_bits=24)


def test_storage_threshold_and_byte_counts():
    sparse = synapse_storage("a", _dense_layer(300, 40, 0.1))
    assert sparse.format == CSC and sparse.density < C_SPEC.sparse_max_density
    nnz = sparse.nonzeros
    # start[41] needs uint16 (nnz > 255), rows fit uint16 (300 outputs), values int8
    assert [sparse.arrays[k].ctype for k in ("start", "rows", "vals")] == ["uint16_t", "uint16_t", "int8_t"]
    assert sparse.bytes == 41 * 2 + nnz * (2 + 1) and sparse.dense_bytes == 300 * 40
    w = np.asarray(_dense_layer(300, 40, 0.1).weight)
    a = sparse.arrays
    for j in range(40):  # column j's nonzeros, in increasing output order
        lo, hi = a["start"].values[j], a["start"].values[j + 1]
        assert a["rows"].values[lo:hi].tolist() == np.nonzero(w[:, j])[0].tolist()
        assert a["vals"].values[lo:hi].tolist() == w[np.nonzero(w[:, j])[0], j].tolist()
    dense = synapse_storage("b", _dense_layer(30, 40, 0.9))
    assert dense.format == DENSE and dense.bytes == dense.dense_bytes == 1200 and not dense.arrays
    # sparse enough, but 512 outputs need uint16 row indices: CSC would take more bytes -> dense
    wide = synapse_storage("w", _dense_layer(512, 300, 0.4))
    assert wide.density < C_SPEC.sparse_max_density and wide.format == DENSE
    forced = synapse_storage("w", _dense_layer(512, 300, 0.4), ALWAYS_CSC)
    assert forced.format == CSC and forced.bytes > forced.dense_bytes == wide.bytes
    # fed by a 0/1 spike train the dense loop only adds (and vectorises): a lower threshold
    mid = _dense_layer(100, 100, 0.35)
    assert synapse_storage("m", mid).format == CSC
    assert synapse_storage("m", mid, spikes=True).format == DENSE
    assert synapse_storage("m", _dense_layer(100, 100, 0.1), spikes=True).format == CSC
    empty = synapse_storage("c", _dense_layer(5, 6, 0.0))
    assert empty.format == CSC and empty.nonzeros == 0 and empty.bytes == 0
    assert type_bytes("uint32_t") == 4


def _emitted(tmp_path: Path, g: Graph, name: str) -> tuple[str, dict, str]:
    art = CBackend().emit(g, tmp_path / name)
    return (tmp_path / name / "model.c").read_text(), json.loads((tmp_path / name / "layout.json").read_text()), art.summary


def test_pruned_build_emits_compressed_arrays_and_dense_does_not(tmp_path):
    g = random_fixed_graph(5, "fpga", layers=2, width=20, recurrent=True, delays=True, readout="spikes")
    pruned = sparsify(g, 0)  # fc0 random, rec0 zero rows, fc1 zero columns, rec1 all zero
    dense_c, dense_layout, dense_summary = _emitted(tmp_path, g, "dense")
    c, layout, summary = _emitted(tmp_path, pruned, "pruned")
    layers = {entry["node"]: entry for entry in layout["weights"]["layers"]}
    fmt = {st.node: st.format for st in storages([pruned])}
    assert {n: e["format"] for n, e in layers.items()} == fmt and CSC in fmt.values()
    plan = generate(pruned).plan
    for name, st in plan.storage.items():
        cid = plan.nodes[name].cid
        if st.format == CSC and st.nonzeros:
            assert all(f"rsnn_{cid}_{k}[" in c for k in ("start", "rows", "vals")), name
            assert f"rsnn_{cid}_w[" not in c
            assert f"node '{name}' (FixedDense):" in c and "storage csc:" in c
        elif st.format == CSC:  # all zero: no arrays, no loop
            assert f"rsnn_{cid}_start[" not in c and f"rsnn_{cid}_w[" not in c
        else:
            assert f"rsnn_{cid}_w[" in c
    assert layout["weights"]["bytes"] == sum(e["bytes"] for e in layers.values()) < layout["weights"]["dense_bytes"]
    assert "CSC-compressed" in summary and f"{layout['weights']['bytes']} B weights" in summary
    # the unpruned build stays dense everywhere and says so
    assert all(e["format"] == DENSE for e in dense_layout["weights"]["layers"])
    assert "_start[" not in dense_c and "storage csc" not in dense_c and "CSC" not in dense_summary
    assert dense_layout["weights"]["bytes"] == dense_layout["weights"]["dense_bytes"]


def test_cli_pruned_build_with_c_target_validates_bit_exact(tmp_path, capsys):
    pytest.importorskip("rsnn_compiler.passes.quantize_weights")
    from rsnn_compiler.cli.main import main

    out = tmp_path / "b"
    assert main(["build", str(ROOT / "models" / "example" / "recurrent.rsnn"), "-o", str(out), "--prune", "0.8",
                 "--target", "c", "-q"]) == 0
    layout = json.loads((out / "c" / "layout.json").read_text())
    formats = {e["node"]: e["format"] for e in layout["weights"]["layers"]}
    assert formats["w_rec"] == CSC  # the recurrent matrix, pruned hardest
    manifest = json.loads((out / "manifest.json").read_text())
    assert "CSC-compressed" in manifest["targets"]["c"]["summary"]
    text = (out / "c" / "model.c").read_text()
    assert "w_rec_rows[" in text and "w_rec_w[" not in text and "storage csc:" in text
    data = ROOT / "models" / "example" / "data.npz"
    assert main(["validate", str(out), "--data", str(data), "-q"]) == 0
    capsys.readouterr()
