"""Frontend for rsnnc's own graph files (``.rsnn``, written by ``save_graph``)."""

from __future__ import annotations

import time

from rsnn_compiler.frontend_api import ImportOptions, ImportReport, ImportResult
from rsnn_compiler.ir.serialize import load_graph
from rsnn_compiler.ir.text import structural_hash
from rsnn_compiler.ir.verify import verify_or_raise
from rsnn_compiler.passes_api import Prop


def load(source: str, options: ImportOptions) -> ImportResult:
    start = time.perf_counter()
    graph = verify_or_raise(load_graph(source))
    notes = []
    if options.dt is not None and graph.attrs.dt is not None and options.dt != graph.attrs.dt:
        notes.append(f"--dt {options.dt} ignored: the graph already records dt = {graph.attrs.dt}")
    if options.reset is not None:
        notes.append("--reset ignored: an rsnn graph records the reset mode of every neuron")
    graph = graph.with_attrs(properties=graph.attrs.properties | {Prop.DISCRETIZED})
    digest = structural_hash(graph)
    report = ImportReport(
        name="import",
        source=str(source),
        source_format="rsnn",
        dt=graph.attrs.dt,
        dt_origin="recorded in the graph file",
        reset="per neuron",
        reset_origin="recorded in the graph file",
        discretisation="already discrete",
        nodes=len(graph),
        edges=len(graph.edges),
        hash_before=digest,
        hash_after=digest,
        wall_time_s=time.perf_counter() - start,
        notes=notes,
        reason=f"{len(graph)} nodes, {len(graph.edges)} edges",
    )
    return ImportResult(graph, report)
