"""Conv and pooling on the lava target: sum pools folded into Lava's Conv or Dense, Lava's Conv
run on flat populations (reshaped/transposed ports, batch copies as channel groups), compared
with the loihi2 interpreter; the converted mnist1d CNN builds for lava and validates.

Tests marked ``lava`` need the Python 3.10 environment (``scripts/setup_lava.sh``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler.fixed import arith
from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.interpreter.fixed_interp import apply_stateless, run_fixed
from rsnn_compiler.ir import (
    Domain, FixedConv1d, FixedConv2d, FixedDense, FixedLIF, Flatten, GraphBuilder, Input, Output,
    Pool, PoolMode, Quantize, verify,
)
from rsnn_compiler.ir.fixed_ops import FixedMultiThreshold, make_neuron
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.backends.lava import env as lava_env
from rsnn_compiler.backends.lava.backend import LavaBackend
from rsnn_compiler.backends.lava.emit import lower, to_network
from rsnn_compiler.backends.lava.executor import decode, host_inputs
from rsnn_compiler.backends.lava.fold import FoldError, as_conv2d, fold_pool_into_conv

REPO = Path(__file__).resolve().parents[1]


def conv1d(w, shape, **kw) -> FixedConv1d:
    return FixedConv1d(weight=w, weight_exp=np.zeros(w.shape[0]), input_shape=shape, acc_bits=24,
                       acc_overflow=Overflow.WRAP, weight_bits=8, **kw)


def conv2d(w, shape, **kw) -> FixedConv2d:
    return FixedConv2d(weight=w, weight_exp=np.zeros(w.shape[0]), input_shape=shape, acc_bits=24,
                       acc_overflow=Overflow.WRAP, weight_bits=8, **kw)


@pytest.mark.parametrize("case", range(6))
def test_pool_folded_into_conv_equals_conv_of_pool(case):
    r = np.random.default_rng(case)
    if case < 3:
        c, length = 3, [16, 12, 20][case]
        kp, pad = [(2, 0), (3, 1), (2, 1)][case]
        pool = Pool(mode=PoolMode.SUM, kernel=(kp,), stride=(kp,), padding=(pad,), input_shape=(c, length))
        conv = conv1d(r.integers(-100, 100, (4, c, 3)), pool.out_shape, padding=1, dilation=1 + case % 2)
    else:
        pool = Pool(mode=PoolMode.SUM, kernel=(2, 2), stride=(2, 2), padding=(0, 0), input_shape=(2, 8, 6))
        conv = conv2d(r.integers(-100, 100, (3, 2, 3, 2)), pool.out_shape, padding=(1, case - 3),
                      stride=(1, 1 + case % 2))
    x = r.integers(-3, 4, (5, *pool.input_shape))
    want = apply_stateless(conv, apply_stateless(pool, x))
    try:
        g = fold_pool_into_conv(pool, as_conv2d(conv))
    except FoldError as exc:  # only the padding case that reads pooled-away inputs may refuse
        assert "padding" in str(exc) and case == 1
        return
    folded = conv2d(g.weight, g.input_shape, stride=g.stride, padding=g.padding)
    got = apply_stateless(folded, x.reshape(5, *g.input_shape))
    assert np.array_equal(got.reshape(want.shape), want)


def cnn_graph(seed: int, graded: bool, two_d: bool = False) -> Graph:
    """Input -> conv -> LIF/MTN -> sum pool -> conv -> LIF -> sum pool -> flatten -> dense -> LIF."""
    r = np.random.default_rng(seed)
    b = GraphBuilder(f"cnn{seed}")
    shape = (2, 6, 8) if two_d else (2, 16)
    b.add("in", Input(shape=shape))
    b.add("q", Quantize(shape=shape, shift=2, bits=6 if graded else 1, signed=graded))
    k = (3, 3) if two_d else (3,)
    c0 = (conv2d if two_d else conv1d)(r.integers(-200, 200, (4, 2, *k)), shape, padding=1)
    b.add("c0", c0)
    n0 = c0.out_shape
    if graded:
        b.add("n0", make_neuron(FixedMultiThreshold, n0, vth=int(r.integers(20, 60)), levels=3, reset="subtract",
                                bias_mant=r.integers(-50, 50, n0), input_shift=6, v_bits=24))
    else:
        b.add("n0", make_neuron(FixedLIF, n0, du=200, dv=300, vth=40, bias_mant=r.integers(-8, 8, n0)))
    pk = (2, 2) if two_d else (2,)
    p0 = Pool(mode=PoolMode.SUM, kernel=pk, stride=pk, padding=(0,) * len(pk), input_shape=n0)
    b.add("p0", p0)
    c1 = (conv2d if two_d else conv1d)(r.integers(-150, 150, (3, 4, *k)), p0.out_shape, padding=1)
    b.add("c1", c1)
    b.add("n1", make_neuron(FixedLIF, c1.out_shape, du=4095, dv=100, vth=30, bias_mant=3, bias_exp=4))
    p1 = Pool(mode=PoolMode.SUM, kernel=pk, stride=pk, padding=(0,) * len(pk), input_shape=c1.out_shape)
    b.add("p1", p1)
    b.add("flat", Flatten(input_shape=p1.out_shape))
    n_flat = int(np.prod(p1.out_shape))
    w = arith.loihi_weight_quantize(r.integers(-120, 120, (5, n_flat)) * 2, 8)
    b.add("fc", FixedDense(weight=w, weight_exp=np.full(5, 1), weight_bits=8, acc_bits=32,
                           acc_overflow=Overflow.WRAP))
    b.add("n2", make_neuron(FixedLIF, (5,), du=100, dv=0, vth=60, bias_mant=5, bias_exp=6))
    b.add("out", Output(shape=(5,)))
    b.chain("in", "q", "c0", "n0", "p0", "c1", "n1", "p1", "flat", "fc", "n2", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="loihi2")
    assert not verify(g), verify(g)
    return g


def test_conv_and_pools_lower_to_lava_conv_and_dense():
    prog, diags = lower(cnn_graph(0, graded=False))
    assert not diags, diags
    kinds = {(c.src, c.dst): (c.process, c.pools) for c in prog.connections}
    assert kinds == {("q", "n0"): ("Conv", ()), ("n0", "n1"): ("Conv", ("p0",)),
                     ("n1", "n2"): ("Dense", ("p1",))}
    folded = next(c for c in prog.connections if c.src == "n0").conv
    assert folded.input_shape == (4, 1, 16) and folded.stride == (1, 2) and folded.weight.shape[2:] == (1, 6)
    doc, _ = to_network(prog)
    conv = next(c for c in doc["connections"] if c["kind"] == "conv")
    assert set(conv) >= {"input_shape", "stride", "padding", "dilation", "groups"}
    # a max pool is not linear; a pool after the synapse is not exact
    g = cnn_graph(0, graded=False)
    g = g.with_node("p0", g.nodes["p0"].replace(mode=PoolMode.MAX))
    diags = LavaBackend().check(g)
    assert any("max pool 'p0' is not linear" in d.problem for d in diags), diags


@pytest.mark.lava
@pytest.mark.parametrize("graded,two_d", [(False, False), (True, False), (False, True)])
def test_conv_pool_graphs_on_lava_equal_the_interpreter(graded, two_d, tmp_path, lava_python):
    g = cnn_graph(3 + graded + 2 * two_d, graded, two_d)
    prog, diags = lower(g)
    assert not diags, diags
    steps, batch = 12, 3
    x = np.random.default_rng(1).normal(0, 2, (steps, batch, *g.nodes["in"].shape))
    if not graded:
        x = (x > 0.3).astype(np.float64)
    doc, arrays = to_network(prog)
    net_dir = lava_env.write_network_dir(tmp_path / "net", doc, arrays)
    x_src = host_inputs(g, doc["meta"]["rsnnc"], x)
    res = lava_env.run_in_lava(net_dir, x_src.reshape(steps, batch, -1), steps=steps + prog.max_stage,
                               python=lava_python, timeout=600)
    got = decode(doc["meta"]["rsnnc"], res, x_src).to_npz_dict()
    want = run_fixed(g, x).to_npz_dict()
    for key, ref in want.items():
        assert np.array_equal(got[key], ref), (key, int((got[key] != ref).sum()))
    assert sum(int(np.abs(v).sum()) for k, v in want.items() if k.startswith("spikes/")) > 50


@pytest.mark.lava
def test_converted_mnist1d_cnn_builds_for_lava_and_validates(tmp_path, lava_python):
    from rsnn_compiler.build import BuildOptions, build
    from rsnn_compiler.validate import validate

    model = REPO / "models" / "cnn_mnist1d"
    with np.load(model / "data.npz") as z:
        x, y = z["x"], z["y"]
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=x[:, :64], y=y[:64])
    out = tmp_path / "build"
    build(str(model / "model.onnx"), out, BuildOptions(targets=("lava",), calib=str(calib), convert={"method": "sfn", "steps": None, "levels": None, "opts": {}}))
    manifest = json.loads((out / "manifest.json").read_text())
    report = validate(out, manifest, x[:, :8], y[:8])
    checks = {c.executor: c.status for c in report.executors}
    assert checks.get("lava") == "equal", report.problems
    stages = json.loads((out / "lava" / "stages.json").read_text())
    assert {c["process"] for c in stages["connections"].values()} >= {"Conv"}
