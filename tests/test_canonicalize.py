"""canonicalize preserves the function computed by the interpreter."""

import numpy as np
import pytest

from rsnn_compiler.interpreter import run_float
from rsnn_compiler.ir import (
    LIF, Affine, BatchNorm, Conv1d, Delay, Flatten, GraphBuilder, Identity, Input, Output,
    ResetMode, Scale, broadcast_params, verify,
)
from rsnn_compiler.passes_api import PassContext
from rsnn_compiler.registry import get_pass


def lif(n, seed=0, reset=ResetMode.SUBTRACT):
    rng = np.random.default_rng(seed)
    p = broadcast_params((n,), beta=rng.uniform(0.5, 0.95, n), gain=1.0, bias=0.0, theta=1.0, v_reset=0.0, v_init=0.0)
    return LIF(**p, reset=reset)


def canon(graph):
    new, report = get_pass("canonicalize").run(graph, PassContext(verify_each=True))
    assert verify(new) == []
    return new, report


def messy_graph(seed):
    """input -> identity -> affine -> batchnorm -> affine -> scale -> LIF (recurrent via a
    Delay node) -> flatten(no-op) -> affine -> output."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("messy")
    b.add("in", Input(shape=(6,)))
    b.add("id", Identity(shape=(6,)))
    b.add("fc1", Affine(weight=rng.normal(0, 0.5, (8, 6)), bias=rng.normal(0, 0.1, 8)))
    b.add("bn", BatchNorm(mean=rng.normal(0, 0.2, 8), var=rng.uniform(0.5, 2, 8), gamma=rng.uniform(0.5, 1.5, 8), beta=rng.normal(0, 0.1, 8), shape=(8,)))
    b.add("fc2", Affine(weight=rng.normal(0, 0.5, (8, 8))))
    b.add("sc", Scale(scale=rng.uniform(0.5, 2.0, 8)))
    b.add("lif", lif(8, seed))
    b.add("rec", Affine(weight=rng.normal(0, 0.3, (8, 8))))
    b.add("dl", Delay(shape=(8,), steps=2))
    b.add("flat", Flatten(input_shape=(8,)))
    b.add("fc3", Affine(weight=rng.normal(0, 0.5, (3, 8))))
    b.add("out", Output(shape=(3,)))
    b.chain("in", "id", "fc1", "bn", "fc2", "sc", "lif", "flat", "fc3", "out")
    b.connect("lif", "rec", 1)
    b.connect("rec", "dl")
    b.connect("dl", "lif")
    return b.build()


@pytest.mark.parametrize("seed", range(5))
def test_canonicalize_preserves_function(seed):
    g = messy_graph(seed)
    new, report = canon(g)
    assert report.removed_identities == 2  # Identity and the no-op Flatten
    assert report.folded_batchnorms == 1
    assert report.folded_scales == 1
    assert report.merged_affines == 1  # fc1(+bn) and fc2(+scale)
    assert report.folded_delays == 1
    assert len(new) == len(g) - 6
    # the Delay(2) node became the delay of the edge rec -> lif
    assert [e.delay for e in new.edges if e.src == "rec"] == [2]
    rng = np.random.default_rng(100 + seed)
    x = rng.normal(0, 1.0, (60, 4, 6)).astype(np.float32)
    a, b = run_float(g, x), run_float(new, x)
    # membranes agree to float32 rounding of the folded products ...
    np.testing.assert_allclose(a.states["v/lif"], b.states["v/lif"], rtol=1e-4, atol=1e-4)
    # ... and spikes agree except possibly a handful of exact-threshold ties
    assert np.mean(a.spikes["lif"] == b.spikes["lif"]) > 0.999
    np.testing.assert_allclose(a.out, b.out, rtol=1e-3, atol=1e-3)


def test_exact_rewrites_are_bit_identical():
    """Removing identities and folding delay nodes changes no arithmetic at all."""
    rng = np.random.default_rng(3)
    b = GraphBuilder("exact")
    b.add("in", Input(shape=(4,)))
    b.add("id", Identity(shape=(4,)))
    b.add("fc", Affine(weight=rng.normal(0, 1, (5, 4))))
    b.add("lif", lif(5, reset=ResetMode.SUBTRACT_DEFERRED))
    b.add("rec", Affine(weight=rng.normal(0, 0.5, (5, 5)), bias=rng.normal(0, 0.1, 5)))
    b.add("d0", Delay(shape=(5,), steps=0))
    b.add("d1", Delay(shape=(5,), steps=1))
    b.add("out", Output(shape=(5,)))
    b.chain("in", "id", "fc", "lif", "d0", "out")
    b.chain("lif", "d1", "rec")
    b.connect("rec", "lif")
    g = b.build()
    new, report = canon(g)
    assert set(new.nodes) == {"in", "fc", "lif", "rec", "out"}
    x = rng.normal(0, 1, (80, 3, 4)).astype(np.float32)
    a, c = run_float(g, x), run_float(new, x)
    np.testing.assert_array_equal(a.out, c.out)
    np.testing.assert_array_equal(a.states["v/lif"], c.states["v/lif"])


def test_batchnorm_folds_into_conv():
    rng = np.random.default_rng(0)
    b = GraphBuilder("conv")
    b.add("in", Input(shape=(2, 12)))
    b.add("conv", Conv1d(weight=rng.normal(0, 1, (3, 2, 3)), bias=rng.normal(0, 1, 3), input_shape=(2, 12), padding=1))
    b.add("bn", BatchNorm(mean=rng.normal(0, 1, 3), var=rng.uniform(0.5, 2, 3), gamma=rng.normal(1, 0.2, 3), beta=rng.normal(0, 1, 3), shape=(3, 12)))
    b.add("out", Output(shape=(3, 12)))
    b.chain("in", "conv", "bn", "out")
    g = b.build()
    new, report = canon(g)
    assert report.folded_batchnorms == 1 and "bn" not in new.nodes
    x = rng.normal(0, 1, (2, 5, 2, 12)).astype(np.float32)
    np.testing.assert_allclose(run_float(g, x).out, run_float(new, x).out, rtol=1e-5, atol=1e-5)


def test_branching_affine_is_not_merged():
    """A producer with two consumers must stay: merging would duplicate or drop work."""
    b = GraphBuilder("branch")
    b.add("in", Input(shape=(2,)))
    b.add("a", Affine(weight=np.eye(2)))
    b.add("b", Affine(weight=np.eye(2)))
    b.add("c", Affine(weight=np.eye(2)))
    b.add("out", Output(shape=(2,)))
    b.chain("in", "a", "b", "out")
    b.chain("a", "c", "out")
    new, report = canon(b.build())
    assert report.merged_affines == 0 and set(new.nodes) == {"in", "a", "b", "c", "out"}


def test_canonicalize_does_not_mutate_input():
    g = messy_graph(0)
    before = {n: id(op) for n, op in g.nodes.items()}
    edges = g.edges
    canon(g)
    assert {n: id(op) for n, op in g.nodes.items()} == before and g.edges == edges
