"""Fixed-point target constants: one typed spec per profile (docs/design.md §3, §6).

The verifier, the quantization passes and the random-graph generator read these; no other
module hard-codes a bit width of a profile. docs/fixed-point.md explains every number.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.neurons.enums import StrChoice


class Profile(StrChoice):
    """The fixed-point profiles (a build has one for all its integer targets)."""

    LOIHI2 = "loihi2"  # Lava 0.10 fixed_pt arithmetic exactly
    FPGA = "fpga"  # per-tensor widths chosen by the quantization passes


@dataclass(frozen=True)
class Loihi2Spec:
    """Lava 0.10 ``PyLifModelBitAcc`` + ``PyDenseModelBitAcc`` constants."""

    name: Profile = Profile.LOIHI2
    # synapse
    weight_bits_max: int = 8  # num_weight_bits 1..8; mantissa a fixed point of Lava's quantizer
    weight_exp_range: tuple[int, int] = (-8, 7)
    per_channel_weight_exp: bool = False  # Dense has one weight_exp
    dense_acc_bits: int = 32  # Lava sends a_out as int32: two's-complement wrap
    dense_acc_overflow: Overflow = Overflow.WRAP
    conv_acc_bits: int = 24  # Lava Conv wraps a_buf to signed 24 bits, ignores weight_exp
    conv_acc_overflow: Overflow = Overflow.WRAP
    conv_weight_range: tuple[int, int] = (-256, 255)
    dense_bias: bool = False  # Lava Dense has no bias (it lives in the neuron)
    max_edge_delay: int = 63  # DelayDense: 6-bit delays
    # neuron (LIF)
    decay_range: tuple[int, int] = (0, 4095)  # du, dv: 12 bits
    du_offset: int = 1  # Lava decays u by du + 1
    input_shift: int = 6  # a enters u as a << 6
    vth_shift: int = 6  # threshold vth << 6
    vth_range: tuple[int, int] = (0, (1 << 17) - 1)  # 17-bit unsigned mantissa
    bias_mant_range: tuple[int, int] = (-(1 << 12), (1 << 12) - 1)  # 13-bit signed
    bias_exp_range: tuple[int, int] = (0, 7)  # 3-bit
    u_bits: int = 24
    u_overflow: Overflow = Overflow.WRAP_ONCE
    v_bits: int = 24
    v_overflow: Overflow = Overflow.SATURATE_SYM
    drive_bound: int = 1 << 25  # |a| below this keeps a << 6 inside Lava's int32 u
    message_bits_max: int = 24  # graded payloads (Lava graded networks default to 24 bits)


@dataclass(frozen=True)
class FpgaSpec:
    """Defaults and limits of the ``fpga`` profile (widths chosen per tensor by the passes)."""

    name: Profile = Profile.FPGA
    weight_bits_default: int = 8
    weight_bits_range: tuple[int, int] = (2, 16)
    weight_exp_range: tuple[int, int] = (-24, 24)
    per_channel_weight_exp: bool = True
    acc_bits_default: int = 32
    acc_bits_range: tuple[int, int] = (8, 48)
    acc_overflow_default: Overflow = Overflow.SATURATE
    dense_bias: bool = True
    max_edge_delay: int = 1024
    decay_range: tuple[int, int] = (0, 4095)
    du_offset: int = 1
    input_shift_range: tuple[int, int] = (0, 16)
    vth_shift_range: tuple[int, int] = (0, 16)
    vth_bits: int = 24  # unsigned threshold mantissa
    bias_mant_bits: int = 16
    bias_exp_range: tuple[int, int] = (-16, 16)
    state_bits_default: int = 16
    state_bits_range: tuple[int, int] = (2, 48)  # 2: ternary membranes {-1, 0, 1} (saturate_sym)
    state_overflow_default: Overflow = Overflow.SATURATE
    input_bits_range: tuple[int, int] = (1, 24)


LOIHI2 = Loihi2Spec()
#: The loihi2 subset that lava-dl netx files express: netx has no weight-exponent field (it
#: derives one from integer weights) and builds LIFs with bias_exp 6. quantize_state uses it for
#: ``rsnnc build --stock-neurons netx``; graphs quantized with it are ordinary loihi2 graphs.
LOIHI2_NETX = replace(LOIHI2, weight_exp_range=(0, 0), bias_exp_range=(6, 7))
FPGA = FpgaSpec()
PROFILES: dict[Profile, Loihi2Spec | FpgaSpec] = {Profile.LOIHI2: LOIHI2, Profile.FPGA: FPGA}


def get_profile(name: str | None) -> Loihi2Spec | FpgaSpec:
    if name not in PROFILES:
        raise UserInputError(
            f"unknown fixed-point profile {name!r}; choose one of {', '.join(sorted(PROFILES))}"
        )
    return PROFILES[name]
