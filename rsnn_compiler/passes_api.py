"""The pass contract: ``run(graph, ctx) -> (graph, report)``; a pass never mutates its input.

Passes declare the graph properties they need (``requires``), add (``establishes``) and
remove (``invalidates``); the pass manager checks them. Property names are in ``Prop``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol

import numpy as np

from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.neurons.enums import StrChoice
from rsnn_compiler.pass_options import PassOptions


class Prop(StrChoice):
    """Graph properties tracked in ``GraphAttrs.properties`` (members equal their string values,
    so property sets read from a manifest or a graph file compare with them directly)."""

    DISCRETIZED = "discretized"  # per-step constants with a recorded dt (every importer)
    CANONICAL = "canonical"
    PRUNED = "pruned"  # pruning ran or was recorded as skipped
    WEIGHTS_QUANTIZED = "weights_quantized"
    QUANTIZED = "quantized"  # whole graph is fixed-point
    RETIMED = "retimed"


@dataclass
class PassContext:
    """Everything a pass may read besides the graph: calibration data, typed options
    (``options.of(PruneSpatialOptions)``; a list of option objects is accepted), progress."""

    calib_x: np.ndarray | None = None  # (time, batch, *features)
    calib_y: np.ndarray | None = None  # (batch,)
    target: str | None = None
    profile: str | None = None  # fixed-point profile: "loihi2" or "fpga"
    options: PassOptions = field(default_factory=PassOptions)  # typed, one object per pass (pass_options.py)
    seed: int = 0
    verify_each: bool = False  # verify the IR after every pass (always on in tests)
    progress: Callable[[str], None] = lambda message: None

    def __post_init__(self):
        self.options = PassOptions.of_items(self.options)


@dataclass
class PassReport:
    """Common report fields; each pass subclasses it with its own numbers as extra fields."""

    name: str
    wall_time_s: float = 0.0
    hash_before: str = ""
    hash_after: str = ""
    changed: bool = False
    skipped: bool = False
    reason: str = ""  # why it was skipped, or a one-line summary
    notes: list[str] = field(default_factory=list)
    # results changed behind the user's back (a clamped parameter, a silenced layer): the build
    # prints each on its own stderr line and lists them in the manifest
    warnings: list[str] = field(default_factory=list)

    BASE_FIELDS: ClassVar[tuple[str, ...]] = (
        "name", "wall_time_s", "hash_before", "hash_after", "changed", "skipped", "reason", "notes", "warnings",
    )

    def metrics(self) -> dict[str, Any]:
        """The pass's own numbers (fields beyond the common ones)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in self.BASE_FIELDS
        }

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.BASE_FIELDS}
        data["kind"] = type(self).__name__
        data["metrics"] = _jsonable(self.metrics())
        return data


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if dataclasses.is_dataclass(value):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, float) and value != value:
        return None
    return value


class Pass(Protocol):
    name: ClassVar[str]
    requires: ClassVar[frozenset[str]]
    establishes: ClassVar[frozenset[str]]
    invalidates: ClassVar[frozenset[str]]

    def run(self, graph: Graph, ctx: PassContext) -> tuple[Graph, PassReport]: ...
