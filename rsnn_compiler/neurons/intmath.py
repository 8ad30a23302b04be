"""Exact integer rules of the fixed-point IR on numpy int64 (docs/fixed-point.md §2).

Part of the self-contained neuron definition (imports only numpy). ``rsnn_compiler.fixed.arith``
re-exports them; tests/test_fixed_arith.py checks each against arbitrary-precision Python ints.
``>>`` on int64 is an arithmetic shift (floor); ``trunc_shift`` rounds toward zero.
"""

from __future__ import annotations

import numpy as np

from .enums import Overflow

DECAY_SHIFT = 12
DECAY_ONE = 1 << DECAY_SHIFT  # 4096: a decay d keeps (4096 - d)/4096 per step


def i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def trunc_shift(x, n) -> np.ndarray:
    """x / 2^n rounded toward zero: sign(x) * (|x| >> n), n >= 0."""
    x, n = i64(x), i64(n)
    mag = np.abs(x) >> n
    return np.where(x < 0, -mag, mag)


def floor_shift(x, n) -> np.ndarray:
    """x / 2^n rounded toward -inf (arithmetic right shift), n >= 0."""
    return i64(x) >> i64(n)


def shift(x, e) -> np.ndarray:
    """x * 2^e exactly for e >= 0 (left shift); floor(x / 2^-e) for e < 0 (arithmetic shift)."""
    x, e = np.broadcast_arrays(i64(x), i64(e))
    return np.where(e >= 0, x << np.maximum(e, 0), x >> np.maximum(-e, 0))


def wrap(x, bits: int) -> np.ndarray:
    """Two's-complement wrap into [-2^(bits-1), 2^(bits-1))."""
    x = i64(x)
    if bits >= 64:
        return x
    half = np.int64(1) << np.int64(bits - 1)
    mask = (np.int64(1) << np.int64(bits)) - 1
    return ((x + half) & mask) - half


def wrap_once(x, bits: int) -> np.ndarray:
    """Lava's one-shot wrap: x - 2^bits if x > 2^(bits-1); x + 2^bits if x <= -2^(bits-1).

    The result lies in (-2^(bits-1), 2^(bits-1)] only when |x| < 3 * 2^(bits-1).
    """
    x = i64(x)
    half = np.int64(1) << np.int64(bits - 1)
    full = half << 1
    return np.where(x > half, x - full, np.where(x <= -half, x + full, x))


def saturate(x, bits: int) -> np.ndarray:
    """Clip to the two's-complement range [-2^(bits-1), 2^(bits-1) - 1]."""
    if bits >= 64:
        return i64(x)
    half = 1 << (bits - 1)
    return np.clip(i64(x), -half, half - 1)


def saturate_sym(x, bits: int) -> np.ndarray:
    """Clip to the symmetric range [-(2^(bits-1) - 1), 2^(bits-1) - 1]."""
    half = 1 << (bits - 1)
    return np.clip(i64(x), -(half - 1), half - 1)


def overflow(x, bits: int, mode: Overflow) -> np.ndarray:
    """Apply ``mode`` (see ``Overflow``) for a signed ``bits``-wide value."""
    if mode is Overflow.WRAP:
        return wrap(x, bits)
    if mode is Overflow.WRAP_ONCE:
        return wrap_once(x, bits)
    if mode is Overflow.SATURATE:
        return saturate(x, bits)
    return saturate_sym(x, bits)


def signed_range(bits: int, mode: Overflow = Overflow.SATURATE) -> tuple[int, int]:
    """Inclusive (lo, hi) that ``overflow(., bits, mode)`` can produce from in-range input."""
    half = 1 << (bits - 1)
    if mode is Overflow.WRAP_ONCE:
        return -half + 1, half
    if mode is Overflow.SATURATE_SYM:
        return -(half - 1), half - 1
    return -half, half - 1


def decay(x, d) -> np.ndarray:
    """One leak step: trunc0(x * (4096 - d) / 4096), d in 0..4096 (4096 zeroes x)."""
    return trunc_shift(i64(x) * (DECAY_ONE - i64(d)), DECAY_SHIFT)


def floor_div(x, y) -> np.ndarray:
    """floor(x / y) for y > 0 (Python semantics; C needs the negative-x correction)."""
    return i64(x) // i64(y)
