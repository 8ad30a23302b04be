"""``rsnnc targets``: the registered targets, their fixed-point profile and status."""

from __future__ import annotations

import json

import rich_click as click

from rsnn_compiler import registry
from rsnn_compiler.cli.common import Example, common_options, epilog, handler, json_option

EXAMPLES = (Example("rsnnc targets"), Example("rsnnc targets --json"))


@click.command("targets", help="List the targets and their status.", short_help="list the targets and their status",
               epilog=epilog(EXAMPLES))
@json_option()
@common_options
@handler
def command(args, out, err) -> int:
    from rich.table import Table

    rows = []
    for name in sorted(registry.BACKENDS):
        try:
            backend = registry.get_backend(name)
            status = getattr(backend, "status", lambda: "ready")()
            profile = backend.requires_profile or ("loihi2 or fpga" if backend.uses_fixed else None)
            rows.append({"name": name, "profile": profile, "description": backend.description, "status": status})
        except Exception as exc:  # a broken optional backend must not hide the others
            rows.append({"name": name, "profile": None, "description": "", "status": f"unavailable: {exc}"})
    if args.json:
        print(json.dumps({"targets": rows, "executors": sorted(registry.EXECUTORS)}, indent=2))
        return 0
    table = Table(title="Targets", title_justify="left")
    for col in ("target", "fixed-point profile", "status", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["profile"] or "- (float)", r["status"], r["description"])
    out.print(table)
    out.print(f"executors for `rsnnc run`: {', '.join(sorted(registry.EXECUTORS))}")
    return 0
