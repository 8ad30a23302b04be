"""``rsnnc passes``: the registered passes and the pipeline per target."""

from __future__ import annotations

import json
import sys

import rich_click as click

from rsnn_compiler import registry
from rsnn_compiler.cli.common import Example, common_options, epilog, handler, json_option

EXAMPLES = (Example("rsnnc passes"), Example("rsnnc passes --json"))


@click.command("passes", help="List the passes and the pipeline per target.",
               short_help="list the passes and the pipeline per target", epilog=epilog(EXAMPLES))
@json_option()
@common_options
@handler
def command(args, out, err) -> int:
    from rich.table import Table

    from rsnn_compiler.build import BuildOptions, fixed_pipeline, float_pipeline

    rows = []
    for name in sorted(registry.PASSES):
        p = registry.get_pass(name)
        rows.append({
            "name": name,
            "requires": sorted(getattr(p, "requires", ())),
            "establishes": sorted(getattr(p, "establishes", ())),
            "forbids": sorted(getattr(p, "forbids", ())),
            "doc": (type(p).__module__ and (sys.modules[type(p).__module__].__doc__ or "").strip().splitlines() or [""])[0],
        })
    pipeline = {
        "float": ["import", *(s if isinstance(s, str) else s.name for s in float_pipeline(BuildOptions()))],
        "fixed (per profile)": fixed_pipeline(),
        "fixed (loihi2)": fixed_pipeline("loihi2"),
    }
    if args.json:
        print(json.dumps({"passes": rows, "pipeline": pipeline}, indent=2))
        return 0
    table = Table(title="Passes", title_justify="left")
    for col in ("pass", "requires", "establishes", "what it does"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], ", ".join(r["requires"]) or "-", ", ".join(r["establishes"]) or "-", r["doc"])
    out.print(table)
    for key, steps in pipeline.items():
        out.print(f"pipeline {key}: {' -> '.join(steps)}")
    return 0
