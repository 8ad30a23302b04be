"""Runs an explicit pipeline of passes, checking declared graph properties.

Before anything runs, the whole pipeline is checked statically: each pass's ``requires`` must be
established by an earlier pass (or the importer), and nothing in ``forbids`` may hold. This is
what refuses quantize-before-prune with a clear message. After every pass the IR can be verified
(always in tests).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from rsnn_compiler.errors import PipelineError
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.text import structural_hash
from rsnn_compiler.ir.verify import verify
from rsnn_compiler.passes_api import PassContext, PassReport, Prop
from rsnn_compiler.registry import get_pass


@dataclass
class SkippedReport(PassReport):
    """Report of a pipeline step that was recorded but not run."""


class SkippedStep:
    """A pipeline step recorded as skipped (e.g. pruning turned off); establishes its props."""

    requires: ClassVar[frozenset[str]] = frozenset()
    invalidates: ClassVar[frozenset[str]] = frozenset()
    forbids: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, reason: str, establishes: frozenset[str]):
        self.name = name
        self.reason = reason
        self.establishes = establishes

    def run(self, graph: Graph, ctx: PassContext) -> tuple[Graph, PassReport]:
        return graph, SkippedReport(name=self.name, skipped=True, reason=self.reason)


def _props(p, attr: str) -> frozenset[str]:
    return frozenset(getattr(p, attr, frozenset()))


def check_pipeline(passes: list, initial: frozenset[str]) -> None:
    """Raise PipelineError if some pass would run before what it requires, or after what it forbids."""
    have = set(initial)
    providers: dict[str, str] = {}
    for p in passes:
        for prop in _props(p, "establishes"):
            providers.setdefault(prop, p.name)
    for i, p in enumerate(passes):
        missing = _props(p, "requires") - have
        if missing:
            prop = sorted(missing)[0]
            later = [q.name for q in passes[i + 1 :] if prop in _props(q, "establishes")]
            if later:
                raise PipelineError(
                    f"pipeline runs '{p.name}' before '{later[0]}', but '{p.name}' needs the graph"
                    f" to be '{prop}' first; reorder the pipeline so '{later[0]}' comes before"
                    f" '{p.name}' (docs/design.md §5: prune -> quantize)"
                )
            raise PipelineError(
                f"pass '{p.name}' needs the graph to be '{prop}', but no earlier step establishes it;"
                f" add a pass that does (e.g. {providers.get(prop, 'an importer')}) before it"
            )
        clash = _props(p, "forbids") & have
        if clash:
            prop = sorted(clash)[0]
            raise PipelineError(
                f"pass '{p.name}' cannot run on a graph that is already '{prop}'; run '{p.name}'"
                f" before the pass that makes it '{prop}' (docs/design.md §5: prune -> quantize)"
            )
        have = (have - _props(p, "invalidates")) | _props(p, "establishes")


def resolve_pipeline(steps: list) -> list:
    """Turn names into pass objects; pass-like objects are kept as they are."""
    return [get_pass(s) if isinstance(s, str) else s for s in steps]


def run_pipeline(
    graph: Graph, steps: list, ctx: PassContext
) -> tuple[Graph, list[PassReport]]:
    passes = resolve_pipeline(steps)
    check_pipeline(passes, graph.attrs.properties)
    reports: list[PassReport] = []
    for index, p in enumerate(passes, 1):
        ctx.progress(f"[{index}/{len(passes)}] {p.name}")
        before = structural_hash(graph)
        start = time.perf_counter()
        new_graph, report = p.run(graph, ctx)
        report.wall_time_s = time.perf_counter() - start
        props = (set(new_graph.attrs.properties) - _props(p, "invalidates")) | _props(p, "establishes")
        new_graph = new_graph.with_attrs(properties=frozenset(props))
        report.hash_before = before
        report.hash_after = structural_hash(new_graph)
        report.changed = report.hash_before != report.hash_after
        if ctx.verify_each:
            problems = verify(new_graph)
            if problems:
                raise PipelineError(f"pass '{p.name}' produced an invalid graph: {problems[0]}")
        reports.append(report)
        graph = new_graph
    return graph, reports


__all__ = ["Prop", "SkippedStep", "check_pipeline", "run_pipeline"]
