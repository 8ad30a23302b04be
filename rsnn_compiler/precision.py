"""Bit widths of a fixed-point build: global defaults and per-layer overrides (typed options).

``PrecisionOptions`` is what the quantization passes read (``ctx.options.of(PrecisionOptions)``); the
CLI fills it from ``--weight-bits``, ``--state-bits``, ``--current-bits``, ``--acc-bits``,
``--input-bits``, ``--state-overflow``, ``--state-scale`` and a ``--precision FILE`` (TOML or
JSON). Resolution for one layer, first match wins: the file's ``[layers."<node>"]`` entry, the
command-line value, the file's top-level value, the profile default (fpga: 8-bit weights, 16-bit
states, 32-bit accumulators, 8-bit inputs; loihi2 fixes everything but the weight width).

File format (every key optional; node names are those of the float graph, see ``rsnnc inspect``)::

    weight_bits = 6          # every synapse layer
    state_bits = 8           # every neuron layer: membrane v (and adaptation a); "ternary" = 2-bit {-1, 0, 1}
    [layers."1.w_rec"]
    weight_bits = 4
    [layers."1.lif"]
    state_bits = 4

``state_bits = "ternary"`` (or ``--state-bits ternary``) is a 2-bit membrane with symmetric
saturation, i.e. the three values -1, 0, 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed.arith import Overflow

TERNARY = "ternary"
STATE_SCALES = ("auto", "threshold", "calibrate")

SYNAPSE_KEYS = ("weight_bits", "acc_bits")
NEURON_KEYS = ("state_bits", "current_bits", "state_overflow")
GLOBAL_KEYS = SYNAPSE_KEYS + NEURON_KEYS + ("input_bits", "state_scale")

# CLI/config name -> (lowest, highest) accepted on the fpga profile
FPGA_LIMITS = {
    "weight_bits": (2, 16),
    "acc_bits": (8, 48),
    "state_bits": (2, 48),
    "current_bits": (2, 48),
    "input_bits": (1, 24),
}


@dataclass(frozen=True)
class LayerPrecision:
    """Widths for one node; None = inherit."""

    weight_bits: int | None = None  # synapse: signed mantissa width
    acc_bits: int | None = None  # synapse: accumulator width
    state_bits: int | None = None  # neuron: membrane v and adaptation a
    current_bits: int | None = None  # neuron: synaptic current u (default: state_bits, at least 8)
    state_overflow: Overflow | None = None

    def merged_over(self, base: "LayerPrecision") -> "LayerPrecision":
        """This layer's values where set, else ``base``'s."""
        return LayerPrecision(**{f.name: getattr(self, f.name) if getattr(self, f.name) is not None
                                 else getattr(base, f.name) for f in fields(self)})


@dataclass(frozen=True)
class PrecisionOptions:
    """Global widths, scale policy and per-layer overrides (``layers``: node -> LayerPrecision)."""

    default: LayerPrecision = LayerPrecision()
    input_bits: int | None = None
    state_scale: str = "auto"  # auto: calibrate below 9-bit states when calibration data exists
    layers: tuple[tuple[str, LayerPrecision], ...] = ()
    source: str = ""  # where the per-layer entries came from (a file name), for reports

    def layer(self, name: str) -> LayerPrecision:
        for node, lp in self.layers:
            if node == name:
                return lp.merged_over(self.default)
        return self.default

    @property
    def layer_names(self) -> list[str]:
        return [n for n, _ in self.layers]

    def with_layer(self, name: str, **widths) -> "PrecisionOptions":
        """A copy with ``widths`` set on one node (used by the sensitivity analysis)."""
        entries = dict(self.layers)
        entries[name] = replace(entries.get(name, LayerPrecision()), **widths)
        return replace(self, layers=tuple(sorted(entries.items())))

    def to_json(self) -> dict[str, Any]:
        def lp_json(lp: LayerPrecision) -> dict:
            out = {}
            for f in fields(lp):
                v = getattr(lp, f.name)
                if v is not None:
                    out[f.name] = v.value if isinstance(v, Overflow) else v
            return out

        data = {**lp_json(self.default), "state_scale": self.state_scale}
        if self.input_bits is not None:
            data["input_bits"] = self.input_bits
        if self.layers:
            data["layers"] = {n: lp_json(lp) for n, lp in self.layers}
        return data



def _width(key: str, value: Any, where: str) -> int:
    lo, hi = FPGA_LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UserInputError(f"{where}: {key} must be an integer in {lo}..{hi}, not {value!r}")
    try:
        bits = int(value)
    except ValueError:
        raise UserInputError(f"{where}: {key} must be an integer in {lo}..{hi}, not {value!r}") from None
    if not lo <= bits <= hi:
        raise UserInputError(f"{where}: {key} {bits} is outside {lo}..{hi}")
    return bits


def _overflow(value: Any, where: str) -> Overflow:
    if isinstance(value, Overflow):
        return value
    choices = ("saturate", "saturate_sym", "wrap")
    if value not in choices:
        raise UserInputError(f"{where}: state_overflow {value!r} is not one of: {', '.join(choices)}")
    return Overflow(value)


def _layer(entry: Mapping[str, Any], where: str, allowed: tuple[str, ...]) -> LayerPrecision:
    if not isinstance(entry, Mapping):
        raise UserInputError(f"{where} must be a table of widths (e.g. weight_bits = 4)")
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise UserInputError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(allowed)}")
    kw: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "state_overflow":
            kw[key] = _overflow(value, where)
        elif key == "state_bits" and str(value).lower() == TERNARY:
            kw["state_bits"] = 2
            if entry.get("state_overflow") is None:
                kw["state_overflow"] = Overflow.SATURATE_SYM
        else:
            kw[key] = _width(key, value, where)
    return LayerPrecision(**kw)


def parse_precision(data: Mapping[str, Any], where: str,
                    overrides: Mapping[str, Any] | None = None) -> PrecisionOptions:
    """Validate a mapping (a config file's content, or option values) into PrecisionOptions.

    ``overrides`` (command-line values, None = not given) replace the top-level values."""
    if not isinstance(data, Mapping):
        raise UserInputError(f"{where} must hold a table/object of widths at the top level")
    top = {k: v for k, v in data.items() if k != "layers"}
    for key, value in (overrides or {}).items():
        if value is not None:
            top[key] = value
    unknown = sorted(set(top) - set(GLOBAL_KEYS))
    if unknown:
        raise UserInputError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(GLOBAL_KEYS)}, layers")
    scale = str(top.pop("state_scale", "auto"))
    if scale not in STATE_SCALES:
        raise UserInputError(f"{where}: state_scale {scale!r} is not one of: {', '.join(STATE_SCALES)}")
    input_bits = top.pop("input_bits", None)
    input_bits = None if input_bits is None else _width("input_bits", input_bits, where)
    default = _layer(top, where, SYNAPSE_KEYS + NEURON_KEYS)
    layers = data.get("layers") or {}
    if not isinstance(layers, Mapping):
        raise UserInputError(f"{where}: 'layers' must map node names to tables of widths")
    entries = tuple(sorted((str(name), _layer(entry, f"{where} [layers.\"{name}\"]", SYNAPSE_KEYS + NEURON_KEYS))
                           for name, entry in layers.items()))
    return PrecisionOptions(default=default, input_bits=input_bits, state_scale=scale, layers=entries,
                            source=where if layers else "")


def load_precision_file(path: str | Path, overrides: Mapping[str, Any] | None = None) -> PrecisionOptions:
    """Read a TOML (``.toml``) or JSON (``.json``) precision file; one-line errors with the fix."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"precision file {path} not found")
    text_bytes = path.read_bytes()
    if len(text_bytes) > 1 << 20:
        raise UserInputError(f"precision file {path} is larger than 1 MiB; it should list a few widths")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text_bytes.decode("utf-8"))
        elif suffix == ".json":
            data = json.loads(text_bytes.decode("utf-8"))
        else:
            raise UserInputError(f"precision file {path}: use a .toml or .json file")
    except UserInputError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserInputError(f"precision file {path} could not be parsed ({msg})") from None
    return parse_precision(data, path.name, overrides)


def check_layer_names(precision: PrecisionOptions, synapses: list[str], neurons: list[str]) -> None:
    """Every per-layer entry must name a synapse (weight/acc keys) or a neuron (state keys)."""
    for name, lp in precision.layers:
        syn_keys = [k for k in SYNAPSE_KEYS if getattr(lp, k) is not None]
        neu_keys = [k for k in NEURON_KEYS if getattr(lp, k) is not None]
        if name in synapses:
            if neu_keys:
                raise UserInputError(f"{precision.source or 'precision'}: '{name}' is a synapse layer;"
                                     f" {neu_keys[0]} applies to neuron layers ({', '.join(neurons)})")
        elif name in neurons:
            if syn_keys:
                raise UserInputError(f"{precision.source or 'precision'}: '{name}' is a neuron layer;"
                                     f" {syn_keys[0]} applies to synapse layers ({', '.join(synapses)})")
        else:
            raise UserInputError(
                f"{precision.source or 'precision'}: no layer named '{name}'; synapse layers:"
                f" {', '.join(synapses) or 'none'}; neuron layers: {', '.join(neurons) or 'none'}"
            )


__all__ = ["LayerPrecision", "PrecisionOptions", "check_layer_names", "load_precision_file",
           "parse_precision"]
