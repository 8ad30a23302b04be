"""Float conversion neurons (DualThresholdIF, MultiThreshold): hand-computed values, the
T-step IF <-> one-step MTN theorem, and parity with the fixed ops they mirror."""

from __future__ import annotations

import numpy as np
import pytest

from rsnn_compiler.interpreter.fixed_interp import run_fixed
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir import GraphBuilder, Input, Output, load_graph, save_graph, verify
from rsnn_compiler.ir.conversion_ops import DualThresholdIF, MultiThreshold
from rsnn_compiler.ir.fixed_ops import FixedDualIF, FixedMultiThreshold, make_neuron
from rsnn_compiler.ir.graph import Domain
from rsnn_compiler.ir.ops import IF, ResetMode, Comparator, broadcast_params


def _single(op, shape=(1,), domain=Domain.FLOAT, profile=None):
    b = GraphBuilder("n")
    b.add("in", Input(shape=shape))
    b.add("n", op)
    b.add("out", Output(shape=shape))
    b.chain("in", "n", "out")
    g = b.build()
    if domain is Domain.FIXED:
        g = g.with_attrs(domain=domain, profile=profile)
    assert verify(g) == []
    return g


def _dual(theta=1.0, theta_neg=0.0, v_init=0.5, bias=0.0, shape=(1,)):
    p = broadcast_params(shape, bias=bias, theta=theta, theta_neg=theta_neg, v_init=v_init)
    return DualThresholdIF(**p)


def test_dual_if_retracts_early_spike():
    # input [1, -1, 0, 0] with theta 1, v0 = 1/2: fires at t0 (m = 1.5), then m = -0.5 < 0 with
    # c = 1 -> negative spike; net count 0 (a plain IF would keep its early spike).
    g = _single(_dual())
    x = np.array([1, -1, 0, 0], np.float32).reshape(4, 1, 1)
    r = run_float(g, x)
    assert r.out[:, 0, 0].tolist() == [1, -1, 0, 0]
    assert r.states["c/n"][:, 0, 0].tolist() == [1, 0, 0, 0]
    assert r.states["v/n"][:, 0, 0].tolist() == [0.5, 0.5, 0.5, 0.5]


def test_dual_if_never_negative_count():
    g = _single(_dual())
    x = np.full((5, 1, 1), -3.0, np.float32)
    r = run_float(g, x)
    assert (r.out == 0).all() and (r.states["c/n"] == 0).all()


def test_mtn_hand_values_and_levels():
    p = broadcast_params((3,), bias=0.0, theta=0.5, v_init=0.25)
    g = _single(MultiThreshold(**p, levels=4), shape=(3,))
    x = np.array([[[0.2, 0.8, 9.0]]], np.float32)
    r = run_float(g, x)
    # floor((0.2+.25)/.5)=0, floor(1.05/.5)=2, clip(18, 0, 4)=4
    assert r.out[0, 0].tolist() == [0, 2, 4]


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 8])
def test_mtn_one_step_equals_t_step_if_for_constant_input(steps):
    rng = np.random.default_rng(steps)
    z = rng.uniform(-1.0, 2.5, size=64).astype(np.float32)
    theta = 1.0
    ifp = broadcast_params((64,), gain=1.0, bias=0.0, theta=theta, v_reset=0.0, v_init=theta / 2)
    g_if = _single(IF(**ifp, reset=ResetMode.SUBTRACT, comparator=Comparator.GE), shape=(64,))
    rate = run_float(g_if, np.broadcast_to(z, (steps, 1, 64)).copy()).out.sum(0)[0] * theta / steps
    mp = broadcast_params((64,), bias=0.0, theta=theta / steps, v_init=theta / steps / 2)
    g_m = _single(MultiThreshold(**mp, levels=steps), shape=(64,))
    mtn = run_float(g_m, z.reshape(1, 1, 64)).out[0, 0] * theta / steps
    # away from exact ties the two agree (Theorem 1 of SFN)
    frac = (z * steps / theta + 0.5) % 1.0
    ok = (frac > 1e-3) & (frac < 1 - 1e-3)
    np.testing.assert_allclose(rate[ok], mtn[ok], atol=1e-6)


def test_mtn_subtract_reset_keeps_residual():
    p = broadcast_params((1,), bias=0.0, theta=1.0, v_init=0.0)
    g = _single(MultiThreshold(**p, levels=2, reset=ResetMode.SUBTRACT))
    r = run_float(g, np.array([5.0, 0.0, 0.0, 0.0], np.float32).reshape(4, 1, 1))
    assert r.out[:, 0, 0].tolist() == [2, 2, 1, 0]


def test_roundtrip_serialization(tmp_path):
    g = _single(_dual(shape=(2,)), shape=(2,))
    save_graph(g, tmp_path / "g.rsnn")
    g2 = load_graph(tmp_path / "g.rsnn")
    assert isinstance(g2.nodes["n"], DualThresholdIF)
    p = broadcast_params((2,), bias=0.0, theta=1.0, v_init=0.5)
    g = _single(MultiThreshold(**p, levels=3), shape=(2,))
    save_graph(g, tmp_path / "m.rsnn")
    assert load_graph(tmp_path / "m.rsnn").nodes["n"].levels == 3


def test_bad_levels_rejected():
    p = broadcast_params((1,), bias=0.0, theta=1.0, v_init=0.5)
    with pytest.raises(ValueError):
        MultiThreshold(**p, levels=0)


@pytest.mark.parametrize("seed", range(4))
def test_float_ops_mirror_fixed_ops(seed):
    """With integer parameters, zero shifts and integer inputs the float ops equal the fixed ops
    they are quantized to (same parameter meaning)."""
    rng = np.random.default_rng(seed)
    n, steps = 16, 12
    vth = rng.integers(4, 40, n)
    vneg = -rng.integers(0, 10, n)
    vinit = vth // 2
    bias = rng.integers(-3, 4, n)
    x = rng.integers(-30, 40, (steps, 3, n)).astype(np.float32)
    fx = make_neuron(FixedDualIF, (n,), bias_mant=bias, bias_exp=0, vth=vth, vth_neg=vneg,
                     v_init=vinit, input_shift=0, vth_shift=0, v_bits=32)
    fl = DualThresholdIF(bias=bias, theta=vth, theta_neg=vneg, v_init=vinit)
    rf = run_fixed(_single(fx, (n,), Domain.FIXED, "fpga"), x)
    rl = run_float(_single(fl, (n,)), x)
    np.testing.assert_array_equal(rf.out, rl.out)
    np.testing.assert_array_equal(rf.states["c/n"], rl.states["c/n"])
    np.testing.assert_array_equal(rf.states["v/n"], rl.states["v/n"])
    for reset in (ResetMode.ZERO, ResetMode.SUBTRACT):
        fm = make_neuron(FixedMultiThreshold, (n,), bias_mant=bias, bias_exp=0, vth=vth,
                         v_init=vinit, levels=5, reset=reset, input_shift=0, vth_shift=0, v_bits=32)
        lm = MultiThreshold(bias=bias, theta=vth, v_init=vinit, levels=5, reset=reset)
        rf = run_fixed(_single(fm, (n,), Domain.FIXED, "fpga"), x)
        rl = run_float(_single(lm, (n,)), x)
        np.testing.assert_array_equal(rf.out, rl.out)
        np.testing.assert_array_equal(rf.states["v/n"], rl.states["v/n"])
