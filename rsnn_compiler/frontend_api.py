"""The frontend contract: ``load(source, options) -> ImportResult``.

An importer turns a user model into a verified float graph with the property ``discretized``
and a report that records every choice it made (dt, reset mode, discretisation, fidelity).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.ops import Comparator, ResetMode
from rsnn_compiler.passes_api import PassReport


@dataclass
class ImportOptions:
    dt: float | None = None  # seconds per step; None = infer where the source allows
    reset: ResetMode | None = None  # None = the frontend's documented default
    comparator: Comparator | None = None
    nir_source: str | None = None  # library that wrote a NIR file (--nir-source); None = detect
    weights: str | None = None  # state_dict or training checkpoint for ``pkg.module:factory`` sources
    factory_args: dict = field(default_factory=dict)  # keyword arguments of the factory (--factory-args)
    initial_weights: bool = False  # compile a factory's initial weights on purpose (no --weights)
    trust_checkpoint: bool = False  # allow unpickling a whole module (runs code)
    calib_x: np.ndarray | None = None  # for import-fidelity checks
    calib_y: np.ndarray | None = None  # labels of calib_x (ANN conversion reports accuracy)
    extra: dict = field(default_factory=dict)


@dataclass
class ImportReport(PassReport):
    """Report of an import; recorded as the first entry of a build's pass list."""

    source: str = ""
    source_format: str = ""
    dt: float | None = None
    dt_origin: str = ""  # "option", "inferred from ...", or "not needed"
    reset: str = ""
    reset_origin: str = ""
    discretisation: str = ""
    source_library: str = ""  # NIR: the library whose conventions were applied (or "unknown")
    conventions: list[str] = field(default_factory=list)  # which conventions were applied and why
    nodes: int = 0
    edges: int = 0
    fidelity: dict = field(default_factory=dict)  # per-layer spike agreement vs the source


@dataclass
class ImportResult:
    graph: Graph
    report: ImportReport
    # Fixed-point graphs the source already *is*, by profile (a lava-dl netx file is a loihi2
    # integer network): the build uses them instead of quantizing ``graph``, unless a float pass
    # (pruning, --stock-neurons) changes the float graph.
    fixed: dict[str, Graph] = field(default_factory=dict)


def parse_factory_args(text: str | None) -> dict:
    """``--factory-args`` JSON -> keyword arguments of the factory (parsed as JSON, never evaluated)."""
    if text is None or text == "":
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserInputError(
            f"--factory-args is not valid JSON ({err.msg} at column {err.colno});"
            " give an object, e.g. --factory-args '{\"hidden\": 128}'"
        ) from None
    if not isinstance(value, dict):
        raise UserInputError(
            f"--factory-args must be a JSON object of keyword arguments, got {type(value).__name__};"
            " e.g. --factory-args '{\"hidden\": 128}'"
        )
    return value
