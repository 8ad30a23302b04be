"""Throughput of one compiled recurrent model across simulators (issue 8 (i)).

Model: the shipped trained snnTorch RLeaky network models/rleaky_mnist1d (8 -> 128 all-to-all
recurrent LIF -> 10 LIF), compiled once with ``rsnnc build --target lava,c,gpu`` (loihi2 profile).
Every framework runs the SAME model on the SAME inputs: the mnist1d windows of data.npz
(T=17, B=256) tiled ``--reps`` times along time (default 4: T=68), batch ``--batch``.

Rows:
  * C simulator         - the emitted C model (fixed point) as the executor runs it: loaded into
                          this process (``backends/c/library.py``), records of every field
                          written into numpy arrays, and output only (only the output node's
                          values leave the simulator); and the emitted ``c/rsnn_run`` binary,
                          the same way (process start + file I/O included; ``-q`` for output only);
  * GPU runtime float   - ``GraphRuntime(float graph, record=False)`` (CPU here, CUDA if present);
  * GPU runtime fixed   - ``GraphRuntime(loihi2 graph, record=False)``, bit-exact to C;
  * Lava fixed_pt       - the emitted Lava program through backends/lava/lava_runner.py (Python 3.10 env,
                          block-diagonal replicas of the batch); ``in-Lava`` = the runner's ``run_s``
                          (process graph compile + run, excluding interpreter start / network build);
  * snnTorch            - the original module stepped in Python under ``torch.no_grad()``.
All rows: warm-up run, then the median of ``--repeats``. Per-run fixed overhead is measured
separately (B=1, T=1 run) and a marginal per-step throughput is reported
((work_long - work_short) / (t_long - t_short) between T=17 and T=17*reps).

Metrics: sample-steps/s = batch * steps / wall; synaptic events/s = effective synaptic ops
(rsnn_compiler.accounting, counted from the actual spikes of that domain's run) / wall.

    .venv/bin/python bench/throughput.py [--quick] [--batch 256] [--reps 4] [--repeats 5]

Writes bench/results/throughput.{md,json,png}. Not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (  # noqa: E402
    RESULTS, machine_info, markdown_table, median_time, paired_ratio, plot, settle, write_json, write_markdown,
)

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "rleaky_mnist1d"
GOAL_C_VS_LAVA = 100.0  # issue 18 (it was 30x before)
GOAL_RT_VS_SNNTORCH = 2.0
GOAL_FIXED_VS_FLOAT = 2.0  # issue 18: the fixed-point runtime within 2x of the float one


def build_model(outdir: Path) -> tuple[Path, dict]:
    from rsnn_compiler.build import BuildOptions, build

    res = build("models.rleaky_mnist1d.model:build", outdir,
                BuildOptions(targets=("lava", "c", "gpu"), weights=str(MODEL / "weights.pt"),
                             calib=str(MODEL / "data.npz")))
    return outdir, res.manifest


def load_snntorch():
    from models.rleaky_mnist1d import model as m

    net = m.build()
    state = torch.load(MODEL / "weights.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return m, net.eval()


class Lava:
    """Runs an emitted Lava program and keeps the runner's timing meta of each of its runs."""

    _patched = False
    _last_meta: dict = {}

    def __init__(self, folder: Path, graph):
        from rsnn_compiler.backends.lava import env as lava_env
        from rsnn_compiler.backends.lava import executor as lava_executor

        self.folder, self.graph, self.metas = folder, graph, []
        self._exec = lava_executor
        if not Lava._patched:  # record the meta of every runner call (one wrapper for all programs)
            orig = lava_env.run_in_lava

            def wrapped(*a, **k):
                r = orig(*a, **k)
                Lava._last_meta = lava_env.result_meta(r)
                return r

            lava_executor.run_in_lava = wrapped
            Lava._patched = True

    def __call__(self, x):
        out = self._exec.run_program(self.folder, self.graph, x)
        self.metas.append(Lava._last_meta)
        return out

    def in_lava_s(self) -> float:
        meta = self.metas[-1]
        return float(sum(r["run_s"] for r in meta["runs"]))


def output_only_program(src: Path, dst: Path) -> Path:
    """A copy of the emitted Lava program that records only what the Output reads (the C
    simulator's ``-q`` counterpart): every other population records nothing."""
    shutil.copytree(src, dst)
    doc = json.loads((dst / "network.json").read_text())
    meta = doc["meta"]["rsnnc"]
    node = meta["output"]["node"]
    keep = meta["populations"][node]["value"]
    lava_names = {p["lava"] for p in meta["populations"][node].get("parts", [])} or {node}
    for pop in doc["populations"]:
        pop["record"] = [keep] if pop["name"] in lava_names else []
    for name, pop in meta["populations"].items():
        pop["record"] = [keep] if name == node else []
    (dst / "network.json").write_text(json.dumps(doc))
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--reps", type=int, default=4, help="tile the T=17 inputs this many times along time")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--lava-repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="batch 64, reps 2, 3 repeats")
    ap.add_argument("--no-lava", action="store_true")
    ap.add_argument("--sweep-batches", default="16,64,256,1024",
                    help="batches of the runtime-vs-snnTorch sweep (comma-separated; '' to skip)")
    ap.add_argument("--device", default=None, help="runtime device (default: cuda if available, else cpu)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for snnTorch and the runtime alike (default: torch's for snnTorch,"
                         " the runtime's load-based choice, rsnn_compiler/threads.py)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        args.batch, args.reps, args.repeats, args.lava_repeats = 64, 2, 3, 2
        args.sweep_batches = "16,64"
    sweep_batches = [int(b) for b in args.sweep_batches.split(",") if b.strip()]

    from rsnn_compiler.accounting import account_float, count_synops
    from rsnn_compiler.backends.c.executor import default_threads, encode_inputs, ensure_binary, run_records
    from rsnn_compiler.backends.c.library import ensure_library, open_library, run_records_inprocess
    from rsnn_compiler.backends.gpu.runtime import GraphRuntime
    from rsnn_compiler.backends.lava.env import lava_status
    from rsnn_compiler.interpreter import run_fixed
    from rsnn_compiler.executors import load_build_graph

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = np.load(MODEL / "data.npz")["x"].astype(np.float32)
    widest = max([args.batch, *sweep_batches])
    if widest > data.shape[1]:
        data = np.concatenate([data] * (-(-widest // data.shape[1])), axis=1)
    x_short = np.ascontiguousarray(data[:, :args.batch])
    x = np.ascontiguousarray(np.tile(x_short, (args.reps, 1, 1)))
    steps, batch = x.shape[:2]
    tmp = tempfile.TemporaryDirectory(prefix="rsnnc-bench-")
    t0 = time.perf_counter()
    bdir, manifest = build_model(Path(tmp.name) / "build")
    build_s = time.perf_counter() - t0
    settle()  # the build's files flushed before anything is timed
    fgraph = load_build_graph(bdir, manifest, "float")
    profile = manifest["options"]["profile"]
    qgraph = load_build_graph(bdir, manifest, profile)
    print(f"built {bdir} ({build_s:.1f} s, profile {profile}); T={steps} B={batch} device={device}")

    # accounting: effective synaptic ops counted from the actual spikes of each domain
    acc_f, _ = account_float(fgraph, x)
    acc_q = count_synops(qgraph, run_fixed(qgraph, x, record=True))
    ref_q = run_fixed(qgraph, x, record=False).out
    events = {"float": acc_f.effective_synops * batch, "fixed": acc_q.effective_synops * batch}
    events_short = {"float": account_float(fgraph, x_short)[0].effective_synops * x_short.shape[1],
                    "fixed": count_synops(qgraph, run_fixed(qgraph, x_short, record=True)).effective_synops
                    * x_short.shape[1]}

    # --- runners: name -> (domain, fn(x) -> out array) ---------------------------------------
    layout = json.loads((bdir / "c" / "layout.json").read_text())
    binary = ensure_binary(bdir / "c")

    library = open_library(ensure_library(bdir / "c"))
    L, n_out, max_batch = layout["record"]["length"], layout["output"]["size"], layout["max_batch"]

    def c_run(xx):
        """The executor's path: the model in this process, every record into a numpy array."""
        return run_records_inprocess(library, encode_inputs(qgraph, layout, xx), L, n_out, max_batch,
                                     threads=default_threads(min(xx.shape[1], max_batch)), scratch=True)

    def c_run_outputs(xx):
        """The same with only the output node's values leaving the simulator."""
        return run_records_inprocess(library, encode_inputs(qgraph, layout, xx), L, n_out, max_batch,
                                     out_only=True, threads=default_threads(min(xx.shape[1], max_batch)), scratch=True)

    def c_binary(xx):
        return run_records(binary, encode_inputs(qgraph, layout, xx), L, max_batch)

    def c_binary_outputs(xx):
        """The binary with -q: only the output node's values leave the simulator."""
        return run_records(binary, encode_inputs(qgraph, layout, xx), L, max_batch, out_only=True)

    rt_f = GraphRuntime(fgraph, device=device, record=False, threads=args.threads)
    rt_q = GraphRuntime(qgraph, device=device, record=False, threads=args.threads)
    m, net = load_snntorch()

    def snn_run(xx):
        with torch.no_grad():
            return m.run(net, torch.from_numpy(xx)).numpy()

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def rt(runtime):
        def f(xx):
            out = runtime.run(xx).out
            sync()
            return out
        return f

    runners = {
        "C simulator (fixed)": ("fixed", c_run),
        "C simulator (fixed, output only)": ("fixed", c_run_outputs),
        "C simulator binary (fixed)": ("fixed", c_binary),
        "C simulator binary (fixed, output only)": ("fixed", c_binary_outputs),
        f"GPU runtime float ({device})": ("float", rt(rt_f)),
        f"GPU runtime fixed ({device})": ("fixed", rt(rt_q)),
        "snnTorch (float)": ("float", snn_run),
    }
    status = lava_status()
    lava = None
    lava_programs: list[tuple[str, Lava]] = []
    if status.found and not args.no_lava:
        lava = Lava(bdir / "lava", qgraph)
        lava_out = Lava(output_only_program(bdir / "lava", Path(tmp.name) / "lava_output_only"), qgraph)
        lava_programs = [("", lava), (", output only", lava_out)]
    else:
        print(f"Lava rows skipped: {status.reason if not status.found else '--no-lava'}")

    rows, outs = [], {}
    x_one = np.ascontiguousarray(x_short[:1, :1])
    for name, (domain, fn) in runners.items():
        t_long, samples, out = median_time(lambda: fn(x), args.repeats, warmup=3)
        t_short, _, _ = median_time(lambda: fn(x_short), args.repeats)
        t_fixed, _, _ = median_time(lambda: fn(x_one), args.repeats)
        if name in ("C simulator (fixed)", "C simulator binary (fixed)"):  # full records: decode (untimed)
            from rsnn_compiler.backends.c.executor import decode

            out = decode(qgraph, layout, out, x).out
        outs[name] = out
        work, work_s = steps * batch, x_short.shape[0] * batch
        marg = (work - work_s) / (t_long - t_short) if t_long > t_short else float("nan")
        rows.append({
            "framework": name, "domain": domain, "wall_s": t_long, "wall_samples_s": samples,
            "sample_steps_per_s": work / t_long, "syn_events_per_s": events[domain] / t_long,
            "marginal_sample_steps_per_s": marg,
            "marginal_syn_events_per_s": (events[domain] - events_short[domain]) / (t_long - t_short)
            if t_long > t_short else float("nan"),
            "fixed_overhead_s": t_fixed,
            "out_matches_fixed_interp": bool(np.array_equal(out, ref_q)) if domain == "fixed" else None,
            "out_agreement_vs_fixed_interp": float(np.mean(out == ref_q)),
        })
        print(f"{name:32s} {work / t_long:>12,.0f} sample-steps/s  overhead {t_fixed * 1e3:8.1f} ms")

    for suffix, prog in lava_programs:
        walls, ins = [], []
        prog(x_short)  # warm-up
        for _ in range(args.lava_repeats):
            t0 = time.perf_counter()
            out = prog(x).out
            walls.append(time.perf_counter() - t0)
            ins.append(prog.in_lava_s())
        ins_short = []
        for _ in range(args.lava_repeats):
            prog(x_short)
            ins_short.append(prog.in_lava_s())
        t0 = time.perf_counter()
        prog(x_one)
        one_wall, one_in = time.perf_counter() - t0, prog.in_lava_s()
        meta = prog.metas[-2 - args.lava_repeats]  # a long run's meta
        work, work_s = steps * batch, x_short.shape[0] * batch
        t_long, t_in, t_in_s = float(np.median(walls)), float(np.median(ins)), float(np.median(ins_short))
        for label, t, marg in ((f"Lava fixed_pt (end to end{suffix})", t_long, None),
                               (f"Lava fixed_pt (in-Lava run_s{suffix})", t_in, (work - work_s) / (t_in - t_in_s)
                                if t_in > t_in_s else float("nan"))):
            rows.append({
                "framework": label, "domain": "fixed", "wall_s": t, "wall_samples_s": walls if "end" in label else ins,
                "sample_steps_per_s": work / t, "syn_events_per_s": events["fixed"] / t,
                "marginal_sample_steps_per_s": marg if marg is not None else float("nan"),
                "marginal_syn_events_per_s": (events["fixed"] - events_short["fixed"]) / (t_in - t_in_s)
                if marg is not None and t_in > t_in_s else float("nan"),
                "fixed_overhead_s": one_wall if "end" in label else one_in,
                "out_matches_fixed_interp": bool(np.array_equal(out, ref_q)),
                "out_agreement_vs_fixed_interp": float(np.mean(out == ref_q)),
                "lava_meta": meta,
            })
        print(f"Lava{suffix}: wall {t_long:.2f} s, in-Lava {t_in:.2f} s, replicas/run {meta['replicas_per_run']}")

    # --- GPU runtime vs snnTorch across batch sizes (same model, same T) ----------------------
    sweep = []
    for b in sweep_batches:
        xb = np.ascontiguousarray(np.tile(data[:, :b], (args.reps, 1, 1)))
        t_rq, _, _ = median_time(lambda: rt(rt_q)(xb), args.repeats)
        paired, pairs, t_rf, t_snn = paired_ratio(lambda: rt(rt_f)(xb), lambda: snn_run(xb), max(args.repeats, 9))
        sweep.append({"batch": b, "steps": int(xb.shape[0]), "runtime_float_s": t_rf, "runtime_fixed_s": t_rq,
                      "snntorch_s": t_snn, "runtime_float_vs_snntorch": paired,
                      "runtime_float_vs_snntorch_pairs": pairs,
                      "runtime_fixed_vs_snntorch": t_snn / t_rq})
        print(f"sweep B={b:5d}: runtime float {t_rf * 1e3:8.1f} ms, fixed {t_rq * 1e3:8.1f} ms, "
              f"snnTorch {t_snn * 1e3:8.1f} ms -> paired ratio {paired:.2f}x (pairs {min(pairs):.2f}..{max(pairs):.2f})")

    by = {r["framework"]: r for r in rows}
    c = by["C simulator (fixed)"]
    rtf = by[f"GPU runtime float ({device})"]
    snn = by["snnTorch (float)"]
    main_pair = next((r for r in sweep if r["batch"] == batch), None)
    ratios = {"runtime_float_vs_snntorch": main_pair["runtime_float_vs_snntorch"] if main_pair
              else snn["wall_s"] / rtf["wall_s"],
              "runtime_float_vs_snntorch_goal": GOAL_RT_VS_SNNTORCH}
    if lava is not None:
        lin = by["Lava fixed_pt (in-Lava run_s)"]
        lend = by["Lava fixed_pt (end to end)"]
        ratios.update({
            "c_vs_lava_in_lava": lin["wall_s"] / c["wall_s"],
            "c_vs_lava_end_to_end": lend["wall_s"] / c["wall_s"],
            "c_vs_lava_marginal": c["marginal_sample_steps_per_s"] / lin["marginal_sample_steps_per_s"],
            "c_vs_lava_goal": GOAL_C_VS_LAVA,
            "c_output_only_vs_lava_in_lava": lin["wall_s"] / by["C simulator (fixed, output only)"]["wall_s"],
            "c_output_only_vs_lava_output_only_in_lava": by["Lava fixed_pt (in-Lava run_s, output only)"]["wall_s"]
            / by["C simulator (fixed, output only)"]["wall_s"],
            "c_output_only_vs_lava_output_only_end_to_end": by["Lava fixed_pt (end to end, output only)"]["wall_s"]
            / by["C simulator (fixed, output only)"]["wall_s"],
        })
    ratios["goal_runtime_vs_snntorch_met"] = ratios["runtime_float_vs_snntorch"] >= GOAL_RT_VS_SNNTORCH
    for r in sweep:
        r["runtime_fixed_vs_float"] = r["runtime_fixed_s"] / r["runtime_float_s"]
    if sweep:
        ratios["runtime_fixed_vs_float_worst"] = max(r["runtime_fixed_vs_float"] for r in sweep)
        ratios["runtime_fixed_vs_float_goal"] = GOAL_FIXED_VS_FLOAT
        ratios["goal_runtime_fixed_vs_float_met"] = ratios["runtime_fixed_vs_float_worst"] <= GOAL_FIXED_VS_FLOAT
    if lava is not None:
        ratios["goal_c_vs_lava_met"] = min(ratios["c_vs_lava_in_lava"], ratios["c_vs_lava_end_to_end"]) >= GOAL_C_VS_LAVA
        ratios["goal_c_output_only_vs_lava_met"] = min(ratios["c_output_only_vs_lava_output_only_in_lava"],
                                                       ratios["c_output_only_vs_lava_output_only_end_to_end"]) >= GOAL_C_VS_LAVA

    result = {
        "benchmark": "throughput", "machine": machine_info(),
        "model": {"name": "models/rleaky_mnist1d", "arch": "8 -> 128 RLeaky (all-to-all) -> 10 Leaky",
                  "profile": profile, "steps": steps, "batch": batch, "reps": args.reps, "device": device,
                  "synapses": int(acc_q.weights_total), "build_s": build_s,
                  "effective_synops_per_sample_fixed": acc_q.effective_synops,
                  "effective_synops_per_sample_float": acc_f.effective_synops},
        "repeats": args.repeats, "lava": status.reason, "rows": rows, "ratios": ratios,
        "runtime_vs_snntorch_by_batch": sweep,
        "notes": ["C and Lava rows record every population's state (as their executors do) unless marked "
                  "output only; the runtime and snnTorch return output spikes only",
                  "C simulator rows run the model in this process as `rsnnc run`/`validate` do (backends/c/library.py);"
                  " the binary rows run rsnn_run in a subprocess with files (RSNNC_C_INPROCESS=0); same records",
                  "fixed_overhead_s = wall of a B=1, T=1 run (process start, I/O, Lava compile)",
                  "marginal = extra sample-steps / extra wall between T=17 and T=17*reps (same batch)"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "throughput.json", result)
    header = ["framework", "sample-steps/s", "syn events/s", "marginal sample-steps/s", "wall (s)",
              "fixed overhead (s)", "bit-exact vs interp"]
    table = markdown_table(header, [[r["framework"], r["sample_steps_per_s"], r["syn_events_per_s"],
                                     r["marginal_sample_steps_per_s"], r["wall_s"], r["fixed_overhead_s"],
                                     f"{r['out_matches_fixed_interp']} (agree {r['out_agreement_vs_fixed_interp']:.4f})"
                                     if r["domain"] == "fixed"
                                     else f"agree {r['out_agreement_vs_fixed_interp']:.4f}"] for r in rows])
    mi = result["machine"]
    lines = [f"Model models/rleaky_mnist1d ({result['model']['synapses']:,} synapses, profile {profile}), "
             f"T={steps}, B={batch}, runtime device {device}; median of {args.repeats} "
             f"(Lava {args.lava_repeats}) after a warm-up.",
             f"Machine: {mi['cpu']}, {mi['cores']} cores, load {mi['load_avg_1_5_15']}, torch threads "
             f"{mi.get('torch_threads')}.", "", table, "Goals (ratios of wall times in this run):", ""]
    lines.append(f"* GPU runtime float ({device}, batched) vs snnTorch (median of paired back-to-back runs"
                 f"{'' if main_pair else ', ratio of the table rows'}): "
                 f"**{ratios['runtime_float_vs_snntorch']:.1f}x** (goal >= {GOAL_RT_VS_SNNTORCH:g}x): "
                 f"{'met' if ratios['goal_runtime_vs_snntorch_met'] else 'NOT met'}")
    if sweep:
        met = [r["batch"] for r in sweep if r["runtime_float_vs_snntorch"] >= GOAL_RT_VS_SNNTORCH]
        lines.append(f"  By batch (T={sweep[0]['steps']}): " + ", ".join(
            f"B={r['batch']}: {r['runtime_float_vs_snntorch']:.1f}x "
            f"({min(r['runtime_float_vs_snntorch_pairs']):.1f}-{max(r['runtime_float_vs_snntorch_pairs']):.1f})"
            for r in sweep)
            + (f" — goal met at B = {', '.join(map(str, met))}" if met else " — goal met at no batch"))
    if sweep:
        lines.append(f"* GPU runtime fixed-point vs float ({device}, time ratio, lower is better): worst "
                     f"**{ratios['runtime_fixed_vs_float_worst']:.2f}x** (goal <= {GOAL_FIXED_VS_FLOAT:g}x): "
                     f"{'met' if ratios['goal_runtime_fixed_vs_float_met'] else 'NOT met'}; " + ", ".join(
                         f"B={r['batch']}: {r['runtime_fixed_vs_float']:.2f}x" for r in sweep))
    if lava is not None:
        lines.append(f"* C simulator vs Lava fixed_pt, both recording every population's spikes and states "
                     f"(what validate compares): **{ratios['c_vs_lava_in_lava']:.0f}x** against in-Lava "
                     f"run time, {ratios['c_vs_lava_end_to_end']:.0f}x end to end, "
                     f"{ratios['c_vs_lava_marginal']:.0f}x marginal per step (goal >= {GOAL_C_VS_LAVA:g}x): "
                     f"{'met' if ratios['goal_c_vs_lava_met'] else 'NOT met'}")
        lines.append(f"* C simulator vs Lava fixed_pt, both recording only what the Output reads "
                     f"(Lava program with the other probes removed): "
                     f"**{ratios['c_output_only_vs_lava_output_only_in_lava']:.0f}x** against in-Lava run time, "
                     f"{ratios['c_output_only_vs_lava_output_only_end_to_end']:.0f}x end to end: "
                     f"{'met' if ratios['goal_c_output_only_vs_lava_met'] else 'NOT met'}")
    else:
        lines.append("* C simulator vs Lava fixed_pt: not measured (Lava unavailable)")
    lines += ["", *[f"Note: {n}." for n in result["notes"]]]
    write_markdown(args.out / "throughput.md", "Throughput (bench/throughput.py)", "\n".join(lines))

    def draw(fig, ax):
        names = [r["framework"] for r in rows]
        ax.barh(names, [r["sample_steps_per_s"] for r in rows], color="tab:blue")
        ax.set_xscale("log")
        ax.set_xlabel("sample-steps / s (log)")
        ax.set_title(f"rleaky_mnist1d, T={steps}, B={batch}")
        ax.invert_yaxis()

    plot(args.out / "throughput.png", draw)
    print("\n".join(lines))
    tmp.cleanup()


if __name__ == "__main__":
    main()
