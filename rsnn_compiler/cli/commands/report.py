"""``rsnnc report``: what every pass of a build did, with its numbers."""

from __future__ import annotations

import json
from pathlib import Path

import rich_click as click

from rsnn_compiler.cli.common import Example, common_options, epilog, handler, json_option

EXAMPLES = (
    Example("rsnnc report build/demo"),
    Example("rsnnc report build/demo --json", "{build, compiler, input, pipeline, passes: [...]}"),
    Example("rsnnc report build/demo --plots plots/demo", "also the figures drawn from the pass reports"),
)


@click.command("report", help="Show what every pass did.", short_help="show what every pass did", epilog=epilog(EXAMPLES))
@click.argument("build", metavar="BUILD", type=click.Path(file_okay=False))
@click.option("--plots", type=click.Path(file_okay=False), metavar="DIR",
              help="also write the figures drawn from the pass reports (PNG and SVG) into DIR; see `rsnnc plot`")
@json_option("print {build, pipeline, passes: [...]} as JSON")
@common_options
@handler
def command(args, out, err) -> int:
    from rsnn_compiler.artifact import read_manifest, read_timings
    from rsnn_compiler.errors import UserInputError
    from rsnn_compiler.mapping_report import mapping_metrics, mapping_tables
    from rsnn_compiler.reports import accuracy_lines, detail_tables, merged_reports, passes_table, warning_lines

    manifest = read_manifest(Path(args.build))
    reports = merged_reports(manifest, read_timings(Path(args.build)))
    if args.json:
        print(json.dumps({
            "build": str(args.build),
            "compiler": manifest.get("compiler"),
            "input": manifest.get("input"),
            "pipeline": manifest.get("pipeline"),
            "warnings": manifest.get("warnings", []),
            "passes": reports,
            "accuracy": manifest.get("accuracy"),
        }, indent=2, sort_keys=True))
        return plots(args, manifest, out, err)
    for key, steps in manifest.get("pipeline", {}).items():
        out.print(f"pipeline [{key}]: {' -> '.join(steps)}")
    out.print(passes_table(reports))
    for line in accuracy_lines(manifest.get("accuracy")):
        out.print(line)
    for name, art in manifest.get("targets", {}).items():
        if art.get("details"):
            out.print(f"target {name}: {art['summary']}")
            for line in art["details"]:
                out.print(f"  {line}")
    for table in detail_tables(reports):
        out.print(table)
    for line in warning_lines(manifest):
        out.print(line, highlight=False, markup=False)
    mapping = mapping_metrics(reports)
    try:
        tables = mapping_tables(mapping) if mapping else []
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):  # a hand-edited manifest
        raise UserInputError(f"{args.build}: the map_loihi2 report in manifest.json is malformed;"
                             " rebuild with `rsnnc build`") from None
    for table in tables:
        out.print(table)
    return plots(args, manifest, out, err)


def plots(args, manifest: dict, out, err) -> int:
    """``--plots DIR``: the figures that need no data (``rsnnc plot`` without ``--data``)."""
    if not args.plots:
        return 0
    from rsnn_compiler.cli.commands.plot import check_outside_build, write_and_list

    check_outside_build(Path(args.build), Path(args.plots))
    return write_and_list(manifest, args.plots, None, 0, [], err if args.json else out, err)
