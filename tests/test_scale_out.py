"""Acceptance of issue 19 on a local Ray with 2 CPUs: a 4-point sweep equals its points run one by
one through the command line, `validate --shards 2` equals `validate`, and a sweep killed midway
resumes without recomputing finished points.

One Ray session serves the whole module (its start-up costs seconds); scripts/test.sh keeps the
module on one pytest worker (``xdist_group`` with ``--dist loadgroup``).
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler.cli.main import main

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.xdist_group("ray")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example" / "recurrent.rsnn"
CALIB = ROOT / "models" / "example" / "data.npz"
VOLATILE = ("wall_time_s", "cached")  # the only row fields that may differ between runs


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs for the module; rsnnc's commands use it as it is (ray_session)."""
    import logging

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """The example graph's inputs (30 steps, 8 samples) with labels, so points have an accuracy."""
    with np.load(CALIB) as d:
        x = d["x"][:30, :8]
    path = tmp_path_factory.mktemp("data") / "xy.npz"
    np.savez(path, x=x, y=np.arange(8) % 4)
    return path


def write_config(folder: Path, data: Path) -> Path:
    """4 points: time steps x target, on the bundled example graph."""
    config = folder / "sweep.toml"
    config.write_text(f"""
[model]
input = "{EXAMPLE}"
calib = "{CALIB}"

[data]
path = "{data}"

[grid]
time_steps = [30, 12]
target = ["gpu", "c"]
""")
    return config


def rows(sweep_dir: Path) -> list[dict]:
    data = json.loads((sweep_dir / "sweep.json").read_text())
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in data["points"]]


def without_times(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    for e in report["executors"]:
        e.pop("wall_time_s")
    return report


@pytest.fixture(scope="module")
def first_sweep(ray_cluster, labelled, tmp_path_factory):
    """The sweep run from another folder than Ray's workers start in, with relative paths (the
    data cut to time_steps lands in out/data/): the points resolve them where the sweep runs."""
    folder = tmp_path_factory.mktemp("sweep")
    config = write_config(folder, labelled)
    here = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["sweep", config.name, "-o", "out", "-q"]) == 0
    finally:
        os.chdir(here)
    return config, folder / "out"


def test_sweep_table_equals_points_run_one_by_one(first_sweep, labelled, tmp_path, capsys, monkeypatch):
    config, out = first_sweep
    monkeypatch.chdir(out.parent)  # the rows' commands name the cut data relative to the sweep's folder
    table = rows(out)
    assert [r["status"] for r in table] == ["ok"] * 4
    assert [r["axes"] for r in table] == [{"time_steps": t, "target": g} for t in (30, 12) for g in ("gpu", "c")]
    assert (out / "sweep.md").read_text().count("| ok |") == 4 and (out / "pareto.svg").is_file()
    from rsnn_compiler.artifact import read_manifest
    from rsnn_compiler.sweep.config import DataSpec
    from rsnn_compiler.sweep.metrics import point_metrics
    from rsnn_compiler.sweep.point import load_point_data

    for i, row in enumerate(table):
        # the row's own build command, run by the command line in this process
        argv = shlex.split(row["command"])[1:]
        assert argv[0] == "build" and argv[-2] == "-o"
        build = tmp_path / f"p{i}"
        assert main([*argv[:-1], str(build), "-q"]) == 0
        point_build = out / "points" / row["key"][:16] / "build"
        assert (build / "manifest.json").read_bytes() == (point_build / "manifest.json").read_bytes()
        data = tmp_path / f"d{i}.npz"
        with np.load(labelled) as d:
            np.savez(data, x=d["x"][: row["axes"]["time_steps"]], y=d["y"])
        capsys.readouterr()
        code = main(["validate", str(build), "--data", str(data), "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0
        unnamed = {"build": "", "accuracy_data": ""}  # the point's data and the cut copy have other names
        assert without_times(report) | unnamed == \
            without_times(json.loads((point_build / "validate.json").read_text())) | unnamed
        assert row["metrics"]["fixed_accuracy"] == report["fixed_accuracy"]  # percent in both
        # the row's other numbers, from the command line's build
        manifest = read_manifest(build)
        x, _ = load_point_data(DataSpec(str(labelled)), row["axes"]["time_steps"], manifest.get("steps"))
        rebuilt = validation_report(report)
        assert point_metrics(build, manifest, rebuilt, x).to_json() == row["metrics"]
    c_rows = [r for r in table if r["axes"]["target"] == "c"]
    assert all(r["metrics"]["c_memory_bytes"] > 0 for r in c_rows)
    assert all(r["metrics"]["c_memory_bytes"] is None for r in table if r["axes"]["target"] == "gpu")


def validation_report(data: dict):
    """The ValidationReport of a validate.json (mismatches left out: these points have none)."""
    from rsnn_compiler.validate import ExecutorCheck, LayerAgreement, ValidationReport

    report = ValidationReport(**{k: v for k, v in data.items() if k not in ("executors", "layers")})
    report.executors = [ExecutorCheck(**{**e, "mismatch": None}) for e in data["executors"]]
    report.layers = [LayerAgreement(**layer) for layer in data["layers"]]
    return report


def test_rerun_skips_every_finished_point(first_sweep, capsys):
    config, out = first_sweep
    before = {p: p.stat().st_mtime_ns for p in out.glob("points/*/result.json")}
    capsys.readouterr()
    assert main(["sweep", str(config), "-o", str(out)]) == 0
    assert "4 points (0 run, 4 from an earlier run)" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.glob("points/*/result.json")} == before
    assert all(row["cached"] for row in json.loads((out / "sweep.json").read_text())["points"])


def test_validate_shards_equals_validate(ray_cluster, labelled, tmp_path, capsys):
    build = tmp_path / "b"
    assert main(["build", str(EXAMPLE), "--target", "c,gpu", "--calib", str(CALIB), "-o", str(build), "-q"]) == 0
    reports = []
    for extra in ([], ["--shards", "2"], ["--shards", "3"]):
        capsys.readouterr()
        assert main(["validate", str(build), "--data", str(labelled), "--json", *extra]) == 0
        reports.append(without_times(json.loads(capsys.readouterr().out)))
    assert reports[0] == reports[1] == reports[2]
    assert reports[0]["samples"] == 8 and reports[0]["fixed_accuracy"] is not None


def test_killed_sweep_resumes_without_recomputing(ray_cluster, labelled, tmp_path):
    """The driver is killed (SIGKILL) after its first finished point; the rerun keeps what was
    finished, runs the rest, and gives the same table as an uninterrupted sweep."""
    config = write_config(tmp_path, labelled)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "rsnn_compiler.cli.main", "sweep", str(config), "-o", str(out),
                             "--address", ray_cluster, "-q"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not list(out.glob("points/*/result.json")):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no point finished in 600 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("points/*/result.json")}
    manifests = {p: p.stat().st_mtime_ns for p in out.glob("points/*/build/manifest.json") if
                 (p.parent.parent / "result.json") in finished}
    assert 1 <= len(finished) < 4 and not (out / "sweep.json").exists()
    from rsnn_compiler.ray_engine import RayOptions
    from rsnn_compiler.sweep.config import load_config
    from rsnn_compiler.sweep.run import run_sweep

    result = run_sweep(load_config(config), out, RayOptions(address=ray_cluster))
    assert (result.cached, result.ran) == (len(finished), 4 - len(finished))
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())
    assert all(p.stat().st_mtime_ns == t for p, t in manifests.items())
    assert [r.status for r in result.results] == ["ok"] * 4
