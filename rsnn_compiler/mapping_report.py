"""Human tables for the ``map_loihi2`` report (``rsnnc report``); its per-core picture is in ``plots.py``."""
from __future__ import annotations

from typing import Any

from rich.table import Table


def mapping_metrics(reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    for rep in reports:
        if rep.get("name") == "map_loihi2" and not rep.get("skipped"):
            return rep.get("metrics", {})
    return None


def _j(value: float) -> str:
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} J"


def mapping_tables(m: dict[str, Any]) -> list[Table]:
    """Mapping summary + violations, per-population cores, operations and energy ranges."""
    head = Table(title=f"Loihi 2 mapping: {m['cores']} cores on {m['chips']} chip(s) of board {m['board']}"
                 f" ({m['board_chips']} chips); utilisation mean {m['mean_core_utilisation']:.2f},"
                 f" max {m['max_core_utilisation']:.2f}; {'fits' if m['fits'] else 'DOES NOT FIT'}",
                 title_justify="left")
    for col in ("population", "neurons", "cores", "synapses", "memory KB", "max util", "msgs/spike"):
        head.add_column(col, justify="left" if col == "population" else "right")
    for r in m.get("populations", []):
        head.add_row(r["population"], str(r["neurons"]), str(r["cores"]), str(r["synapses"]),
                     f"{r['memory_kb']:.1f}", f"{r['max_util']:.2f}", f"{r['msgs_per_spike']:.2f}")
    tables = [head]
    if m.get("violations"):
        viol = Table(title="Loihi 2 mapping violations", title_justify="left")
        for col in ("where", "problem", "fix"):
            viol.add_column(col)
        for v in m["violations"]:
            viol.add_row(v["where"], v["problem"], v["fix"])
        tables.append(viol)
    energy = m.get("energy") or {}
    if energy:
        c = energy["counts"]
        ops = Table(title=f"Operations per sample ({c['source']}, T={c['steps']}"
                    + (f", {c['samples']} samples" if c["samples"] else "") + ")", title_justify="left")
        for col in ("synops", "dense synops", "neuron updates", "spikes", "messages"):
            ops.add_column(col, justify="right")
        ops.add_row(*[f"{c[k]:.4g}" for k in ("synops", "dense_synops", "neuron_updates", "spikes", "messages")])
        en = Table(title=f"Energy per sample (ranges; {energy['caveat']})", title_justify="left")
        for col in ("table", "low", "high", "what", "sources"):
            en.add_column(col)
        for r in energy["estimates"]:
            srcs = "; ".join(f"{k}: {v['low_pj']:g}-{v['high_pj']:g} pJ"
                             + (" (est.)" if v["estimate"] else "") for k, v in r["constants"].items())
            en.add_row(r["table"], _j(r["low_j"]), _j(r["high_j"]), r["description"], srcs)
        tables += [ops, en]
    return tables
