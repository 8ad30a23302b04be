"""``rsnnc targets``: the registered targets, their fixed-point profile and status."""

from __future__ import annotations

import json

import rich_click as click

from rsnn_compiler import registry
from rsnn_compiler.cli.common import Example, common_options, epilog, handler, json_option

EXAMPLES = (Example("rsnnc targets"), Example("rsnnc targets --check", "also look for each target's environment (Lava) and say whether float32 products are batch-layout independent (oneMKL mode)"))

UNCHECKED = "see `rsnnc targets --check`"


def environment_status(name: str) -> str:
    """The backend's own ``status()`` (imports it; for Lava, starts its interpreter)."""
    try:
        return registry.get_backend(name).status()
    except Exception as exc:  # a broken optional backend must not hide the others
        return f"unavailable: {type(exc).__name__}: {exc}"


@click.command("targets", help="List the targets and their status.", short_help="list the targets and their status",
               epilog=epilog(EXAMPLES))
@click.option("--check", is_flag=True,
              help="check the environments targets need to run (imports the backends and Lava: seconds), and whether this process's float32 products are independent of batch layout (oneMKL's reproducibility mode, which the bit-exact float checks rely on)")
@json_option()
@common_options
@handler
def command(args, out, err) -> int:
    from rsnn_compiler import catalog

    rows = []
    for t in catalog.targets():
        status = "ready" if not t.checks_environment else environment_status(t.name) if args.check else UNCHECKED
        rows.append({"name": t.name, "profile": t.profile, "description": t.description, "status": status})
    floats = None
    if args.check:
        from rsnn_compiler.float_repro import describe

        floats = describe()
    if args.json:
        doc = {"targets": rows, "executors": sorted(registry.EXECUTORS)}
        if floats is not None:
            doc["float_products"] = floats
        print(json.dumps(doc, indent=2))
        return 0
    from rich.table import Table

    table = Table(title="Targets", title_justify="left")
    for col in ("target", "fixed-point profile", "status", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["profile"] or "- (float)", r["status"], r["description"])
    out.print(table)
    out.print(f"executors for `rsnnc run`: {', '.join(sorted(registry.EXECUTORS))}")
    if floats is not None:
        out.print(floats, markup=False)
    return 0
