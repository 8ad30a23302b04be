"""``rsnnc export``: a build's graph in another format (NIR, lava-dl netx)."""

from __future__ import annotations

from pathlib import Path

import rich_click as click

from rsnn_compiler import registry
from rsnn_compiler.cli.common import Example, common_options, epilog, handler
from rsnn_compiler.errors import UserInputError

EXAMPLES = (
    Example("rsnnc export build/demo --format nir -o demo.nir"),
    Example("rsnnc export build/stock --format netx -o model.net"),
)


@click.command("export", help="Export a build's graph to another format.",
               short_help="export a build's graph to another format", epilog=epilog(EXAMPLES))
@click.argument("build", metavar="BUILD", type=click.Path(file_okay=False))
@click.option("--format", "format", required=True, metavar="FORMAT",
              help=f"export format: {', '.join(sorted(registry.EXPORTERS))}")
@click.option("-o", "--out", required=True, type=click.Path(), metavar="FILE")
@common_options
@handler
def command(args, out, err) -> int:
    from rsnn_compiler.artifact import read_manifest
    from rsnn_compiler.executors import load_build_graph

    if args.format not in registry.EXPORTERS:
        known = ", ".join(sorted(registry.EXPORTERS)) or "none in this installation"
        raise UserInputError(f"unknown export format '{args.format}'; available: {known}")
    manifest = read_manifest(Path(args.build))
    exporter = registry.resolve(registry.EXPORTERS[args.format])
    key = getattr(exporter, "graph_key", "float")  # e.g. netx exports the loihi2 graph
    if key not in manifest.get("graphs", {}):
        raise UserInputError(f"format '{args.format}' exports the {key} graph, which this build lacks;"
                             f" rebuild with a target that makes it (e.g. --target lava)")
    graph = load_build_graph(Path(args.build), manifest, key)
    how = exporter(graph, args.out)
    out.print(f"wrote {args.out} ({args.format})" + (f"; {how}" if isinstance(how, str) else ""))
    return 0
