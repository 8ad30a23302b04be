"""The backend contract: ``check(graph) -> diagnostics`` and ``emit(graph, outdir) -> Artifact``.

A backend declares whether it runs the fixed-point graph (``uses_fixed``) and which profile it
insists on, if any (``requires_profile``: "loihi2" for Lava). A build has one fixed-point profile
for all its targets, so every integer executor runs the same integers (docs/design.md §7): the
``--profile`` option, else the profile some target requires, else "fpga".
Target constants live in one typed spec per target, never inline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.graph import Graph


@dataclass(frozen=True)
class Diagnostic:
    """One thing a target cannot represent: where, what, and how to fix it."""

    where: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}; fix: {self.fix}"


@dataclass
class Artifact:
    target: str
    files: list[str] = field(default_factory=list)  # paths relative to the build directory
    summary: str = ""
    details: list[str] = field(default_factory=list)  # one line per item worth listing (e.g. per population)


class Backend(Protocol):
    """A target. Each lives in its own folder ``backends/<target>/`` with its spec, its
    target-only passes (``lowering_passes``, run on the fixed graph after quantize_state) and
    its executor; the build asks it for its steps instead of branching on its name."""

    name: ClassVar[str]
    description: ClassVar[str]
    uses_fixed: ClassVar[bool]
    requires_profile: ClassVar[str | None]
    lowering_passes: ClassVar[tuple[str, ...]]

    def configure(self, options) -> tuple:
        """Apply the build options that concern this target (``BuildOptions``); return the
        typed options its lowering passes read (added to ``PassContext.options``)."""

    def check(self, graph: Graph) -> list[Diagnostic]:
        """Everything the target cannot represent in ``graph`` (the fixed graph if uses_fixed)."""

    def emit(self, graph: Graph, outdir: Path) -> Artifact:
        """Write the target's files into ``outdir`` (the build's ``<target>/`` folder)."""


class BackendDefaults:
    """Default ``configure`` for a target without options of its own (subclass it)."""

    def configure(self, options) -> tuple:
        return ()


class TargetCheckError(UserInputError):
    """A target cannot represent some parameters or states; ``diagnostics`` lists them all."""

    def __init__(self, target: str, diagnostics: list[Diagnostic]):
        self.target = target
        self.diagnostics = list(diagnostics)
        more = f" (and {len(diagnostics) - 1} more; all listed below)" if len(diagnostics) > 1 else ""
        super().__init__(f"target '{target}' cannot represent the graph: {diagnostics[0]}{more}")
