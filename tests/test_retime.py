"""Retiming (docs/design.md §4): stages, per-connection Lava delays, unmappable loops named."""
from __future__ import annotations

import numpy as np
import pytest

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.ir import Delay, Domain, FixedDense, FixedLIF, GraphBuilder, Identity, Input, Output, Quantize
from rsnn_compiler.ir.fixed_ops import make_neuron
from rsnn_compiler.backends.lava.retime import Retime, RetimeSpec, connection_paths, plan_retiming
from rsnn_compiler.passes_api import PassContext, Prop
from rsnn_compiler.testing.random_graphs import random_fixed_graph


def dense(n_out: int, n_in: int) -> FixedDense:
    return FixedDense(weight=np.full((n_out, n_in), 2), weight_exp=np.zeros(n_out), weight_bits=8,
                      acc_bits=32, acc_overflow=Overflow.WRAP)


def lif(n: int) -> FixedLIF:
    return make_neuron(FixedLIF, (n,), du=4095, dv=0, vth=10)


def chain(edges: list[tuple[str, str, int]], neurons: list[str], n: int = 2):
    """Graph with Input 'in', neurons ``neurons`` and one FixedDense per (src, dst, delay):
    src -(delay)-> syn -> dst; the last neuron feeds the Output."""
    b = GraphBuilder("t")
    b.add("in", Input(shape=(n,)))
    for name in neurons:
        b.add(name, lif(n))
    for src, dst, d in edges:
        syn = f"{src}_{dst}"
        b.add(syn, dense(n, n))
        b.connect(src, syn, d)
        b.connect(syn, dst)
    b.add("out", Output(shape=(n,)))
    b.connect(neurons[-1], "out")
    return b.build().with_attrs(domain=Domain.FIXED, profile="loihi2")


def delays_of(plan) -> dict[tuple[str, str], int]:
    return {(rp.path.src, rp.path.dst): rp.lava_delay for rp in plan.paths}


def test_feed_forward_chain_gets_depth_stages():
    g = chain([("in", "a", 0), ("a", "b", 0), ("b", "c", 0), ("in", "c", 0)], ["a", "b", "c"])
    plan = plan_retiming(g)
    assert plan.ok and plan.stages == {"in": 0, "a": 1, "b": 2, "c": 3}
    assert delays_of(plan) == {("in", "a"): 1, ("a", "b"): 1, ("b", "c"): 1, ("in", "c"): 3}


def test_delays_reduce_stage_and_recurrence_maps():
    g = chain([("in", "a", 0), ("a", "a", 1), ("a", "b", 2), ("b", "b", 5)], ["a", "b"])
    plan = plan_retiming(g)
    assert plan.stages == {"in": 0, "a": 1, "b": 0}  # b may run ahead: its input is 2 steps late
    assert delays_of(plan) == {("in", "a"): 1, ("a", "a"): 1, ("a", "b"): 1, ("b", "b"): 5}


def test_delayed_edge_forces_a_later_stage():
    """a -> b (0) -> c (1): depth along delay-0 edges would put c at 0, Lava delay 0."""
    g = chain([("in", "a", 0), ("a", "b", 0), ("b", "c", 1)], ["a", "b", "c"])
    plan = plan_retiming(g)
    assert plan.stages["c"] == 2 and delays_of(plan)[("b", "c")] == 1


def test_two_layer_loop_with_one_step_is_named():
    g = chain([("in", "a", 0), ("a", "b", 0), ("b", "a", 1)], ["a", "b"])
    plan = plan_retiming(g)
    assert not plan.ok
    [p] = plan.problems
    assert "a -> b -> a" in p.where and "2 synapse layer" in p.problem and "total delay is 1 < 2" in p.problem
    assert "a_b" in p.problem and "b_a" in p.problem
    with pytest.raises(UserInputError, match="loop"):
        Retime().run(g, PassContext())
    ok = chain([("in", "a", 0), ("a", "b", 0), ("b", "a", 2)], ["a", "b"])
    assert plan_retiming(ok).ok and delays_of(plan_retiming(ok))[("b", "a")] == 1


def test_only_the_bad_loop_is_reported():
    g = chain([("in", "a", 0), ("a", "a", 1), ("a", "b", 0), ("b", "c", 0), ("c", "b", 1)],
              ["a", "b", "c"])
    plan = plan_retiming(g)
    assert [p.where for p in plan.problems] == ["loop b -> c -> b"]


def test_too_long_path_is_reported():
    def graph(d):
        return chain([("in", "a", 0), ("a", "b", 0), ("b", "c", 0), ("c", "d", 0), ("a", "d", d)],
                     ["a", "b", "c", "d"])
    plan = plan_retiming(graph(61))  # a at stage 1, d at 4: 61 + 3 = 64
    assert plan.ok and delays_of(plan)[("a", "d")] == 64
    plan = plan_retiming(graph(62))
    assert not plan.ok
    [p] = plan.problems
    assert p.where == "a -> d via a_d" and "Lava delay of 65" in p.problem and "more than 64" in p.problem
    assert plan_retiming(graph(10), RetimeSpec(max_extra_delay=8)).problems[0].problem.endswith("more than 9")


def test_relays_add_delay_and_identity_paths_count_as_layers():
    b = GraphBuilder("relay")
    b.add("in", Input(shape=(2,)))
    b.add("q", Quantize(shape=(2,), shift=0, bits=4, signed=True))
    b.add("a", lif(2))
    b.add("id", Identity(shape=(2,)))
    b.add("dl", Delay(shape=(2,), steps=3))
    b.add("fc", dense(2, 2))
    b.add("out", Output(shape=(2,)))
    b.connect("in", "q")
    b.connect("q", "id")
    b.connect("id", "dl", 1)
    b.connect("dl", "fc")
    b.connect("fc", "a", 2)
    b.connect("q", "a")  # straight into the neuron: an identity synapse
    b.connect("a", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="loihi2")
    paths, problems = connection_paths(g)
    assert not problems
    assert sorted((p.src, p.synapse or "", p.delay) for p in paths) == [("q", "", 0), ("q", "fc", 6)]
    plan = plan_retiming(g)
    assert plan.source == "q" and plan.stages == {"q": 0, "a": 1}
    assert sorted(rp.lava_delay for rp in plan.paths) == [1, 7]


def test_two_synapses_in_a_row_are_reported():
    b = GraphBuilder("two")
    b.add("in", Input(shape=(2,)))
    b.add("f1", dense(2, 2))
    b.add("f2", dense(2, 2))
    b.add("a", lif(2))
    b.add("out", Output(shape=(2,)))
    b.chain("in", "f1", "f2", "a", "out")
    plan = plan_retiming(b.build().with_attrs(domain=Domain.FIXED, profile="loihi2"))
    assert not plan.ok and "two synapse ops" in plan.problems[0].problem


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_satisfy_the_delay_rule(seed):
    g = random_fixed_graph(seed, "loihi2", recurrent=seed % 3 != 0, delays=seed % 2 == 0,
                           max_delay=int(seed % 5) * 15 + 1)
    plan = plan_retiming(g)
    assert plan.ok, plan.problems
    for rp in plan.paths:
        p = rp.path
        assert 1 <= rp.lava_delay <= 64
        assert rp.lava_delay == p.delay + plan.stages[p.dst] - plan.stages[p.src]
    # minimal: every non-source population with an incoming path is held by a tight constraint
    for pop, s in plan.stages.items():
        if s > 0:
            assert any(rp.path.dst == pop and rp.lava_delay == 1 for rp in plan.paths) or \
                any(rp.path.src == pop and rp.lava_delay == 64 for rp in plan.paths)


def test_pass_reports_stages():
    g = random_fixed_graph(5, "loihi2", recurrent=True, delays=False)
    g = g.with_attrs(properties=frozenset({Prop.QUANTIZED}))
    out, report = Retime().run(g, PassContext())
    assert out is g and report.stages["n0"] == 1 and report.max_stage >= 1
    assert report.to_json()["metrics"]["connections"] == report.connections
    assert all(1 <= d <= 64 for d in report.lava_delays.values())
