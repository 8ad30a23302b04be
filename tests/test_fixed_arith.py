"""Property tests of rsnn_compiler.fixed.arith against arbitrary-precision Python ints."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsnn_compiler.fixed import arith as A
from rsnn_compiler.fixed.arith import Overflow, SignMode

I40 = st.integers(-(1 << 40), (1 << 40))
I62 = st.integers(-(1 << 62), (1 << 62) - 1)
BITS = st.integers(2, 48)
FAST = settings(max_examples=100, deadline=None)  # per test: no global hypothesis profile


def py_trunc_shift(x: int, n: int) -> int:
    q = abs(x) // (1 << n)
    return -q if x < 0 else q


def py_wrap(x: int, b: int) -> int:
    m = 1 << b
    r = x % m
    return r - m if r >= m // 2 else r


def py_wrap_once(x: int, b: int) -> int:
    half = 1 << (b - 1)
    if x > half:
        return x - 2 * half
    if x <= -half:
        return x + 2 * half
    return x


@FAST
@given(I62, st.integers(0, 62))
def test_trunc_shift_rounds_toward_zero(x, n):
    assert int(A.trunc_shift(x, n)) == py_trunc_shift(x, n)
    assert int(A.floor_shift(x, n)) == x >> n


@FAST
@given(I40, st.integers(-20, 20))
def test_shift_signed_exponent(x, e):
    expected = x << e if e >= 0 else x >> -e  # Python >> floors
    assert int(A.shift(x, e)) == expected


@FAST
@given(st.lists(I40, min_size=1, max_size=8), st.integers(-12, 12))
def test_shift_vectorised_per_channel(xs, e):
    x = np.array(xs)
    es = np.array([e, -e] * len(xs))[: len(xs)]
    got = A.shift(x, es)
    assert [int(v) for v in got] == [a << b if b >= 0 else a >> -b for a, b in zip(xs, es)]


@FAST
@given(I62, BITS)
def test_wrap_twos_complement(x, b):
    assert int(A.wrap(x, b)) == py_wrap(x, b)
    lo, hi = A.signed_range(b, Overflow.WRAP)
    assert lo <= int(A.wrap(x, b)) <= hi


@FAST
@given(st.integers(-(3 << 30) + 1, (3 << 30) - 1), st.integers(2, 31))
def test_wrap_once(x, b):
    got = int(A.wrap_once(x, b))
    assert got == py_wrap_once(x, b)
    if abs(x) < 3 << (b - 1):
        assert -(1 << (b - 1)) < got <= 1 << (b - 1)


def test_wrap_once_lava_examples():
    a = np.array([131072, 131073, -131072, 200000])
    assert A.wrap_once(a << 6, 24).tolist() == [8388608, -8388544, 8388608, -3977216]


@FAST
@given(I62, BITS)
def test_saturate(x, b):
    half = 1 << (b - 1)
    assert int(A.saturate(x, b)) == min(max(x, -half), half - 1)
    assert int(A.saturate_sym(x, b)) == min(max(x, -(half - 1)), half - 1)
    assert int(A.saturate_unsigned(x, b)) == min(max(x, 0), (1 << b) - 1)
    for mode in Overflow:
        lo, hi = A.signed_range(b, mode)
        if lo <= x <= hi:
            assert int(A.overflow(x, b, mode)) == x


@FAST
@given(st.integers(-(1 << 40), 1 << 40), st.integers(0, 4096))
def test_decay_is_trunc0_of_product(x, d):
    assert int(A.decay(x, d)) == py_trunc_shift(x * (4096 - d), 12)


def test_decay_examples():
    u = 1000
    seq = []
    for _ in range(3):
        u = int(A.decay(u, 0 + 1))  # du = 0 with Lava's +1
        seq.append(u)
    assert seq == [999, 998, 997]
    assert int(A.decay(-1000, 1)) == -999
    assert int(A.decay(12345, 4096)) == 0
    assert int(A.decay(-5, 2048)) == -2  # -2.5 toward zero


@FAST
@given(I40, st.integers(1, 1 << 20))
def test_floor_div(x, y):
    assert int(A.floor_div(x, y)) == x // y


# --- Lava weight rules ------------------------------------------------------------
def test_loihi_weight_examples():
    w = np.array([3, -3, 255, -256, 1])
    assert A.loihi_weight_quantize(w, 8).tolist() == [2, -4, 254, -256, 0]
    assert A.loihi_sign_mode(np.zeros(3, int)) is SignMode.EXCITATORY
    assert A.loihi_weight_quantize(np.array([-3, -256]), 8).tolist() == [-3, -255]
    assert A.loihi_weight_quantize(np.array([3, 300]), 6).tolist() == [0, 252]


@FAST
@given(st.lists(st.integers(-300, 300), min_size=1, max_size=12), st.integers(1, 8))
def test_loihi_weight_quantize_model(ws, nwb):
    w = np.array(ws)
    mode = "mixed" if min(ws) < 0 < max(ws) else ("inh" if max(ws) <= 0 and min(ws) < 0 else "exc")
    k = 8 - nwb + (mode == "mixed")
    out = []
    for x in ws:
        if mode == "mixed":
            c = min(max(x, -256), 255)
            out.append((c >> k) << k)
        elif mode == "exc":
            out.append(((min(max(x, 0), 255)) >> k) << k)
        else:
            out.append(-((-min(max(x, -255), 0) >> k) << k))
    q = A.loihi_weight_quantize(w, nwb)
    assert q.tolist() == out
    # quantizing twice is idempotent unless the sign mode changed
    if A.loihi_sign_mode(q) is A.loihi_sign_mode(w):
        assert A.loihi_weights_exact(q, nwb)


@FAST
@given(
    st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=20),
    st.integers(1, 8),
)
def test_encode_loihi_weights_is_lava_fixed_point(ws, nwb):
    w = np.array(ws)
    q, e, clipped = A.encode_loihi_weights(w, nwb)
    assert A.loihi_weights_exact(q, nwb)
    assert -8 <= e <= 7 and 0.0 <= clipped <= 1.0
    assert q.min() >= -256 and q.max() <= 255


# --- mantissa / exponent ----------------------------------------------------------
@FAST
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=16),
    st.integers(2, 16),
)
def test_encode_mant_exp_fits_and_is_tight(vs, bits):
    v = np.array(vs)
    mant, e = A.encode_mant_exp(v, bits)
    lim = (1 << (bits - 1)) - 1
    assert np.abs(mant).max() <= lim + 1
    if np.abs(v).max() > 0:
        # error at most half a step (no clipping happens since the exponent was chosen to fit)
        err = np.abs(A.decode_mant_exp(mant, e) - v).max()
        assert err <= 0.5 * 2.0 ** int(e) * (1 + 1e-12)
        # tight: one exponent lower would overflow the mantissa (unless clamped at exp_lo)
        if int(e) > -64:
            assert A.round_half_away(np.abs(v).max() / 2.0 ** (int(e) - 1)) > lim


@FAST
@given(st.integers(-(1 << 12), (1 << 12) - 1), st.integers(-8, 8))
def test_encode_mant_exp_exact_for_representable(m, e):
    value = m * 2.0**e
    mant, exp = A.encode_mant_exp(np.array([value]), 13, exp_lo=-8, exp_hi=8)
    assert float(A.decode_mant_exp(mant, exp)[0]) == value


def test_encode_mant_exp_per_channel():
    w = np.array([[1.0, -0.5], [100.0, 3.0], [0.0, 0.0]])
    mant, e = A.encode_mant_exp(w, 8, axis=0)
    assert e.shape == (3,)
    assert np.abs(mant).max() <= 127
    np.testing.assert_allclose(A.decode_mant_exp(mant, e[:, None]), w, atol=0.5)
    assert mant[2].tolist() == [0, 0]


@pytest.mark.parametrize("x,expected", [(0.5, 1), (-0.5, -1), (1.49, 1), (-2.5, -3), (2.4999, 2)])
def test_round_half_away(x, expected):
    assert int(A.round_half_away(x)) == expected
