"""What lava-dl 0.6.0's netx makes of a ``.net`` (HDF5) file: the facts export and import share.

Layout (one HDF5 *dataset* per field; /work/shared/notes/lava-fixed-point.md §5):
``layer/<i>/type`` (``input | dense | dense_rec | conv | flatten | ...``), ``layer/<i>/shape``
(neuron shape in torch order), ``weight`` [+ ``weight_rec``, ``bias``, ``delay``], conv geometry,
and ``layer/<i>/neuron/{type, iDecay, vDecay, vThMant, refDelay, gradedSpike}``.

How ``netx.hdf5.Network`` builds Lava from it (behaviour, checked against the real lava-dl by
``tests/test_netx.py``):

- CUBA neuron -> Lava ``LIF`` (``LIFReset`` when the loader gets ``reset_interval``) with
  ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``, ``bias_mant = bias``, ``bias_exp = 6``.
- Dense weights go through netx's weight optimizer, then Lava's own weight quantization
  (:func:`netx_dense_weights`); the synapse delivers ``floor((W_lava @ s) * 2^weight_exp)``.
- Conv weights go to Lava's ``Conv`` as they are (no exponent, 24-bit wrap): torch ``conv2d``
  semantics on (C, H, W) data.
- Layer ``k`` (0-based among the layers netx builds) resets, when ``reset_interval = R`` is
  given, before its dynamics at Lava steps ``t`` with ``t % R == (reset_offset + 1 + k) % R``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsnn_compiler.fixed import arith
from rsnn_compiler.fixed.arith import SignMode


@dataclass(frozen=True)
class NetxSpec:
    max_delay: int = 62  # netx/slayer clip synaptic delays to 0..62
    bias_exp: int = 6  # netx builds LIF with bias_exp = 6
    bias_mant_range: tuple[int, int] = (-(1 << 15), (1 << 15) - 1)  # Lava LIF int16 bias_mant
    ref_delay: int = 1
    string_dtype: str = "S10"
    neuron_types: tuple[str, ...] = ("CUBA", "LOIHI")  # netx builds Lava LIF for these
    # loader arguments an export may need (Network(..., reset_offset=1) when resets are needed)
    reset_offset: int = 1


NETX = NetxSpec()


@dataclass(frozen=True)
class NetxDense:
    """One dense matrix as netx hands it to Lava, and what Lava makes of it."""

    file_weight: np.ndarray  # the integer matrix in the file
    weight: np.ndarray  # the integer matrix netx passes to Lava (clipped file weights << scale bits)
    num_weight_bits: int
    weight_exp: int
    lava_weight: np.ndarray  # after Lava's clip / dropped bits (its sign mode from the matrix)

    @property
    def lossless(self) -> bool:
        """True when Lava computes exactly ``file_weight @ s`` (no weight bit lost)."""
        return bool(np.array_equal(self.lava_weight, self.file_weight << -self.weight_exp))


def netx_dense_weights(w_file: np.ndarray, w_rec: np.ndarray | None = None) -> list[NetxDense]:
    """netx's weight optimizer on the file's integer matrix, then Lava Dense's quantization.

    netx: a mixed matrix is clipped to [-256, 254] when it exceeds it; the sign mode is
    inhibitory if max < 0, excitatory if min >= 0, else mixed; scale = 127/max or -128/min (mixed,
    the smaller), -256/min (inhibitory), 255/max (excitatory); ``sb = floor(log2 scale) + [mixed]``;
    ``n`` = the largest power of two (<= 8) dividing every weight, minus ``[mixed]``; Lava gets
    ``W << sb``, ``num_weight_bits = 8 - sb - n``, ``weight_exp = -sb``. A ``dense_rec`` layer's
    ``weight`` and ``weight_rec`` are optimized together (``hstack``) and become two Lava Dense
    synapses with these shared settings. Lava then clips and drops low bits of each synapse by
    its own sign mode (min >= 0 excitatory, max <= 0 inhibitory, else mixed).
    Raises ValueError for what netx or Lava cannot load (an all-zero matrix: infinite scale).
    """
    parts = [np.asarray(w_file, dtype=np.int64)]
    if w_rec is not None:
        parts.append(np.asarray(w_rec, dtype=np.int64))
    w = np.hstack(parts)
    hi, lo = int(w.max(initial=0)), int(w.min(initial=0))
    if hi == 0 and lo == 0:
        raise ValueError("an all-zero weight matrix (netx cannot scale it)")
    clip = hi > 254 and lo < 0 or lo < -256 and hi > 0
    if clip:
        w = np.clip(w, -256, 254)
        hi, lo = int(w.max()), int(w.min())
    signed = not (hi < 0 or lo >= 0)
    if signed:
        scale = min(127 / hi if hi > 0 else np.inf, -128 / lo)
    elif hi < 0:
        scale = -256 / lo
    else:
        scale = 255 / hi
    sb = int(np.floor(np.log2(scale))) + int(signed)
    n = next(k for k in range(8, -1, -1) if not (w % (1 << k)).any()) - int(signed)
    if sb < 0:  # numpy's left shift by a negative count is undefined: netx cannot load it
        raise ValueError(f"weights up to {hi} (netx shifts excitatory weights above 255 by {sb})")
    bits = 8 - sb - n
    out = []
    for part in parts:
        lava_in = (np.clip(part, -256, 254) if clip else part) << sb
        mode = arith.loihi_sign_mode(lava_in)
        k = arith.loihi_dropped_bits(bits, mode)
        if k < 0:  # netx chose mixed (9 bits) where Lava sees a single-sign matrix
            raise ValueError(f"netx passes {bits} weight bits to a {mode.value} synapse (Lava would"
                             " shift by a negative count and zero it)")
        if mode is SignMode.MIXED:
            lava = (np.clip(lava_in, -256, 255) >> k) << k
        elif mode is SignMode.EXCITATORY:
            lava = (np.clip(lava_in, 0, 255) >> k) << k
        else:
            lava = -((-np.clip(lava_in, -255, 0) >> k) << k)
        out.append(NetxDense(part, lava_in, bits, -sb, lava))
    return out


def neuron_fields(du: int, dv: int, vth: int, du_offset: int = 1) -> dict[str, int]:
    """``layer/<i>/neuron`` values for a Lava LIF with ``du``, ``dv``, ``vth`` (netx: du = iDecay - 1)."""
    return {"iDecay": int(du) + du_offset, "vDecay": int(dv), "vThMant": int(vth)}


def lif_params(neuron: dict) -> dict[str, int]:
    """Lava LIF parameters netx derives from ``layer/<i>/neuron``."""
    return {"du": int(neuron["iDecay"]) - 1, "dv": int(neuron["vDecay"]), "vth": int(neuron["vThMant"])}
