"""Exact integer primitives of the fixed-point IR (numpy int64, vectorised).

Every function takes integer arrays (or Python ints) and returns int64 arrays; nothing rounds
through floating point except the explicit float encoders at the bottom. docs/fixed-point.md
states each rule; tests/test_fixed_arith.py checks them against arbitrary-precision Python ints.

Conventions: ``>>`` on int64 is an arithmetic shift (floor); ``trunc_shift`` rounds toward zero.
"""

from __future__ import annotations

import enum

import numpy as np

# The integer rules are part of the neuron definition (rsnn_compiler/neurons/intmath.py, loaded
# by path in the Lava environment); they are re-exported here for the rest of the compiler.
from rsnn_compiler.neurons.enums import Overflow
from rsnn_compiler.neurons.intmath import (  # noqa: F401
    DECAY_ONE, DECAY_SHIFT, decay, floor_div, floor_shift, i64, overflow, saturate, saturate_sym,
    shift, signed_range, trunc_shift, wrap, wrap_once,
)


def saturate_unsigned(x, bits: int) -> np.ndarray:
    return np.clip(i64(x), 0, (1 << bits) - 1)


# ------------------------------------------------------------------------------------
# Loihi 2 / Lava weight rules
# ------------------------------------------------------------------------------------
class SignMode(enum.Enum):
    MIXED = "mixed"
    EXCITATORY = "excitatory"
    INHIBITORY = "inhibitory"


def loihi_sign_mode(w) -> SignMode:
    """Lava's choice: EXC if min >= 0, INH if max <= 0 (an all-zero matrix is EXC), else MIXED."""
    w = i64(w)
    if w.size == 0 or w.min() >= 0:
        return SignMode.EXCITATORY
    if w.max() <= 0:
        return SignMode.INHIBITORY
    return SignMode.MIXED


def loihi_dropped_bits(num_weight_bits: int, mode: SignMode) -> int:
    """k = 8 - num_weight_bits + [MIXED]: low bits Lava drops from every weight."""
    return 8 - int(num_weight_bits) + (1 if mode is SignMode.MIXED else 0)


def loihi_weight_quantize(w, num_weight_bits: int = 8, mode: SignMode | None = None) -> np.ndarray:
    """What Lava 0.10's Dense makes of an integer weight matrix on its first step.

    Clip MIXED [-256, 255], EXC [0, 255], INH [-255, 0]; then drop k low bits by shifting right
    and left (floor; for INH applied to |w|, i.e. toward zero).
    """
    w = i64(w)
    mode = loihi_sign_mode(w) if mode is None else mode
    k = loihi_dropped_bits(num_weight_bits, mode)
    if mode is SignMode.MIXED:
        return (np.clip(w, -256, 255) >> k) << k
    if mode is SignMode.EXCITATORY:
        return (np.clip(w, 0, 255) >> k) << k
    mag = -np.clip(w, -255, 0)
    return -((mag >> k) << k)


def loihi_weights_exact(w, num_weight_bits: int = 8) -> bool:
    """True when Lava leaves the matrix unchanged (so our mantissas are what Lava uses)."""
    w = i64(w)
    return bool(np.array_equal(loihi_weight_quantize(w, num_weight_bits), w))


# ------------------------------------------------------------------------------------
# Float encoders (used by the quantization passes; the only float code in this module)
# ------------------------------------------------------------------------------------
def round_half_away(x) -> np.ndarray:
    """Round to nearest, ties away from zero, as int64."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)
    a = np.abs(x)  # sign(x) * floor(|x| + 1/2), in place (one temporary for millions of weights)
    a += 0.5
    np.floor(a, out=a)
    np.copysign(a, x, out=a)
    return a.astype(np.int64)


def choose_exponent(max_abs, mant_max: int, exp_lo: int = -64, exp_hi: int = 64) -> np.ndarray:
    """Smallest e in [exp_lo, exp_hi] with round(max_abs / 2^e) <= mant_max (elementwise).

    A zero ``max_abs`` gets ``exp_lo`` clipped to 0 from below (i.e. min(0, exp_hi) if allowed).
    """
    m = np.asarray(max_abs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        e = np.ceil(np.log2(np.where(m > 0, m, 1.0)) - np.log2(mant_max))
    e = np.clip(e, exp_lo, exp_hi).astype(np.int64)
    # fix rounding at the boundary: ensure round(m/2^e) <= mant_max, and e-1 would not fit
    e = np.where(round_half_away(m / np.exp2(e)) > mant_max, e + 1, e)
    e = np.where((e > exp_lo) & (round_half_away(m / np.exp2(e - 1)) <= mant_max), e - 1, e)
    e = np.where(m > 0, e, np.clip(0, exp_lo, exp_hi))
    return np.clip(e, exp_lo, exp_hi)


def encode_mant_exp(
    values, mant_bits: int, exp_lo: int = -64, exp_hi: int = 64, signed: bool = True, axis=None
) -> tuple[np.ndarray, np.ndarray]:
    """Encode floats as ``mant * 2^exp`` with ``mant`` in ``mant_bits`` (signed or unsigned).

    ``axis=None`` gives one exponent for the whole array; otherwise one per index along
    ``axis`` (e.g. per output channel, axis=0). Mantissas round half away from zero and saturate.
    Returns (mant int64 shaped like values, exp int64 shaped () or (values.shape[axis],)).
    """
    v = np.asarray(values, dtype=np.float64)
    mant_max = (1 << (mant_bits - 1)) - 1 if signed else (1 << mant_bits) - 1
    mant_min = -(1 << (mant_bits - 1)) if signed else 0
    if axis is None:
        e = choose_exponent(np.abs(v).max() if v.size else 0.0, mant_max, exp_lo, exp_hi)
        eb = e
    else:
        red = tuple(i for i in range(v.ndim) if i != axis % v.ndim)
        e = choose_exponent(np.abs(v).max(axis=red) if v.size else 0.0, mant_max, exp_lo, exp_hi)
        shape = [1] * v.ndim
        shape[axis] = -1
        eb = e.reshape(shape)
    mant = np.clip(round_half_away(v / np.exp2(eb)), mant_min, mant_max)
    return mant.astype(np.int64), np.asarray(e, dtype=np.int64)


def decode_mant_exp(mant, exp) -> np.ndarray:
    """mant * 2^exp as float64 (exact for |mant| < 2^53)."""
    return np.asarray(mant, dtype=np.float64) * np.exp2(np.asarray(exp, dtype=np.float64))


def encode_loihi_weights(w, num_weight_bits: int = 8, exp_lo: int = -8, exp_hi: int = 7):
    """Encode a float matrix for a Lava Dense: returns (mantissa, weight_exp, clipped_fraction).

    Mixed-sign matrices use even mantissas in [-254, 254] (Lava drops the LSB; -256 is left out
    so the grid is symmetric and re-encoding a snapped matrix is exact); single-sign ones use
    [0, 255] or [-255, 0]. Values round to the nearest representable
    multiple of 2^k (ties away from zero); the result is a fixed point of
    ``loihi_weight_quantize`` so Lava uses it unchanged.
    """
    w = np.asarray(w, dtype=np.float64)
    if w.size and w.min() < 0 < w.max():
        mode = SignMode.MIXED
    elif w.size and w.max() <= 0 and w.min() < 0:
        mode = SignMode.INHIBITORY
    else:
        mode = SignMode.EXCITATORY
    k = loihi_dropped_bits(num_weight_bits, mode)
    step = 1 << k
    lo, hi = {SignMode.MIXED: (-254, 254), SignMode.EXCITATORY: (0, 255),
              SignMode.INHIBITORY: (-255, 0)}[mode]
    hi_q, lo_q = (hi // step) * step, -((-lo) // step) * step
    if hi_q == lo_q == 0:  # 1-bit mixed: Lava keeps only {-256, 0}
        lo_q = -256
    mant_max = max(hi_q, -lo_q)
    e = int(choose_exponent(np.abs(w).max() if w.size else 0.0, mant_max, exp_lo, exp_hi))
    q = round_half_away(w / np.exp2(e) / step) * step
    clipped = float(np.mean((q > hi_q) | (q < lo_q))) if w.size else 0.0
    q = np.clip(q, lo_q, hi_q).astype(np.int64)
    if not loihi_weights_exact(q, num_weight_bits):
        # rounding emptied one sign of a mixed matrix: Lava would now pick EXC/INH, whose
        # ranges exclude -256; stay inside the range every mode keeps exactly
        q = np.clip(q, -(255 // step) * step, (255 // step) * step)
    return q, e, clipped
