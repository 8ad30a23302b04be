"""Sweep configurations: TOML, YAML or JSON files that name the points of a sweep (docs/sweep.md).

    [model]                 # every point: `rsnnc build` options by their long names
    input = "models.rleaky_mnist1d.model:build"
    weights = "models/rleaky_mnist1d/weights.pt"
    calib = "models/rleaky_mnist1d/data.npz"

    [data]                  # what every point is validated on
    path = "models/rleaky_mnist1d/test.npz"
    samples = 128           # optional: the first N samples

    [grid]                  # every combination of these values (in the order written)
    prune = [false, 0.5, 0.8]
    target = ["c,gpu", "lava,c"]

    [[point]]               # further points, each [model] plus its own values
    prune = 0.9

A point is ``[model]`` updated with one grid combination (or one ``[[point]]``): an ``rsnnc
build`` command line. Keys are the build's long options with ``_`` for ``-`` (``prune_finetune`` is
``--prune-finetune``); ``true`` gives a flag, ``false`` or ``null`` leaves the option out (``prune =
false``: no pruning), a list repeats an option (``convert_opt``), a table is passed as JSON
(``factory_args``). One key is the sweep's own: ``time_steps = T`` runs the network for the first
T steps of the calibration and validation data (for converted ANNs, the build's ``steps`` sets T).
Paths are relative to the working directory, as on the command line. Every point is checked by
the build command's own parser before anything runs.
"""

from __future__ import annotations

import itertools
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsnn_compiler.errors import UserInputError

TIME_STEPS = "time_steps"  # the sweep's own axis: cut the data to its first T steps
DATA_OPTIONS = ("calib", "stock_data", "finetune_data", "holdout")  # build options naming data files (cut with time_steps)
SECTIONS = ("model", "data", "grid", "point")
DATA_KEYS = ("path", "samples", "allow_missing", "max_accuracy_drop")


@dataclass(frozen=True)
class DataSpec:
    """The validation data of every point: ``path`` (x, optional y), its first ``samples``
    samples (None: all)."""

    path: str
    samples: int | None = None
    allow_missing: bool = False
    max_accuracy_drop: float | None = None


@dataclass(frozen=True)
class PointConfig:
    """One point: its position, the options of its build (``[model]`` plus its own values, by
    key) and the keys that vary between points (the table's columns)."""

    index: int
    options: dict[str, Any]
    axes: tuple[str, ...]

    @property
    def source(self) -> str:
        return str(self.options["input"])

    @property
    def time_steps(self) -> int | None:
        return self.options.get(TIME_STEPS)

    def axis_values(self) -> dict[str, Any]:
        return {k: self.options.get(k) for k in self.axes}

    def build_argv(self, data_files: dict[str, str] | None = None) -> list[str]:
        """The ``rsnnc build`` arguments (without ``-o``); ``data_files`` replaces data options'
        paths (the copies cut to ``time_steps``)."""
        argv = [self.source]
        for key, value in self.options.items():
            if key in ("input", TIME_STEPS) or value is None or value is False:
                continue
            if data_files and key in data_files:
                value = data_files[key]
            flag = "--" + key.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif isinstance(value, list):
                for item in value:
                    argv += [flag, _text(item)]
            else:
                argv += [flag, _text(value)]
        return argv

    def command(self, data_files: dict[str, str] | None = None, out: str = "OUT") -> str:
        """The equivalent ``rsnnc build`` command line."""
        return shlex.join(["rsnnc", "build", *self.build_argv(data_files), "-o", out])


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)


@dataclass(frozen=True)
class SweepConfig:
    path: str
    data: DataSpec
    points: list[PointConfig] = field(default_factory=list)
    axes: tuple[str, ...] = ()


def read_file(path: Path) -> dict:
    """The configuration as a dict: ``.toml``, ``.yaml``/``.yml`` or ``.json`` by suffix."""
    if not path.is_file():
        raise UserInputError(f"sweep configuration {path} not found")
    suffix = path.suffix.lower()
    text = path.read_text()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise UserInputError(f"{path}: a sweep configuration is .toml, .yaml/.yml or .json, not '{suffix or path.name}'")
    except UserInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - every parser's own error becomes one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserInputError(f"{path} is not valid {suffix[1:].upper()}: {first}") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: the configuration must be a table/mapping with [model] and [data]")
    return data


def _table(data: dict, name: str, path: Path, required: bool = False) -> dict:
    value = data.get(name)
    if value is None:
        if required:
            raise UserInputError(f"{path}: [{name}] is missing; see models/sweeps/small.toml")
        return {}
    if not isinstance(value, dict):
        raise UserInputError(f"{path}: [{name}] must be a table of key = value")
    return value


def _check_key(key: str, where: str, path: Path) -> None:
    if key in ("out", "o"):
        raise UserInputError(f"{path}: {where} sets '{key}'; each point's build folder is chosen by the sweep (-o DIR)")
    if not key.replace("_", "").isalnum():
        raise UserInputError(f"{path}: {where} has key '{key}'; keys are build options like prune_finetune")


def _data_spec(data: dict, path: Path) -> DataSpec:
    d = _table(data, "data", path, required=True)
    unknown = sorted(set(d) - set(DATA_KEYS))
    if unknown:
        raise UserInputError(f"{path}: [data] has unknown key(s) {', '.join(unknown)}; known: {', '.join(DATA_KEYS)}")
    if not isinstance(d.get("path"), str):
        raise UserInputError(f"{path}: [data] needs path = \"FILE.npz\" (inputs x and labels y)")
    samples = d.get("samples")
    if samples is not None and (not isinstance(samples, int) or isinstance(samples, bool) or samples < 1):
        raise UserInputError(f"{path}: [data] samples = {samples!r} must be a positive integer")
    drop = d.get("max_accuracy_drop")
    if drop is not None and (isinstance(drop, bool) or not isinstance(drop, (int, float))):
        raise UserInputError(f"{path}: [data] max_accuracy_drop = {drop!r} must be a number of points")
    return DataSpec(d["path"], samples, bool(d.get("allow_missing", False)),
                    None if drop is None else float(drop))


def _check_time_steps(options: dict, where: str, path: Path) -> None:
    t = options.get(TIME_STEPS)
    if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
        raise UserInputError(f"{path}: {where} time_steps = {t!r} must be a positive integer")


def parse_config(data: dict, path: Path) -> SweepConfig:
    """Expand the grid and the points; check every key (the build's parser checks the values)."""
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise UserInputError(f"{path}: unknown section(s) {', '.join(unknown)}; known: [model], [data], [grid], [[point]]")
    model = dict(_table(data, "model", path, required=True))
    if not isinstance(model.get("input"), str):
        raise UserInputError(f"{path}: [model] needs input = \"MODEL\" (as `rsnnc build INPUT`)")
    for key in model:
        _check_key(key, "[model]", path)
    grid = _table(data, "grid", path)
    for key, values in grid.items():
        _check_key(key, "[grid]", path)
        if not isinstance(values, list) or not values:
            raise UserInputError(f"{path}: [grid] {key} must be a non-empty list of values")
    extra = data.get("point", [])
    if not isinstance(extra, list) or not all(isinstance(p, dict) for p in extra):
        raise UserInputError(f"{path}: [[point]] entries must be tables of key = value")
    for i, p in enumerate(extra):
        for key in p:
            _check_key(key, f"[[point]] {i + 1}", path)
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else []
    if not combos and not extra:
        combos = [{}]
    varying = list(grid)
    for p in extra:
        varying += [k for k in p if k not in varying]
    points = []
    for i, own in enumerate([*combos, *extra]):
        options = {**model, **own}
        _check_time_steps(options, f"point {i + 1}", path)
        points.append(PointConfig(i, options, tuple(varying)))
    return SweepConfig(str(path), _data_spec(data, path), points, tuple(varying))


def load_config(path: str | Path) -> SweepConfig:
    path = Path(path)
    return parse_config(read_file(path), path)


__all__ = ["DATA_OPTIONS", "DataSpec", "PointConfig", "SweepConfig", "TIME_STEPS", "load_config", "parse_config"]
