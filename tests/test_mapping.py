"""Loihi 2 mapping (backends/lava/map_loihi2.py): hand-computed core counts, violations, the pass."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rsnn_compiler.backends.lava.loihi2_resources import LOIHI2_RESOURCES, BOARDS, Figure
from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.ir import Domain, FixedDense, FixedLIF, GraphBuilder, Input, Output
from rsnn_compiler.ir.fixed_ops import make_neuron
from rsnn_compiler.pass_manager import run_pipeline
from rsnn_compiler.backends.lava.map_loihi2 import (
    Connection, MapLoihi2, Network, Population, map_graph, map_network, mapping_diagnostics,
)
from rsnn_compiler.passes_api import PassContext, Prop


def res(**figs):
    """The default model with some figures replaced (values only)."""
    return dataclasses.replace(LOIHI2_RESOURCES, **{
        k: dataclasses.replace(getattr(LOIHI2_RESOURCES, k), value=v) for k, v in figs.items()})


def layered(sizes: list[int], weight=None, bits: int = 8):
    """in(sizes[0]) -> dense -> LIF(sizes[1]) -> ... -> out, all weights 1 (or ``weight(i)``)."""
    b = GraphBuilder("m")
    b.add("in", Input(shape=(sizes[0],)))
    prev = "in"
    for i, n in enumerate(sizes[1:], 1):
        w = np.ones((n, sizes[i - 1]), dtype=np.int64) if weight is None else weight(i)
        b.add(f"fc{i}", FixedDense(weight=w, weight_exp=np.zeros(n), weight_bits=bits, acc_bits=32,
                                   acc_overflow=Overflow.WRAP))
        b.add(f"lif{i}", make_neuron(FixedLIF, (n,), du=4095, dv=0, vth=10))
        b.connect(prev, f"fc{i}")
        b.connect(f"fc{i}", f"lif{i}")
        prev = f"lif{i}"
    b.add("out", Output(shape=(sizes[-1],)))
    b.connect(prev, "out")
    props = frozenset({Prop.DISCRETIZED, Prop.QUANTIZED, Prop.WEIGHTS_QUANTIZED, Prop.PRUNED})
    return b.build().with_attrs(domain=Domain.FIXED, profile="loihi2", properties=props)


def test_memory_bound_core_count():
    # per neuron: 100 dense 8-bit slots + 48 state bits = 848 bits; 1 Mbit / 848 = 1236 per core
    mapping, _, _ = map_graph(layered([100, 20000]))
    assert [c.neurons for c in mapping.cores][:2] == [1236, 1236]
    assert mapping.n_cores == 17 and mapping.n_chips == 1 and mapping.fits
    assert mapping.cores[0].memory_bits == 1236 * 848
    assert mapping.cores[0].in_axons == 100


def test_neuron_cap_core_count():
    # 4*8 + 48 = 80 bits per neuron: memory allows 13107, the 8192-neuron cap binds
    mapping, _, _ = map_graph(layered([4, 10000]))
    assert [c.neurons for c in mapping.cores] == [8192, 1808]


def test_sparse_rows_cost_index_bits():
    # density 1/10 < 0.5: each nonzero costs 8 + 12 index bits; 100 per neuron -> 2000 + 48 = 2048 bits
    # -> exactly 512 neurons per 1 Mbit core: 2 cores
    w = lambda i: (np.arange(1000)[:, None] // 100 == np.arange(1000)[None, :] // 100).astype(np.int64)
    mapping, _, _ = map_graph(layered([1000, 1000], weight=w))
    assert [c.neurons for c in mapping.cores] == [512, 488]
    assert mapping.cores[0].memory_bits == 512 * 2048


def test_out_axon_limit_repacks_source():
    # A(20) -> B(20), 5 neurons/core: B on 4 cores, each A neuron reaches 4 cores; 8 out-axons per core
    # -> A packs 2 neurons per core: 10 + 4 cores
    m, _, _ = map_graph(layered([20, 20, 20]), res=res(neurons_per_core=5, out_axons_per_core=8))
    by = {}
    for c in m.cores:
        by.setdefault(c.population, []).append(c.neurons)
    assert by == {"lif1": [2] * 10, "lif2": [5] * 4}
    assert max(c.out_axons for c in m.cores) == 8 and m.fits


def test_in_axon_limit_halves_blocks():
    # block-diagonal: neuron o reads sources 4*(o//4) .. +3; 8 in-axons per core -> 4 cores of 5
    w = lambda i: (np.arange(20)[:, None] // 4 == np.arange(20)[None, :] // 4).astype(np.int64)
    m, _, _ = map_graph(layered([20, 20], weight=w), res=res(in_axons_per_core=8))
    assert [c.neurons for c in m.cores] == [5, 5, 5, 5]
    assert [c.in_axons for c in m.cores] == [8, 8, 8, 8]


def test_cannot_fit_neuron_fan_in():
    # 140 000 sources x 8 bits > 1 Mbit per core, and > 4096 input axons
    m, _, _ = map_graph(layered([140000, 2]))
    assert not m.fits
    text = " ".join(str(v) for v in m.violations)
    assert "more synapse + state memory than one core has" in text
    assert "input axons" in text and "fix: prune" in text


def test_board_too_small_names_a_larger_board():
    g = layered([100, 20000])
    m, _, _ = map_graph(g, board="oheo_gulch", res=res(cores_per_chip=8))
    assert m.n_chips == 3 and not m.fits
    (v,) = m.violations
    assert "board 'oheo_gulch' has 1 chip(s)" in v.problem and "--board kapoho_point" in v.fix
    diags = mapping_diagnostics(g, board="oheo_gulch")
    assert diags == []  # default model: 17 cores fit one chip
    assert mapping_diagnostics(layered([140000, 2]))[0].fix


def test_chip_packing_and_kapoho_point():
    assert BOARDS["kapoho_point"].chips == 8
    m, _, _ = map_graph(layered([100, 20000]), res=res(cores_per_chip=4))
    assert m.n_chips == 5 and [c.chip for c in m.cores[:5]] == [0, 0, 0, 0, 1] and m.fits


def test_every_figure_has_provenance():
    for name, fig in LOIHI2_RESOURCES.figures().items():
        assert isinstance(fig, Figure) and fig.source and fig.value > 0, name
    assert LOIHI2_RESOURCES.in_axons_per_core.estimate and not LOIHI2_RESOURCES.cores_per_chip.estimate


def test_abstract_network_csr():
    net = Network({"in": Population("in", 10, 0, on_core=False), "a": Population("a", 6)})
    idx = np.array([0, 1, 2, 3, 4, 5], dtype=np.int32)
    net.connections.append(Connection("c", "in", "a", np.ones(6, dtype=np.int64), 10, 8, False,
                                      np.arange(7), idx))
    m = map_network(net, res=res(neurons_per_core=4))
    assert [c.neurons for c in m.cores] == [4, 2] and [c.in_axons for c in m.cores] == [4, 2]
    assert np.array_equal(m.fanout_cores["in"], [1, 1, 1, 1, 1, 1, 0, 0, 0, 0])


def test_pass_report_and_unchanged_graph():
    g = layered([16, 32, 8])
    ctx = PassContext(profile="loihi2", verify_each=True)
    out, (rep,) = run_pipeline(g, [MapLoihi2()], ctx)
    assert out.nodes == g.nodes or out.nodes.keys() == g.nodes.keys()
    assert not rep.changed and rep.cores == 2 and rep.chips == 1 and rep.fits
    data = rep.to_json()["metrics"]
    assert {r["population"] for r in data["populations"]} == {"lif1", "lif2"}
    assert len(data["core_utilisation"]) == 2 and data["resource_model"]
    assert data["energy"]["counts"]["source"] == "upper bound"


@pytest.mark.slow
def test_one_million_neurons_map_in_seconds():
    import time

    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "mapping_scaling.py"
    spec = importlib.util.spec_from_file_location("mapping_scaling", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    synthetic = mod.synthetic
    net = synthetic(1_000_000)
    start = time.perf_counter()
    m = map_network(net, board="hala_point")
    assert time.perf_counter() - start < 20 and m.fits
    assert sum(c.neurons for c in m.cores) == 1_000_000


def test_lava_check_reports_mapping_violations():
    from rsnn_compiler.backends.lava.backend import LavaBackend

    big = layered([140000, 2])
    diags = LavaBackend().check(big)
    assert any(d.where.startswith("loihi2 mapping") and "input axons" in d.problem and d.fix for d in diags)
    assert LavaBackend(board="oheo_gulch").check(layered([16, 32, 8])) == []


def test_build_and_report_show_mapping_and_plot(tmp_path):
    from pathlib import Path

    from rsnn_compiler.cli.main import main

    root = Path(__file__).resolve().parents[1] / "models" / "example"
    out = tmp_path / "b"
    assert main(["build", str(root / "recurrent.rsnn"), "--target", "lava", "--calib", str(root / "data.npz"),
                 "--board", "oheo_gulch", "-o", str(out), "--quiet"]) == 0
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pipeline"]["loihi2"][-2:] == ["map_loihi2", "quant_check"]
    rep = next(r for r in manifest["passes"] if r["name"] == "map_loihi2")
    assert rep["metrics"]["board"] == "oheo_gulch" and rep["metrics"]["energy"]["counts"]["source"] == "measured"
    assert main(["report", str(out)]) == 0
    assert not list(out.rglob("*.png"))  # report writes no picture into the build
    assert main(["report", str(out), "--plots", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "core_utilisation.png").stat().st_size > 0


def test_conv_layer_fan_in_is_exact():
    from rsnn_compiler.ir.fixed_ops import FixedConv1d

    b = GraphBuilder("c")
    b.add("in", Input(shape=(1, 10)))
    b.add("conv", FixedConv1d(weight=np.ones((2, 1, 3), dtype=np.int64), weight_exp=np.zeros(2),
                              input_shape=(1, 10), padding=(1,), weight_bits=8, acc_bits=24,
                              acc_overflow=Overflow.WRAP))
    b.add("lif", make_neuron(FixedLIF, (2, 10), du=4095, dv=0, vth=10))
    b.add("out", Output(shape=(2, 10)))
    b.chain("in", "conv", "lif", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="loihi2")
    m, net, notes = map_graph(g)
    (conn,) = net.connections
    assert conn.fanin.tolist() == [2, 3, 3, 3, 3, 3, 3, 3, 3, 2] * 2  # padded borders see 2 inputs
    assert m.n_cores == 1 and m.cores[0].synapses == 56 and any("convolution" in n for n in notes)
