"""The sweep's table: ``sweep.json`` (every number) and ``sweep.md`` (one row per point).

Rows are in the configuration's order. Apart from ``wall_time_s`` and ``cached``, a row is a
function of the point's inputs: the same configuration gives the same table, whether its points
ran together, one by one, or partly in an earlier, interrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path

from rsnn_compiler.artifact import atomic_write_bytes
from rsnn_compiler.sweep.point import PointResult

FORMAT = "rsnnc-sweep/1"
TABLE_JSON = "sweep.json"
TABLE_MD = "sweep.md"


def table_json(config_path: str, axes: tuple[str, ...], results: list[PointResult]) -> dict:
    return {"format": FORMAT, "config": config_path, "axes": list(axes), "points": [r.to_json() for r in results]}


def _num(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _energy(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "-"
    for unit, scale in (("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if high >= scale:
            return f"{low / scale:.3g}–{high / scale:.3g} {unit}"
    return f"{low:.3g}–{high:.3g} J"


def _axis(value) -> str:
    if value is None or value is False:
        return "-"
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


COLUMNS = ("status", "steps", "fixed acc %", "float acc %", "synops/sample", "energy/sample", "Loihi 2 cores",
           "C memory B", "time s")


def table_cells(axes: tuple[str, ...], results: list[PointResult]) -> tuple[list[str], list[list[str]]]:
    """(column heads, one row of cells per point): what sweep.md and the console show."""
    head = ["#", *axes, *COLUMNS]
    rows = []
    for r in results:
        m = r.metrics
        cells = [str(r.index + 1), *(_axis(r.axes.get(a)) for a in axes), r.status]
        if m is None:
            cells += ["-"] * (len(COLUMNS) - 2)
        else:
            cells += [str(m.steps), _num(m.fixed_accuracy), _num(m.float_accuracy), _num(m.synops_per_sample),
                      _energy(m.energy_low_j, m.energy_high_j), _num(m.loihi2_cores), _num(m.c_memory_bytes)]
        cells.append(f"{r.wall_time_s:.1f}" + (" (cached)" if r.cached else ""))
        rows.append(cells)
    return head, rows


NOTE = ("Accuracy on the sweep's validation data; synops: effective synaptic operations per sample"
        " (fixed-point run); energy: with Loihi 1 per-operation costs, from the map_loihi2 report (points"
        " built for lava; no Loihi 2 per-op figure is published); Loihi 2 cores: map_loihi2; C memory:"
        " weights + one sample's state (points built for c). Build commands: sweep.json; docs/sweep.md.")


def table_markdown(axes: tuple[str, ...], results: list[PointResult]) -> str:
    head, rows = table_cells(axes, results)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    problems = [f"- point {r.index + 1} ({r.status}): {r.message}" for r in results if r.message]
    problems += [f"- point {r.index + 1}: warning: {w}" for r in results for w in r.warnings]
    return "\n".join([*lines, "", NOTE, *([""] + problems if problems else [])]) + "\n"


def write_table(root: Path, config_path: str, axes: tuple[str, ...], results: list[PointResult]) -> dict:
    data = table_json(config_path, axes, results)
    atomic_write_bytes(root / TABLE_JSON, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    atomic_write_bytes(root / TABLE_MD, table_markdown(axes, results).encode())
    return data


__all__ = ["FORMAT", "TABLE_JSON", "TABLE_MD", "table_cells", "table_json", "table_markdown", "write_table"]
