"""GPU runtime (run here on the CPU) against the reference interpreters, spike for spike and state
for state at every step; the exact-sum strategies CUDA uses; the gpu target/executor; and the
straight-through fine-tuning module."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rsnn_compiler.backends.gpu.backend import GpuBackend, unsupported
from rsnn_compiler.backends.gpu.exact import ExactLinear, LinearPlan, choose_plan
from rsnn_compiler.backends.gpu.qat import FixedPointModule, requantize
from rsnn_compiler.backends.gpu.runtime import GraphRuntime, resolve_device
from rsnn_compiler.cli.main import main
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.examples import example_inputs
from rsnn_compiler.fixed import arith
from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.interpreter import run_fixed, run_float
from rsnn_compiler.ir import (
    Delay, Domain, FixedConv2d, FixedDense, FixedLI, FixedLIF, FixedMultiThreshold, Flatten,
    GraphBuilder, Identity, Input, Output, Pool, PoolMode, Quantize, ResetMode, verify,
)
from rsnn_compiler.ir.fixed_ops import FixedALIF, make_neuron
from rsnn_compiler.testing.random_float_graphs import random_float_graph, random_float_input
from rsnn_compiler.testing.random_graphs import random_fixed_graph, random_input

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example" / "recurrent.rsnn"
CUDA_POLICIES = ("float", "float32", "float64", "limbs", "int64")  # "auto": float32/float64 on the CPU


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is much faster (and steadier on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def assert_same(ref, got, tag=""):
    """Equal out, spikes, states and node values: same keys, dtypes and every element."""
    assert ref.out.dtype == got.out.dtype, tag
    assert np.array_equal(ref.out, got.out), tag
    for field in ("spikes", "states", "values"):
        a, b = getattr(ref, field), getattr(got, field)
        assert a.keys() == b.keys(), (tag, field, sorted(a), sorted(b))
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, (tag, field, k)
            if not np.array_equal(a[k], b[k]):
                idx = tuple(np.argwhere(a[k] != b[k])[0])
                raise AssertionError(f"{tag} {field}[{k}] differs first at (t, b, ...)={idx}:"
                                     f" {a[k][idx]} != {b[k][idx]}")


# --------------------------------------------------------------------------------------
# Fixed-point graphs: differential fuzzing against run_fixed
# --------------------------------------------------------------------------------------
def _fixed_case(seed: int, profile: str):
    knobs = dict(conv=seed % 5 == 0, quantize_input=seed % 3 == 0)
    if seed % 4 == 1:
        knobs["overflow"] = True
    if profile == "fpga" and seed % 2:
        knobs["readout"] = "li"
    g = random_fixed_graph(seed, profile, **knobs)
    return g, random_input(g, steps=8, batch=2, seed=seed)


CHUNK = 25


@pytest.mark.parametrize("profile", ["loihi2", "fpga"])
@pytest.mark.parametrize("start", range(0, 100, CHUNK))
def test_fixed_random_graphs_match_run_fixed(profile, start):
    spiking = 0
    for seed in range(start, start + CHUNK):
        g, x = _fixed_case(seed, profile)
        ref = run_fixed(g, x)
        assert_same(ref, GraphRuntime(g).run(x), (profile, seed))
        spiking += any(np.count_nonzero(v) for v in ref.spikes.values())
    assert spiking >= CHUNK // 2  # the comparison is not vacuous


@pytest.mark.parametrize("profile", ["loihi2", "fpga"])
def test_fused_neuron_kernels_match_run_fixed(profile, monkeypatch):
    """RSNNC_RUNTIME_FUSED=1: every population of the random graphs steps through its compiled C
    kernel (fused_neurons.py) where the C check proves the graph; values, spikes and every state at
    every step equal run_fixed. Not vacuous: most graphs take the kernels and spike."""
    from rsnn_compiler.backends.gpu.fused_neurons import FusedPopulation

    monkeypatch.setenv("RSNNC_RUNTIME_FUSED", "1")
    fused = spiking = 0
    for seed in range(16):
        g, x = _fixed_case(seed, profile)
        rt = GraphRuntime(g)
        ref = run_fixed(g, x)
        assert_same(ref, rt.run(x), (profile, seed))
        pops = [s.kernel for s in rt.slots if isinstance(s.kernel, FusedPopulation)]
        fused += bool(pops) and all(p.active for p in pops)
        spiking += any(np.count_nonzero(v) for v in ref.spikes.values())
    assert fused >= 12 and spiking >= 8, (fused, spiking)


@pytest.mark.parametrize("profile,knobs", [
    ("loihi2", dict(recurrent=True)), ("loihi2", dict(quantize_input=True, graded=True)),
    ("fpga", dict(delays=True, recurrent=True)), ("fpga", dict(readout="li", graded=True, conv=True)),
])
def test_float32_carriers_match_run_fixed(profile, knobs, monkeypatch):
    """With the fused kernels on, exact integers travel as float32 between float32-plan products
    and the populations (``plan_carriers``): the same values as run_fixed, int64 again in the
    result, recorded or not, including the first steps of delayed edges (torch kernels, which
    take the float32 terms back to int64). Not vacuous: most graphs carry some values."""
    from rsnn_compiler.backends.gpu.fused_neurons import FusedPopulation

    monkeypatch.setenv("RSNNC_RUNTIME_FUSED", "1")
    carrying = 0
    for seed in range(8):
        g = random_fixed_graph(seed, profile, **knobs)
        x = random_input(g, steps=10, batch=3, seed=seed, density=0.5)
        rt = GraphRuntime(g)
        ref = run_fixed(g, x)
        got = rt.run(x, record=True)
        assert_same(ref, got, (profile, seed))
        carried = rt.plan_carriers()
        assert np.array_equal(rt.run(x, record=False).out, ref.out), (profile, seed)
        pops = [s for s in rt.slots if isinstance(s.kernel, FusedPopulation) and s.kernel.active]
        carrying += bool(carried & {s.name for s in pops})
    assert carrying >= 5, carrying


def test_fused_neuron_kernels_auto_mode(monkeypatch):
    """``auto`` (the default) fuses a run of at least AUTO_MIN_NEURON_STEPS neuron-steps and not a
    small one before that, every run after; ``0`` never; integer inputs beyond int32 (the C input contract) keep torch's
    kernels; the results are the same every way."""
    from rsnn_compiler.backends.gpu import fused_neurons

    monkeypatch.delenv("RSNNC_RUNTIME_FUSED", raising=False)
    monkeypatch.setattr(fused_neurons, "AUTO_MIN_NEURON_STEPS", 2000)
    g = random_fixed_graph(3, "fpga", width=20)
    n = sum(int(np.prod(s.op.shape)) for s in GraphRuntime(g).slots if isinstance(s.kernel, fused_neurons.FusedPopulation))
    small = random_input(g, steps=2, batch=2, seed=1)
    large = random_input(g, steps=40, batch=-(-2000 // (40 * n)) + 1, seed=2)
    rt = GraphRuntime(g)
    assert_same(run_fixed(g, small), rt.run(small), "small")
    assert not fused_neurons.attach(rt, 2, 2, 1)
    assert_same(run_fixed(g, large), rt.run(large), "large")
    assert fused_neurons.attach(rt, *large.shape[:2], 1)
    assert fused_neurons.attach(rt, 2, 2, 1)  # compiled once: small runs use the kernels too
    assert_same(run_fixed(g, small), rt.run(small), "small after large")
    assert not fused_neurons.attach(rt, *large.shape[:2], 1 << 31)  # beyond the C input contract
    monkeypatch.setenv("RSNNC_RUNTIME_FUSED", "0")
    assert not fused_neurons.attach(rt, *large.shape[:2], 1)
    assert_same(run_fixed(g, large), rt.run(large), "off")


@pytest.mark.parametrize("chunk_steps", [1, 3, 100])
def test_fixed_input_layers_batched_over_time_are_exact(chunk_steps, monkeypatch):
    """The fixed runtime runs the input-fed stateless prefix (quantizer, first dense/conv, pool)
    for a chunk of steps per call; any chunk length (1, one not dividing T = 8 or 10, longer than
    T) gives run_fixed's values, and the prefix is not empty (the test is not vacuous)."""
    from rsnn_compiler.interpreter import schedule

    monkeypatch.setattr(schedule, "_chunk_steps", lambda *_a, **_k: chunk_steps)
    cases = [_fixed_case(seed, profile) for seed in range(12) for profile in ("loihi2", "fpga")]
    cases += [_extra_fixed_graph(seed) for seed in range(4)]
    batched = 0
    for k, (g, x) in enumerate(cases):
        rt = GraphRuntime(g)
        assert rt.whole_time
        batched += bool(schedule.time_batched_prefix(rt.slots))
        assert_same(run_fixed(g, x), rt.run(x), (chunk_steps, k))
        assert np.array_equal(run_fixed(g, x, record=False).out, GraphRuntime(g, record=False).run(x).out)
    assert batched >= len(cases) // 2, batched


def test_event_driven_products_are_exact(monkeypatch):
    """Dense layers given CSR copies of their inputs (forced here for every dense layer and any
    density) give run_fixed's values on the random fixed graphs, for every CPU plan dtype."""
    from rsnn_compiler.backends.gpu import exact

    monkeypatch.setattr(exact, "EVENT_MIN_FEATURES", 0)
    monkeypatch.setattr(exact, "EVENT_MAX_DENSITY", 1.0)
    used = []
    real = exact.ExactLinear._event_product
    monkeypatch.setattr(exact.ExactLinear, "_event_product",
                        lambda self, x, dtype: used.append(dtype) or real(self, x, dtype))
    for policy in ("auto", "float32", "float64"):
        for seed in range(16):
            g, x = _fixed_case(seed, ("loihi2", "fpga")[seed % 2])
            assert_same(run_fixed(g, x), GraphRuntime(g, int_matmul=policy).run(x), (policy, seed))
    assert {torch.float32, torch.float64} <= set(used), set(used)


def test_event_driven_products_on_a_wide_sparse_layer():
    """A 300 -> 400 -> 300 spiking network at ~2 % input activity takes the CSR path by default
    (wide enough, sparse enough) and stays exact; a dense input of the same layer does not."""
    from rsnn_compiler.backends.gpu import exact

    r = np.random.default_rng(0)
    b = GraphBuilder("wide")
    b.add("input", Input(shape=(300,)))
    b.add("fc1", FixedDense(weight=r.integers(-60, 61, (400, 300)), weight_exp=np.full(400, 4), weight_bits=8))
    b.add("lif1", make_neuron(FixedLIF, (400,), vth=300, dv=200))
    b.add("fc2", FixedDense(weight=r.integers(-60, 61, (300, 400)), weight_exp=np.full(300, 4), weight_bits=8))
    b.add("lif2", make_neuron(FixedLIF, (300,), vth=300, dv=200))
    b.add("output", Output(shape=(300,)))
    b.chain("input", "fc1", "lif1", "fc2", "lif2", "output")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="fpga")
    assert verify(g) == [], verify(g)
    x = (r.random((12, 4, 300)) < 0.02).astype(np.int64)
    calls = []
    real = exact.ExactLinear._event_product
    try:
        exact.ExactLinear._event_product = lambda self, xx, dtype: calls.append(xx.shape) or real(self, xx, dtype)
        rt = GraphRuntime(g)
        assert_same(run_fixed(g, x), rt.run(x))
        assert calls, "the sparse input did not take the event path"
        calls.clear()
        dense = np.ones_like(x)
        assert_same(run_fixed(g, dense), rt.run(dense))
        assert all(shape[-1] != 300 for shape in calls), calls  # fc1's input was dense
    finally:
        exact.ExactLinear._event_product = real


def test_time_batched_prefix_stops_at_neurons_and_delays():
    """Only stateless slots fed (delay 0) by the input or by other prefix slots are batched."""
    from rsnn_compiler.interpreter import schedule

    g, _ = _extra_fixed_graph(0)
    rt = GraphRuntime(g)
    prefix = set(schedule.time_batched_prefix(rt.slots))
    free = {s.index for s in rt.slots if s.kind is schedule.INPUT} | prefix
    for s in rt.slots:
        fed_now = bool(s.edges) and all(d == 0 and src in free for src, d in s.edges)
        assert (s.index in prefix) == (s.kind is schedule.STATELESS and fed_now), s.name


def _uniform_neurons(g, du=None):
    """``g`` with every per-neuron array of its neurons set to its first element (and ``du``
    where given): the runtime binds such parameters as Python ints and takes its shortcuts."""
    import dataclasses

    from rsnn_compiler.ir.fixed_ops import FixedNeuron
    from rsnn_compiler.ir.graph import Graph

    def flat(op):
        ch = {f.name: np.full_like(v, v.flat[0]) for f in dataclasses.fields(op)
              if isinstance(v := getattr(op, f.name), np.ndarray) and v.size > 1 and v.dtype.kind in "iu"}
        if du is not None and "du" in ch:
            ch["du"] = np.full_like(ch["du"], du)
        return dataclasses.replace(op, **ch)

    return Graph({n: flat(op) if isinstance(op, FixedNeuron) else op for n, op in g.nodes.items()},
                 g.edges, g.attrs)


@pytest.mark.parametrize("profile", ["loihi2", "fpga"])
def test_fixed_shortcuts_uniform_parameters_and_proven_accumulators(profile):
    """Uniform parameters (scalar binding, decay by 4096 -> 0) and synapses whose accumulator
    rule is proven the identity (one shift) give run_fixed's values, and the shortcuts are taken."""
    scalar = in_range = scaled = 0
    for seed in range(30):
        g, x = _fixed_case(seed, profile)
        for du in (None, arith.DECAY_ONE - 1):
            gu = _uniform_neurons(g, du)
            rt = GraphRuntime(gu)
            assert_same(run_fixed(gu, x), rt.run(x), (profile, seed, du))
            for s in rt.slots:
                k = getattr(s.kernel, "pop", s.kernel)  # a CPU population's torch kernels (fused_neurons)
                scalar += sum(isinstance(v, int) for v in vars(getattr(k, "p", None) or {}).values()) \
                    if hasattr(k, "p") else 0
                in_range += bool(getattr(k, "in_range", False) and k.exp is not None and k.bias is None)
                scaled += getattr(k, "scaled", None) is not None  # weights pre-scaled by 2^e > 0
    assert scalar and in_range and scaled  # the shortcuts ran (the comparison covers them)


@pytest.mark.parametrize("policy", CUDA_POLICIES)
def test_fixed_cuda_sum_strategies_are_exact_on_random_graphs(policy):
    """The float32 / float64 / limb strategies CUDA uses (and int64 kernels), on the CPU."""
    for seed in range(8):
        for profile in ("loihi2", "fpga"):
            g, x = _fixed_case(1000 + seed, profile)
            assert_same(run_fixed(g, x), GraphRuntime(g, int_matmul=policy).run(x), (policy, profile, seed))


def test_fuzz_covers_the_promised_features():
    seen = {k: 0 for k in ("recurrent", "delay", "cuba", "graded", "li", "conv", "quant",
                           "alif", "dual_if", "mtn", "wrap", "saturate")}
    for profile in ("loihi2", "fpga"):
        for seed in range(100):
            g, _x = _fixed_case(seed, profile)
            ops = list(g.nodes.values())
            seen["recurrent"] += any(n.startswith("rec") for n in g.nodes)
            seen["delay"] += any(e.delay > 0 for e in g.edges if not e.src.startswith("n"))
            seen["cuba"] += any(isinstance(o, FixedLIF) and (o.du < 4095).any() for o in ops)
            seen["graded"] += "_p1_" not in g.attrs.name
            seen["li"] += any(isinstance(o, FixedLI) for o in ops)
            seen["conv"] += "conv" in g.nodes
            seen["quant"] += "q" in g.nodes
            seen["alif"] += any(isinstance(o, FixedALIF) for o in ops)
            seen["dual_if"] += any(type(o).__name__ == "FixedDualIF" for o in ops)
            seen["mtn"] += any(isinstance(o, FixedMultiThreshold) for o in ops)
            seen["wrap"] += any(getattr(o, "u_overflow", None) in (Overflow.WRAP, Overflow.WRAP_ONCE) for o in ops)
            seen["saturate"] += any(getattr(o, "v_overflow", None) is Overflow.SATURATE for o in ops)
    assert all(v > 0 for v in seen.values()), seen


def _extra_fixed_graph(seed: int):
    """Ops the generator leaves out: FixedConv2d (groups, stride), sum/max Pool with padding,
    Delay nodes, Identity, a dense fed by two edges and an Output summing two edges."""
    r = np.random.default_rng(seed)
    st = dict(input_shift=int(r.integers(0, 3)), v_bits=int(r.integers(10, 20)),
              v_overflow=Overflow(r.choice(["wrap", "saturate", "saturate_sym"])))
    cur = dict(u_bits=st["v_bits"], u_overflow=st["v_overflow"], du_offset=1)
    groups = int(r.choice([1, 2]))
    conv = FixedConv2d(weight=r.integers(-100, 100, (4, 2 // groups, 3, 3)),
                       weight_exp=r.integers(-4, 1, 4), input_shape=(2, 6, 6), padding=1,
                       stride=int(r.integers(1, 3)), groups=groups, weight_bits=8,
                       acc_bits=int(r.integers(12, 33)), acc_overflow=Overflow(r.choice(["wrap", "saturate"])))
    pool = Pool(mode=PoolMode(r.choice(["sum", "max"])), kernel=2, stride=int(r.integers(1, 3)),
                padding=int(r.integers(0, 2)), input_shape=conv.out_shape)
    flat_n = int(np.prod(pool.out_shape))
    b = GraphBuilder("extra")
    b.add("in", Input(shape=(2, 6, 6)))
    b.add("conv", conv)
    b.add("pool", pool)
    b.add("flat", Flatten(input_shape=pool.out_shape))
    b.add("fc", FixedDense(weight=r.integers(-60, 60, (6, flat_n)), weight_exp=np.full(6, -3),
                           bias=r.integers(-20, 20, 6), weight_bits=8, acc_bits=32))
    reset = ResetMode(r.choice([m.value for m in ResetMode]))
    b.add("lif", make_neuron(FixedLIF, (6,), du=r.integers(0, 4096, 6), dv=r.integers(0, 4096, 6),
                             vth=int(r.integers(20, 400)), vth_shift=2, reset=reset, bias_mant=3,
                             bias_exp=-1, **st, **cur))
    b.add("dly", Delay(shape=(6,), steps=int(r.integers(1, 4))))
    b.add("fc2", FixedDense(weight=r.integers(-100, 100, (3, 6)), weight_exp=np.zeros(3), weight_bits=8))
    b.add("mtn", make_neuron(FixedMultiThreshold, (3,), vth=int(r.integers(5, 60)), vth_shift=1,
                             levels=3, reset=ResetMode(r.choice(["subtract", "zero"])), **st))
    b.add("id", Identity(shape=(3,)))
    b.add("out", Output(shape=(3,)))
    b.chain("in", "conv", "pool", "flat", "fc", "lif", "dly", "fc2", "mtn", "id", "out")
    b.connect("lif", "fc2", 1)  # a second edge into a dense: summed input
    b.connect("id", "out", 2)  # the Output sums now and two steps ago
    g = b.build().with_attrs(domain=Domain.FIXED, profile="fpga")
    assert verify(g) == [], verify(g)
    x = r.integers(-8, 9, (10, 3, 2, 6, 6))
    return g, x


@pytest.mark.parametrize("policy", ("auto",) + CUDA_POLICIES)
def test_fixed_conv2d_pool_delay_graphs(policy):
    for seed in range(8 if policy == "auto" else 4):
        g, x = _extra_fixed_graph(seed)
        assert_same(run_fixed(g, x), GraphRuntime(g, int_matmul=policy).run(x), (policy, seed))


def test_record_false_keeps_only_the_output():
    g, x = _fixed_case(7, "fpga")
    rt = GraphRuntime(g, record=False)
    r = rt.run(x)
    assert np.array_equal(r.out, run_fixed(g, x).out) and not r.spikes and not r.states
    assert_same(run_fixed(g, x), rt.run(x, record=True))


def test_tensor_inputs_match_array_inputs():
    for seed, profile in ((0, "fpga"), (3, "loihi2"), (6, "fpga")):
        g, x = _fixed_case(seed, profile)
        rt = GraphRuntime(g)
        assert_same(rt.run(x), rt.run(torch.from_numpy(x)), seed)
    g = random_float_graph(5)
    x = random_float_input(g, 6, 2, 5).astype(np.float64)
    rt = GraphRuntime(g)
    assert_same(rt.run(x), rt.run(torch.from_numpy(x)))
    with pytest.raises(UserInputError, match="shape"):
        rt.run(torch.zeros(3, 2, 99))


def test_runtime_is_reusable_across_batches_and_lengths():
    g, _ = _fixed_case(3, "loihi2")
    rt = GraphRuntime(g)
    for steps, batch in ((5, 1), (9, 4), (1, 3)):
        x = random_input(g, steps, batch, seed=steps)
        assert_same(run_fixed(g, x), rt.run(x), (steps, batch))


# --------------------------------------------------------------------------------------
# Float graphs: bit-identical to run_float on the CPU
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("start", range(0, 120, 30))
def test_float_random_graphs_match_run_float(start):
    spiking = 0
    for seed in range(start, start + 30):
        g = random_float_graph(seed)
        x = random_float_input(g, steps=8, batch=2, seed=seed)
        ref = run_float(g, x)
        assert_same(ref, GraphRuntime(g).run(x), seed)
        spiking += any(np.count_nonzero(v) for v in ref.spikes.values())
    assert spiking >= 15


def test_float_input_layers_over_time_need_strict_blas(monkeypatch):
    """With oneMKL strict on an AVX2-or-newer branch (this process: rsnn_compiler requested it at
    import), a float graph's input-fed products and element-wise ops run for many steps per call
    and still equal run_float's one call per step bit for bit, wide enough for MKL's blocked
    kernels (48 x 96 rows); convolutions stay per step; without that mode every layer steps
    (forced on under COMPATIBLE,STRICT, 3 tests of this file differ from run_float)."""
    from rsnn_compiler.backends.gpu import runtime as rt_mod
    from rsnn_compiler.float_repro import row_independent
    from rsnn_compiler.interpreter import schedule

    if row_independent() is not True:
        pytest.skip("oneMKL is not in a strict AVX2-or-newer mode in this process (or torch has no oneMKL)")
    prefixes = []
    real = schedule.time_batched_prefix
    monkeypatch.setattr(schedule, "time_batched_prefix", lambda slots, allow=None: prefixes.append(
        [slots[i].op for i in real(slots, allow)]) or real(slots, allow))
    for seed in range(12):
        g = random_float_graph(seed, n_in=64) if seed % 2 else random_float_graph(seed)
        x = random_float_input(g, steps=48, batch=96 if seed % 2 else 3, seed=seed)
        assert_same(run_float(g, x), GraphRuntime(g).run(x), seed)
    ops = [op for p in prefixes for op in p]
    assert any(isinstance(op, rt_mod.Affine) for op in ops), ops
    assert all(isinstance(op, rt_mod.FLOAT_ROW_INDEPENDENT) for op in ops)
    prefixes.clear()
    monkeypatch.setattr(rt_mod, "row_independent", lambda: False)
    g = random_float_graph(1, n_in=64)
    GraphRuntime(g).run(random_float_input(g, steps=4, batch=2, seed=0))
    assert prefixes == []  # not even asked: whole_time is off


def test_float_example_model_matches_interpreter():
    from rsnn_compiler.ir import load_graph

    g = load_graph(EXAMPLE)
    x = example_inputs(steps=25, batch=8)
    assert_same(run_float(g, x), GraphRuntime(g).run(x))


def test_fused_float_neuron_kernels_match_run_float(monkeypatch):
    """RSNNC_RUNTIME_FUSED=1 on float graphs: each population's float32 C loop (c_float.py, one
    IEEE operation per product and sum, no contraction) gives run_float's values, spikes and
    states bit for bit on random graphs (delayed edges: the first steps have fewer input terms
    and run torch's kernels on the same states) and on the example model; the kernels ran."""
    from rsnn_compiler.backends.gpu.fused_neurons import FusedPopulation
    from rsnn_compiler.ir import load_graph

    monkeypatch.setenv("RSNNC_RUNTIME_FUSED", "1")
    fused = spiking = 0
    for seed in range(24):
        g = random_float_graph(seed)
        x = random_float_input(g, steps=8, batch=3, seed=seed)
        ref = run_float(g, x)
        rt = GraphRuntime(g)
        assert_same(ref, rt.run(x), seed)
        pops = [s.kernel for s in rt.slots if isinstance(s.kernel, FusedPopulation)]
        fused += bool(pops) and all(p.active for p in pops)
        spiking += any(np.count_nonzero(v) for v in ref.spikes.values())
    assert fused >= 20 and spiking >= 12, (fused, spiking)
    g = load_graph(EXAMPLE)
    x = example_inputs(steps=25, batch=8)
    rt = GraphRuntime(g)
    assert_same(run_float(g, x), rt.run(x))
    assert rt._fused and all(s.kernel.active for s in rt.slots if isinstance(s.kernel, FusedPopulation))


def test_fused_kernel_text_does_not_grow_with_the_population():
    """Per-neuron parameters reach the fused kernels by pointer: the C text of a 10-neuron and a
    20,000-neuron population with per-neuron thresholds and decays differs only in the size, so
    compiles stay small and graphs that differ only in values share one library."""
    from rsnn_compiler.backends.gpu.fused_neurons import population_source

    texts = {}
    for n in (10, 20_000):
        r = np.random.default_rng(n)
        op = make_neuron(FixedLIF, (n,), vth=r.integers(50, 100, n), dv=r.integers(0, 4096, n))
        text, kernel = population_source(op, 3, "lif")
        texts[n] = text.replace(f"{n}L", "N")
        assert len(kernel.params) >= 2 and all(t.shape == (n,) for t in kernel.params)
    assert texts[10] == texts[20_000]


def test_fused_kernels_split_samples_over_threads(monkeypatch):
    """Above PARALLEL_MIN neuron-samples a step's samples are split over torch's OpenMP threads
    (the library shares torch's libgomp); with the cut lowered to 64 and two threads, fixed and
    float runs still equal the interpreters value for value."""
    from rsnn_compiler.backends.gpu import fused_neurons

    monkeypatch.setenv("RSNNC_RUNTIME_FUSED", "1")
    monkeypatch.setattr(fused_neurons, "PARALLEL_MIN", 64)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for seed in range(3):
            g = random_fixed_graph(seed, ("fpga", "loihi2")[seed % 2], recurrent=True)
            x = random_input(g, steps=6, batch=40, seed=seed)
            rt = GraphRuntime(g, threads=2)
            assert_same(run_fixed(g, x), rt.run(x), ("fixed", seed))
            assert rt._fused
            gf = random_float_graph(seed)
            xf = random_float_input(gf, steps=6, batch=40, seed=seed)
            rt = GraphRuntime(gf, threads=2)
            assert_same(run_float(gf, xf), rt.run(xf), ("float", seed))
            assert rt._fused
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("comparator", ["gt", "ge"])
def test_fused_float_kernels_at_the_threshold(comparator, monkeypatch):
    """v exactly at theta (0.5 + 0.5 = 1.0): the fused float kernels fire as the comparator says,
    like run_float (random graphs almost never land on the boundary)."""
    from rsnn_compiler.ir import LIF, Output

    b = GraphBuilder(f"edge_{comparator}")
    b.add("in", Input(shape=(2,)))
    ones, zeros = np.ones(2, np.float32), np.zeros(2, np.float32)
    b.add("lif", LIF(beta=ones, gain=ones, bias=zeros, theta=ones, v_reset=zeros, v_init=zeros,
                     reset=ResetMode.SUBTRACT, comparator=comparator))
    b.add("out", Output(shape=(2,)))
    b.chain("in", "lif", "out")
    g = b.build()
    x = np.full((4, 1, 2), 0.5, np.float32)
    ref = run_float(g, x)
    assert ref.out[1, 0, 0] == (1.0 if comparator == "ge" else 0.0)  # the boundary step
    monkeypatch.setenv("RSNNC_RUNTIME_FUSED", "1")
    rt = GraphRuntime(g)
    assert_same(ref, rt.run(x), comparator)
    assert rt._fused


def test_float_copies_are_cast_once_and_only_without_recording(monkeypatch):
    """``exact.as_dtype`` keeps a tensor's float copy on it (the same object on the next call,
    equal to a fresh cast); the runtime uses it only for runs that do not record, and both kinds
    of run equal run_fixed."""
    from rsnn_compiler.backends.gpu import exact

    x = torch.arange(-5, 5, dtype=torch.int64)
    a = exact.as_dtype(x, torch.float32)
    assert exact.as_dtype(x, torch.float32) is a and torch.equal(a, x.to(torch.float32))
    calls = []
    real = exact.as_dtype
    monkeypatch.setattr(exact, "as_dtype", lambda t, d: calls.append(1) or real(t, d))
    g = random_fixed_graph(4, "loihi2", recurrent=True)
    xin = random_input(g, steps=6, batch=3, seed=4)
    rt = GraphRuntime(g)
    assert_same(run_fixed(g, xin), rt.run(xin), "recorded")
    assert not calls
    assert np.array_equal(rt.run(xin, record=False).out, run_fixed(g, xin).out)
    assert calls


def test_float_c_constants_and_comparisons_round_like_torch():
    """The float primitive set's C text: constants rounded to float32 exactly as torch rounds a
    Python scalar against a float32 tensor (hex literals, -0.0 kept), non-finite constants
    refused, and a non-integer constant never reaches integer C (it was cut by int())."""
    from rsnn_compiler.backends.c.neurons import lit
    from rsnn_compiler.backends.gpu.c_float import float_lit

    for v in (0.1, 1 / 3, 0.95, 1e-3, -2.5, 1e30, 3):
        assert float(np.float32(float.fromhex(float_lit(v)[:-1]))) == float(torch.tensor([1.0]).mul(v)[0])
    assert float_lit(-0.0) == "-0.0f" and float_lit(0) == "0.0f"
    with pytest.raises(ValueError):
        float_lit(float("inf"))
    with pytest.raises(TypeError):
        lit(0.5)
    assert lit(3.0) == "3"


# --------------------------------------------------------------------------------------
# Exact sums: plans and limbs
# --------------------------------------------------------------------------------------
def test_choose_plan_picks_the_cheapest_exact_dtype():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert choose_plan("auto", cpu, 10**6, 10**6) == LinearPlan("float64")
    assert choose_plan("auto", cpu, 1000, 1000) == LinearPlan("float32")
    assert choose_plan("auto", cpu, 1 << 40, 1 << 20) == LinearPlan("int64")
    assert choose_plan("int64", cpu, 1, 1) == LinearPlan("int64")
    assert choose_plan("auto", cuda, 1000, 1000).dtype == "float32"
    assert choose_plan("auto", cuda, 1 << 20, 1 << 10).dtype == "float64"
    big = choose_plan("auto", cuda, 1 << 20, (1 << 62))
    assert big.dtype == "float64" and big.limbs > 1 and big.limb_bits > 0
    with pytest.raises(ValueError):
        choose_plan("int64", cuda, 1, 1)
    with pytest.raises(ValueError):
        choose_plan("bogus", cpu, 1, 1)


def test_precision_switches_are_forced_and_restored():
    from rsnn_compiler.backends.gpu.exact import _no_cudnn, _switches, exact_float_context

    before = [(obj, attr, getattr(obj, attr)) for obj, attr in _switches()]
    cudnn = torch.backends.cudnn.enabled
    with exact_float_context(torch.device("cuda")), _no_cudnn(torch.device("cuda")):
        assert all(getattr(obj, attr) == "ieee" for obj, attr, _ in before)
        assert torch.backends.cudnn.enabled is False
    assert all(getattr(obj, attr) == value for obj, attr, value in before)
    assert torch.backends.cudnn.enabled == cudnn


@pytest.mark.parametrize("xbits", [10, 30, 52, 62])
def test_limb_split_is_exact_for_large_values(xbits):
    rng = np.random.default_rng(xbits)
    w = rng.integers(-(1 << 15), 1 << 15, (5, 40))
    x = rng.integers(-(1 << xbits), 1 << xbits, (3, 40))
    ref = x @ w.T  # int64 (wraps mod 2^64 like the runtime when the true sum leaves int64)
    lin = ExactLinear(torch.from_numpy(w), lambda a, b: a @ b.t())
    plan = choose_plan("float", torch.device("cuda"), lin.row_bound, int(np.abs(x).max()))
    got = lin.apply(torch.from_numpy(x), plan)
    assert np.array_equal(got.numpy(), ref), plan


# --------------------------------------------------------------------------------------
# Backend, executor, devices, errors
# --------------------------------------------------------------------------------------
def test_check_lists_every_unsupported_item():
    g, _ = _extra_fixed_graph(0)
    assert unsupported(g) == []
    bad_pool = Pool(mode=PoolMode.AVG, kernel=2, stride=2, input_shape=g.nodes["pool"].input_shape)
    g2 = g.with_node("pool", bad_pool)
    g2 = g2.with_node("lif", g2.nodes["lif"].replace(v_bits=70, v_overflow=Overflow.SATURATE))
    diags = GpuBackend().check(g2)
    assert len(diags) == 2 and all(d.fix for d in diags)
    assert "average pooling" in str(diags[0]) and "membrane width 70" in str(diags[1])
    with pytest.raises(UserInputError, match="cannot run this graph"):
        GraphRuntime(g2)


def test_emit_writes_runtime_json(tmp_path):
    g, _ = _fixed_case(2, "fpga")
    art = GpuBackend().emit(g, tmp_path)
    assert art.files == ["gpu/runtime.json"]
    desc = json.loads((tmp_path / "runtime.json").read_text())
    assert desc["profile"] == "fpga" and desc["graphs"]["fpga"] == "graph.fpga.rsnn"
    assert desc["float"]["tf32"] is False and set(desc["fixed"]["cuda_plan"]) == {
        n for n, op in g.nodes.items() if isinstance(op, FixedDense)}


def test_devices_and_input_errors():
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device().type == "cpu"
        with pytest.raises(UserInputError, match="CUDA is not available"):
            resolve_device("cuda")
    g, x = _fixed_case(0, "fpga")
    rt = GraphRuntime(g, device="cpu")
    with pytest.raises(UserInputError, match="shape"):
        rt.run(x[:, :, :1])
    if "q" not in g.nodes:
        with pytest.raises(UserInputError, match="integer inputs"):
            rt.run(x + 0.5)
    with pytest.raises(UserInputError, match="NaN"):
        GraphRuntime(random_float_graph(0)).run(np.full((2, 1, *random_float_graph(0).nodes["in"].shape), np.nan))


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_executor_on_a_real_gpu_build(tmp_path, capsys):
    build = tmp_path / "build"
    code, _, err = _cli(capsys, "build", EXAMPLE, "-o", build, "--target", "gpu", "-q")
    assert code == 0, err
    desc = json.loads((build / "gpu" / "runtime.json").read_text())
    manifest = json.loads((build / "manifest.json").read_text())
    profile = manifest["options"]["profile"]
    assert (build / desc["graphs"][profile]).exists() and (build / desc["graphs"]["float"]).exists()
    np.savez(tmp_path / "x.npz", x=example_inputs(steps=20, batch=4))
    for domain in ("float", "fixed"):
        outs = {}
        for executor in ("interp", "gpu"):
            out = tmp_path / f"{executor}_{domain}.npz"
            code, _, err = _cli(capsys, "run", build, "--inputs", tmp_path / "x.npz", "--out", out,
                                "--executor", executor, "--domain", domain, "-q")
            assert code == 0, err
            outs[executor] = np.load(out)
        ref, got = outs["interp"], outs["gpu"]
        assert sorted(ref.files) == sorted(got.files) and "out" in got.files
        for k in ref.files:
            assert ref[k].dtype == got[k].dtype and np.array_equal(ref[k], got[k]), (domain, k)


# --------------------------------------------------------------------------------------
# Straight-through fine-tuning module
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["loihi2", "fpga"])
def test_qat_forward_equals_run_fixed(profile):
    for seed in range(10):
        g, x = _fixed_case(200 + seed, profile)
        ref = run_fixed(g, x)
        m = FixedPointModule(g)
        tr = m.trace(x)
        assert np.array_equal(tr.out, ref.out)
        for field in ("spikes", "states"):
            a, b = getattr(ref, field), getattr(tr, field)
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), (seed, field)
        out = m(x)
        assert out.dtype == torch.float64 and np.array_equal(out.detach().numpy(), ref.out.astype(np.float64))
        out.square().mean().backward()  # gradients reach the shadow weights
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
        assert_same(ref, run_fixed(m.export_fixed_graph(), x), ("export untrained", seed))


def _tiny_task_graph(profile: str):
    rng = np.random.default_rng(0)
    loihi = profile == "loihi2"
    st = {} if loihi else dict(input_shift=0, v_bits=16, v_overflow=Overflow.SATURATE,
                                u_bits=16, u_overflow=Overflow.SATURATE)
    vshift = 6 if loihi else 0
    dense = (lambda w, e: dict(weight=arith.loihi_weight_quantize(w), weight_exp=np.full(len(w), e),
                               acc_bits=32, acc_overflow=Overflow.WRAP)) if loihi else (
        lambda w, e: dict(weight=w, weight_exp=np.full(len(w), e), weight_bits=8, acc_bits=32))
    b = GraphBuilder("tiny")
    b.add("in", Input(shape=(4,)))
    b.add("q", Quantize(shape=(4,), shift=4, bits=8, signed=True))
    b.add("fc1", FixedDense(**dense(rng.integers(-60, 61, (8, 4)), -2)))
    b.add("lif", make_neuron(FixedLIF, (8,), du=4095, dv=400, vth=300, vth_shift=vshift, **st))
    b.add("fc2", FixedDense(**dense(rng.integers(-60, 61, (2, 8)), 0)))
    b.add("li", make_neuron(FixedLI, (2,), du=4095, dv=600, **st))
    b.add("out", Output(shape=(2,)))
    b.chain("in", "q", "fc1", "lif", "fc2", "li", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile=profile)
    assert verify(g) == [], verify(g)
    return g


def _tiny_task(seed: int = 1, batch: int = 16, steps: int = 10):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, batch)
    x = rng.uniform(0, 0.3, (steps, batch, 4))
    x[:, y == 0, :2] += 0.8
    x[:, y == 1, 2:] += 0.8
    return x, torch.from_numpy(y)


@pytest.mark.parametrize("profile,lr,scale", [("fpga", 20.0, 200.0), ("loihi2", 20.0, 12800.0)])
def test_qat_sgd_reduces_loss_and_exports_an_identical_graph(profile, lr, scale):
    g = _tiny_task_graph(profile)
    x, y = _tiny_task()
    m = FixedPointModule(g)
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    losses = []
    for _ in range(6):
        loss = torch.nn.functional.cross_entropy(m(x).sum(0) / scale, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    final = torch.nn.functional.cross_entropy(m(x).sum(0) / scale, y).item()
    assert final < 0.7 * losses[0], losses + [final]
    exported = m.export_fixed_graph()
    assert verify(exported) == []
    assert list(exported.nodes) == list(g.nodes) and exported.edges == g.edges
    assert any(not np.array_equal(exported.nodes[n].weight, g.nodes[n].weight) for n in ("fc1", "fc2"))
    ref = run_fixed(exported, x)
    assert np.array_equal(ref.out.astype(np.float64), m(x).detach().numpy())
    assert_same(ref, m.trace(x))
    if profile == "loihi2":
        assert all(arith.loihi_weights_exact(exported.nodes[n].weight, exported.nodes[n].weight_bits)
                   for n in ("fc1", "fc2"))


def test_qat_from_float_quantizes_with_the_build_pipeline():
    from rsnn_compiler.ir import load_graph

    x = example_inputs(steps=12, batch=4)
    m = FixedPointModule.from_float(load_graph(EXAMPLE), "fpga", calib_x=x)
    assert m.graph.attrs.domain is Domain.FIXED and m.profile == "fpga"
    ref = run_fixed(m.graph, x)
    assert np.array_equal(m(x).detach().numpy(), ref.out.astype(np.float64))
    assert_same(ref, GraphRuntime(m.graph).run(x))


def test_requantize_is_identity_on_legal_weights():
    for seed in range(30):
        for profile in ("loihi2", "fpga"):
            g, _ = _fixed_case(seed, profile)
            for op in g.nodes.values():
                if isinstance(op, FixedDense):
                    e = np.asarray(op.weight_exp, np.float64)[:, None]
                    shadow = torch.from_numpy(op.weight * np.exp2(e))
                    assert np.array_equal(requantize(op, shadow, profile).numpy(), op.weight)


# --------------------------------------------------------------------------------------
# Larger sweep (pytest -m slow)
# --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("profile", ["loihi2", "fpga"])
def test_slow_fixed_sweep(profile):
    for seed in range(2000, 2600):
        knobs = dict(conv=seed % 5 == 0, quantize_input=seed % 3 == 0, overflow=seed % 4 == 1)
        g = random_fixed_graph(seed, profile, **knobs)
        x = random_input(g, steps=30, batch=4, seed=seed)
        ref = run_fixed(g, x)
        assert_same(ref, GraphRuntime(g).run(x), (profile, seed))
        if seed % 10 == 0:
            for policy in CUDA_POLICIES:
                assert_same(ref, GraphRuntime(g, int_matmul=policy).run(x), (profile, seed, policy))


@pytest.mark.slow
def test_slow_float_sweep():
    for seed in range(1000, 1500):
        g = random_float_graph(seed)
        x = random_float_input(g, steps=30, batch=4, seed=seed)
        assert_same(run_float(g, x), GraphRuntime(g).run(x), seed)


@pytest.mark.slow
def test_slow_extra_fixed_graphs_and_qat():
    for seed in range(100, 160):
        g, x = _extra_fixed_graph(seed)
        ref = run_fixed(g, x)
        assert_same(ref, GraphRuntime(g).run(x), seed)
        assert_same(ref, FixedPointModule(g).trace(x), ("qat", seed))


@pytest.mark.parametrize("mode", [Overflow.WRAP, Overflow.WRAP_ONCE, Overflow.SATURATE, Overflow.SATURATE_SYM])
def test_runtime_overflow_shortcuts_equal_the_rule(mode):
    """RuntimeInt.ovf (the runtime's neuron primitive) against the integer rule on tensors whose
    values are all in range (identity), at most one wrap out (modular form), and further out
    (the full rule), including every boundary value."""
    from rsnn_compiler.backends.gpu.fixed_ops import RuntimeInt, overflow

    bits = 8
    half, full = 1 << (bits - 1), 1 << bits
    edges = [-half - 1, -half, -half + 1, -1, 0, 1, half - 1, half, half + 1]
    cases = {
        "in range": np.array([-half + 1, 0, half - 1, half if mode is Overflow.WRAP_ONCE else 3]),
        "one wrap": np.array(edges + [3 * half, -3 * half + 1, full, -full + 1]),
        "far out": np.array(edges + [3 * half + 1, -3 * half, 10 * full + 5, -10 * full - 5]),
    }
    rng = np.random.default_rng(0)
    for name, vals in cases.items():
        x = torch.from_numpy(np.concatenate([vals, rng.choice(vals, 44 - len(vals))]).astype(np.int64).reshape(4, -1))
        want = overflow(x, bits, mode)
        assert torch.equal(RuntimeInt.ovf(x, bits, mode), want), (mode, name)
        ref = np.vectorize(lambda v: arith.overflow(int(v), bits, mode))(x.numpy())
        assert np.array_equal(want.numpy(), ref), (mode, name)


def test_runtime_decay_forms_equal_the_rule():
    """RuntimeInt.decay: per-neuron factors cached per parameter tensor, and decay(x, 4096) as the
    additive zero (``NO_MEMORY + y is y``, ``NO_MEMORY - y == -y``), against TorchInt.decay."""
    from rsnn_compiler.backends.gpu.fixed_ops import NO_MEMORY, RuntimeInt, TorchInt

    P = RuntimeInt()
    x = torch.randint(-(1 << 23), 1 << 23, (5, 7))
    d = torch.randint(0, 4097, (7,))
    assert torch.equal(P.decay(x, d), TorchInt.decay(x, d)) and torch.equal(P.decay(x, d), TorchInt.decay(x, d))
    d2 = d.clone()
    d2[0] = 0 if int(d[0]) else 1  # another tensor: its own factor, not the cached one
    assert torch.equal(P.decay(x, d2), TorchInt.decay(x, d2))
    for dd in (0, 1, 2048, 4095):
        assert torch.equal(P.decay(x, dd), TorchInt.decay(x, dd))
    y = torch.arange(7)
    assert P.decay(x, 4096) is NO_MEMORY and (P.decay(x, 4096) + y) is y
    assert torch.equal(P.decay(x, 4096) - y, -y) and torch.equal(y + P.decay(x, 4096), y)
