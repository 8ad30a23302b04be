"""Every op of the float interpreter against values computed by hand."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rsnn_compiler.interpreter import run_float
from rsnn_compiler.ir import (
    ALIF, IF, LI, LIF, Affine, BatchNorm, Comparator, Conv1d, Conv2d, CubaLI, CubaLIF, Delay,
    Flatten, GraphBuilder, Identity, Input, Output, Pool, PoolMode, ResetMode, Scale, Threshold,
    broadcast_params,
)


def single(op, in_shape, out_shape=None, delay=0):
    """input -> op -> output graph."""
    b = GraphBuilder("t")
    b.add("in", Input(shape=in_shape))
    b.add("op", op)
    b.add("out", Output(shape=out_shape or op.out_shape))
    b.connect("in", "op", delay)
    b.connect("op", "out")
    return b.build()


def run1(op, x, in_shape=None):
    x = np.asarray(x, dtype=np.float32)
    g = single(op, in_shape or tuple(x.shape[2:]))
    return run_float(g, x)


def neuron(cls, n=1, **kw):
    defaults = {"gain": 1.0, "bias": 0.0, "v_init": 0.0}
    if cls in (LIF, IF, CubaLIF, ALIF):
        defaults.update(theta=1.0, v_reset=0.0)
    if cls in (CubaLIF, CubaLI):
        defaults.pop("gain")
        defaults.update(gain_i=1.0, gain_v=1.0)
    if cls is ALIF:
        defaults.update(rho=0.5, kappa=0.0)
    enums = {k: kw.pop(k) for k in ("reset", "comparator") if k in kw}
    params = {**defaults, **kw}
    return cls(**broadcast_params((n,), **params), **enums)


def seq(values):
    """(T,) -> (T, 1, 1) input."""
    return np.asarray(values, dtype=np.float32).reshape(-1, 1, 1)


# ---------------------------------------------------------------------- stateless ops
def test_affine():
    op = Affine(weight=[[1, 2], [-1, 0.5]], bias=[0.5, -1])
    r = run1(op, [[[1.0, 3.0]]])
    np.testing.assert_array_equal(r.out[0, 0], [1 + 6 + 0.5, -1 + 1.5 - 1])


def test_dense_without_bias_and_scale():
    r = run1(Affine(weight=[[2.0, 0.0, 1.0]]), [[[1.0, 5.0, -1.0]]])
    assert r.out[0, 0, 0] == 1.0
    r = run1(Scale(scale=[2.0, -0.5]), [[[3.0, 4.0]]])
    np.testing.assert_array_equal(r.out[0, 0], [6.0, -2.0])


def test_conv1d_stride_padding():
    # weight (1 out, 1 in, 2 taps) = [1, -1], padding 1, stride 2 on [1, 2, 4]
    op = Conv1d(weight=[[[1.0, -1.0]]], bias=[0.5], input_shape=(1, 3), stride=2, padding=1)
    assert op.out_shape == (1, 2)
    r = run1(op, [[[[1.0, 2.0, 4.0]]]])
    # padded: [0, 1, 2, 4, 0]; windows at 0 and 2: (0 - 1), (2 - 4); + 0.5
    np.testing.assert_array_equal(r.out[0, 0, 0], [-0.5, -1.5])


def test_conv2d_groups():
    w = np.zeros((2, 1, 1, 1), np.float32)
    w[0, 0, 0, 0], w[1, 0, 0, 0] = 2.0, -1.0
    op = Conv2d(weight=w, input_shape=(2, 2, 2), groups=2)
    x = np.arange(8, dtype=np.float32).reshape(1, 1, 2, 2, 2)
    r = run1(op, x)
    np.testing.assert_array_equal(r.out[0, 0, 0], 2 * x[0, 0, 0])
    np.testing.assert_array_equal(r.out[0, 0, 1], -x[0, 0, 1])


@pytest.mark.parametrize(
    "mode,expected",
    [(PoolMode.SUM, [[10.0]]), (PoolMode.AVG, [[2.5]]), (PoolMode.MAX, [[4.0]])],
)
def test_pool2d(mode, expected):
    op = Pool(mode=mode, kernel=(2, 2), stride=(2, 2), input_shape=(1, 2, 3))
    x = np.array([1, 2, 9, 3, 4, 9], np.float32).reshape(1, 1, 1, 2, 3)
    r = run1(op, x)
    np.testing.assert_array_equal(r.out[0, 0, 0], expected)


def test_pool1d_avg_counts_padding():
    op = Pool(mode=PoolMode.AVG, kernel=2, stride=2, padding=1, input_shape=(1, 2))
    r = run1(op, np.array([4.0, 6.0], np.float32).reshape(1, 1, 1, 2))
    np.testing.assert_array_equal(r.out[0, 0, 0], [2.0, 3.0])  # (0+4)/2, (6+0)/2


def test_flatten_row_major():
    op = Flatten(input_shape=(2, 3))
    x = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    r = run1(op, x)
    assert op.out_shape == (6,)
    np.testing.assert_array_equal(r.out[0, 0], np.arange(6))


def test_batchnorm():
    op = BatchNorm(mean=[1.0], var=[4.0], gamma=[2.0], beta=[0.5], eps=0.0, shape=(1, 2))
    r = run1(op, np.array([3.0, 5.0], np.float32).reshape(1, 1, 1, 2))
    np.testing.assert_allclose(r.out[0, 0, 0], [2 * (3 - 1) / 2 + 0.5, 2 * (5 - 1) / 2 + 0.5])


def test_identity_and_delay_node():
    r = run1(Identity(shape=(1,)), seq([1, 2, 3]))
    np.testing.assert_array_equal(r.out[:, 0, 0], [1, 2, 3])
    r = run1(Delay(shape=(1,), steps=2), seq([1, 2, 3, 4]))
    np.testing.assert_array_equal(r.out[:, 0, 0], [0, 0, 1, 2])


def test_edge_delay():
    g = single(Identity(shape=(1,)), (1,), delay=1)
    r = run_float(g, seq([5, 6, 7]))
    np.testing.assert_array_equal(r.out[:, 0, 0], [0, 5, 6])


def test_threshold_comparators():
    r = run1(Threshold(theta=[1.0]), seq([0.5, 1.0, 1.5]))
    np.testing.assert_array_equal(r.out[:, 0, 0], [0, 0, 1])
    r = run1(Threshold(theta=[1.0], comparator=Comparator.GE), seq([0.5, 1.0, 1.5]))
    np.testing.assert_array_equal(r.out[:, 0, 0], [0, 1, 1])


# ---------------------------------------------------------------------- neurons
def lif_trace(reset, x, beta=0.5, theta=1.0, **kw):
    r = run1(neuron(LIF, beta=beta, theta=theta, reset=reset, **kw), seq(x))
    return r.out[:, 0, 0].tolist(), r.states["v/op"][:, 0, 0].tolist()


def test_lif_zero_reset():
    # v: 0.8 ; 0.4+0.8=1.2 > 1 -> spike, v=0 ; 0.8
    s, v = lif_trace(ResetMode.ZERO, [0.8, 0.8, 0.8])
    assert s == [0, 1, 0]
    assert v == pytest.approx([0.8, 0.0, 0.8])


def test_lif_zero_reset_to_v_reset():
    s, v = lif_trace(ResetMode.ZERO, [2.0, 0.0], v_reset=-0.25)
    assert s == [1, 0]
    assert v == pytest.approx([-0.25, -0.125])


def test_lif_subtract_reset():
    # 1.5 -> spike, v=0.5 ; 0.25+1.5=1.75 -> spike, v=0.75
    s, v = lif_trace(ResetMode.SUBTRACT, [1.5, 1.5])
    assert s == [1, 1]
    assert v == pytest.approx([0.5, 0.75])


def test_lif_subtract_deferred_snntorch_default():
    # t0: v=1.5 > 1 spike (no subtraction yet); t1: 0.75 + 0 - 1 = -0.25
    s, v = lif_trace(ResetMode.SUBTRACT_DEFERRED, [1.5, 0.0, 0.0])
    assert s == [1, 0, 0]
    assert v == pytest.approx([1.5, -0.25, -0.125])


def test_lif_subtract_nodelay():
    # t0: r=0, b=2.5, s=1, v=2.5-1=1.5 ; t1: r=[1.5>1]=1, b=0.75-1=-0.25, s=0, v=-0.25-(0-1)=0.75
    s, v = lif_trace(ResetMode.SUBTRACT_NODELAY, [2.5, 0.0])
    assert s == [1, 0]
    assert v == pytest.approx([1.5, 0.75])


def test_lif_zero_hold():
    # t0: v=1.5 spike ; t1: (1-1)*(...) = 0 -> input lost ; t2: 0.5*0 + 0.6
    s, v = lif_trace(ResetMode.ZERO_HOLD, [1.5, 5.0, 0.6])
    assert s == [1, 0, 0]
    assert v == pytest.approx([0.0 * 0 + 1.5, 0.0, 0.6])


def test_lif_no_reset():
    s, v = lif_trace(ResetMode.NONE, [1.5, 0.0, 0.0])
    assert s == [1, 0, 0]
    assert v == pytest.approx([1.5, 0.75, 0.375])


def test_lif_gain_bias_and_v_init():
    s, v = lif_trace(ResetMode.NONE, [1.0, 0.0], beta=0.5, gain=2.0, bias=0.25, v_init=1.0, theta=10.0)
    # t0: 0.5*1 + 2*1 + 0.25 = 2.75 ; t1: 1.375 + 0 + 0.25 = 1.625
    assert v == pytest.approx([2.75, 1.625])


def test_comparator_ge_fires_at_equality():
    s, _ = lif_trace(ResetMode.ZERO, [1.0], comparator=Comparator.GT)
    assert s == [0]
    s, _ = lif_trace(ResetMode.ZERO, [1.0], comparator=Comparator.GE)
    assert s == [1]


def test_if_integrates_without_leak():
    r = run1(neuron(IF, theta=2.0, reset=ResetMode.SUBTRACT), seq([0.9, 0.9, 0.9, 0.0]))
    assert r.out[:, 0, 0].tolist() == [0, 0, 1, 0]
    assert r.states["v/op"][:, 0, 0] == pytest.approx([0.9, 1.8, 0.7, 0.7])


def test_cuba_lif_uses_new_current_and_keeps_it_after_spike():
    op = neuron(CubaLIF, alpha=0.5, beta=0.5, theta=1.0, reset=ResetMode.ZERO)
    r = run1(op, seq([1.0, 1.0, 0.0]))
    # i: 1, 1.5, 0.75 ; v: 1 (no spike: 1 > 1 false), 0.5+1.5=2 spike -> 0, 0 + 0.75
    assert r.states["i/op"][:, 0, 0] == pytest.approx([1.0, 1.5, 0.75])
    assert r.out[:, 0, 0].tolist() == [0, 1, 0]
    assert r.states["v/op"][:, 0, 0] == pytest.approx([1.0, 0.0, 0.75])


def test_li_readout_emits_membrane():
    r = run1(neuron(LI, beta=0.5, bias=0.5), seq([1.0, 0.0]))
    np.testing.assert_allclose(r.out[:, 0, 0], [1.5, 1.25])
    assert "op" not in r.spikes


def test_cuba_li():
    r = run1(neuron(CubaLI, alpha=0.5, beta=0.5, gain_v=2.0), seq([1.0, 0.0]))
    # i: 1, 0.5 ; v: 2, 1 + 1 = 2
    np.testing.assert_allclose(r.out[:, 0, 0], [2.0, 2.0])


def test_alif_threshold_adapts():
    op = neuron(ALIF, beta=1.0, theta=1.0, rho=0.5, kappa=1.0, reset=ResetMode.ZERO)
    r = run1(op, seq([1.5, 1.5, 1.5]))
    # t0: v=1.5 > 1 spike, a=1 ; t1: theta_eff=2, v=1.5 no spike, a=0.5 ; t2: v=3 > 1.5 spike
    assert r.out[:, 0, 0].tolist() == [1, 0, 1]
    assert r.states["a/op"][:, 0, 0] == pytest.approx([1.0, 0.5, 1.25])


def test_alif_subtract_uses_effective_threshold():
    op = neuron(ALIF, beta=1.0, theta=1.0, rho=0.0, kappa=1.0, reset=ResetMode.SUBTRACT)
    r = run1(op, seq([2.5, 0.0]))
    # t0: theta_eff = 1, spike, v = 1.5, a = 1 ; t1: theta_eff = 2, v = 1.5 no spike
    assert r.out[:, 0, 0].tolist() == [1, 0]
    assert r.states["v/op"][:, 0, 0] == pytest.approx([1.5, 1.5])


def test_recurrent_loop_sees_previous_spikes_and_bias_from_t0():
    b = GraphBuilder("rec")
    b.add("in", Input(shape=(1,)))
    b.add("lif", neuron(LIF, beta=0.0, theta=0.5, reset=ResetMode.ZERO))
    b.add("rec", Affine(weight=[[10.0]], bias=[0.25]))
    b.add("out", Output(shape=(1,)))
    b.connect("in", "lif")
    b.connect("lif", "rec", 1)
    b.connect("rec", "lif")
    b.connect("lif", "out")
    r = run_float(b.build(), seq([1.0, 0.0, 0.0]))
    # t0: v = 1 + 0.25 (bias at t0, s[-1] = 0) spike; t1: rec = 10*1 + 0.25 spike; t2: again
    assert r.out[:, 0, 0].tolist() == [1, 1, 1]
    assert r.values["rec"][:, 0, 0] == pytest.approx([0.25, 10.25, 10.25])


def test_inputs_summed_and_batch_independent():
    b = GraphBuilder("sum")
    b.add("in", Input(shape=(1,)))
    b.add("a", Scale(scale=[2.0]))
    b.add("b", Scale(scale=[3.0]))
    b.add("out", Output(shape=(1,)))
    b.chain("in", "a", "out")
    b.chain("in", "b")
    b.connect("b", "out", 1)
    x = np.array([[[1.0], [10.0]], [[2.0], [20.0]]], np.float32)
    r = run_float(b.build(), x)
    np.testing.assert_array_equal(r.out[:, :, 0], [[2.0, 20.0], [4.0 + 3.0, 40.0 + 30.0]])


def test_wrong_input_shape_is_a_clear_error():
    from rsnn_compiler.errors import UserInputError

    with pytest.raises(UserInputError, match=r"expects \(time, batch, 1\)"):
        run1(Identity(shape=(1,)), np.zeros((2, 1, 3), np.float32), in_shape=(1,))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=2, max_size=40),
       st.sampled_from(list(Comparator)))
def test_fires_is_exactly_the_comparison(values, cmp):
    """fires() uses sign(v - theta); it must equal the comparison bit for bit in value, including
    equal operands, signed zeros, subnormals and operands far apart."""
    from rsnn_compiler.interpreter.float_interp import fires

    v = torch.tensor(values, dtype=torch.float32)
    for theta in (v.flip(0), v, torch.zeros_like(v), torch.full_like(v, -0.0), torch.full_like(v, 1e-45)):
        want = (v >= theta if cmp is Comparator.GE else v > theta).to(torch.float32)
        got = fires(v, theta, cmp)
        assert torch.equal(got, want), (v, theta, got, want)
        assert got.dtype == torch.float32
