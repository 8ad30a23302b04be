"""The random fixed-point graph generator: valid, deterministic, and covering the hard cases."""

from __future__ import annotations

import numpy as np
import pytest

from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.interpreter import run_fixed
from rsnn_compiler.ir import (
    FixedConv1d, FixedDense, FixedDualIF, FixedLI, FixedLIF, FixedMultiThreshold, Quantize,
    structural_hash, verify,
)
from rsnn_compiler.ir.topology import cycles
from rsnn_compiler.testing.random_graphs import random_fixed_graph, random_input

SEEDS = range(20)


@pytest.mark.parametrize("profile", ["loihi2", "fpga"])
def test_graphs_are_valid_and_deterministic(profile):
    for seed in SEEDS:
        g = random_fixed_graph(seed, profile)
        assert verify(g) == []
        assert structural_hash(g) == structural_hash(random_fixed_graph(seed, profile))
        x = random_input(g, 12, 2, seed)
        assert np.array_equal(x, random_input(g, 12, 2, seed))
        r = run_fixed(g, x)
        assert r.out.shape[:2] == (12, 2)


def _features(profile: str, **knobs):
    seen = dict(recurrent=0, delays=0, cuba=0, graded=0, exp_pos=0, exp_neg=0, du0=0, du4095=0,
                dv0=0, dv4095=0, bias_exp=0, u_wrap=0, v_sat=0, spikes=0, kinds=set())
    for seed in SEEDS:
        g = random_fixed_graph(seed, profile, **knobs)
        seen["recurrent"] += bool(cycles(g))
        seen["delays"] += any(e.delay > 0 for e in g.edges)
        seen["graded"] += g.attrs.name.split("_p")[1].split("_")[0] != "1"
        r = run_fixed(g, random_input(g, 40, 2, seed, density=0.5))
        for name, op in g.nodes.items():
            seen["kinds"].add(type(op).__name__)
            if isinstance(op, FixedDense):
                seen["exp_pos"] += int((op.weight_exp > 0).any())
                seen["exp_neg"] += int((op.weight_exp < 0).any())
            if isinstance(op, FixedLIF):
                seen["cuba"] += int((op.du < 4095).any())
                seen["du0"] += int((op.du == 0).any())
                seen["du4095"] += int((op.du == 4095).any())
                seen["dv0"] += int((op.dv == 0).any())
                seen["dv4095"] += int((op.dv == 4095).any())
                seen["bias_exp"] += int(((op.bias_exp != 0) & (op.bias_mant != 0)).any())
                u, v = r.states[f"i/{name}"], r.states[f"v/{name}"]
                hi_u = 1 << (op.u_bits - 1)
                hi_v = (1 << (op.v_bits - 1)) - 1
                seen["u_wrap"] += int(u.size > 0 and (np.abs(np.diff(u, axis=0)) > hi_u).any())
                seen["v_sat"] += int((np.abs(v) >= hi_v).any())
            if name in r.spikes:
                seen["spikes"] += int(r.spikes[name].any())
    return seen


def test_loihi2_coverage():
    seen = _features("loihi2")
    for key in ("recurrent", "delays", "cuba", "graded", "exp_pos", "exp_neg", "du0", "du4095",
                "dv0", "dv4095", "bias_exp", "spikes"):
        assert seen[key] > 0, key
    forced = _features("loihi2", overflow=True, graded=True)
    assert forced["u_wrap"] > 0 and forced["v_sat"] > 0


def test_loihi2_u_stays_in_24_bits():
    for seed in SEEDS:
        g = random_fixed_graph(seed, "loihi2", overflow=True, graded=True, payload_bits=8)
        r = run_fixed(g, random_input(g, 40, 2, seed, density=0.8))
        for name, op in g.nodes.items():
            if isinstance(op, FixedLIF):
                u = r.states[f"i/{name}"]
                assert u.min() > -(1 << 23) and u.max() <= 1 << 23


def test_fpga_coverage_all_kinds():
    seen = _features("fpga", overflow=True)
    assert {"FixedLIF", "FixedALIF", "FixedDualIF", "FixedMultiThreshold"} <= seen["kinds"]
    assert seen["v_sat"] > 0 and seen["spikes"] > 0
    kinds = set()
    for seed in SEEDS:
        g = random_fixed_graph(seed, "fpga", readout="li", conv=True, quantize_input=True)
        kinds |= {type(op) for op in g.nodes.values()}
        x = random_input(g, 5, 1, seed)
        assert x.dtype == np.float64
        run_fixed(g, x)
    assert {FixedLI, FixedConv1d, Quantize} <= kinds
    accs = {op.acc_overflow for s in SEEDS for op in random_fixed_graph(s, "fpga").nodes.values()
            if isinstance(op, FixedDense)}
    assert accs == {Overflow.SATURATE, Overflow.WRAP}


def test_knobs_are_honoured():
    g = random_fixed_graph(1, "loihi2", layers=3, width=5, recurrent=True, delays=False, cuba=False)
    lifs = [op for op in g.nodes.values() if isinstance(op, FixedLIF)]
    assert len(lifs) == 3 and all(op.shape == (5,) for op in lifs)
    assert all((op.du == 4095).all() for op in lifs)
    assert all(e.delay == 0 for e in g.edges if not e.dst.startswith("rec"))
    assert len(cycles(g)) == 3
    g = random_fixed_graph(2, "fpga", neuron_kinds=("dual_if",), layers=2)
    assert all(isinstance(g.nodes[n], FixedDualIF) for n in ("n0", "n1"))
    g = random_fixed_graph(2, "fpga", neuron_kinds=("mtn",), graded=True, payload_bits=5)
    assert isinstance(g.nodes["n0"], FixedMultiThreshold)
    x = random_input(g, 50, 3, 0, density=1.0)
    assert x.min() >= -16 and x.max() <= 15 and x.min() < 0
    g = random_fixed_graph(3, "loihi2", conv=True)
    assert verify(g) == [] and isinstance(g.nodes["conv"], FixedConv1d)


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["loihi2", "fpga"])
def test_many_seeds_valid(profile):
    for seed in range(500):
        knobs = dict(conv=seed % 4 == 0, quantize_input=seed % 3 == 0, overflow=seed % 2 == 0)
        g = random_fixed_graph(seed, profile, **knobs)
        assert verify(g) == []
        run_fixed(g, random_input(g, 20, 2, seed))


def _py_reference(g, x):
    """Independent per-element Python-int model of loihi2 Dense + LIF graphs (docs §3.2, §3.4)."""
    from rsnn_compiler.ir.topology import evaluation_order

    def trunc(p):
        return (abs(p) >> 12) * (1 if p >= 0 else -1)

    order = evaluation_order(g)
    steps, batch = x.shape[:2]
    vals = {n: [] for n in g.nodes}
    u = {n: [[0] * g.nodes[n].shape[0] for _ in range(batch)] for n, op in g.nodes.items() if isinstance(op, FixedLIF)}
    v = {n: [[0] * g.nodes[n].shape[0] for _ in range(batch)] for n in u}
    for t in range(steps):
        for name in order:
            op = g.nodes[name]
            if name == g.input_name:
                vals[name].append([[int(a) for a in row] for row in x[t]])
                continue
            size = op.in_shape[0]
            xin = [[0] * size for _ in range(batch)]
            for e in g.in_edges(name):
                if t - e.delay >= 0:
                    src = vals[e.src][t - e.delay]
                    xin = [[a + b for a, b in zip(r1, r2)] for r1, r2 in zip(xin, src)]
            if isinstance(op, FixedDense):
                out = []
                for row in xin:
                    o = []
                    for i in range(op.weight.shape[0]):
                        acc = sum(int(op.weight[i, j]) * row[j] for j in range(size))
                        e = int(op.weight_exp[i])
                        acc = acc << e if e >= 0 else acc >> -e
                        acc = ((acc + (1 << 31)) % (1 << 32)) - (1 << 31)
                        o.append(acc)
                    out.append(o)
                vals[name].append(out)
            elif isinstance(op, FixedLIF):
                out = []
                for b in range(batch):
                    s_row = []
                    for i in range(op.shape[0]):
                        uu = trunc(u[name][b][i] * (4096 - int(op.du[i]) - 1)) + (xin[b][i] << 6)
                        uu = uu - (1 << 24) if uu > 1 << 23 else (uu + (1 << 24) if uu <= -(1 << 23) else uu)
                        be = int(op.bias_exp[i])
                        bias = int(op.bias_mant[i]) << be
                        vv = trunc(v[name][b][i] * (4096 - int(op.dv[i]))) + uu + bias
                        vv = max(-(1 << 23) + 1, min((1 << 23) - 1, vv))
                        s = int(vv > int(op.vth[i]) << 6)
                        u[name][b][i], v[name][b][i] = uu, 0 if s else vv
                        s_row.append(s)
                    out.append(s_row)
                vals[name].append(out)
            else:  # Output
                vals[name].append(xin)
    return vals


@pytest.mark.parametrize("seed", range(6))
def test_loihi2_random_graphs_match_python_int_reference(seed):
    g = random_fixed_graph(seed, "loihi2", overflow=seed % 2 == 0, layers=2)
    x = random_input(g, 15, 2, seed, density=0.6)
    r = run_fixed(g, x)
    ref = _py_reference(g, x)
    for name, seq in ref.items():
        assert np.array_equal(r.values[name], np.array(seq, dtype=np.int64)), name
