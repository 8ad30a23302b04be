"""Compile time versus network size (issue 8 (ii)).

Generated random networks, saved as ``.rsnn`` and compiled with ``rsnn_compiler.build.build``
(import -> canonicalize -> prune -> quantize_weights -> quantize_state (loihi2) -> check + emit of
the c, gpu and lava targets; Lava is emitted only, never run):

  * ``recurrent``:    n_in=64 -> Affine -> LIF(H) with an all-to-all recurrent Affine (delay 1)
                      -> Affine -> LIF(10); synapses = 64 H + H^2 + 10 H;
  * ``feedforward``:  n_in=H -> Affine -> LIF(H) -> Affine -> LIF(H) -> Affine -> LIF(10);
                      synapses = 2 H^2 + 10 H.

The default sweep goes from ~10k to >= 10M synapses (``--quick``: up to ~1M). Every stage is
timed: the passes from ``<build>/timings.json``, and (by wrapping, in this process only) graph
save/text dump and every backend's check and emit. Fits: ``t = a * n^b`` (least squares in
log-log, on the points with n >= 100k, where fixed costs no longer dominate, and on all points)
and a linear fit ``t = c0 + c1 n``; the same power fit per stage, so a superlinear stage shows.

    .venv/bin/python bench/compile_scaling.py [--quick] [--repeats 1]

Writes bench/results/compile_scaling.{md,json,png}. Not a test.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RESULTS, machine_info, markdown_table, plot, write_json, write_markdown  # noqa: E402

N_IN, N_OUT = 64, 10
FULL = {"recurrent": [64, 160, 330, 700, 1450, 3130], "feedforward": [70, 220, 700, 2230]}
QUICK = {"recurrent": [64, 160, 330, 700, 1000], "feedforward": [70, 220, 700]}
FIT_MIN_SYNAPSES = 100_000


def synapses(family: str, h: int) -> int:
    return N_IN * h + h * h + h * N_OUT if family == "recurrent" else 2 * h * h + h * N_OUT


def make_graph(family: str, h: int, seed: int = 0):
    from rsnn_compiler.ir.graph import GraphBuilder
    from rsnn_compiler.ir.ops import LIF, Affine, Input, Output, ResetMode, broadcast_params
    from rsnn_compiler.passes_api import Prop

    rng = np.random.default_rng(seed)

    def lif(n):
        p = broadcast_params((n,), beta=rng.uniform(0.8, 0.95, n), gain=1.0, bias=0.0, theta=1.0,
                             v_reset=0.0, v_init=0.0)
        return LIF(**p, reset=ResetMode.SUBTRACT_DEFERRED)

    def dense(n_out, n_in, gain=2.0):
        return Affine(weight=rng.normal(0.0, gain / math.sqrt(n_in), (n_out, n_in)).astype(np.float32))

    b = GraphBuilder(f"{family}_{h}", dt=1e-3)
    if family == "recurrent":
        b.add("input", Input(shape=(N_IN,)))
        b.add("fc_in", dense(h, N_IN))
        b.add("lif", lif(h))
        b.add("w_rec", dense(h, h, 0.5))
        b.add("fc_out", dense(N_OUT, h))
        b.add("out_lif", lif(N_OUT))
        b.add("output", Output(shape=(N_OUT,)))
        b.chain("input", "fc_in", "lif")
        b.connect("lif", "w_rec", delay=1)
        b.connect("w_rec", "lif")
        b.chain("lif", "fc_out", "out_lif", "output")
        n_in = N_IN
    else:
        b.add("input", Input(shape=(h,)))
        b.add("fc1", dense(h, h))
        b.add("lif1", lif(h))
        b.add("fc2", dense(h, h))
        b.add("lif2", lif(h))
        b.add("fc3", dense(N_OUT, h))
        b.add("lif3", lif(N_OUT))
        b.add("output", Output(shape=(N_OUT,)))
        b.chain("input", "fc1", "lif1", "fc2", "lif2", "fc3", "lif3", "output")
        n_in = h
    g = b.build().with_attrs(properties=frozenset({Prop.DISCRETIZED}))
    calib = (rng.random((20, 4, n_in)) < 0.2).astype(np.float32)
    return g, calib


class _Timed:
    """Backend proxy that records the wall time of ``check`` and ``emit``."""

    def __init__(self, inner, sink):
        self._inner, self._sink = inner, sink

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def check(self, graph):
        t0 = time.perf_counter()
        try:
            return self._inner.check(graph)
        finally:
            self._sink[f"check_{self._inner.name}"] += time.perf_counter() - t0

    def emit(self, graph, target_dir):
        t0 = time.perf_counter()
        try:
            return self._inner.emit(graph, target_dir)
        finally:
            self._sink[f"emit_{self._inner.name}"] += time.perf_counter() - t0


def instrument(sink: dict):
    """Wrap the build module's backend lookup and graph writers (this process only)."""
    import rsnn_compiler.build as bmod
    from rsnn_compiler import registry

    orig_get, orig_save, orig_text = registry.get_backend, bmod.save_graph, bmod.to_text

    def timed(key, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                sink[key] += time.perf_counter() - t0
        return wrapper

    bmod.registry = _RegistryProxy(registry, lambda t: _Timed(orig_get(t), sink))
    bmod.save_graph = timed("save_graph", orig_save)
    bmod.to_text = timed("text_dump", orig_text)


class _RegistryProxy:
    def __init__(self, inner, get_backend):
        self._inner, self.get_backend = inner, get_backend

    def __getattr__(self, name):
        return getattr(self._inner, name)


def power_fit(n, t) -> dict:
    n, t = np.asarray(n, float), np.asarray(t, float)
    ok = t > 0
    if ok.sum() < 2:
        return {"a": float("nan"), "b": float("nan")}
    b, loga = np.polyfit(np.log(n[ok]), np.log(t[ok]), 1)
    return {"a": float(math.exp(loga)), "b": float(b)}


def linear_fit(n, t) -> dict:
    n, t = np.asarray(n, float), np.asarray(t, float)
    c1, c0 = np.polyfit(n, t, 1)
    pred = c0 + c1 * n
    ss = float(((t - t.mean()) ** 2).sum())
    r2 = 1.0 - float(((t - pred) ** 2).sum()) / ss if ss > 0 else float("nan")
    return {"c0_s": float(c0), "c1_s_per_synapse": float(c1), "r2": r2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sweep (up to ~1M synapses)")
    ap.add_argument("--repeats", type=int, default=1, help="builds per size (median)")
    ap.add_argument("--targets", default="c,gpu,lava")
    ap.add_argument("--families", default="recurrent,feedforward")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from rsnn_compiler.build import BuildOptions, build
    from rsnn_compiler.ir.serialize import save_graph

    sink: dict = defaultdict(float)
    instrument(sink)
    sweep = QUICK if args.quick else FULL
    targets = tuple(args.targets.split(","))
    points = []
    with tempfile.TemporaryDirectory(prefix="rsnnc-scaling-") as tmp:
        tmp = Path(tmp)
        for family in args.families.split(","):
            for h in sweep[family]:
                g, calib = make_graph(family, h)
                src, cal = tmp / f"{family}_{h}.rsnn", tmp / f"{family}_{h}_calib.npz"
                save_graph(g, src)
                np.savez(cal, x=calib)
                del g
                runs = []
                for _ in range(args.repeats):
                    sink.clear()
                    out = tmp / "build"
                    t0 = time.perf_counter()
                    build(str(src), out, BuildOptions(targets=targets, calib=str(cal)))
                    total = time.perf_counter() - t0
                    stages = {p["name"]: p["wall_time_s"]
                              for p in __import__("json").loads((out / "timings.json").read_text())["passes"]}
                    stages.update(sink)
                    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
                    runs.append((total, stages, size))
                    shutil.rmtree(out, ignore_errors=True)
                runs.sort(key=lambda r: r[0])
                total, stages, size = runs[len(runs) // 2]
                n = synapses(family, h)
                stages["other"] = max(0.0, total - sum(stages.values()))
                points.append({"family": family, "hidden": h, "synapses": n, "total_s": total,
                               "all_totals_s": [r[0] for r in runs], "stages_s": stages, "build_bytes": size})
                top = sorted(stages.items(), key=lambda kv: -kv[1])[:3]
                print(f"{family:11s} H={h:5d} synapses={n:>11,} total {total:7.2f} s  "
                      + ", ".join(f"{k} {v:.2f}" for k, v in top), flush=True)
                src.unlink()

    fits = {}
    stage_names = sorted({k for p in points for k in p["stages_s"]})
    for family in args.families.split(","):
        pts = [p for p in points if p["family"] == family]
        n = [p["synapses"] for p in pts]
        t = [p["total_s"] for p in pts]
        big = [i for i, v in enumerate(n) if v >= FIT_MIN_SYNAPSES]
        fam = {"power_all": power_fit(n, t), "linear_all": linear_fit(n, t)}
        if len(big) >= 2:
            fam["power_large"] = power_fit([n[i] for i in big], [t[i] for i in big])
            fam["linear_large"] = linear_fit([n[i] for i in big], [t[i] for i in big])
        fam["stages_power_large"] = {
            s: power_fit([n[i] for i in big], [pts[i]["stages_s"].get(s, 0.0) for i in big])["b"]
            for s in stage_names if len(big) >= 2}
        fits[family] = fam

    result = {"benchmark": "compile_scaling", "machine": machine_info(), "targets": list(targets),
              "profile": "loihi2 (lava target)", "quick": args.quick, "repeats": args.repeats,
              "fit_min_synapses": FIT_MIN_SYNAPSES, "points": points, "fits": fits}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "compile_scaling.json", result)

    main_stages = [s for s in stage_names if max(p["stages_s"].get(s, 0) for p in points) > 0.05]
    header = ["family", "H", "synapses", "total (s)", *main_stages]
    rows = [[p["family"], p["hidden"], p["synapses"], p["total_s"], *[p["stages_s"].get(s, 0.0) for s in main_stages]]
            for p in points]
    mi = result["machine"]
    lines = [f"Build targets {', '.join(targets)} (loihi2 fixed-point profile; Lava emitted, not run); "
             f"median of {args.repeats} build(s) per size. Machine: {mi['cpu']}, {mi['cores']} cores, "
             f"load {mi['load_avg_1_5_15']}.", "", markdown_table(header, rows), "Fits (t in s, n = synapses):", ""]
    for family, f in fits.items():
        pl = f.get("power_large", f["power_all"])
        ll = f.get("linear_large", f["linear_all"])
        lines.append(f"* {family}: t = {pl['a']:.3g} n^**{pl['b']:.2f}** (n >= {FIT_MIN_SYNAPSES:,}); "
                     f"all points b = {f['power_all']['b']:.2f}; linear t = {ll['c0_s']:.3g} + "
                     f"{ll['c1_s_per_synapse'] * 1e6:.3g} us * n (R^2 {ll['r2']:.4f})")
        if f["stages_power_large"]:
            worst = sorted(((b, s) for s, b in f["stages_power_large"].items()
                            if b == b and s in main_stages), reverse=True)
            lines.append("  * per-stage exponents b (n >= 100k): "
                         + ", ".join(f"{s} {b:.2f}" for b, s in worst))
    write_markdown(args.out / "compile_scaling.md", "Compile time vs network size (bench/compile_scaling.py)",
                   "\n".join(lines))

    def draw(fig, ax):
        for family, marker in (("recurrent", "o"), ("feedforward", "s")):
            pts = [p for p in points if p["family"] == family]
            if not pts:
                continue
            n = np.array([p["synapses"] for p in pts], float)
            ax.loglog(n, [p["total_s"] for p in pts], marker, label=f"{family} total")
            f = fits[family].get("power_large", fits[family]["power_all"])
            xs = np.geomspace(n.min(), n.max(), 50)
            ax.loglog(xs, f["a"] * xs ** f["b"], "--", label=f"{family} fit b={f['b']:.2f}")
        rec = [p for p in points if p["family"] == points[0]["family"]]
        for s in main_stages:
            ax.loglog([p["synapses"] for p in rec], [max(p["stages_s"].get(s, 0), 1e-4) for p in rec],
                      ":", alpha=0.6, label=f"{points[0]['family']}: {s}")
        ax.set_xlabel("synapses")
        ax.set_ylabel("compile time (s)")
        ax.legend(fontsize=6, ncol=2)
        ax.grid(True, which="both", alpha=0.3)

    plot(args.out / "compile_scaling.png", draw)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
