"""Render pass reports (as stored in a build manifest) as JSON or human tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
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


def detail_tables(reports: list[dict[str, Any]]) -> list[Table]:
    """One table per report whose metrics hold ``layers`` (a list of per-layer dicts, e.g. the
    ANN-to-SNN conversion report), plus its ``accuracy`` per T when present."""
    tables = []
    for rep in reports:
        m = rep.get("metrics", {})
        layers = m.get("layers")
        if not (isinstance(layers, list) and layers and all(isinstance(r, dict) for r in layers)):
            continue
        acc = m.get("accuracy") or {}
        title = f"{rep['name']}: per layer"
        if acc.get("snn") or acc.get("agreement"):
            per_t = acc.get("snn") or acc.get("agreement")
            what = "accuracy" if acc.get("snn") else "agreement with the ANN"
            ann = f"ANN {acc['ann']}%, " if acc.get("ann") is not None else ""
            title += f"  ({ann}SNN {what} by T: " + ", ".join(f"T={t} {v}%" for t, v in per_t.items())
            title += f"; on {acc['data']})" if acc.get("data") else ")"
        table = Table(title=title, title_justify="left", expand=False)
        cols = m.get("layer_columns") or [
            k for k in layers[0] if k not in ("site", "where")
            and any(_short(r.get(k)) is not None or isinstance(r.get(k), str) for r in layers)]
        for col in cols:
            table.add_column(col)
        for r in layers:
            table.add_row(*[(_short(r.get(c)) if _short(r.get(c)) is not None else str(r.get(c, ""))) for c in cols])
        tables.append(table)
    return tables


def warning_lines(manifest: dict) -> list[str]:
    """The build's warnings (results that differ from the source model), one line each."""
    warnings = [w for w in manifest.get("warnings", []) if isinstance(w, str)]
    if not warnings:
        return []
    return [f"warnings ({len(warnings)}): results that differ from the source model"] + [f"  - {w}" for w in warnings]


def print_build_summary(console: Console, manifest: dict, timings: dict, outdir: str) -> None:
    console.print(f"[bold]rsnnc build[/bold] {escape(str(manifest['input']['source']))} -> {escape(str(outdir))}",
                  markup=True)
    for rep in manifest.get("passes", [])[:1]:
        m = rep.get("metrics", {})
        if "dt" in m:
            console.print(f"  import: {m.get('source_format')}, dt {m.get('dt')} ({m.get('dt_origin')}),"
                          f" reset {m.get('reset')} ({m.get('reset_origin')})")
    console.print(f"  targets: {', '.join(manifest['options']['targets'])}    dt: {manifest.get('dt')}")
    for name, g in manifest.get("graphs", {}).items():
        console.print(f"  graph [{name}]: {g['file']}  hash {g['hash'][:16]}")
    for name, art in manifest.get("targets", {}).items():
        files = ", ".join(art["files"]) if art["files"] else "-"
        console.print(f"  target {name}: {art['summary']}  files: {files}")
        for line in art.get("details", []):
            console.print(f"    {line}")
    console.print(passes_table(merged_reports(manifest, timings)))
    for line in accuracy_lines(manifest.get("accuracy")):
        console.print(line)
    if manifest.get("warnings"):
        console.print(f"  {len(manifest['warnings'])} warning(s), printed above and in `rsnnc report {outdir}`",
                      highlight=False, markup=False)


def accuracy_lines(record: dict | None) -> list[str]:
    """The manifest's ``accuracy`` block as text: every number a percentage, with its data."""
    if not record:
        return ["  accuracy: not measured (no labelled data; give --holdout TEST.npz or labels in --calib)"]
    lines = [f"  accuracy on {record['data']}:"]
    if record.get("float_model") is not None:
        lines.append(f"    float model {record['float_model']:.2f}%")
    for step in record.get("steps", []):
        drop = "" if step.get("drop") is None else f" ({-step['drop']:+.2f} points)"
        flag = "" if step.get("within_tolerance", True) else "  beyond tolerance"
        lines.append(f"    {step['step']}: {step['accuracy']:.2f}%{drop}{flag}")
    if record.get("float_model") is not None:
        lines.append(f"    tolerance {record['tolerance']:g} points below the float model"
                     + ("; loss accepted (--accept-accuracy-loss)" if record.get("accepted_loss") else ""))
    lines += [f"    note: {n}" for n in record.get("notes", [])]
    return lines
