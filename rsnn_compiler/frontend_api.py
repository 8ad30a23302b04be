"""The frontend contract: ``load(source, options) -> ImportResult``.

An importer turns a user model into a verified float graph with the property ``discretized``
and a report that records every choice it made (dt, reset mode, discretisation, fidelity).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.ops import Comparator, ResetMode
from rsnn_compiler.passes_api import PassReport


@dataclass
class ImportOptions:
    dt: float | None = None  # seconds per step; None = infer where the source allows
    reset: ResetMode | None = None  # None = the frontend's documented default
    comparator: Comparator | None = None
    weights: str | None = None  # state_dict for ``pkg.module:factory`` sources
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
