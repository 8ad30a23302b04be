"""The sweep's Pareto picture: fixed-point accuracy against each cost (``pareto.png``/``.svg``).

Four panels, cost on x, accuracy on y: effective synaptic operations per sample, energy per
sample (the upper end of the Loihi 1 range; the range is drawn as a bar), Loihi 2 cores, C
memory (weights + one sample's state). Each panel shows the points that have both numbers
(labelled by their number in the table) and joins its Pareto front: the points no other point
beats on both (higher accuracy, lower cost). A panel no point has numbers for says which
target gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rsnn_compiler.sweep.point import PointResult

STEM = "pareto"


@dataclass(frozen=True)
class Panel:
    metric: str  # PointMetrics attribute (or property)
    label: str
    missing: str  # why a point may lack it


PANELS = (
    Panel("synops_per_sample", "effective synaptic operations / sample", "no point was validated"),
    Panel("energy_high_j", "energy / sample, J (Loihi 1 per-op costs)", "points built for lava have it"),
    Panel("loihi2_cores", "Loihi 2 cores", "points built for lava have it"),
    Panel("c_memory_bytes", "C memory, bytes (weights + state)", "points built for c have it"),
)


def pareto_front(points: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """The (cost, accuracy, index) points no other point beats on both, by increasing cost: a
    point stays when its accuracy is above that of every point costing no more."""
    front: list[tuple[float, float, int]] = []
    for cost, acc, index in sorted(points, key=lambda p: (p[0], -p[1], p[2])):
        if not front or acc > front[-1][1]:
            front.append((cost, acc, index))
    return front


def panel_points(results: list[PointResult], metric: str) -> list[tuple[float, float, int]]:
    out = []
    for r in results:
        m = r.metrics
        if r.status != "ok" or m is None or m.fixed_accuracy is None:
            continue
        cost = getattr(m, metric)
        if cost is not None:
            out.append((float(cost), float(m.fixed_accuracy), r.index))
    return out


def write_pareto(root: Path, results: list[PointResult]) -> list[Path]:
    """Draw the panels into ``root/pareto.{png,svg}``; returns the files written (none when no
    point has a fixed-point accuracy: labels are needed)."""
    from rsnn_compiler.plots import FORMATS, PlotResult, _figure, _label, _save

    if not any(panel_points(results, p.metric) for p in PANELS):
        return []
    fig, axes = _figure(2, 2, size=(10.0, 7.5))
    by_index = {r.index: r for r in results}
    for ax, panel in zip(axes.flat, PANELS):
        points = panel_points(results, panel.metric)
        if not points:
            ax.text(0.5, 0.5, f"no numbers: {panel.missing}", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            _label(ax, panel.label, "fixed-point accuracy, %", panel.label, legend=False)
            continue
        if panel.metric == "energy_high_j":
            lows = [by_index[i].metrics.energy_low_j for _, _, i in points]
            ax.errorbar([c for c, _, _ in points], [a for _, a, _ in points],
                        xerr=[[c - lo for (c, _, _), lo in zip(points, lows)], [0.0] * len(points)],
                        fmt="none", ecolor="0.6", elinewidth=1)
        ax.scatter([c for c, _, _ in points], [a for _, a, _ in points], color="0.45", s=22, label="points", zorder=2)
        front = pareto_front(points)
        ax.plot([c for c, _, _ in front], [a for _, a, _ in front], "o-", color="C3", ms=6, label="Pareto front",
                drawstyle="steps-post", zorder=3)
        labels: dict[tuple[float, float], list[str]] = {}
        for cost, acc, index in points:  # points at the same place share one label: "1,2"
            labels.setdefault((cost, acc), []).append(str(index + 1))
        for (cost, acc), names in labels.items():
            ax.annotate(",".join(names), (cost, acc), textcoords="offset points", xytext=(4, 4), fontsize=8)
        costs = [c for c, _, _ in points]
        if min(costs) > 0 and max(costs) > 20 * min(costs):
            ax.set_xscale("log")
        elif panel.metric == "loihi2_cores":
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _label(ax, panel.label, "fixed-point accuracy, %", panel.label)
    result = PlotResult()
    _save(fig, root, STEM, FORMATS, result)
    return result.written


__all__ = ["PANELS", "pareto_front", "panel_points", "write_pareto"]
