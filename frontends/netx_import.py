"""Frontend for lava-dl netx ``.net`` files (HDF5): ``rsnnc build model.net``.

A netx file is already an integer Loihi network, so the import gives two graphs:

- the **loihi2 fixed-point graph** that reproduces ``netx.hdf5.Network(file)`` run in Lava
  ``fixed_pt`` bit for bit (every layer's spikes, u and v). The build uses it as the loihi2 graph
  instead of quantizing (``ImportResult.fixed``); with ``--prune`` or ``--stock-neurons`` the
  float graph is requantized instead and the result is no longer netx's run;
- a **float graph**: the same network in real arithmetic (Lava's float LIF: no truncation, no
  wrap), for the float reference, the fidelity report and pruning.

Per layer (``backends/lava/netx_format.py`` holds what netx does with each field):

- ``dense`` / ``dense_rec``: the weights netx and Lava end up using (``netx_dense_weights``) as
  a FixedDense (mantissa, exponent); lossless matrices are stored as the file's integers. A
  per-synapse ``delay`` (0..62; a 1-D array is per output neuron, as netx broadcasts it) splits
  the matrix into one FixedDense per delay value on edges with that delay (Lava's DelayDense
  shifts each delay's sum separately). ``dense_rec`` adds the recurrent matrix on a 1-step edge.
- ``conv``: FixedConv2d with the file's (torch-layout) kernel and geometry (Lava Conv: no
  exponent, 24-bit wrap).
- ``flatten``: Flatten (netx's transpose-and-flatten is torch's C, H, W order).
- ``input``: its shape (an input layer *with a neuron* is refused: netx 0.6 leaves that block's
  input port unconnected, so no input would reach the network).
- CUBA/LOIHI neurons: FixedLIF ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``,
  ``bias_mant << 6``, zero reset, ``v > vth << 6``.

Timing: the IR's feed-forward edge of a layer carries its netx delay ``d`` (per synapse); netx
adds one more Lava step per synapse layer, so a layer's IR step ``t`` is netx's Lava row
``t + k`` after ``k`` synapse layers; the import report
lists these rows (``fidelity.netx_rows``).
Refused with the reason: pool/convT/unpool/average/concat (netx 0.6 cannot build them),
SDNN/RF/ALIF neurons, graded (``messageBits``) CUBA output, complex weights, ``iDecay = 0``
(Lava ``du = -1``, outside the loihi2 profile), weights or biases outside the profile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsnn_compiler.budget import require_hdf5_within_budget, require_within_budget
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed import arith
from rsnn_compiler.fixed.profiles import LOIHI2
from rsnn_compiler.frontend_api import ImportOptions, ImportReport, ImportResult
from rsnn_compiler.ir import (
    Affine, Conv2d, CubaLIF, Domain, FixedConv2d, FixedDense, FixedLIF, Flatten, GraphBuilder, Input,
    Output,
)
from rsnn_compiler.ir.fixed_ops import make_neuron
from rsnn_compiler.ir.text import structural_hash
from rsnn_compiler.ir.verify import verify
from rsnn_compiler.passes_api import Prop

from rsnn_compiler.backends.lava.netx_format import NETX, lif_params, netx_dense_weights

UNSUPPORTED = {"pool", "convT", "unpool", "average", "concat"}
NEURON_TYPES = NETX.neuron_types


def _text(ds) -> str:
    value = ds[()]
    if np.ndim(value):
        value = value.flat[0]
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


NEURON_ARRAYS = 8  # per-neuron parameter arrays the two graphs hold for one layer
INT64_LIMIT = 2.0**62  # float values beyond it do not truncate to an int64 (netx would wrap them)


def _ints(ds, what: str) -> np.ndarray:
    """A dataset as int64, as netx reads it (``astype(int)``: truncation toward zero); refused
    when it holds anything else: strings, complex, NaN/inf, or floats beyond int64."""
    arr = np.asarray(ds[()])
    if arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not np.all(np.isfinite(arr))):
        raise UserInputError(f"netx import: {what} must hold numbers")
    if arr.dtype.kind == "f" and arr.size and float(np.abs(arr).max()) >= INT64_LIMIT:
        raise UserInputError(f"netx import: {what} holds values beyond the 64-bit integers netx uses")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) >= 2**63:
        raise UserInputError(f"netx import: {what} holds values beyond the 64-bit integers netx uses")
    return arr.astype(np.int64)


def _scalar(ds, what: str) -> int:
    """A one-value dataset (netx reads the first value) as an int."""
    arr = _ints(ds, what).reshape(-1)
    if not arr.size:
        raise UserInputError(f"netx import: {what} is empty")
    return int(arr[0])


def _shape(ds, what: str) -> tuple[int, ...]:
    """A layer's shape: 1 to 3 positive sizes whose neuron arrays fit the memory budget."""
    shape = tuple(int(v) for v in _ints(ds, what).reshape(-1))
    if not 1 <= len(shape) <= 3 or min(shape) < 1:
        raise UserInputError(f"netx import: {what} {shape} is not 1 to 3 positive sizes")
    require_within_budget(8 * NEURON_ARRAYS * int(np.prod(shape, dtype=object)), f"netx import: {what} {shape}")
    return shape


@dataclass
class _Layer:
    index: int
    kind: str
    node: str = ""
    shape: tuple[int, ...] = ()
    offset: int = 0  # netx Lava row of the layer's IR step 0
    notes: list[str] = field(default_factory=list)


def _neuron(g, where: str) -> dict[str, int]:
    if "neuron" not in g:
        raise UserInputError(f"netx import: {where} has no neuron (netx gives such layers a"
                             " non-leaky integrator that never fires; export it with one)")
    n = g["neuron"]
    kind = _text(n["type"])
    if kind not in NEURON_TYPES:
        raise UserInputError(f"netx import: {where} neuron type {kind!r} is not CUBA (rsnnc imports"
                             " netx CUBA/LOIHI layers; SDNN, RF and ALIF are not supported)")
    if "messageBits" in n and _scalar(n["messageBits"], f"{where} neuron messageBits") > 0:
        raise UserInputError(f"netx import: {where} sends graded CUBA spikes (messageBits > 0)")
    values = {k: _scalar(n[k], f"{where} neuron {k}") for k in ("iDecay", "vDecay", "vThMant")}
    p = lif_params(values)
    lo, hi = LOIHI2.decay_range
    if not (lo <= p["du"] <= hi and lo <= p["dv"] <= hi):
        raise UserInputError(f"netx import: {where} iDecay {values['iDecay']} / vDecay {values['vDecay']}"
                             f" give Lava du {p['du']} / dv {p['dv']}, outside {lo}..{hi} (iDecay 0 is"
                             " a non-leaky current, which the loihi2 profile does not hold)")
    if not LOIHI2.vth_range[0] <= p["vth"] <= LOIHI2.vth_range[1]:
        raise UserInputError(f"netx import: {where} vThMant {p['vth']} outside the 17-bit threshold")
    return p


def _bias(g, shape: tuple[int, ...], where: str) -> tuple[np.ndarray, np.ndarray]:
    """(bias_mant, bias_exp) per neuron in torch order for netx's ``bias << 6``."""
    if "bias" not in g:
        return np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    b = _ints(g["bias"], f"{where} bias")
    n = int(np.prod(shape))
    if len(shape) == 3 and b.shape == tuple(reversed(shape)):  # netx's (x, y, c) layout
        b = b.T
    elif len(shape) == 3 and b.shape == (shape[0],):  # one value per channel
        b = np.broadcast_to(b[:, None, None], shape)
    elif b.size not in (1, n):
        raise UserInputError(f"netx import: {where} bias of shape {b.shape} does not fit {shape}")
    b = np.broadcast_to(b.reshape(-1) if b.size == n else b.reshape(()), (n,)).reshape(shape).astype(np.int64)
    lo, hi = NETX.bias_mant_range
    if b.size and (b.min() < lo or b.max() > hi):
        raise UserInputError(f"netx import: {where} bias beyond Lava's int16 bias_mant")
    # b << 6 as a 13-bit mantissa with exponent 6 or 7 (the loihi2 profile's ranges)
    mlo, mhi = LOIHI2.bias_mant_range
    exp = np.full(shape, NETX.bias_exp, np.int64)
    mant = b.copy()
    big = (b < mlo) | (b > mhi)
    if big.any():
        if (b[big] % 2).any() or ((b[big] >> 1) < mlo).any() or ((b[big] >> 1) > mhi).any():
            raise UserInputError(f"netx import: {where} bias beyond the loihi2 13-bit bias mantissa")
        mant[big], exp[big] = b[big] >> 1, NETX.bias_exp + 1
    return mant, exp


def _encode_dense(w_eff: np.ndarray, lava: np.ndarray | None, exp: int, bits: int,
                  where: str) -> tuple[np.ndarray, int, int]:
    """(mantissa, exponent, weight bits) of a loihi2 FixedDense computing what netx's synapse does:
    the exact integers ``w_eff`` when netx is lossless, else Lava's own weights and exponent."""
    if lava is None:
        for e in range(0, LOIHI2.weight_exp_range[0] - 1, -1):
            m = w_eff << -e
            if arith.loihi_weights_exact(m, 8) and np.abs(m).max(initial=0) <= 256:
                return m, e, 8
        raise UserInputError(f"netx import: {where} weights {int(w_eff.min())}..{int(w_eff.max())}"
                             " have no 8-bit Loihi mantissa (the loihi2 profile holds 8 bits)")
    if not 1 <= bits <= LOIHI2.weight_bits_max or not arith.loihi_weights_exact(lava, bits):
        raise UserInputError(f"netx import: {where} netx passes {bits} weight bits to Lava, outside"
                             " the loihi2 profile")
    return lava, exp, bits


class _Importer:
    def __init__(self, path: str):
        self.path = path
        self.fixed = GraphBuilder(Path(path).stem)
        self.float = GraphBuilder(Path(path).stem)
        self.layers: list[_Layer] = []
        self.notes: list[str] = []
        self.prev = "input"  # population feeding the next layer
        self.prev_shape: tuple[int, ...] = ()
        self.offset = 0  # netx Lava row of prev's IR step 0
        self.names: set[str] = set()

    def add(self, name: str, fixed_op, float_op) -> None:
        self.names.add(name)
        self.fixed.add(name, fixed_op)
        self.float.add(name, float_op)

    def connect(self, src: str, dst: str, delay: int = 0) -> None:
        self.fixed.connect(src, dst, delay)
        self.float.connect(src, dst, delay)

    def input(self, shape: tuple[int, ...]) -> None:
        self.prev_shape = shape
        self.add("input", Input(shape=shape), Input(shape=shape))

    def neuron(self, name: str, g, shape: tuple[int, ...], where: str) -> None:
        p = _neuron(g, where)
        self.names.add(name)
        mant, exp = _bias(g, shape, where)
        self.fixed.add(name, make_neuron(FixedLIF, shape, du=p["du"], dv=p["dv"], vth=p["vth"],
                                         bias_mant=mant, bias_exp=exp))
        b = (mant << exp).astype(np.float64) / (1 << LOIHI2.input_shift)  # in u/64 units
        self.float.add(name, CubaLIF(
            alpha=np.full(shape, 1 - (p["du"] + 1) / 4096, np.float32),
            beta=np.full(shape, 1 - p["dv"] / 4096, np.float32),
            gain_i=np.ones(shape, np.float32), gain_v=np.ones(shape, np.float32),
            bias=b.astype(np.float32), theta=np.full(shape, p["vth"], np.float32),
            v_reset=np.zeros(shape, np.float32), v_init=np.zeros(shape, np.float32)))

    def source(self) -> str:
        """The node a dense layer reads (a Flatten after a (C, H, W) layer or input)."""
        if len(self.prev_shape) > 1:
            name = f"{self.prev}.flatten"
            if name not in self.names:
                self.add(name, Flatten(input_shape=self.prev_shape), Flatten(input_shape=self.prev_shape))
                self.connect(self.prev, name)
            return name
        return self.prev

    def dense(self, i: int, g, rec: bool) -> None:
        where = f"layer/{i} ({'dense_rec' if rec else 'dense'})"
        if "weight/real" in g or "weight/imag" in g:
            raise UserInputError(f"netx import: {where} has complex weights (not supported)")
        w = _ints(g["weight"], f"{where} weight")
        shape = (int(np.prod(_shape(g["shape"], f"{where} shape"))),)
        n_in = int(np.prod(self.prev_shape))
        w = w.reshape(shape[0], -1)
        if w.shape != (shape[0], n_in):
            raise UserInputError(f"netx import: {where} weight {w.shape} does not connect {n_in} -> {shape[0]}")
        w_rec = _ints(g["weight_rec"], f"{where} weight_rec").reshape(shape[0], -1) if rec else None
        delay = None
        if "delay" in g:
            d = np.clip(_ints(g["delay"], f"{where} delay"), 0, NETX.max_delay)
            delay = (np.broadcast_to(d.reshape(-1, 1), w.shape) if d.size == w.shape[0] else
                     np.broadcast_to(d.reshape(1, -1), w.shape) if d.size == w.shape[1] else
                     np.broadcast_to(d, w.shape) if d.size == 1 else d.reshape(w.shape))
            if rec:
                raise UserInputError(f"netx import: {where} is a recurrent layer with delays (lava-dl"
                                     " 0.6 netx gives its recurrent synapse the feed-forward delay"
                                     " matrix and no weight exponent; not reproduced)")
        try:
            parts = netx_dense_weights(w, w_rec)
        except ValueError as exc:
            raise UserInputError(f"netx import: {where}: netx cannot load {exc}") from exc
        name = f"layer{i}"
        src = self.source()
        self.neuron(name, g, shape, where)
        layer = _Layer(i, "dense_rec" if rec else "dense", name, shape)
        for part, label, edge in zip(parts, ("", ".rec"), ("ff", "rec")):
            lossless = part.lossless
            if not lossless:
                lost = int(np.count_nonzero(part.lava_weight != part.file_weight << -part.weight_exp))
                layer.notes.append(f"{where}: netx + Lava change {lost} weight(s); imported as Lava runs them")
            m, e, bits = _encode_dense(part.file_weight, None if lossless else part.lava_weight,
                                       part.weight_exp, part.num_weight_bits, where)
            real = (part.file_weight if lossless else part.lava_weight * 2.0 ** part.weight_exp)
            if edge == "rec":
                self._synapse(f"{name}.w_rec", m, e, bits, real, name, name, 1)
                continue
            if delay is None:
                self._synapse(f"{name}.w", m, e, bits, real, src, name, 0)
                continue
            for d in np.unique(delay):  # Lava's DelayDense shifts each delay's sum separately
                mask = delay == d
                self._synapse(f"{name}.w.d{d}", np.where(mask, m, 0), e, bits, np.where(mask, real, 0),
                              src, name, int(d))
        if delay is not None and len(np.unique(delay)) > 1:
            self.notes.append(f"{where}: per-synapse delays {sorted(set(np.unique(delay).tolist()))}"
                              " split into one synapse per delay")
        self._advance(layer, 1)

    def _synapse(self, name: str, m, e: int, bits: int, real, src: str, dst: str, delay: int) -> None:
        fixed = FixedDense(weight=m, weight_exp=np.full(m.shape[0], e), weight_bits=bits,
                           acc_bits=LOIHI2.dense_acc_bits, acc_overflow=LOIHI2.dense_acc_overflow)
        self.add(name, fixed, Affine(weight=np.asarray(real, np.float32)))
        self.connect(src, name, delay)
        self.connect(name, dst)

    def conv(self, i: int, g) -> None:
        where = f"layer/{i} (conv)"
        w = _ints(g["weight"], f"{where} weight")
        if w.ndim == 5:
            w = w.reshape(w.shape[:4])
        shape = _shape(g["shape"], f"{where} shape")
        if len(self.prev_shape) != 3 or w.ndim != 4:
            raise UserInputError(f"netx import: {where} needs a (C, H, W) input and a 4-D kernel")

        def pair(key, default):
            v = _ints(g[key], f"{where} {key}").reshape(-1) if key in g else np.array([default])
            return (int(v[0]), int(v[0])) if v.size == 1 else (int(v[0]), int(v[1]))

        lo, hi = LOIHI2.conv_weight_range
        if w.min(initial=0) < lo or w.max(initial=0) > hi:
            raise UserInputError(f"netx import: {where} kernel beyond the loihi2 range [{lo}, {hi}]")
        geo = dict(input_shape=self.prev_shape, stride=pair("stride", 1), padding=pair("padding", 0),
                   dilation=pair("dilation", 1), groups=_scalar(g["groups"], f"{where} groups") if "groups" in g else 1)
        fixed = FixedConv2d(weight=w, weight_exp=np.zeros(w.shape[0]), weight_bits=8,
                            acc_bits=LOIHI2.conv_acc_bits, acc_overflow=LOIHI2.conv_acc_overflow, **geo)
        if tuple(fixed.out_shape) != shape:
            raise UserInputError(f"netx import: {where} makes {fixed.out_shape}, its shape says {shape}")
        if "delay" in g:
            self.notes.append(f"{where}: conv delay ignored (netx builds conv layers without delays)")
        name = f"layer{i}"
        self.add(f"{name}.w", fixed, Conv2d(weight=w.astype(np.float32), **geo))
        self.connect(self.prev, f"{name}.w")
        self.neuron(name, g, shape, where)
        self.connect(f"{name}.w", name)
        self._advance(_Layer(i, "conv", name, shape), 1)

    def _advance(self, layer: _Layer, steps: int) -> None:
        """A synapse layer adds one Lava step (its netx delay is the IR edge's delay)."""
        self.offset += steps
        layer.offset = self.offset
        self.layers.append(layer)
        self.prev, self.prev_shape = layer.node, layer.shape


def load(source: str, options: ImportOptions) -> ImportResult:
    import h5py

    start = time.perf_counter()
    try:
        if not h5py.is_hdf5(source):
            raise UserInputError(f"netx import: {source} is not an HDF5 file; export it with lava-dl's"
                                 " netx (slayer blocks' export_hdf5)")
        require_hdf5_within_budget(source, "netx file")  # declared sizes, before reading any dataset
        f = h5py.File(source, "r")
    except UserInputError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError... on damaged files
        raise UserInputError(f"netx import: cannot read {source} ({type(exc).__name__}:"
                             f" {' '.join(str(exc).split())[:160]}); the file is damaged") from None
    with f:
        try:
            return _finish(_read_layers(f, source), source, options, start)
        except UserInputError:
            raise
        except (KeyError, ValueError, TypeError, IndexError, AttributeError, OSError, RuntimeError,
                OverflowError) as exc:  # a missing dataset, a group for a dataset, an invalid op...
            where = getattr(exc, "rsnnc_where", "the file")
            raise UserInputError(f"netx import: {where} of {source} is malformed ({type(exc).__name__}:"
                                 f" {' '.join(str(exc).split())[:160]}); export it again with lava-dl") from None


def _read_layers(f, source: str) -> _Importer:
    """Every layer of an open ``.net`` file into the two graph builders (exceptions other than
    UserInputError carry ``rsnnc_where``: the layer being read)."""
    import h5py

    imp = _Importer(source)
    if not isinstance(f.get("layer"), h5py.Group):
        raise UserInputError(f"netx import: {source} has no 'layer' group (not a lava-dl .net file)")
    n = len(f["layer"])
    for i in range(n):
        try:
            _read_layer(f, imp, i, n)
        except Exception as exc:
            exc.rsnnc_where = f"layer/{i}"
            raise
    return imp


def _read_layer(f, imp: _Importer, i: int, n: int) -> None:
    """Layer ``i`` of ``n`` into the importer."""
    if str(i) not in f["layer"]:
        raise UserInputError(f"netx import: layer/{i} is missing (layers are numbered 0..{n - 1})")
    g = f[f"layer/{i}"]
    kind = _text(g["type"])
    if kind in UNSUPPORTED:
        raise UserInputError(f"netx import: layer/{i} is a {kind} layer, which lava-dl 0.6's"
                             " netx cannot build (NotImplementedError): there is no netx run"
                             " to reproduce")
    if i == 0 and kind == "input":
        if "neuron" in g:
            raise UserInputError(
                "netx import: layer/0 is an input layer with a neuron; lava-dl 0.6's netx"
                " leaves that block's input port unconnected (its neuron sees only its"
                " bias), so no input reaches the network; export the input layer without"
                " a neuron (slayer.block.cuba.Input(None))")
        imp.input(_shape(g["shape"], "layer/0 shape"))
        return
    if i == 0:  # no input layer: netx takes the input shape from the first layer
        if kind not in ("dense", "dense_rec") or "inFeatures" not in g:
            raise UserInputError("netx import: a file without an input layer must start with a"
                                 " dense layer (netx cannot infer a conv input shape)")
        imp.input(_shape(g["inFeatures"], "layer/0 inFeatures"))
    if kind == "flatten":
        return  # dense layers read (C, H, W) layers through a Flatten anyway
    elif kind in ("dense", "dense_rec"):
        imp.dense(i, g, kind == "dense_rec")
    elif kind == "conv":
        imp.conv(i, g)
    else:
        raise UserInputError(f"netx import: layer/{i} has unknown type {kind!r}")


def _finish(imp: _Importer, source: str, options: ImportOptions, start: float) -> ImportResult:
    """The two graphs (verified) and the import report."""
    if not imp.layers:
        raise UserInputError("netx import: the file has no neuron layer")
    last = imp.layers[-1]
    imp.add("output", Output(shape=last.shape), Output(shape=last.shape))
    imp.connect(last.node, "output")
    fixed = imp.fixed.build().with_attrs(domain=Domain.FIXED, profile="loihi2", properties=frozenset({
        Prop.DISCRETIZED, Prop.CANONICAL, Prop.PRUNED, Prop.WEIGHTS_QUANTIZED, Prop.QUANTIZED}))
    flt = imp.float.build().with_attrs(properties=frozenset({Prop.DISCRETIZED}))
    for g, what in ((fixed, "loihi2"), (flt, "float")):
        problems = verify(g)
        if problems:
            raise UserInputError(f"netx import: the {what} graph is outside the loihi2 profile: {problems[0]}")
    notes = imp.notes + [n for layer in imp.layers for n in layer.notes]
    offsets = {layer.node: layer.offset for layer in imp.layers}
    report = ImportReport(
        name="import", source=str(source), source_format="netx (lava-dl .net)", dt=options.dt,
        dt_origin="option" if options.dt else "not needed (netx files are discrete-time)",
        reset="zero (CUBA)", reset_origin="netx CUBA neurons", discretisation="already discrete (integer Loihi network)",
        nodes=len(flt), edges=len(flt.edges), hash_before=structural_hash(fixed), hash_after=structural_hash(flt),
        wall_time_s=time.perf_counter() - start, notes=notes,
        fidelity={"netx_rows": offsets},
        reason=f"{len(imp.layers)} netx layers -> loihi2 graph (exact) + float graph",
    )
    return ImportResult(flt, report, fixed={"loihi2": fixed})


def netx_offsets(report: ImportReport) -> dict[str, int]:
    """Layer node -> netx Lava row of its IR step 0."""
    return dict(report.fidelity.get("netx_rows", {}))


__all__ = ["load", "netx_offsets"]
