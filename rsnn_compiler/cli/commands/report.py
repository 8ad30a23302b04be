"""``rsnnc report``: what every pass of a build did, with its numbers."""

from __future__ import annotations

import json
from pathlib import Path

import rich_click as click

from rsnn_compiler.cli.common import Example, common_options, epilog, handler, json_option

EXAMPLES = (
    Example("rsnnc report build/demo"),
    Example("rsnnc report build/demo --json", "{build, compiler, input, pipeline, passes: [...]}"),
)


@click.command("report", help="Show what every pass did.", short_help="show what every pass did", epilog=epilog(EXAMPLES))
@click.argument("build", metavar="BUILD", type=click.Path(file_okay=False))
@json_option("print {build, pipeline, passes: [...]} as JSON")
@common_options
@handler
def command(args, out, err) -> int:
    from rsnn_compiler.artifact import read_manifest, read_timings
    from rsnn_compiler.errors import UserInputError
    from rsnn_compiler.mapping_report import mapping_metrics, mapping_tables, write_utilisation_plot
    from rsnn_compiler.reports import detail_tables, merged_reports, passes_table, warning_lines

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
        }, indent=2, sort_keys=True))
        return 0
    for key, steps in manifest.get("pipeline", {}).items():
        out.print(f"pipeline \\[{key}]: {' -> '.join(steps)}")
    out.print(passes_table(reports))
    for table in detail_tables(reports):
        out.print(table)
    for line in warning_lines(manifest):
        out.print(line, highlight=False, markup=False)
    mapping = mapping_metrics(reports)
    if mapping:
        try:
            tables = mapping_tables(mapping)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):  # a hand-edited manifest
            raise UserInputError(f"{args.build}: the map_loihi2 report in manifest.json is malformed;"
                                 " rebuild with `rsnnc build`") from None
        for table in tables:
            out.print(table)
        sub = Path(args.build) / "lava"
        out.print(write_utilisation_plot(mapping, (sub if sub.is_dir() else Path(args.build)) / "mapping.png"))
    return 0
