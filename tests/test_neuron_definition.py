"""The one neuron definition (rsnn_compiler/neurons) against the independent plain-Python oracle
(rsnn_compiler/testing/oracle.py), on every executor derived from it, for every family x reset
mode x comparator x overflow rule; and the structure that keeps it one definition."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler.interpreter import run_fixed, run_float
from rsnn_compiler.ir.catalogue import OP_CLASSES, neuron_op_class
from rsnn_compiler.ir.dynamics import family_of
from rsnn_compiler.ir.ops import NeuronOp
from rsnn_compiler.neurons import FIXED_FAMILIES, FLOAT_FAMILIES, Domain
from rsnn_compiler.testing import oracle
from rsnn_compiler.testing.neuron_cases import (
    case_input, fixed_family_graph, float_family_graph,
)
from rsnn_compiler.testing.random_graphs import random_fixed_graph, random_input

from rsnn_compiler.backends.c.batch import build_many, run_entry
from rsnn_compiler.backends.gpu.runtime import GraphRuntime

ROOT = Path(__file__).resolve().parents[1]
STEPS, BATCH = 14, 2


def assert_matches_oracle(ref: dict, got, label: str) -> None:
    """Every output, spike and state of ``got`` (a RunResult) equals the oracle's."""
    assert np.array_equal(np.asarray(ref["out"]), got.out), f"{label}: out"
    for key, want in ref.items():
        if key == "out":
            continue
        have = got.spikes[key[len("spikes/"):]] if key.startswith("spikes/") else got.states[key]
        want = np.asarray(want)
        if not np.array_equal(want, have):
            t, *idx = np.argwhere(want != have)[0]
            raise AssertionError(f"{label} {key} first differs at step {t}, index {idx}:"
                                 f" {have[(t, *idx)]} != oracle {want[(t, *idx)]}")


@pytest.fixture(scope="module")
def fixed_cases():
    cases = []
    for i, name in enumerate(sorted(FIXED_FAMILIES)):
        g = fixed_family_graph(name, seed=i)
        cases.append((name, g, case_input(g, STEPS, BATCH, seed=i)))
    return cases


def test_fixed_families_interpreter_and_gpu_equal_the_oracle(fixed_cases):
    for name, g, x in fixed_cases:
        ref = oracle.run_fixed_graph(g, x)
        assert_matches_oracle(ref, run_fixed(g, x), f"interp {name}")
        assert_matches_oracle(ref, GraphRuntime(g, device="cpu").run(x), f"gpu {name}")
        stats: dict = {}
        run_fixed(g, x, stats=stats)
        assert any(v for k, v in stats.items() if not k.startswith("acc/")), f"{name}: no state overflowed"


def test_fixed_families_fused_runtime_equals_the_oracle(fixed_cases, monkeypatch):
    """The runtime's fused CPU neuron kernels (backends/gpu/fused_neurons.py: each family's step
    as the C text its definition generates, compiled and called on the state tensors) equal the
    oracle for every fixed family; and they do run (not a fallback to the torch kernels)."""
    from rsnn_compiler.backends.gpu.fused_neurons import FusedPopulation

    monkeypatch.setenv("RSNNC_RUNTIME_FUSED", "1")
    fused = []
    for name, g, x in fixed_cases:
        rt = GraphRuntime(g, device="cpu")
        assert_matches_oracle(oracle.run_fixed_graph(g, x), rt.run(x), f"fused {name}")
        pops = [s.kernel for s in rt.slots if isinstance(s.kernel, FusedPopulation)]
        if pops and all(p.active for p in pops):
            fused.append(name)
    assert sorted(fused) == sorted(FIXED_FAMILIES), sorted(set(FIXED_FAMILIES) - set(fused))


def test_fixed_families_c_equals_the_oracle(fixed_cases, tmp_path):
    entries = build_many([g for _, g, _ in fixed_cases], tmp_path, units=2)
    for (name, g, x), entry in zip(fixed_cases, entries):
        assert_matches_oracle(oracle.run_fixed_graph(g, x), run_entry(entry, g, x), f"c {name}")


@pytest.mark.parametrize("profile,knobs", [
    ("fpga", dict(overflow=True)), ("fpga", dict(graded=True, delays=True, recurrent=True)),
    ("fpga", dict(readout="li", conv=True)), ("loihi2", dict(overflow=True, graded=True)),
    ("loihi2", dict(quantize_input=True, recurrent=True)),
])
def test_random_graphs_equal_the_oracle(profile, knobs):
    for seed in range(3):
        g = random_fixed_graph(seed, profile, **knobs)
        x = random_input(g, 12, 2, seed, density=0.5)
        ref = oracle.run_fixed_graph(g, x)
        assert_matches_oracle(ref, run_fixed(g, x), f"interp {g.attrs.name}")
        assert_matches_oracle(ref, GraphRuntime(g, device="cpu").run(x), f"gpu {g.attrs.name}")


@pytest.mark.parametrize("name", sorted(FLOAT_FAMILIES))
def test_float_families_equal_the_oracle(name, monkeypatch):
    """Interpreter, GPU runtime (torch kernels) and the runtime's fused float C kernels
    (RSNNC_RUNTIME_FUSED=1, which must run for every family) against the oracle."""
    from rsnn_compiler.backends.gpu.fused_neurons import FusedPopulation

    g = float_family_graph(name, seed=7)
    x = case_input(g, STEPS, BATCH, seed=3)
    results = {"interp": run_float(g, x), "gpu": GraphRuntime(g, device="cpu").run(x)}
    monkeypatch.setenv("RSNNC_RUNTIME_FUSED", "1")
    fused = GraphRuntime(g, device="cpu")
    results["gpu fused"] = fused.run(x)
    assert all(s.kernel.active for s in fused.slots if isinstance(s.kernel, FusedPopulation)), name
    for node, op in g.nodes.items():
        if not isinstance(op, NeuronOp):
            continue
        for b in range(BATCH):
            terms = [[x[t, b]] + ([x[t - 1, b]] if t >= 1 else []) for t in range(STEPS)]
            ref = oracle.float_neuron(op, terms)
            for label, r in results.items():
                assert np.array_equal(np.asarray(ref["out"], np.float32), r.values[node][:, b]), (label, node)
                for state in op.state_names:
                    assert np.array_equal(np.asarray(ref[state], np.float32),
                                          r.states[f"{state}/{node}"][:, b]), (label, node, state)


# ---- structure ------------------------------------------------------------------------------


def test_every_neuron_op_has_a_family_with_its_parameters():
    families = {(Domain.FIXED, n) for n in FIXED_FAMILIES} | {(Domain.FLOAT, n) for n in FLOAT_FAMILIES}
    seen = set()
    for cls in OP_CLASSES.values():
        if not (isinstance(cls, type) and issubclass(cls, NeuronOp)) or not cls.family:
            continue
        domain = Domain.FIXED if cls.__name__.startswith("Fixed") else Domain.FLOAT
        fam = FIXED_FAMILIES[cls.family] if domain is Domain.FIXED else FLOAT_FAMILIES[cls.family]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        assert set(fam.param_names) == set(fields), cls.__name__
        assert fam.states == cls.state_names and fam.spiking == cls.spiking, cls.__name__
        for q in fam.params:  # defaults agree where the op has one
            default = fields[q.name].default
            if default is not dataclasses.MISSING and not (q.per_neuron and default is None):
                assert default == q.default, (cls.__name__, q.name)
        assert neuron_op_class(domain, cls.family) is cls
        seen.add((domain, cls.family))
    assert seen == families, families - seen


def test_family_lookup_from_ops():
    g = fixed_family_graph("alif")
    assert family_of(g.nodes["n0"]) is FIXED_FAMILIES["alif"]


def test_definition_imports_only_numpy_and_itself():
    """The Lava environment loads rsnn_compiler/neurons by path: no other imports allowed."""
    for path in (ROOT / "rsnn_compiler" / "neurons").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level > 0:
                    continue
                names = [node.module.split(".")[0]]
            else:
                continue
            for n in names:
                assert n in ("numpy", "enum", "dataclasses", "typing", "__future__", "math"), (path.name, n)


def test_oracle_is_written_separately():
    text = (ROOT / "rsnn_compiler" / "testing" / "oracle.py").read_text()
    assert "rsnn_compiler.neurons" not in text.replace("``rsnn_compiler.neurons``", "")
    assert "fixed.arith" not in text.replace("``fixed.arith``", "")


def test_the_oracle_catches_a_wrong_definition(monkeypatch):
    """A definition that compares with >= where the op says > must be caught."""
    from rsnn_compiler.neurons import fixed_dynamics

    g = fixed_family_graph("lif", seed=0)
    x = case_input(g, STEPS, BATCH, seed=0)
    ref = oracle.run_fixed_graph(g, x)
    real = fixed_dynamics.fire_and_reset

    def wrong(P, p, st, base, theta):
        v, s = real(P, p, st, base, theta)
        return v, P.cmp(base, theta - 1, p.comparator)

    monkeypatch.setattr(fixed_dynamics, "fire_and_reset", wrong)
    with pytest.raises(AssertionError, match="differs|out"):
        assert_matches_oracle(ref, run_fixed(g, x), "mutated")


def test_a_family_refuses_a_choice_it_does_not_define():
    from rsnn_compiler.ir.family_ops import FixedTCLIF

    with pytest.raises(ValueError, match="reset must be one of subtract, zero"):
        FixedTCLIF(beta_d=[1], beta_s=[1], vth=[1], reset="subtract_deferred")


def test_the_oracle_catches_a_reordered_update_form(monkeypatch):
    """Norse's Euler step with the same real value in another float32 order must be caught: the
    update forms are only exact in their library's operation order."""
    from rsnn_compiler.neurons import float_dynamics as fl
    from rsnn_compiler.neurons import norse

    def reordered(P, p, st, xs):
        i = fl.accumulate(P, st.i, None, xs)
        v = st.v + p.k_mem * (p.v_leak + (i - st.v))
        st.i = i + p.k_syn * i
        return v

    g = float_family_graph("norse_lif", seed=7)
    x = case_input(g, STEPS, BATCH, seed=3)
    want = {node: oracle.float_neuron(op, [[x[t, 0]] + ([x[t - 1, 0]] if t else []) for t in range(STEPS)])["v"]
            for node, op in g.nodes.items() if isinstance(op, NeuronOp)}
    monkeypatch.setattr(norse, "euler", reordered)
    got = run_float(g, x).states
    assert any(not np.array_equal(np.asarray(v, np.float32), got[f"v/{node}"][:, 0]) for node, v in want.items())


# ---- proven state ranges (backends/c/neurons.py: CExpr.bound) --------------------------------
def test_proven_state_ranges_hold_on_every_family_and_random_graph():
    """``neuron_code(...).state_bounds`` (what the fused runtime kernels narrow states by) holds
    for every recorded state value of every fixed family's case and of random graphs with
    overflowing states; and it proves something (the narrowing is not vacuous)."""
    from rsnn_compiler.backends.c.neurons import neuron_code
    from rsnn_compiler.ir.fixed_ops import FixedNeuron

    graphs = [(name, fixed_family_graph(name, seed=i)) for i, name in enumerate(sorted(FIXED_FAMILIES))]
    graphs += [(f"random {p} {s}", random_fixed_graph(s, p, overflow=True, graded=s % 2 == 0))
               for p in ("loihi2", "fpga") for s in range(12)]
    proven = 0
    for label, g in graphs:
        x = case_input(g, STEPS, BATCH, seed=5) if label in FIXED_FAMILIES else random_input(g, 12, 2, 5, density=0.6)
        states = run_fixed(g, x).states
        for node, op in g.nodes.items():
            if not isinstance(op, FixedNeuron):
                continue
            code = neuron_code(op, "p0", lambda name, arr: name, store="n")
            for state, bound in code.state_bounds.items():
                key = f"{state}/{node}"
                if bound is None or state not in code.stored or key not in states:
                    continue
                proven += 1
                vals = states[key]
                assert bound[0] <= vals.min() and vals.max() <= bound[1], (label, key, bound, vals.min(), vals.max())
    assert proven >= 40, proven


def test_expression_bounds():
    """The rules ``CExpr.bound`` follows: overflow rules bound their result (wrap_once only for
    inputs within three half-ranges), comparisons are 0/1, clips and literals are exact, ``+ - *``
    by interval arithmetic, ``where`` the union, and a state read is unknown."""
    from rsnn_compiler.backends.c.neurons import CExpr, CPrims
    from rsnn_compiler.fixed.arith import Overflow
    from rsnn_compiler.neurons import Comparator

    P = CPrims(lambda name, arr: name)
    x, s = CExpr("x[k]"), CExpr("s->v[k]")
    assert P.ovf(x, 8, Overflow.SATURATE).bound == (-128, 127)
    assert P.ovf(x, 8, Overflow.SATURATE_SYM).bound == (-127, 127)
    assert P.ovf(x, 8, Overflow.WRAP).bound == (-128, 127)
    assert P.ovf(x, 8, Overflow.WRAP_ONCE).bound is None
    assert P.ovf(P.clip(x, -300, 300), 8, Overflow.WRAP_ONCE).bound == (-127, 128)
    assert P.ovf(P.clip(x, -400, 300), 8, Overflow.WRAP_ONCE).bound is None
    assert P.cmp(s, 3, Comparator.GT).bound == (0, 1) and P.lt(s, x).bound == (0, 1)
    assert (P.clip(x, -2, 3) * 4 - 1).bound == (-9, 11)
    assert P.where(CExpr("c"), P.clip(x, 0, 5), -7).bound == (-7, 5)
    assert P.decay(P.clip(x, -5, 9), 100).bound == (-5, 9)
    assert P.lshift(P.clip(x, -1, 2), 3).bound == (-8, 16)
    assert (s + 1).bound is None and P.let(P.clip(x, 0, 1) + 0, "t").bound == (0, 1)
