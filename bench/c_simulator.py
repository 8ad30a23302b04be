"""The C simulator against the core's limit, Lava and snnTorch on a 1.79M-synapse network, and
build time / peak memory at 1M and 10M synapses (issue 18). Not a test.

Network: ``bench/large_recurrent.py`` (700 -> 1024 all-to-all recurrent LIF -> 20, ~10 % firing),
built once with ``--target c,gpu,lava`` (loihi2 profile; its seeded weights: ``initial_weights``), run at B=32, T=100 (``--batch``,
``--steps``) on seeded 10 % Poisson spike trains.

Rows (all in one process, one run):
  * C simulator, full records and output only, as the executor runs it (``backends/c/library.py``:
    the model loaded into this process, records written into numpy arrays; CPU seconds of this
    process, every harness thread) and as the binary (``rsnn_run``, ``-q`` for output only:
    ``getrusage(RUSAGE_CHILDREN)``, process start and file I/O included);
  * plain-C limit loop (``bench/c_limit_loop.c``) compiled with the same compiler and flags as the
    simulator binary (``backends/c/toolchain.simulator_flags``), given the same layers and the
    same mean number of active inputs per layer and step as the simulator's fixed-point run: int8
    weight rows added into int32 accumulators, nothing else. events / CPU-s of the simulator over
    the loop's is the **per-core fraction** (goal >= 50 %);
  * GPU runtime float / fixed (CPU here, ``GraphRuntime(record=False)``), snnTorch (the module
    stepped under ``no_grad``): wall time, 1 torch thread and 2;
  * the fixed runtime's two schedule choices on and off (input layers batched over time,
    event-driven CSR products), 1 thread, CPU time, at the bench's 10 % input rate and at 3 %;
  * Lava fixed_pt (the emitted program, in-Lava run time): at ``--lava-batch`` samples (it is
    ~100x slower); compared per sample-step.
Synaptic events = effective synaptic ops counted from the actual spikes of that domain's run
(``rsnn_compiler.accounting``). The builds: ``bench/compile_scaling.py``'s random recurrent graph
at ~1.07M and ~10.0M synapses, each built for c,gpu,lava in a fresh process (the clock runs
around ``build()``, after ``import torch`` and ``rsnn_compiler.build``, whose time is reported
apart) whose peak memory (its VmHWM, and its children's: gcc) is reported. Load average before
and after.

    .venv/bin/python bench/c_simulator.py [--quick] [--no-lava] [--no-builds]

Writes bench/results/c_simulator.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RESULTS, machine_info, markdown_table, paired_ratio, settle, write_json, write_markdown  # noqa: E402

import large_recurrent as lr  # noqa: E402

BENCH = Path(__file__).resolve().parent
GOAL_CORE_FRACTION = 0.5
GOAL_BUILD_10M_S, GOAL_BUILD_1M_S, GOAL_BUILD_PEAK_MB = 10.0, 2.0, 1024.0

_BUILD_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
t_import = time.perf_counter()
import numpy as np
import torch  # imported before the clock: every rsnnc process pays it once (seconds under load)
import rsnn_compiler.build
from compile_scaling import make_graph
from rsnn_compiler.build import BuildOptions, build
from rsnn_compiler.ir.serialize import save_graph
t_import = time.perf_counter() - t_import
h, tmp = int(sys.argv[2]), sys.argv[3]
g, calib = make_graph("recurrent", h)
save_graph(g, tmp + "/src.rsnn"); np.savez(tmp + "/calib.npz", x=calib); del g
t0 = time.perf_counter()
build(tmp + "/src.rsnn", tmp + "/build", BuildOptions(targets=("c", "gpu", "lava"), calib=tmp + "/calib.npz"))
wall = time.perf_counter() - t0
stages = {p["name"]: p["wall_time_s"] for p in json.load(open(tmp + "/build/timings.json"))["passes"]}
# VmHWM: this process's own peak (ru_maxrss would include the bench process it was forked from)
own_kb = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
kb = max(own_kb, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # gcc and the like
print(json.dumps({"wall_s": wall, "peak_mb": kb / 1024.0, "import_s": t_import, "pass_s": stages}))
"""


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu() -> float:
    """CPU seconds of this process, every thread (the in-process C runs' harness threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_of(fn, clock=children_cpu) -> tuple[float, float, object]:
    """(CPU seconds ``clock`` counts while ``fn`` runs: its child processes by default, wall
    seconds, result)."""
    c0, t0 = clock(), time.perf_counter()
    out = fn()
    return clock() - c0, time.perf_counter() - t0, out


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def limit_loop(tmp: Path, layers: list[tuple[int, int, int]], steps: int, batch: int, repeats: int) -> dict:
    """Compile c_limit_loop.c with the simulator's flags; the median of ``repeats`` runs."""
    from rsnn_compiler.backends.c.toolchain import compile_c, simulator_flags

    outs = " ".join(f"X({n_out})" for n_out in sorted({o for _, o, _ in layers}))
    src = tmp / "c_limit_loop.c"
    src.write_text((BENCH / "c_limit_loop.c").read_text())
    compile_c([src.name], "c_limit_loop", tmp, extra_flags=(*simulator_flags(), f"-DLIMIT_OUTS={outs}"))
    args = [str(tmp / "c_limit_loop"), str(steps), str(batch)] + [str(v) for layer in layers for v in layer]
    runs = [json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout) for _ in range(repeats)]
    runs.sort(key=lambda r: r["cpu_s"])
    best = runs[len(runs) // 2]
    return {"events": best["events"], "cpu_s": best["cpu_s"], "events_per_cpu_s": best["events"] / best["cpu_s"],
            "flags": simulator_flags(), "layers": layers}


def builds(sizes: list[int]) -> list[dict]:
    from compile_scaling import synapses

    rows = []
    for h in sizes:
        with tempfile.TemporaryDirectory(prefix="rsnnc-bench-build-") as tmp:
            res = subprocess.run([sys.executable, "-c", _BUILD_CHILD, str(BENCH), str(h), tmp],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(res.stderr[-2000:])
            row = json.loads(res.stdout.strip().splitlines()[-1])
        row.update(hidden=h, synapses=synapses("recurrent", h))
        rows.append(row)
        print(f"build {row['synapses']:>11,} synapses: {row['wall_s']:.1f} s, peak {row['peak_mb']:.0f} MB", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lava-batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="T=30, 3 repeats, builds up to 1M only")
    ap.add_argument("--no-lava", action="store_true")
    ap.add_argument("--no-builds", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        args.steps, args.repeats = 30, 3
    load_before = list(os.getloadavg())

    from rsnn_compiler.accounting import account_float, count_synops
    from rsnn_compiler.backends.c.executor import default_threads, encode_inputs, ensure_binary, run_records
    from rsnn_compiler.backends.c.library import ensure_library, open_library, run_records_inprocess
    from rsnn_compiler.backends.gpu.runtime import GraphRuntime
    from rsnn_compiler.backends.lava.env import lava_status
    from rsnn_compiler.build import BuildOptions, build
    from rsnn_compiler.executors import load_build_graph
    from rsnn_compiler.interpreter import run_fixed

    tmpdir = tempfile.TemporaryDirectory(prefix="rsnnc-bench-large-")
    tmp = Path(tmpdir.name)
    x = lr.inputs(args.steps, args.batch)
    np.savez(tmp / "calib.npz", x=lr.inputs(20, 8, seed=2))
    t0 = time.perf_counter()
    res = build("large_recurrent:build", tmp / "build", BuildOptions(targets=("lava", "c", "gpu"), calib=str(tmp / "calib.npz"),
                                                         initial_weights=True))
    build_s = time.perf_counter() - t0
    settle()  # the build's files flushed before anything is timed
    bdir, manifest = tmp / "build", res.manifest
    fgraph = load_build_graph(bdir, manifest, "float")
    qgraph = load_build_graph(bdir, manifest, manifest["options"]["profile"])
    print(f"built the {lr.SYNAPSES:,}-synapse network in {build_s:.1f} s; T={args.steps} B={args.batch}", flush=True)

    ref = run_fixed(qgraph, x, record=True)
    acc_q = count_synops(qgraph, ref)
    acc_f, _ = account_float(fgraph, x)
    events = {"fixed": acc_q.effective_synops * args.batch, "float": acc_f.effective_synops * args.batch}
    rate = acc_q.spikes_per_node
    sample_steps = args.steps * args.batch

    layout = json.loads((bdir / "c" / "layout.json").read_text())
    binary = ensure_binary(bdir / "c")
    ints = encode_inputs(qgraph, layout, x)

    library = open_library(ensure_library(bdir / "c"))
    L, n_out, max_batch = layout["record"]["length"], layout["output"]["size"], layout["max_batch"]
    threads = default_threads(min(args.batch, max_batch))

    def c_full():
        return run_records(binary, ints, L, max_batch)

    def c_quiet():
        return run_records(binary, ints, L, max_batch, out_only=True)

    def lib_full():
        return run_records_inprocess(library, ints, L, n_out, max_batch, threads=threads, scratch=True)

    def lib_quiet():
        return run_records_inprocess(library, ints, L, n_out, max_batch, out_only=True, threads=threads, scratch=True)

    # the limit loop: the same layers, the same mean active inputs per sample-step
    lim_layers = []
    for layer in acc_q.layers:
        n_out, n_in = qgraph.nodes[layer.node].weight.shape
        lim_layers.append((int(n_in), int(n_out), int(round(layer.input_events_per_sample / args.steps))))
    rows = []
    c_rows = {}
    c_variants = (
        ("C simulator in-process (full records)", lib_full, self_cpu),
        ("C simulator in-process (output only)", lib_quiet, self_cpu),
        ("C simulator binary (full records)", c_full, children_cpu),
        ("C simulator binary (-q, output only)", c_quiet, children_cpu),
    )
    for name, fn, clock in c_variants:
        fn()
        samples = [cpu_of(fn, clock) for _ in range(args.repeats)]
        samples.sort(key=lambda s: s[0])
        cpu, wall, out = samples[len(samples) // 2]
        quiet = fn in (c_quiet, lib_quiet)
        exact = bool(np.array_equal(out, ref.out)) if quiet else None  # full records: not decoded
        c_rows[name] = cpu
        rows.append({"row": name, "domain": "fixed", "cpu_s": cpu, "wall_s": wall, "inprocess": clock is self_cpu,
                     "output_only": quiet,
                     "syn_events_per_cpu_s": events["fixed"] / cpu, "sample_steps_per_s": sample_steps / wall,
                     "out_matches_fixed_interp": exact, "peak_mb_self": peak_mb()})
    lim = limit_loop(tmp, lim_layers, args.steps, args.batch, args.repeats)
    rows.append({"row": "plain-C limit loop (same flags)", "domain": "fixed", "cpu_s": lim["cpu_s"],
                 "wall_s": lim["cpu_s"], "syn_events_per_cpu_s": lim["events_per_cpu_s"],
                 "sample_steps_per_s": sample_steps / lim["cpu_s"], "out_matches_fixed_interp": None,
                 "peak_mb_self": peak_mb()})
    for r in rows[:4]:
        r["core_fraction"] = r["syn_events_per_cpu_s"] / lim["events_per_cpu_s"]
    print(markdown_table(["row", "CPU s", "events/CPU-s", "fraction of limit"],
                         [[r["row"], r["cpu_s"], r["syn_events_per_cpu_s"], r.get("core_fraction")] for r in rows]))

    # torch rows, 1 and 2 threads: runtime float/fixed and snnTorch, paired with snnTorch
    net = lr.build()
    xt = torch.from_numpy(x)
    threads0 = torch.get_num_threads()
    torch_rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rt_f = GraphRuntime(fgraph, device="cpu", record=False, threads=threads)
        rt_q = GraphRuntime(qgraph, device="cpu", record=False, threads=threads)

        def snn():
            with torch.no_grad():
                return lr.run(net, xt)

        for name, runtime, domain in (("GPU runtime float (cpu)", rt_f, "float"), ("GPU runtime fixed (cpu)", rt_q, "fixed")):
            pr = paired_ratio(lambda: runtime.run(x).out, snn, args.repeats)
            out = runtime.run(x).out
            torch_rows.append({"row": name, "threads": threads, "wall_s": pr.a_s, "snntorch_s": pr.b_s,
                               "speedup_vs_snntorch": pr.ratio, "ratios": pr.ratios,
                               "syn_events_per_s": events[domain] / pr.a_s,
                               "out_matches_fixed_interp": bool(np.array_equal(out, ref.out)) if domain == "fixed" else None,
                               "peak_mb_self": peak_mb()})
            print(f"{name} {threads} thread(s): {pr.a_s:.3f} s, snnTorch {pr.b_s:.3f} s, x{pr.ratio:.2f}", flush=True)
    torch.set_num_threads(threads0)
    schedule_rows = fixed_schedule_rows(qgraph, args)

    lava_row = None
    status = lava_status()
    if status.found and not args.no_lava:
        from throughput import Lava

        xl = np.ascontiguousarray(x[:, :args.lava_batch])
        lava = Lava(bdir / "lava", qgraph)
        t0 = time.perf_counter()
        lout = lava(xl).out
        lava_wall = time.perf_counter() - t0
        in_lava = lava.in_lava_s()
        lava_sample_steps = args.steps * args.lava_batch
        c_quiet_rate = sample_steps / next(r for r in rows if r.get("inprocess") and r["output_only"])["wall_s"]
        c_full_rate = sample_steps / next(r for r in rows if r.get("inprocess") and not r["output_only"])["wall_s"]
        lava_row = {"row": "Lava fixed_pt", "batch": args.lava_batch, "wall_s": lava_wall, "in_lava_s": in_lava,
                    "sample_steps_per_s_in_lava": lava_sample_steps / in_lava,
                    "out_matches_fixed_interp": bool(np.array_equal(lout, ref.out[:, :args.lava_batch])),
                    "c_full_vs_lava": c_full_rate / (lava_sample_steps / in_lava),
                    "c_quiet_vs_lava": c_quiet_rate / (lava_sample_steps / in_lava)}
        print(f"Lava: {in_lava:.1f} s in Lava for {lava_sample_steps} sample-steps; C -q x{lava_row['c_quiet_vs_lava']:.0f},"
              f" C full x{lava_row['c_full_vs_lava']:.0f}", flush=True)
    else:
        print(f"Lava row skipped: {status.reason if not status.found else '--no-lava'}")

    build_rows = [] if args.no_builds else builds([1000] if args.quick else [1000, 3130])
    data = {
        "machine": machine_info(), "load_avg_before": load_before, "load_avg_after": list(os.getloadavg()),
        "network": {"synapses": lr.SYNAPSES, "steps": args.steps, "batch": args.batch,
                    "spike_rate_per_node": {k: v / (args.steps * int(np.prod(qgraph.nodes[k].shape)))
                                            for k, v in rate.items()},
                    "build_s": build_s},
        "syn_events": events, "c_rows": rows, "limit_loop": lim, "torch_rows": torch_rows,
        "fixed_schedule_rows": schedule_rows, "lava": lava_row,
        "builds": build_rows, "peak_mb_self": peak_mb(),
    }
    write_json(args.out / "c_simulator.json", data)
    write_markdown(args.out / "c_simulator.md", "C simulator, runtime and builds at 1.79M / 10M synapses (issue 18)",
                   report(data))
    print(report(data))
    tmpdir.cleanup()


def fixed_schedule_rows(qgraph, args) -> list[dict]:
    """The fixed runtime (1 thread, CPU time, best of ``repeats``, alternating) with and without
    its two schedule choices, at the bench's input rate and at 3 %: input layers batched over
    time (``GraphRuntime.whole_time``) and event-driven (CSR) products (``exact.EVENT_MAX_DENSITY``)."""
    from rsnn_compiler.backends.gpu import exact
    from rsnn_compiler.backends.gpu.runtime import GraphRuntime
    from rsnn_compiler.interpreter import run_fixed

    threads0 = torch.get_num_threads()
    torch.set_num_threads(1)
    density0 = exact.EVENT_MAX_DENSITY
    variants = {"per step, dense": (False, 0.0), "input layers over time": (True, 0.0),
                "event-driven products": (False, density0), "both (default)": (True, density0)}
    rows = []
    try:
        for rate in (lr.INPUT_RATE, 0.03):
            x = lr.inputs(args.steps, args.batch, rate=rate)
            ref = run_fixed(qgraph, x, record=False).out
            times: dict[str, list[float]] = {k: [] for k in variants}
            runtimes = {}
            for name, (whole, _d) in variants.items():
                runtimes[name] = GraphRuntime(qgraph, device="cpu", record=False, threads=1)
                runtimes[name].whole_time = whole
            for _ in range(args.repeats):
                for name, (_w, density) in variants.items():
                    exact.EVENT_MAX_DENSITY = density
                    t0 = time.process_time()
                    out = runtimes[name].run(x).out
                    times[name].append(time.process_time() - t0)
                    assert np.array_equal(out, ref), name
            base = min(times["per step, dense"])
            for name in variants:
                rows.append({"input_rate": rate, "variant": name, "cpu_s": min(times[name]),
                             "vs_per_step_dense": min(times[name]) / base, "out_matches_fixed_interp": True})
            print(f"fixed runtime schedule, input rate {rate}: " + ", ".join(
                f"{r['variant']} {r['vs_per_step_dense']:.2f}x" for r in rows[-len(variants):]), flush=True)
    finally:
        exact.EVENT_MAX_DENSITY = density0
        torch.set_num_threads(threads0)
    return rows


def _goal(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def report(d: dict) -> str:
    m, net = d["machine"], d["network"]
    out = [f"{m['date_utc']}, {m['cpu']}, {m['cores']} cores; load average before "
           f"{', '.join(f'{v:.1f}' for v in d['load_avg_before'])}, after "
           f"{', '.join(f'{v:.1f}' for v in d['load_avg_after'])}. Peak RSS of this process "
           f"(every in-process row: build, interpreters, runtimes, snnTorch): {d['peak_mb_self']:.0f} MB.\n",
           f"Network: {net['synapses']:,} synapses, T={net['steps']}, B={net['batch']}; spikes per neuron and step "
           + ", ".join(f"{k} {v:.3f}" for k, v in net["spike_rate_per_node"].items())
           + f"; built (c,gpu,lava) in {net['build_s']:.1f} s.\n",
           "## C simulator against the plain-C limit loop (same flags: "
           f"`{' '.join(d['limit_loop']['flags']) or '(none)'}` on top of the C target's)\n",
           markdown_table(["row", "CPU s", "wall s", "syn. events / CPU-s", "fraction of the limit", "peak MB (self)"],
                          [[r["row"], r["cpu_s"], r["wall_s"], r["syn_events_per_cpu_s"], r.get("core_fraction"),
                            r["peak_mb_self"]] for r in d["c_rows"]])]
    fracs = [r["core_fraction"] for r in d["c_rows"] if "core_fraction" in r and r.get("inprocess")]
    out.append(f"\nGoal C simulator >= 50 % of the limit per core: {_goal(min(fracs) >= GOAL_CORE_FRACTION)}"
               f" ({', '.join(f'{f:.0%}' for f in fracs)}: full records, output only; the executor's in-process"
               " path, which `rsnnc run`/`validate` use; the binary rows add process start and file I/O).\n")
    out.append("\n## Torch rows (paired with snnTorch, alternating order; CPU)\n")
    out.append(markdown_table(["row", "threads", "wall s", "snnTorch s", "speed-up vs snnTorch", "bit-exact"],
                              [[r["row"], r["threads"], r["wall_s"], r["snntorch_s"], r["speedup_vs_snntorch"],
                                r["out_matches_fixed_interp"]] for r in d["torch_rows"]]))
    fl = {r["threads"]: r["wall_s"] for r in d["torch_rows"] if "float" in r["row"]}
    fx = {r["threads"]: r["wall_s"] for r in d["torch_rows"] if "fixed" in r["row"]}
    out.append("\nFixed over float wall time: " + ", ".join(f"{t} thread(s) {fx[t] / fl[t]:.2f}x" for t in fl)
               + f" (goal within 2x: {_goal(all(fx[t] / fl[t] <= 2.0 for t in fl))}).\n")
    if d.get("fixed_schedule_rows"):
        out.append("\n## Fixed runtime schedule choices (1 thread, CPU s, best of the repeats; all bit-exact)\n\n"
                   "Input layers over time: the input-fed stateless layers run for a chunk of steps per call."
                   " Event-driven products: CSR inputs for wide dense layers at <= 5 % nonzeros.\n\n")
        out.append(markdown_table(["input rate", "variant", "CPU s", "vs per step, dense"],
                                  [[r["input_rate"], r["variant"], r["cpu_s"], r["vs_per_step_dense"]]
                                   for r in d["fixed_schedule_rows"]]))
    if d["lava"]:
        lv = d["lava"]
        out.append(f"\n## Lava fixed_pt (B={lv['batch']}, per sample-step)\n\n{lv['in_lava_s']:.1f} s in Lava "
                   f"({lv['wall_s']:.1f} s end to end); bit-exact {lv['out_matches_fixed_interp']}. C simulator per "
                   f"sample-step (in-process, wall): **{lv['c_quiet_vs_lava']:.0f}x** Lava (output only), **{lv['c_full_vs_lava']:.0f}x** (full records).\n")
    if d["builds"]:
        out.append("\n## `rsnnc build` c,gpu,lava (fresh process; peak RSS includes gcc)\n\n")
        out.append(markdown_table(["synapses", "wall s", "peak MB", "imports before (s)", "slowest passes"],
                                  [[b["synapses"], b["wall_s"], b["peak_mb"], b["import_s"],
                                    ", ".join(f"{k} {v:.1f}" for k, v in sorted(b["pass_s"].items(), key=lambda kv: -kv[1])[:3])]
                                   for b in d["builds"]]))
        for b in d["builds"]:
            goal_s = GOAL_BUILD_10M_S if b["synapses"] > 5e6 else GOAL_BUILD_1M_S
            out.append(f"\n{b['synapses']:,} synapses: < {goal_s:.0f} s {_goal(b['wall_s'] < goal_s)}, "
                       f"< 1 GB {_goal(b['peak_mb'] < GOAL_BUILD_PEAK_MB)}.")
        out.append("\n")
    return "\n".join(out)


if __name__ == "__main__":
    main()
