"""Domain checks for fixed-point graphs (docs/fixed-point.md §1, §4, §5).

``verify_domain(graph)`` returns every problem: ops not allowed in the graph's domain, non-integer
parameters, and parameter ranges of the graph's profile (constants from
``rsnn_compiler.fixed.profiles``, never inline).
"""

from __future__ import annotations

import numpy as np

from rsnn_compiler.fixed import arith
from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.fixed.profiles import PROFILES, FpgaSpec, Loihi2Spec
from rsnn_compiler.ir.fixed_ops import (
    FIXED_OP_CLASSES, FixedALIF, FixedDense, FixedDualIF, FixedMultiThreshold, FixedNeuron,
    Quantize, _CurrentNeuron, _FixedConv,
)
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import Delay, Flatten, Identity, Input, Op, Output, Pool, PoolMode, ResetMode

STRUCTURAL = (Input, Output, Identity, Flatten, Delay, Pool)


def _range(where: str, pname: str, arr, lo: int, hi: int, why: str) -> list[str]:
    arr = np.asarray(arr)
    bad = (arr < lo) | (arr > hi)
    if not bad.any():
        return []
    value = int(arr[tuple(np.argwhere(bad)[0])]) if arr.ndim else int(arr)
    return [f"{where}: '{pname}' = {value} is outside [{lo}, {hi}] ({why}); requantize it"]


def _attr(where: str, op: Op, name: str, expected, why: str) -> list[str]:
    got = getattr(op, name)
    if got != expected:
        shown = getattr(expected, "value", expected)
        return [f"{where}: {name} = {getattr(got, 'value', got)} but the profile needs {shown} ({why})"]
    return []


def _attr_in(where: str, op: Op, name: str, lo: int, hi: int, why: str) -> list[str]:
    return _range(where, name, getattr(op, name), lo, hi, why)


def _v_range(op: FixedNeuron) -> tuple[int, int]:
    return arith.signed_range(op.v_bits, op.v_overflow)


_WIDTHS = ("bits", "weight_bits", "acc_bits", "v_bits", "u_bits")  # 1..62 bits
_SHIFTS = ("shift", "input_shift", "vth_shift")  # |n| <= 62


def _widths_and_shifts(where: str, op: Op) -> list[str]:
    """Widths and shifts every other check computes with (ranges, shifts): out of range, those
    computations are meaningless, so they are reported alone."""
    p = [f"{where}: {n} = {getattr(op, n)} must be in 1..62" for n in _WIDTHS
         if hasattr(op, n) and not 1 <= getattr(op, n) <= 62]
    p += [f"{where}: {n} = {getattr(op, n)} must be in -62..62" for n in _SHIFTS
          if hasattr(op, n) and not -62 <= getattr(op, n) <= 62]
    if hasattr(op, "vth_shift") and op.vth_shift < 0:
        p.append(f"{where}: vth_shift = {op.vth_shift} must be >= 0")
    if hasattr(op, "levels") and op.levels < 1:
        p.append(f"{where}: levels = {op.levels} must be >= 1")
    return p


def _common(where: str, op: Op) -> list[str]:
    """Profile-independent sanity of fixed ops."""
    p: list[str] = []
    for pname, arr in op.arrays().items():
        if arr.dtype != np.int64:
            p.append(f"{where}: parameter '{pname}' is {arr.dtype}, fixed ops need int64")
    if isinstance(op, Quantize) and not 1 <= op.bits <= 62:
        p.append(f"{where}: Quantize bits {op.bits} must be in 1..62")
    if isinstance(op, (FixedDense, _FixedConv)):
        if op.weight_exp.shape != (op.weight.shape[0],):
            p.append(f"{where}: weight_exp must have one value per output ({op.weight.shape[0]})")
        if op.bias is not None and op.bias.shape != (op.weight.shape[0],):
            p.append(f"{where}: bias must have one value per output ({op.weight.shape[0]})")
        if isinstance(op, FixedDense) and op.weight.ndim != 2:
            p.append(f"{where}: weight must be 2-D (out, in), got {op.weight.shape}")
    if isinstance(op, FixedNeuron):
        lo, hi = _v_range(op)
        for name in ("v_init", "v_reset"):
            if name in op.array_fields:
                p += _range(where, name, getattr(op, name), lo, hi, f"{op.v_bits}-bit membrane")
        p += _range(where, "vth", op.vth, 0, 1 << 40, "thresholds are non-negative") if hasattr(op, "vth") else []
        if hasattr(op, "vth_neg"):
            p += _range(where, "vth_neg", op.vth_neg, lo >> op.vth_shift, hi >> op.vth_shift,
                        f"vth_neg << {op.vth_shift} must fit the {op.v_bits}-bit membrane")
        if isinstance(op, (FixedDualIF, FixedMultiThreshold)) and (op.vth <= 0).any():
            p.append(f"{where}: vth must be > 0 for {type(op).__name__}")
        if isinstance(op, FixedMultiThreshold):
            if op.levels < 1:
                p.append(f"{where}: levels must be >= 1")
            if op.reset not in (ResetMode.SUBTRACT, ResetMode.ZERO):
                p.append(f"{where}: multi-threshold reset must be 'subtract' or 'zero'")
        if isinstance(op, _CurrentNeuron):
            p += _range(where, "du", op.du, 0, 4095, "12-bit decay")
            p += _attr_in(where, op, "du_offset", 0, 1, "decay offset is 0 or 1")
        if hasattr(op, "dv"):
            p += _range(where, "dv", op.dv, 0, 4095, "12-bit decay")
        if isinstance(op, FixedALIF):
            p += _range(where, "da", op.da, 0, 4095, "12-bit decay")
            p += _range(where, "a_inc", op.a_inc, 0, hi, "threshold increment in v units")
    return p


def _loihi2(where: str, op: Op, spec: Loihi2Spec) -> list[str]:
    p: list[str] = []
    if isinstance(op, FixedDense):
        p += _attr_in(where, op, "weight_bits", 1, spec.weight_bits_max, "Lava num_weight_bits")
        if 1 <= op.weight_bits <= 8 and not arith.loihi_weights_exact(op.weight, op.weight_bits):
            p.append(
                f"{where}: weights are not representable on Loihi 2 with {op.weight_bits} bits"
                " (Lava would change them, e.g. mixed-sign matrices need even values in"
                " [-256, 254]); encode them with arith.encode_loihi_weights"
            )
        if op.weight_exp.size and (op.weight_exp != op.weight_exp.flat[0]).any():
            p.append(f"{where}: Loihi 2 Dense has one weight_exp per layer; use per-layer exponents")
        p += _range(where, "weight_exp", op.weight_exp, *spec.weight_exp_range, "Loihi 2 weight exponent")
        if op.bias is not None:
            p.append(f"{where}: Lava Dense has no bias; move it into the neuron's bias_mant/bias_exp")
        p += _attr(where, op, "acc_bits", spec.dense_acc_bits, "Lava sends a_out as int32")
        p += _attr(where, op, "acc_overflow", spec.dense_acc_overflow, "int32 cast wraps")
    elif isinstance(op, _FixedConv):
        p += _range(where, "weight", op.weight, *spec.conv_weight_range, "8-bit conv weights")
        p += _range(where, "weight_exp", op.weight_exp, 0, 0, "Lava Conv ignores weight_exp")
        if op.bias is not None:
            p.append(f"{where}: Lava Conv has no bias; move it into the neuron")
        p += _attr(where, op, "acc_bits", spec.conv_acc_bits, "Lava Conv wraps to 24 bits")
        p += _attr(where, op, "acc_overflow", spec.conv_acc_overflow, "Lava Conv wraps to 24 bits")
    elif isinstance(op, Quantize):
        p += _attr_in(where, op, "bits", 1, spec.message_bits_max, "graded payload width")
    elif isinstance(op, FixedNeuron):
        p += _attr(where, op, "input_shift", spec.input_shift, "Lava adds a << 6")
        p += _attr(where, op, "v_bits", spec.v_bits, "24-bit membrane")
        p += _attr(where, op, "v_overflow", spec.v_overflow, "Lava clips v to +-(2^23-1)")
        if hasattr(op, "vth_shift"):
            p += _attr(where, op, "vth_shift", spec.vth_shift, "Lava compares with vth << 6")
            p += _range(where, "vth", op.vth, *spec.vth_range, "17-bit threshold mantissa")
        if hasattr(op, "vth_neg"):
            p += _range(where, "vth_neg", op.vth_neg, -spec.vth_range[1], spec.vth_range[1],
                        "17-bit threshold mantissa")
        p += _range(where, "bias_mant", op.bias_mant, *spec.bias_mant_range, "13-bit bias mantissa")
        p += _range(where, "bias_exp", op.bias_exp, *spec.bias_exp_range, "3-bit bias exponent")
        if isinstance(op, _CurrentNeuron):
            p += _attr(where, op, "du_offset", spec.du_offset, "Lava decays u by du + 1")
            p += _attr(where, op, "u_bits", spec.u_bits, "24-bit current")
            p += _attr(where, op, "u_overflow", spec.u_overflow, "Lava wraps u once")
        if isinstance(op, FixedMultiThreshold) and op.levels >= 1 << spec.message_bits_max:
            p.append(f"{where}: levels {op.levels} exceed {spec.message_bits_max}-bit payloads")
    return p


def _fpga(where: str, op: Op, spec: FpgaSpec) -> list[str]:
    p: list[str] = []
    if isinstance(op, (FixedDense, _FixedConv)):
        p += _attr_in(where, op, "weight_bits", *spec.weight_bits_range, "fpga weight width")
        if spec.weight_bits_range[0] <= op.weight_bits <= spec.weight_bits_range[1]:
            half = 1 << (op.weight_bits - 1)
            p += _range(where, "weight", op.weight, -half, half - 1, f"{op.weight_bits}-bit mantissa")
        p += _range(where, "weight_exp", op.weight_exp, *spec.weight_exp_range, "fpga weight exponent")
        p += _attr_in(where, op, "acc_bits", *spec.acc_bits_range, "accumulator width")
        if op.acc_overflow not in (Overflow.SATURATE, Overflow.WRAP):
            p.append(f"{where}: accumulator overflow must be saturate or wrap")
        if op.bias is not None and spec.acc_bits_range[0] <= op.acc_bits <= spec.acc_bits_range[1]:
            lo, hi = arith.signed_range(op.acc_bits)
            p += _range(where, "bias", op.bias, lo, hi, f"{op.acc_bits}-bit accumulator")
    elif isinstance(op, Quantize):
        p += _attr_in(where, op, "bits", *spec.input_bits_range, "fpga input width")
    elif isinstance(op, FixedNeuron):
        p += _attr_in(where, op, "input_shift", *spec.input_shift_range, "fpga input shift")
        p += _attr_in(where, op, "v_bits", *spec.state_bits_range, "fpga state width")
        if hasattr(op, "vth_shift"):
            p += _attr_in(where, op, "vth_shift", *spec.vth_shift_range, "fpga threshold shift")
            p += _range(where, "vth", op.vth, 0, (1 << spec.vth_bits) - 1, "threshold mantissa")
        half = 1 << (spec.bias_mant_bits - 1)
        p += _range(where, "bias_mant", op.bias_mant, -half, half - 1, "bias mantissa")
        p += _range(where, "bias_exp", op.bias_exp, *spec.bias_exp_range, "bias exponent")
        if isinstance(op, _CurrentNeuron):
            p += _attr_in(where, op, "u_bits", *spec.state_bits_range, "fpga state width")
    return p


def verify_domain(graph: Graph) -> list[str]:
    """Problems with the graph's numeric domain and fixed-point profile."""
    problems: list[str] = []
    fixed = graph.attrs.domain is Domain.FIXED
    if not fixed:
        for name, op in graph.nodes.items():
            if isinstance(op, FIXED_OP_CLASSES + (FixedNeuron,)):
                problems.append(
                    f"node '{name}' ({type(op).__name__}) is a fixed-point op in a float graph;"
                    " set domain=fixed and a profile, or use the float op"
                )
        return problems
    spec = PROFILES.get(graph.attrs.profile or "")
    if spec is None:
        problems.append(
            f"fixed graph has profile {graph.attrs.profile!r}; set it to one of"
            f" {', '.join(sorted(PROFILES))}"
        )
    for e in graph.edges:
        if spec is not None and e.delay > spec.max_edge_delay:
            problems.append(
                f"edge {e.src} -> {e.dst}: delay {e.delay} exceeds the {spec.name} maximum"
                f" {spec.max_edge_delay}; insert a Delay node or shorten it"
            )
    for name, op in graph.nodes.items():
        where = f"node '{name}' ({type(op).__name__})"
        if not isinstance(op, FIXED_OP_CLASSES + STRUCTURAL + (FixedNeuron,)):
            problems.append(f"{where} is a float op in a fixed graph; quantize it first")
            continue
        if isinstance(op, Pool) and op.mode is PoolMode.AVG:
            problems.append(f"{where}: average pooling is fractional; fold it into the next layer")
            continue
        if isinstance(op, STRUCTURAL):
            continue
        broken = _widths_and_shifts(where, op)
        if broken:  # the other checks compute with these numbers
            problems += broken
            continue
        problems += _common(where, op)
        if isinstance(spec, Loihi2Spec):
            problems += _loihi2(where, op, spec)
        elif isinstance(spec, FpgaSpec):
            problems += _fpga(where, op, spec)
    return problems

