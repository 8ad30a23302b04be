"""``rsnnc plot`` and ``rsnnc report --plots``: pictures of a build, as PNG and SVG in a folder
the user names (never into the build).

Figures (file stem -> content; numbers defined in ``plot_data``):

- ``raster_s<N>``: spikes of every spiking layer over time for sample N (fixed point when the
  build has it, else float);
- ``activity``: per-layer firing rate and activation sparsity over the data;
- ``accuracy_vs_steps``: accuracy after t steps, float and fixed point (needs labels), plus the
  prune_temporal curve when that pass ran;
- ``accuracy_vs_sparsity``: prune_spatial's curve (needs a build with ``--prune``);
- ``membrane_s<N>``: float vs fixed-point membrane potential of chosen neurons for sample N;
- ``quantization``: per-layer weight SQNR (quantize_weights) and fixed-vs-float spike agreement;
- ``core_utilisation``: Loihi 2 per-core use (map_loihi2; builds with the lava target).

Figures whose inputs are missing are skipped with the reason. Files are deterministic (no dates,
fixed SVG ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rsnn_compiler.plot_data import (Neuron, Runs, accuracy_by_steps, default_neurons, layer_activity, membrane,
                                     pass_metrics)

FORMATS = ("png", "svg")


@dataclass
class PlotResult:
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "stem: why"


def _figure(rows: int = 1, cols: int = 1, size=(7.0, 4.0)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _label(ax, xlabel: str, ylabel: str, title: str, legend: bool = True, grid: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(fontsize=8)
    if grid:
        ax.grid(alpha=0.3)


def _save(fig, out_dir: Path, stem: str, formats, result: PlotResult) -> None:
    import matplotlib

    out_dir.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context({"svg.hashsalt": "rsnnc", "svg.fonttype": "none"}):
        for fmt in formats:
            path = out_dir / f"{stem}.{fmt}"
            meta = {"Date": None} if fmt == "svg" else {"Software": None} if fmt == "png" else {}
            fig.savefig(path, format=fmt, dpi=120, metadata=meta)
            result.written.append(path)


# ------------------------------------------------------------------ figures from a run
def raster(runs: Runs, sample: int):
    run = runs.main_run()
    layers = [n for n, s in run.spikes.items() if s.size]
    if not layers:
        return None
    domain = f"fixed point ({runs.profile})" if runs.fixed_run is not None else "float"
    fig, axes = _figure(len(layers), 1, size=(8.0, 1.2 + 1.8 * len(layers)))
    for ax, node in zip(axes[:, 0], layers):
        s = np.asarray(run.spikes[node])
        s = s.reshape(s.shape[0], s.shape[1], -1)[:, sample]
        t, i = np.nonzero(s)
        ax.scatter(t, i, s=6, marker="|", linewidths=1.0, color="black")
        ax.set_xlim(-0.5, s.shape[0] - 0.5)
        ax.set_ylim(-0.5, s.shape[1] - 0.5)
        ax.set_ylabel(f"{node}\nneuron")
        ax.set_title(f"{node}: {len(t)} spikes, {s.shape[1]} neurons", fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time step")
    fig.suptitle(f"Spike raster, sample {sample}, {domain}")
    return fig


def activity(runs: Runs):
    rows = layer_activity(runs.main_run())
    if not rows:
        return None
    names = [r.node for r in rows]
    fig, axes = _figure(1, 2, size=(9.0, 3.6))
    ax = axes[0, 0]
    ax.bar(names, [r.firing_rate for r in rows], color="tab:blue")
    ax.set_ylabel("spikes / neuron / step")
    ax.set_title("firing rate")
    ax = axes[0, 1]
    ax.bar(names, [100 * r.sparsity for r in rows], color="tab:gray")
    ax.set_ylabel("% zero outputs")
    ax.set_ylim(0, 100)
    ax.set_title("activation sparsity")
    for ax in axes[0]:
        ax.tick_params(axis="x", labelrotation=30)
    domain = "fixed point" if runs.fixed_run is not None else "float"
    samples = runs.main_run().out.shape[1]
    fig.suptitle(f"Per-layer activity over {samples} samples ({domain})")
    return fig


def accuracy_vs_steps(runs: Runs | None, manifest: dict):
    temporal = pass_metrics(manifest, "prune_temporal")
    curve = (temporal or {}).get("curve") or []
    have_run = runs is not None and runs.y is not None
    if not (have_run or curve):
        return None
    fig, axes = _figure()
    ax = axes[0, 0]
    if have_run:
        for label, run in (("float", runs.float_run), (f"fixed point ({runs.profile})", runs.fixed_run)):
            if run is not None:
                acc = accuracy_by_steps(run.out, runs.y)
                ax.plot(np.arange(1, len(acc) + 1), acc, marker=".", label=f"{label}, this data")
    if curve:
        pts = [(p["steps"], p["accuracy"]) if isinstance(p, dict) else (p[0], p[2]) for p in curve]
        ax.plot(*zip(*pts), ls="--", color="tab:green", label="prune_temporal (calibration data)")
        chosen = temporal.get("steps_after")
        if chosen:
            ax.axvline(chosen, color="tab:green", lw=0.8, ls=":", label=f"chosen T = {chosen}")
    _label(ax, "time steps run", "accuracy (%)", "Accuracy versus time steps")
    return fig


def membrane_traces(runs: Runs, sample: int, neurons: list[Neuron]):
    neurons = neurons or default_neurons(runs, sample)
    if not neurons:
        return None
    fig, axes = _figure(len(neurons), 1, size=(8.0, 1.0 + 1.9 * len(neurons)))
    for ax, neuron in zip(axes[:, 0], neurons):
        fv, qv = membrane(runs, neuron, sample)
        t = np.arange(len(fv))
        ax.plot(t, fv, label="float", color="tab:blue")
        if qv is not None:
            ax.plot(t, qv, label=f"fixed point ({runs.profile}) / 2^scale", color="tab:orange", ls="--")
        ax.set_ylabel(f"v  {neuron}")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("time step")
    fig.suptitle(f"Membrane potential, sample {sample}: float versus fixed point")
    return fig


def quantization(runs: Runs | None, manifest: dict):
    weights = (pass_metrics(manifest, "quantize_weights") or {}).get("layers") or []
    agreement = []
    if runs is not None and runs.fixed_run is not None:
        from rsnn_compiler.validate import layer_agreement

        agreement = layer_agreement(runs.float_run, runs.fixed_run)
    if not (weights or agreement):
        return None
    panels = [p for p in (weights, agreement) if p]
    fig, axes = _figure(1, len(panels), size=(4.8 * len(panels), 3.6))
    col = 0
    if weights:
        ax = axes[0, col]
        ax.bar([w["node"] for w in weights], [w["sqnr_db"] for w in weights], color="tab:purple")
        ax.set_ylabel("SQNR (dB)")
        ax.set_title("weight quantization: signal / error")
        col += 1
    if agreement:
        ax = axes[0, col]
        ax.bar([a.node for a in agreement], [100 * (1 - a.spike_agreement) for a in agreement], color="tab:red")
        ax.set_ylabel("% spike entries that differ")
        ax.set_title("fixed point vs float, per layer")
    for ax in axes[0]:
        ax.tick_params(axis="x", labelrotation=30)
    profile = (pass_metrics(manifest, "quantize_weights") or {}).get("profile") or (runs.profile if runs else "")
    fig.suptitle(f"Quantization error per layer ({profile})")
    return fig


# ------------------------------------------------------------------ figures from reports
def accuracy_vs_sparsity(manifest: dict):
    spatial = pass_metrics(manifest, "prune_spatial") or {}
    curve = spatial.get("curve") or []
    if not curve:
        return None
    fig, axes = _figure()
    ax = axes[0, 0]
    ax.plot([100 * s for s, _ in curve], [a for _, a in curve], marker="o", label="pruned, no fine-tune")
    tuned = spatial.get("curve_finetuned") or []
    if tuned:
        ax.plot([100 * s for s, _ in tuned], [a for _, a in tuned], marker="s", label="pruned + fine-tune")
    if spatial.get("accuracy_after") is not None and spatial.get("fraction_reached") is not None:
        ax.scatter([100 * spatial["fraction_reached"]], [spatial["accuracy_after"]], color="black", zorder=3,
                   label="this build (after fine-tune)")
    _label(ax, "weights pruned (%)", "accuracy (%) on calibration data", "Accuracy versus sparsity (prune_spatial)")
    return fig


def core_utilisation(manifest: dict):
    m = pass_metrics(manifest, "map_loihi2") or {}
    cores = m.get("core_utilisation") or []
    if not cores:
        return None
    keys = ("neurons", "memory", "in_axons", "out_axons")
    fig, axes = _figure(size=(max(6.0, min(0.12 * len(cores), 30.0)), 3.6))
    ax = axes[0, 0]
    width = 0.8 / len(keys)
    x = np.arange(len(cores))
    for i, k in enumerate(keys):
        ax.bar(x + (i - 1.5) * width, [c[k] for c in cores], width, label=k)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    _label(ax, "neuro-core (population order)", "fraction of core limit",
           f"Loihi 2 per-core utilisation ({m['cores']} cores, {m['chips']} chip(s), {m['board']})", grid=False)
    return fig


SKIP_REASONS = {
    "accuracy_vs_sparsity": "no prune_spatial curve (build with --prune and --calib)",
    "core_utilisation": "no Loihi 2 mapping (build with --target lava)",
    "accuracy_vs_steps": "no labels y in --data and no prune_temporal curve",
    "quantization": "no fixed-point graph (build with an integer target, e.g. --target c)",
}


def write_plots(manifest: dict, out_dir: Path, runs: Runs | None = None, sample: int = 0,
                neurons: list[Neuron] | None = None, formats=FORMATS) -> PlotResult:
    """Every figure the build and ``runs`` allow, into ``out_dir`` as ``<stem>.<format>``."""
    from rsnn_compiler import progress

    figures: list[tuple[str, Callable]] = []
    if runs is not None:
        figures += [(f"raster_s{sample}", lambda: raster(runs, sample)), ("activity", lambda: activity(runs)),
                    (f"membrane_s{sample}", lambda: membrane_traces(runs, sample, neurons or []))]
    figures += [("accuracy_vs_steps", lambda: accuracy_vs_steps(runs, manifest)),
                ("accuracy_vs_sparsity", lambda: accuracy_vs_sparsity(manifest)),
                ("quantization", lambda: quantization(runs, manifest)),
                ("core_utilisation", lambda: core_utilisation(manifest))]
    result = PlotResult()
    for stem, make in progress.track(figures, "plots", unit="figure"):
        fig = make()
        if fig is None:
            result.skipped.append(f"{stem}: {SKIP_REASONS.get(stem, 'nothing to draw')}")
            continue
        _save(fig, Path(out_dir), stem, formats, result)
    return result
