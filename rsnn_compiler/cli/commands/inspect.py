"""``rsnnc inspect``: a model's or a build's IR in text form."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import rich_click as click

from rsnn_compiler.cli.common import Example, common_options, epilog, handler, import_options, json_option

EXAMPLES = (
    Example("rsnnc inspect models/example/recurrent.rsnn", "import, verify and print the IR text form"),
    Example("rsnnc inspect build/demo", "summary of a build and its float graph"),
    Example("rsnnc inspect models/rleaky_mnist1d/model.nir --reset subtract_deferred --json"),
)


@click.command("inspect", help="Show a model's or a build's IR.", short_help="show a model's or a build's IR",
               epilog=epilog(EXAMPLES))
@click.argument("target", metavar="INPUT_OR_BUILD")
@import_options
@json_option()
@common_options
@handler
def command(args, out, err) -> int:
    from rsnn_compiler.artifact import MANIFEST, read_manifest
    from rsnn_compiler.build import _enum_option, import_model
    from rsnn_compiler.executors import load_build_graph
    from rsnn_compiler.frontend_api import ImportOptions, parse_factory_args
    from rsnn_compiler.ir.ops import Comparator, ResetMode
    from rsnn_compiler.ir.text import structural_hash, to_text

    path = Path(args.target)
    if path.is_dir() and (path / MANIFEST).exists():
        manifest = read_manifest(path)
        graph = load_build_graph(path, manifest, "float")
        header = {"build": str(path), "input": manifest.get("input"), "graphs": manifest.get("graphs")}
    else:
        options = ImportOptions(
            dt=args.dt, reset=_enum_option(args.reset, ResetMode, "--reset"),
            comparator=_enum_option(args.comparator, Comparator, "--comparator"), nir_source=args.nir_source,
            weights=args.weights, trust_checkpoint=args.trust_checkpoint,
            factory_args=parse_factory_args(args.factory_args), initial_weights=args.initial_weights,
        )
        result = import_model(str(args.target), options)
        graph = result.graph
        header = {"input": str(args.target), "import": result.report.to_json()}
    if args.json:
        header.update({
            "hash": structural_hash(graph),
            "nodes": {n: {"kind": op.kind.value, "in_shape": list(op.in_shape), "out_shape": list(op.out_shape)}
                      for n, op in graph.nodes.items()},
            "edges": [[e.src, e.dst, e.delay] for e in graph.edges],
            "text": to_text(graph),
        })
        print(json.dumps(header, indent=2, sort_keys=True))
    else:
        sys.stdout.write(to_text(graph))
        out.print(f"# {len(graph)} nodes, {len(graph.edges)} edges, hash {structural_hash(graph)[:16]}", highlight=False)
    return 0
