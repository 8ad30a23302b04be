"""Speed-up of the scale-out paths against running the same work in one process (issue 19).

Three measurements, each against its sequential baseline on this machine:

1. ``rsnnc sweep``: the points of a sweep as Ray tasks on a local Ray (``--num-cpus`` CPUs) vs
   ``run_point`` on each point one by one in this process. Both start from an empty sweep
   folder; the Ray side is timed with and without the start-up of Ray itself.
2. ``rsnnc validate --shards N`` vs ``validate``, on a build of the trained RLeaky model
   (``--target c,gpu``; ``--lava`` adds the lava target) and the 1000 held-out test samples.
   Ray is started once before; its start-up is reported on its own.
3. The GPU runtime's fixed-point graph on those samples, one process vs ``--gpu-processes N``
   (torch.distributed, gloo, process start-up included).

Every parallel result is checked equal to its baseline (sweep rows apart from times, validation
reports apart from times, runtime outputs bit for bit). Goals: speed-up approaching N on N idle
cores for work that takes much longer than the start-ups (seconds); on this shared 2-core machine
the load average (recorded) caps what is measurable.

    .venv/bin/python bench/scale_out.py [--cpus 2] [--lava] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import RESULTS, machine_info, markdown_table, write_json, write_markdown  # noqa: E402

MODEL = "models.rleaky_mnist1d.model:build"
WEIGHTS = "models/rleaky_mnist1d/weights.pt"
CALIB = "models/rleaky_mnist1d/data.npz"
TEST = "models/rleaky_mnist1d/test.npz"


def sweep_config(folder: Path, points: int):
    """``points`` points of the RLeaky model: time steps x target (gpu / c), 256 test samples."""
    from rsnn_compiler.sweep.config import load_config

    steps = [17, 15, 13, 11, 9, 7, 5, 3][: max(1, points // 2)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench_sweep.toml"
    path.write_text(f"""
[model]
input = "{MODEL}"
weights = "{ROOT / WEIGHTS}"
calib = "{ROOT / CALIB}"

[data]
path = "{ROOT / TEST}"
samples = 256

[grid]
time_steps = {steps}
target = ["gpu", "c"]
""")
    return load_config(path)


def rows_without_times(results) -> list[dict]:
    """Rows apart from times and commands (a command names the sweep folder's cut data files)."""
    return [{k: v for k, v in r.to_json().items() if k not in ("wall_time_s", "cached", "command")} for r in results]


def on_local_ray(cpus: int, work):
    """(Ray start-up s, (work(), its wall time s)) on a local Ray with ``cpus`` CPUs, shut down after."""
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ray.get(ray.remote(lambda: None).remote())
    t_start = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        result = work()
        return t_start, (result, time.perf_counter() - t0)
    finally:
        ray.shutdown()


def bench_sweep(work: Path, points: int, cpus: int) -> dict:
    from rsnn_compiler.ray_engine import RayOptions
    from rsnn_compiler.sweep.point import run_point
    from rsnn_compiler.sweep.run import plan, run_sweep

    config = sweep_config(work, points)
    seq_dir = work / "sequential"
    t0 = time.perf_counter()
    sequential = [run_point(task) for task in plan(config, seq_dir)]
    t_seq = time.perf_counter() - t0
    t_start, (result, t_par) = on_local_ray(cpus, lambda: run_sweep(config, work / "ray", RayOptions(num_cpus=cpus)))
    parallel = result.results
    equal = rows_without_times(sequential) == rows_without_times(
        [replace(r, cached=False) for r in parallel])
    return {"points": len(config.points), "cpus": cpus, "sequential_s": t_seq, "ray_start_s": t_start,
            "ray_sweep_s": t_par, "speedup_without_start": t_seq / t_par,
            "speedup_with_start": t_seq / (t_par + t_start), "same_table": equal,
            "statuses": [r.status for r in parallel]}


def bench_validate(work: Path, shards: int, cpus: int, lava: bool, samples: int | None) -> dict:
    import numpy as np

    from rsnn_compiler.artifact import read_manifest
    from rsnn_compiler.build import BuildOptions, build
    from rsnn_compiler.data import load_data
    from rsnn_compiler.ray_engine import RayOptions
    from rsnn_compiler.sharded_validate import validate_sharded
    from rsnn_compiler.validate import validate

    targets = ("lava", "c", "gpu") if lava else ("c", "gpu")
    out = work / "build"
    build(MODEL, out, BuildOptions(targets=targets, weights=str(ROOT / WEIGHTS), calib=str(ROOT / CALIB)))
    manifest = read_manifest(out)
    x, y = load_data(ROOT / TEST)
    if samples:
        x, y = x[:, :samples], y[:samples]
    t0 = time.perf_counter()
    one = validate(out, manifest, x, y)
    t_one = time.perf_counter() - t0
    t_start, (sharded, t_sharded) = on_local_ray(
        cpus, lambda: validate_sharded(out, manifest, x, y, shards, RayOptions(num_cpus=cpus)))

    def plain(report) -> dict:
        data = json.loads(json.dumps(report.to_json()))
        for e in data["executors"]:
            e.pop("wall_time_s")
        return data

    return {"targets": list(targets), "samples": int(x.shape[1]), "steps": int(x.shape[0]), "shards": shards,
            "cpus": cpus, "one_process_s": t_one, "ray_start_s": t_start, "sharded_s": t_sharded,
            "speedup_without_start": t_one / t_sharded, "speedup_with_start": t_one / (t_sharded + t_start),
            "same_report": plain(one) == plain(sharded), "ok": one.ok,
            "per_executor_one_process_s": {c.executor: c.wall_time_s for c in one.executors},
            "fixed_accuracy": one.fixed_accuracy, "x_dtype": str(np.asarray(x).dtype)}


def bench_gpu_processes(work: Path, processes: int, samples: int | None) -> dict:
    import numpy as np

    from rsnn_compiler.artifact import read_manifest
    from rsnn_compiler.data import load_data
    from rsnn_compiler.registry import get_executor

    out = work / "build"
    manifest = read_manifest(out)
    x, _ = load_data(ROOT / TEST)
    if samples:
        x = x[:, :samples]
    one_exec, dp_exec = get_executor("gpu", device="cpu"), get_executor("gpu", device="cpu", processes=processes)
    t0 = time.perf_counter()
    one = one_exec.run(out, manifest, "fixed", None, x)
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    dp = dp_exec.run(out, manifest, "fixed", None, x)
    t_dp = time.perf_counter() - t0
    equal = np.array_equal(one.out, dp.out) and all(
        getattr(one, group).keys() == getattr(dp, group).keys()
        and all(np.array_equal(a, getattr(dp, group)[k]) for k, a in getattr(one, group).items())
        for group in ("spikes", "states", "values"))
    return {"samples": int(x.shape[1]), "steps": int(x.shape[0]), "processes": processes,
            "one_process_s": t_one, "data_parallel_s": t_dp, "speedup": t_one / t_dp, "bit_identical": equal}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray, shards, GPU processes")
    parser.add_argument("--lava", action="store_true", help="validate the lava target too")
    parser.add_argument("--quick", action="store_true", help="4 sweep points, 256 validation samples")
    args = parser.parse_args()
    import os

    os.chdir(ROOT)
    work = Path(tempfile.mkdtemp(prefix="rsnnc-bench-scale-"))
    try:
        info = machine_info()
        sweep = bench_sweep(work / "sweep", 4 if args.quick else 8, args.cpus)
        samples = 256 if args.quick else None
        val = bench_validate(work, args.cpus, args.cpus, args.lava, samples)
        gpu = bench_gpu_processes(work, args.cpus, samples)
        info["load_avg_after"] = list(os.getloadavg())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    data = {"machine": info, "sweep": sweep, "validate_shards": val, "gpu_processes": gpu}
    rows = [
        ("sweep", f"{sweep['points']} points, {sweep['cpus']} CPUs", sweep["sequential_s"], sweep["ray_sweep_s"],
         sweep["ray_start_s"], sweep["speedup_without_start"], sweep["speedup_with_start"], sweep["same_table"]),
        ("validate --shards", f"{val['samples']} samples x {val['steps']} steps, {'/'.join(val['targets'])},"
         f" {val['shards']} shards", val["one_process_s"], val["sharded_s"], val["ray_start_s"],
         val["speedup_without_start"], val["speedup_with_start"], val["same_report"]),
        ("--gpu-processes", f"{gpu['samples']} samples, fixed point, {gpu['processes']} gloo processes",
         gpu["one_process_s"], gpu["data_parallel_s"], 0.0, gpu["speedup"], gpu["speedup"], gpu["bit_identical"]),
    ]
    table = markdown_table(("what", "work", "one process s", "parallel s", "Ray start s", "speed-up",
                            "speed-up incl. Ray start", "equal"), rows)
    body = (f"Machine: {info['cpu']}, {info['cores']} cores, load average {info['load_avg_1_5_15']} before,"
            f" {info['load_avg_after']} after.\n\n{table}")
    print(body)
    write_json(RESULTS / "scale_out.json", data)
    write_markdown(RESULTS / "scale_out.md", "Scale-out speed-up (bench/scale_out.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
