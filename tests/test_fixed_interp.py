"""The fixed-point interpreter against hand-computed values and an independent scalar model."""

from __future__ import annotations

import numpy as np
import pytest

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.interpreter import run_fixed
from rsnn_compiler.ir import (
    Delay, Domain, FixedALIF, FixedConv1d, FixedDense, FixedDualIF, FixedLI, FixedLIF,
    FixedMultiThreshold, GraphBuilder, Input, Output, Pool, PoolMode, Quantize, ResetMode, verify,
)
from rsnn_compiler.ir.fixed_ops import make_neuron


def single(neuron, profile="loihi2", n=1):
    """Input (n ints) -> neuron -> Output."""
    b = GraphBuilder("one")
    b.add("in", Input(shape=(n,)))
    b.add("n", neuron)
    b.add("out", Output(shape=(n,)))
    b.chain("in", "n", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile=profile)
    assert verify(g) == [], verify(g)
    return g


def run1(g, xs):
    x = np.array(xs, dtype=np.int64).reshape(len(xs), 1, -1)
    return run_fixed(g, x)


def lif(**kw):
    kw.setdefault("vth", (1 << 17) - 1)
    return make_neuron(FixedLIF, kw.pop("shape", (1,)), **kw)


def test_du_zero_still_decays():
    # a = 16 -> u = 1024; then 1024*4095/4096 = 1023.75 -> 1023 -> 1022 (du + 1 quirk)
    r = run1(single(lif(du=0, dv=4095)), [16, 0, 0])
    assert r.states["i/n"][:, 0, 0].tolist() == [1024, 1023, 1022]
    g = single(lif(du=0, input_shift=0, u_bits=24, v_bits=24), profile="fpga")
    assert run1(g, [1000, 0, 0]).states["i/n"][:, 0, 0].tolist() == [1000, 999, 998]


def test_du_4095_zeroes_current_and_dv_0_integrates():
    r = run1(single(lif(du=4095, dv=0)), [1, 2, 0])
    assert r.states["i/n"][:, 0, 0].tolist() == [64, 128, 0]
    assert r.states["v/n"][:, 0, 0].tolist() == [64, 192, 192]


def test_u_wraps_once_lava_examples():
    for a, u in [(131072, 8388608), (131073, -8388544), (-131072, 8388608), (200000, -3977216)]:
        r = run1(single(lif(du=4095, dv=4095)), [a])
        assert int(r.states["i/n"][0, 0, 0]) == u, a


def test_v_clips_symmetrically():
    r = run1(single(lif(du=4095, dv=0)), [100000, 100000, -131000, -131000, -131000, -131000])
    v = r.states["v/n"][:, 0, 0].tolist()
    # 12.8e6 clips to 8388607 > vth<<6 = 8388544: spike, v = 0
    assert v[:2] == [6400000, 0] and r.spikes["n"][:2, 0, 0].tolist() == [0, 1]
    assert v[2:] == [-8384000, -8388607, -8388607, -8388607]


def test_trunc_toward_zero_of_negative_membrane():
    # v = -100*64 = -6400 then dv=2048 halves toward zero: -3200, -1600 ...; odd: -4 -> -2 -> -1 -> 0
    r = run1(single(lif(dv=2048)), [-100, 0, 0])
    assert r.states["v/n"][:, 0, 0].tolist() == [-6400, -3200, -1600]
    g = single(lif(dv=2048, input_shift=0, bias_mant=0), profile="fpga")
    assert run1(g, [-5, 0, 0, 0]).states["v/n"][:, 0, 0].tolist() == [-5, -2, -1, 0]


def test_spike_strict_and_zero_reset_keeps_u():
    # vth=1 -> theta=64; v=64 is not > 64; then u=64*2047/4096 -> 31, v=95 > 64 -> spike, v=0
    r = run1(single(lif(vth=1, du=2048, dv=0)), [1, 0, 2])
    assert r.spikes["n"][:, 0, 0].tolist() == [0, 1, 1]
    assert r.states["i/n"][:, 0, 0].tolist() == [64, 31, 15 + 128]  # u untouched by spikes
    assert r.states["v/n"][:, 0, 0].tolist() == [64, 0, 0]


def test_bias_mantissa_exponent():
    r = run1(single(lif(bias_mant=3, bias_exp=2, dv=0)), [0, 0])
    assert r.states["v/n"][:, 0, 0].tolist() == [12, 24]
    g = single(lif(bias_mant=-3, bias_exp=-1, dv=0, input_shift=0), profile="fpga")
    assert run1(g, [0, 0]).states["v/n"][:, 0, 0].tolist() == [-2, -4]  # floor(-1.5) = -2


def test_reset_modes_fpga():
    kw = dict(vth=10, vth_shift=0, input_shift=0, dv=0, v_bits=16, u_bits=16,
              v_overflow=Overflow.SATURATE, u_overflow=Overflow.SATURATE)
    xs = [12, 0, 25, 0, 0]

    def v_s(reset, **extra):
        r = run1(single(lif(reset=reset, **kw, **extra), profile="fpga"), xs)
        return r.states["v/n"][:, 0, 0].tolist(), r.spikes["n"][:, 0, 0].tolist()

    assert v_s(ResetMode.ZERO, v_reset=-1) == ([-1, -1, -1, -1, -1], [1, 0, 1, 0, 0])
    assert v_s(ResetMode.SUBTRACT) == ([2, 2, 17, 7, 7], [1, 0, 1, 1, 0])
    assert v_s(ResetMode.SUBTRACT_DEFERRED) == ([12, 2, 27, 17, 7], [1, 0, 1, 1, 0])
    assert v_s(ResetMode.NONE) == ([12, 12, 37, 37, 37], [1, 1, 1, 1, 1])
    assert v_s(ResetMode.ZERO_HOLD) == ([12, 0, 25, 0, 0], [1, 0, 1, 0, 0])
    # nodelay (float IR rule): r = cmp(v_prev); m = base - theta*r; s = cmp(m); v = m - theta*(s-r)
    assert v_s(ResetMode.SUBTRACT_NODELAY) == ([2, 2, 17, 17, 17], [1, 0, 1, 0, 0])
    from rsnn_compiler.ir import Comparator
    v, s = v_s(ResetMode.SUBTRACT, comparator=Comparator.GE)
    assert s[:3] == [1, 0, 1] and v[2] == 17


def test_dense_shift_floors_sum_and_graded_payload():
    b = GraphBuilder("d")
    b.add("in", Input(shape=(3,)))
    b.add("fc", FixedDense(weight=[[2, 4, -6], [254, -256, 0]], weight_exp=[-2, -2],
                           acc_overflow=Overflow.WRAP))
    b.add("out", Output(shape=(2,)))
    b.chain("in", "fc", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="loihi2")
    assert verify(g) == []
    r = run_fixed(g, np.array([[[1, 1, 1]], [[1, 0, 1]], [[3, 2, 0]]]))
    # sums: [0, -2] -> >>2 -> [0, -1]; [-4, 254] -> [-1, 63]; [14, 250] -> [3, 62]
    assert r.out[:, 0].tolist() == [[0, -1], [-1, 63], [3, 62]]


def test_dense_fpga_bias_and_saturation():
    b = GraphBuilder("d")
    b.add("in", Input(shape=(2,)))
    b.add("fc", FixedDense(weight=[[100, 100]], weight_exp=[3], bias=[5], acc_bits=11))
    b.add("out", Output(shape=(1,)))
    b.chain("in", "fc", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="fpga")
    assert verify(g) == []
    r = run_fixed(g, np.array([[[1, 0]], [[1, 1]], [[-1, -1]]]))
    assert r.out[:, 0, 0].tolist() == [805, 1023, -1024]
    g2 = g.with_node("fc", g.nodes["fc"].replace(acc_overflow=Overflow.WRAP))
    assert run_fixed(g2, np.array([[[1, 1]]])).out[0, 0, 0] == 1605 - 2048


def test_conv1d_and_pools():
    b = GraphBuilder("c")
    b.add("in", Input(shape=(1, 5)))
    b.add("conv", FixedConv1d(weight=[[[1, -2, 3]]], weight_exp=[0], input_shape=(1, 5), padding=1))
    b.add("pool", Pool(mode=PoolMode.MAX, kernel=2, stride=2, input_shape=(1, 5), padding=1))
    b.add("out", Output(shape=(1, 3)))
    b.chain("in", "conv", "pool", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="fpga")
    assert verify(g) == []
    x = np.array([1, 2, 3, 4, 5]).reshape(1, 1, 1, 5)
    # conv (padding 1) on [0,1,2,3,4,5,0]: [-2+6, 1-4+9, 2-6+12, 3-8+15, 4-10] = [4, 6, 8, 10, -6]
    # max pool k2 s2 pad1: [pad, 4], [6, 8], [10, -6] -> [4, 8, 10]
    assert run_fixed(g, x).out[0, 0, 0].tolist() == [4, 8, 10]
    g2 = g.with_node("pool", g.nodes["pool"].replace(mode=PoolMode.SUM))
    assert run_fixed(g2, x).out[0, 0, 0].tolist() == [4, 14, 4]


def test_quantize_input_rounds_half_up_and_clips():
    b = GraphBuilder("q")
    b.add("in", Input(shape=(5,)))
    b.add("q", Quantize(shape=(5,), shift=2, bits=4, signed=True))
    b.add("out", Output(shape=(5,)))
    b.chain("in", "q", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="fpga")
    x = np.array([0.125, -0.125, 0.3, 5.0, -5.0]).reshape(1, 1, 5)
    assert run_fixed(g, x).out[0, 0].tolist() == [1, 0, 1, 7, -8]


def test_integer_input_required_without_quantizer():
    g = single(lif())
    with pytest.raises(UserInputError, match="integer inputs"):
        run_fixed(g, np.array([[[0.5]]]))
    assert run_fixed(g, np.array([[[2.0]]])).states["v/n"][0, 0, 0] == 128


def test_dual_threshold_if():
    op = make_neuron(FixedDualIF, (1,), vth=1, vth_neg=0, v_init=32)  # theta = 64, v0 = theta/2
    g = single(op)
    r = run1(g, [1, -1, -1, -1, 0])
    # m: 32+64=96 >= 64 -> +1, v=32, c=1; m=32-64=-32 < 0 & c>0 -> -1, v=32, c=0;
    # m=-32, c=0 -> 0, v=-32; m=-96 -> 0; m=-96 -> 0
    assert r.spikes["n"][:, 0, 0].tolist() == [1, -1, 0, 0, 0]
    assert r.states["v/n"][:, 0, 0].tolist() == [32, 32, -32, -96, -96]
    assert r.states["c/n"][:, 0, 0].tolist() == [1, 0, 0, 0, 0]


def test_multi_threshold_graded():
    op = make_neuron(FixedMultiThreshold, (1,), vth=1, levels=3, v_init=32, reset="zero")
    r = run1(single(op), [1, 2, 10, -3, 0])
    # m = 32 + 64x: 96 -> 1; 160 -> 2; 672 -> 3 (clipped); -160 -> 0; 32 -> 0
    assert r.spikes["n"][:, 0, 0].tolist() == [1, 2, 3, 0, 0]
    assert r.states["v/n"][:, 0, 0].tolist() == [32] * 5
    burst = make_neuron(FixedMultiThreshold, (1,), vth=1, levels=3, reset="subtract")
    r = run1(single(burst), [5, 0, 0, -1])
    # 320 -> n=3, v=128; 128 -> 2, v=0; 0 -> 0; -64 -> floor(-1) -> 0, v=-64
    assert r.spikes["n"][:, 0, 0].tolist() == [3, 2, 0, 0]
    assert r.states["v/n"][:, 0, 0].tolist() == [128, 0, 0, -64]


def test_alif_threshold_adapts():
    op = make_neuron(FixedALIF, (1,), vth=1, dv=0, da=2048, a_inc=64, reset="subtract")
    r = run1(single(op), [2, 2, 0, 0])
    # step0: v=128 > 64 -> s, v=64, a=64; step1: v=192 > 128 -> s, v=64, a=32+64=96;
    # step2: v=64 > 160? no, a=48; step3: no, a=24
    assert r.spikes["n"][:, 0, 0].tolist() == [1, 1, 0, 0]
    assert r.states["a/n"][:, 0, 0].tolist() == [64, 96, 48, 24]
    assert r.states["v/n"][:, 0, 0].tolist() == [64, 64, 64, 64]


def test_li_readout_emits_v():
    op = make_neuron(FixedLI, (1,), du=4095, dv=2048)
    r = run1(single(op), [1, 0, 0])
    assert r.out[:, 0, 0].tolist() == [64, 32, 16]
    assert "n" not in r.spikes


def test_delay_edges_and_recurrence_timing():
    # in -> lif (delay 0); lif -> lif (delay 2, via a dense +1); a spike at t reaches v at t+2
    b = GraphBuilder("rec")
    b.add("in", Input(shape=(1,)))
    b.add("n", lif(vth=1, dv=0, du=4095, reset="zero"))
    b.add("rec", FixedDense(weight=[[2]], weight_exp=[-1], acc_overflow=Overflow.WRAP))
    b.add("d", Delay(shape=(1,), steps=1))
    b.add("out", Output(shape=(1,)))
    b.chain("in", "n", "out")
    b.connect("n", "rec", 2)
    b.connect("rec", "n")
    b.connect("in", "d")
    b.connect("d", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="loihi2")
    assert verify(g) == []
    r = run_fixed(g, np.array([2, 0, 0, 0, 0]).reshape(5, 1, 1))
    assert r.spikes["n"][:, 0, 0].tolist() == [1, 0, 0, 0, 0]
    assert r.states["v/n"][:, 0, 0].tolist() == [0, 0, 64, 64, 64]
    assert r.out[:, 0, 0].tolist() == [1, 2, 0, 0, 0]  # spikes + input delayed by one


def lava_lif_scalar(a_seq, du, dv, vth, bias_mant, bias_exp):
    """Independent scalar model written from the Lava notes (Python ints)."""
    u = v = 0
    out = []
    for a in a_seq:
        prod = u * (4096 - (du + 1))
        u = (abs(prod) >> 12) * (1 if prod >= 0 else -1) + a * 64
        if u > 1 << 23:
            u -= 1 << 24
        elif u <= -(1 << 23):
            u += 1 << 24
        prod = v * (4096 - dv)
        bias = bias_mant << bias_exp if bias_exp >= 0 else bias_mant >> -bias_exp
        v = (abs(prod) >> 12) * (1 if prod >= 0 else -1) + u + bias
        v = max(-(1 << 23) + 1, min((1 << 23) - 1, v))
        s = int(v > vth * 64)
        if s:
            v = 0
        out.append((u, v, s))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_loihi2_lif_matches_independent_scalar_model(seed):
    rng = np.random.default_rng(seed)
    n, steps = 6, 60
    du = rng.choice([0, 1, 4095, 100, 3000], n)
    dv = rng.choice([0, 4095, 7, 2000], n)
    vth = rng.integers(0, 1 << 17, n)
    bm = rng.integers(-4096, 4096, n)
    be = rng.integers(0, 8, n)
    op = make_neuron(FixedLIF, (n,), du=du, dv=dv, vth=vth, bias_mant=bm, bias_exp=be)
    g = single(op, n=n)
    x = rng.integers(-200000, 200000, (steps, 2, n)) * (rng.random((steps, 2, n)) < 0.3)
    r = run_fixed(g, x)
    for b in range(2):
        for j in range(n):
            ref = lava_lif_scalar(x[:, b, j].tolist(), int(du[j]), int(dv[j]), int(vth[j]), int(bm[j]), int(be[j]))
            assert r.states["i/n"][:, b, j].tolist() == [t[0] for t in ref]
            assert r.states["v/n"][:, b, j].tolist() == [t[1] for t in ref]
            assert r.spikes["n"][:, b, j].tolist() == [t[2] for t in ref]


@pytest.mark.parametrize("groups,stride,padding,dilation", [(1, 1, 0, 1), (2, 2, 1, 1), (1, (1, 2), (1, 0), (2, 1))])
def test_conv2d_matches_torch_exactly(groups, stride, padding, dilation):
    import torch
    import torch.nn.functional as F

    from rsnn_compiler.interpreter.fixed_interp import conv_int
    from rsnn_compiler.ir import FixedConv2d

    rng = np.random.default_rng(0)
    w = rng.integers(-256, 256, (4, 4 // groups, 3, 2))
    op = FixedConv2d(weight=w, weight_exp=[0] * 4, input_shape=(4, 7, 6), stride=stride,
                     padding=padding, dilation=dilation, groups=groups)
    x = rng.integers(-1000, 1000, (3, 4, 7, 6))
    ref = F.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(), None,
                   op.stride, op.padding, op.dilation, groups).numpy().astype(np.int64)
    got = conv_int(x, op)
    assert got.shape == (3, *op.out_shape) and np.array_equal(got, ref)


def test_dense_sum_is_exact_in_every_regime():
    """DenseSum (float32 below 2^24, float64 below 2^53, else int64) equals numpy's int64 matmul,
    also with partial sums just under each bound (where a float of the next smaller kind rounds)."""
    from rsnn_compiler.interpreter.fixed_interp import DenseSum

    rng = np.random.default_rng(0)
    for w_max, x_max in ((127, 1), (4095, 4095), (1 << 20, 1 << 12), (1 << 30, 1 << 30)):
        w = rng.integers(-w_max, w_max + 1, (17, 300))
        x = rng.integers(-x_max, x_max + 1, (5, 300))
        x[0] = x_max  # extreme rows: the largest sums the bound allows
        w[0] = w_max
        assert np.array_equal(DenseSum(w)(x), x @ w.T), (w_max, x_max)
