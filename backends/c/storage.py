"""How the C model stores each synapse layer's weights: dense, or compressed by input (CSC).

Pruned layers are mostly zeros. A ``FixedDense`` or ``FixedConv1d/2d`` whose weight density
(nonzeros / size) is below the target's threshold (``CSpec.sparse_max_density``, or
``sparse_max_density_spikes`` for a FixedDense fed by one 0/1 spike train, and
``CSpec.sparse_conv_max_density``) keeps only its nonzeros, grouped by input so that the event
loop touches exactly the (nonzero input, nonzero weight) pairs — unless the compressed arrays
would take more bytes than the dense matrix (wide index types), then the layer stays dense:

- FixedDense ``W[out][in]``: CSC of W (= CSR of the transposed matrix the dense form stores):
  ``start[n_in + 1]`` (offsets), ``rows[nnz]`` (output index), ``vals[nnz]`` (mantissas); the
  nonzeros of input column j are ``start[j] .. start[j + 1]``, in increasing output order.
- FixedConv ``W[c_out][c_in / groups][kh][kw]``: one tap list per (absolute) input channel:
  ``start[c_in + 1]``, ``oc[nnz]``, ``ky[nnz]`` (2-D only), ``kx[nnz]``, ``vals[nnz]``; each
  weight belongs to exactly one input channel (its group's), so the lists hold every nonzero once.

Index arrays take the narrowest unsigned type, values the narrowest signed one. The accumulator
sums the same products minus zero ones, in exact int64 arithmetic, so the result is identical
to the dense form (and the int64 range proof of ``c_check`` — row sums of |W| — is unchanged).

Weights that are all multiples of ``2^k`` (Loihi 2's mixed-sign weights are even) are stored
divided by ``2^k`` when that narrows their C type (``scale_shift``; e.g. [-254, 254] -> int8), and
the layer's exponent grows by ``k``: ``shift(sum_j 2^k w'_j x_j, e) = shift(sum_j w'_j x_j, e + k)``
exactly, for either sign of ``e`` (a floor division by ``2^(k-e)`` of ``2^k a`` is one of ``a``
by ``2^-e`` and vice versa), so the result is unchanged and the sum is ``2^k`` times smaller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rsnn_compiler.ir.fixed_ops import FixedConv1d, FixedDense, _FixedConv

from rsnn_compiler.backends.c.spec import C_SPEC, CSpec

DENSE = "dense"
CSC = "csc"
_TYPES = ((8, "int8_t"), (16, "int16_t"), (32, "int32_t"), (64, "int64_t"))
_SIZES = {f"{p}int{b}_t": b // 8 for b in (8, 16, 32, 64) for p in ("", "u")}


def int_type(arr: np.ndarray) -> str:
    """The narrowest of int8/16/32/64_t holding every value of ``arr``."""
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    for bits, name in _TYPES:
        if -(1 << (bits - 1)) <= lo and hi < (1 << (bits - 1)):
            return name
    raise ValueError("value does not fit int64")


def uint_type(max_value: int) -> str:
    """The narrowest of uint8/16/32/64_t holding 0..max_value."""
    for bits, _ in _TYPES:
        if max_value < (1 << bits):
            return f"uint{bits}_t"
    raise ValueError("index does not fit uint64")


def type_bytes(ctype: str) -> int:
    return _SIZES[ctype]


@dataclass(frozen=True)
class CArray:
    """One ``static const`` array of the compressed form."""

    ctype: str
    values: np.ndarray  # int64, flat

    @property
    def nbytes(self) -> int:
        return type_bytes(self.ctype) * int(self.values.size)


@dataclass(frozen=True)
class SynapseStorage:
    """The storage chosen for one synapse layer and what it costs."""

    node: str
    op: str
    format: str  # DENSE or CSC
    shape: tuple[int, ...]
    nonzeros: int
    bytes: int  # weight values + indices as emitted
    dense_bytes: int  # the same weights stored dense
    threshold: float
    arrays: dict[str, CArray] = field(default_factory=dict, repr=False, compare=False)  # CSC only
    scale_shift: int = 0  # weights are stored divided by 2^scale_shift (module docstring)
    weights: np.ndarray | None = field(default=None, repr=False, compare=False)  # stored mantissas

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def density(self) -> float:
        return self.nonzeros / self.size if self.size else 1.0

    def to_json(self) -> dict:
        return {
            "node": self.node,
            "op": self.op,
            "format": self.format,
            "shape": list(self.shape),
            "nonzeros": self.nonzeros,
            "density": round(self.density, 6),
            "bytes": self.bytes,
            "dense_bytes": self.dense_bytes,
            "index_types": {k: a.ctype for k, a in self.arrays.items() if k != "vals"},
            "scale_shift": self.scale_shift,
        }


def _threshold(op, spec: CSpec, spikes: bool) -> float:
    if not isinstance(op, FixedDense):
        return spec.sparse_conv_max_density
    return spec.sparse_max_density_spikes if spikes else spec.sparse_max_density


def _csc_dense(w: np.ndarray) -> dict[str, CArray]:
    """W[out][in] -> start (per input column), rows, vals (column-major nonzeros)."""
    cols, rows = np.nonzero(w.T)  # row-major over W^T: by input, then increasing output
    vals = w.T[cols, rows]
    start = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=w.shape[1]))])
    return {
        "start": CArray(uint_type(int(start[-1])), start.astype(np.int64)),
        "rows": CArray(uint_type(max(w.shape[0] - 1, 0)), rows.astype(np.int64)),
        "vals": CArray(int_type(vals), vals.astype(np.int64)),
    }


def _csc_conv(op: _FixedConv, w: np.ndarray) -> dict[str, CArray]:
    """Tap lists per absolute input channel of the (stored) weights ``w``: start, oc, (ky), kx, vals."""
    if isinstance(op, FixedConv1d):
        w = w[:, :, None, :]
    cout, cin_g, kh, kw = w.shape
    cin = op.input_shape[0]
    cout_g = cout // op.groups
    starts, ocs, kys, kxs, vals = [0], [], [], [], []
    for ci in range(cin):
        grp, ci_l = divmod(ci, cin_g)
        block = w[grp * cout_g:(grp + 1) * cout_g, ci_l]  # [oc_l][ky][kx]
        oc_l, ky, kx = np.nonzero(block)
        ocs.append(oc_l + grp * cout_g)
        kys.append(ky)
        kxs.append(kx)
        vals.append(block[oc_l, ky, kx])
        starts.append(starts[-1] + len(oc_l))
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)  # noqa: E731
    v = cat(vals)
    out = {
        "start": CArray(uint_type(starts[-1]), np.asarray(starts, dtype=np.int64)),
        "oc": CArray(uint_type(cout - 1), cat(ocs)),
    }
    if not isinstance(op, FixedConv1d):
        out["ky"] = CArray(uint_type(kh - 1), cat(kys))
    out["kx"] = CArray(uint_type(kw - 1), cat(kxs))
    out["vals"] = CArray(int_type(v), v)
    return out


def scale_shift(w: np.ndarray, weight_exp: np.ndarray, spec: CSpec = C_SPEC) -> int:
    """The ``k`` of the module docstring: the largest power of two dividing every weight, when
    dividing by it narrows the weights' C type and keeps every exponent within ``spec.max_shift``;
    else 0."""
    nz = w[w != 0]
    if not nz.size:
        return 0
    k = int(np.bitwise_or.reduce(nz) & -np.bitwise_or.reduce(nz)).bit_length() - 1  # lowest set bit
    exps = np.asarray(weight_exp, dtype=np.int64)
    while k > 0 and exps.size and int(exps.max()) + k > spec.max_shift:
        k -= 1
    if k <= 0 or type_bytes(int_type(nz >> k)) >= type_bytes(int_type(nz)):
        return 0
    return k


def synapse_storage(name: str, op, spec: CSpec = C_SPEC, spikes: bool = False) -> SynapseStorage:
    """Dense or CSC for the FixedDense / FixedConv ``op`` (see the module docstring); ``spikes``:
    its only input is a 0/1 spike train (the dense loop then only adds, and vectorises well).
    Weights are stored divided by ``2^scale_shift`` (``scale_shift``)."""
    w = np.asarray(op.weight, dtype=np.int64)
    k = scale_shift(w, op.weight_exp, spec)
    if k:
        w = w >> k  # exact: every weight is a multiple of 2^k
    nnz = int(np.count_nonzero(w))
    dense_bytes = type_bytes(int_type(w)) * int(w.size)
    threshold = _threshold(op, spec, spikes)
    density = nnz / w.size if w.size else 1.0
    common = dict(node=name, op=type(op).__name__, shape=tuple(int(s) for s in w.shape), nonzeros=nnz,
                  dense_bytes=dense_bytes, threshold=threshold, scale_shift=k, weights=w)
    if density >= threshold:
        return SynapseStorage(format=DENSE, bytes=dense_bytes, **common)
    arrays = _csc_dense(w) if isinstance(op, FixedDense) else _csc_conv(op, w)
    # an all-zero layer emits no arrays at all (its output is shift(0) + bias)
    nbytes = sum(a.nbytes for a in arrays.values()) if nnz else 0
    if nbytes > dense_bytes and not threshold > 1:
        # sparse enough to be faster, but the indices would cost more memory than they save
        # (wide index types): stay dense. A threshold above 1 forces CSC (tests, measurements).
        return SynapseStorage(format=DENSE, bytes=dense_bytes, **common)
    return SynapseStorage(format=CSC, bytes=nbytes, arrays=arrays, **common)
