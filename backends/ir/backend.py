"""The ``ir`` target: writes the float graph only (for inspection, export and the interpreter)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.target_api import Artifact, BackendDefaults, Diagnostic


@dataclass
class IrBackend(BackendDefaults):
    name: ClassVar[str] = "ir"
    description: ClassVar[str] = "float IR only (graph file + text form); runs on the reference interpreter"
    uses_fixed: ClassVar[bool] = False
    requires_profile: ClassVar[str | None] = None
    lowering_passes: ClassVar[tuple[str, ...]] = ()

    def check(self, graph: Graph) -> list[Diagnostic]:
        return []

    def emit(self, graph: Graph, outdir: Path) -> Artifact:
        # The build already writes graph.float.rsnn / graph.float.txt for every target.
        return Artifact(target=self.name, files=[], summary="float graph written")
