"""Render pass reports (as stored in a build manifest) as JSON or human tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def merged_reports(manifest: dict, timings: dict) -> list[dict[str, Any]]:
    """Pass reports in pipeline order, with wall times from timings.json merged back in."""
    times = timings.get("passes", [])
    out = []
    for i, rep in enumerate(manifest.get("passes", [])):
        rep = dict(rep)
        if i < len(times) and times[i].get("name") == rep.get("name"):
            rep["wall_time_s"] = times[i].get("wall_time_s")
        out.append(rep)
    return out


def _short(value: Any) -> str | None:
    """Compact text for numbers and flags; other values are for the JSON report only."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(value, ".4g")
    return None


def metric_summary(metrics: dict[str, Any], limit: int = 8) -> str:
    parts = []
    for key, value in metrics.items():
        if value is False or (not isinstance(value, bool) and value == 0):
            continue
        text = _short(value)
        if text is not None:
            parts.append(f"{key}={text}")
        if len(parts) >= limit:
            break
    return ", ".join(parts)


def passes_table(reports: list[dict[str, Any]], title: str = "Pass reports") -> Table:
    table = Table(title=title, title_justify="left")
    for col, kw in (("#", {"justify": "right"}), ("pass", {}), ("time", {"justify": "right"}),
                    ("changed", {}), ("summary", {}), ("numbers", {})):
        table.add_column(col, **kw)
    for i, rep in enumerate(reports, 1):
        t = rep.get("wall_time_s")
        time_text = "-" if t is None else f"{t * 1000:.1f} ms"
        changed = "skipped" if rep.get("skipped") else ("yes" if rep.get("changed") else "no")
        summary = rep.get("reason", "")
        if rep.get("notes"):
            summary += ("; " if summary else "") + "; ".join(rep["notes"])
        table.add_row(str(i), rep["name"], time_text, changed, summary, metric_summary(rep.get("metrics", {})))
    return table


def print_build_summary(console: Console, manifest: dict, timings: dict, outdir: str) -> None:
    console.print(f"[bold]rsnnc build[/bold] {manifest['input']['source']} -> {outdir}")
    for rep in manifest.get("passes", [])[:1]:
        m = rep.get("metrics", {})
        if "dt" in m:
            console.print(f"  import: {m.get('source_format')}, dt {m.get('dt')} ({m.get('dt_origin')}),"
                          f" reset {m.get('reset')} ({m.get('reset_origin')})")
    console.print(f"  targets: {', '.join(manifest['options']['targets'])}    dt: {manifest.get('dt')}")
    for name, g in manifest.get("graphs", {}).items():
        console.print(f"  graph \\[{name}]: {g['file']}  hash {g['hash'][:16]}")
    for name, art in manifest.get("targets", {}).items():
        files = ", ".join(art["files"]) if art["files"] else "-"
        console.print(f"  target {name}: {art['summary']}  files: {files}")
    console.print(passes_table(merged_reports(manifest, timings)))
