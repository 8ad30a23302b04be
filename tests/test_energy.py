"""Operations and energy per sample (rsnn_compiler/energy.py): counts, ranges, provenance."""
from __future__ import annotations

import numpy as np
import pytest

from rsnn_compiler.energy import DENSE_TABLES, SPIKING_TABLES, TABLES, OpCounts, count_ops, energy_report, estimate
from rsnn_compiler.backends.lava.map_loihi2 import map_graph
from tests.test_mapping import layered


def test_every_constant_has_provenance_and_a_range():
    for table in TABLES.values():
        costs = [c for c in (table.synop, table.neuron_update, table.message) if c]
        assert costs and table.description
        for c in costs:
            assert 0 < c.low_pj <= c.high_pj and c.source
    assert "NOT Loihi 2" in TABLES["loihi1_davies2018"].description
    assert TABLES["horowitz45_fp32"].synop.low_pj == 4.6 and TABLES["horowitz45_int8"].synop.low_pj == 0.23


def test_structural_upper_bound_counts():
    # in(4) -> lif1(6) -> lif2(3): 4*6 + 6*3 = 42 nonzero weights, 9 neurons, T = 5
    g = layered([4, 6, 3]).with_attrs(steps=5)
    m, _, _ = map_graph(g)
    c = count_ops(g, m, None)
    assert c.source == "upper bound" and c.steps == 5
    assert c.synops == 5 * 42 and c.dense_synops == 5 * 42
    assert c.neuron_updates == 5 * 9 and c.spikes == 5 * 9
    assert c.messages == 5 * 6 * 1  # lif1 neurons reach lif2's single core; lif2 feeds only the host


def test_measured_counts_from_calibration_data():
    g = layered([4, 6, 3])
    m, _, _ = map_graph(g)
    x = np.zeros((3, 2, 4))
    x[0, :, 0] = 100.0  # one input event per sample at step 0
    c = count_ops(g, m, x)
    assert c.source == "measured" and c.samples == 2 and c.steps == 3
    assert c.synops >= 6  # input 0 reaches 6 neurons
    assert c.neuron_updates == 3 * 9
    assert c.messages == pytest.approx(c.spikes - _spikes(c, g, x, "lif2"))


def _spikes(c, g, x, node):
    from rsnn_compiler.accounting import count_synops
    from rsnn_compiler.interpreter.fixed_interp import run_fixed

    return count_synops(g, run_fixed(g, x, record=True)).spikes_per_node.get(node, 0.0)


def test_estimate_arithmetic():
    c = OpCounts(steps=2, samples=1, source="measured", synops=1000, dense_synops=4000, neuron_updates=100,
                 spikes=10, messages=20)
    d = estimate(c, TABLES["loihi1_davies2018"], dense=False)
    assert d["low_j"] == pytest.approx((1000 * 23.6 + 100 * 52 + 20 * 1.7) * 1e-12)
    assert d["high_j"] == pytest.approx((1000 * 27.1 + 100 * 81 + 20 * 3.5) * 1e-12)
    a = estimate(c, TABLES["horowitz45_fp32"], dense=True)  # one inference: 4000 / T MACs
    assert a["low_j"] == pytest.approx(2000 * 4.6e-12)
    assert set(d["constants"]) == {"synop", "neuron_update", "message"}
    assert all(v["source"] for v in d["constants"].values())


def test_energy_report_labels_every_row():
    g = layered([4, 6, 3])
    m, _, _ = map_graph(g)
    rep = energy_report(g, m, None)
    assert [r["table"] for r in rep["estimates"]] == [*SPIKING_TABLES, *DENSE_TABLES]
    assert "no Loihi 2 per-op energy" in rep["caveat"]
