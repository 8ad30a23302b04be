"""`rsnnc validate`: success and failure paths, first-mismatch reporting, determinism of integer builds."""

import json
from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler import registry
from rsnn_compiler.cli.main import main
from rsnn_compiler.executors import InterpreterExecutor
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.validate import ExecutorUnavailable, first_mismatch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example" / "recurrent.rsnn"
DATA = ROOT / "models" / "example" / "data.npz"


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def c_gpu_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("v") / "build"
    assert main(["build", str(EXAMPLE), "--target", "c,gpu", "--calib", str(DATA), "-o", str(out), "-q"]) == 0
    return out


def labelled_data(tmp_path, steps=30, batch=6):
    with np.load(DATA) as d:
        x = d["x"][:steps, :batch]
    path = tmp_path / "xy.npz"
    np.savez(path, x=x, y=np.arange(batch) % 4)
    return path


def test_validate_success_writes_report(c_gpu_build, tmp_path, capsys):
    code, out, err = cli(capsys, "validate", c_gpu_build, "--data", labelled_data(tmp_path), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["ok"] and data["profile"] == "fpga"
    assert {e["executor"]: e["status"] for e in data["executors"]} == {"c": "equal", "gpu": "equal"}
    assert all(e["compared_values"] > 0 for e in data["executors"])
    assert data["layers"][0]["node"] == "lif" and 0.5 < data["layers"][0]["spike_agreement"] <= 1.0
    assert data["float_accuracy"] is not None and data["fixed_accuracy"] is not None
    assert json.loads((c_gpu_build / "validate.json").read_text()) == data


class PerturbingExecutor(InterpreterExecutor):
    """The interpreter with one membrane value changed: what a buggy backend would produce."""

    name = "broken"

    def run(self, build, manifest, domain, profile, x):
        r = super().run(build, manifest, domain, profile, x)
        v = r.states["v/lif"].copy()
        v[3, 1, 5] += 1
        return RunResult(out=r.out, values=r.values, spikes=r.spikes, states={**r.states, "v/lif": v})


class MissingExecutor(InterpreterExecutor):
    name = "missing"

    def run(self, build, manifest, domain, profile, x):
        raise ExecutorUnavailable("no Python 3.10 Lava environment; run scripts/setup_lava.sh")


def _with_fake_target(build: Path, name: str, spec: str, monkeypatch):
    manifest = json.loads((build / "manifest.json").read_text())
    manifest["targets"][name] = {"profile": "fpga", "files": [], "summary": "test double"}
    (build / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setitem(registry.EXECUTORS, name, spec)


def test_validate_failure_prints_first_difference(c_gpu_build, tmp_path, capsys, monkeypatch):
    import shutil

    build = tmp_path / "copy"
    shutil.copytree(c_gpu_build, build)
    _with_fake_target(build, "broken", "test_validate:PerturbingExecutor", monkeypatch)
    code, out, err = cli(capsys, "validate", build, "--data", DATA)
    assert code == 1
    assert "broken differs from the fixed-point interpreter at sample 1, step 3, v/lif, neuron (5,)" in err
    assert "validate: FAILED" in out
    report = json.loads((build / "validate.json").read_text())
    mismatch = next(e for e in report["executors"] if e["executor"] == "broken")["mismatch"]
    assert mismatch["got"] == mismatch["expected"] + 1 and mismatch["differing_values"] == 1


def test_validate_missing_executor_fails_unless_allowed(c_gpu_build, tmp_path, capsys, monkeypatch):
    import shutil

    build = tmp_path / "copy"
    shutil.copytree(c_gpu_build, build)
    _with_fake_target(build, "missing", "test_validate:MissingExecutor", monkeypatch)
    code, _, err = cli(capsys, "validate", build, "--data", DATA)
    assert code == 1 and "missing could not run: no Python 3.10 Lava environment" in err
    code, out, _ = cli(capsys, "validate", build, "--data", DATA, "--allow-missing")
    assert code == 0 and "unavailable" in out


def test_validate_accuracy_bound(c_gpu_build, tmp_path, capsys):
    code, _, err = cli(capsys, "validate", c_gpu_build, "--data", labelled_data(tmp_path), "--max-accuracy-drop", "-1")
    assert code == 1 and "points below float" in err


def test_validate_bad_inputs(c_gpu_build, tmp_path, capsys):
    code, _, err = cli(capsys, "validate", tmp_path, "--data", DATA)
    assert code == 2 and "has no manifest.json" in err
    ir_build = tmp_path / "ir"
    assert main(["build", str(EXAMPLE), "-o", str(ir_build), "-q"]) == 0
    code, _, err = cli(capsys, "validate", ir_build, "--data", DATA)
    assert code == 2 and "no fixed-point graph" in err and "Traceback" not in err
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 2, 3), np.float32))
    code, _, err = cli(capsys, "validate", c_gpu_build, "--data", tmp_path / "bad.npz")
    assert code == 2 and "expects (time, batch, 8)" in err


def test_first_mismatch_orders_by_step_then_sample():
    a = RunResult(out=np.zeros((4, 2, 3), np.int64), spikes={"n": np.zeros((4, 2, 3), np.int64)})
    b_out = a.out.copy()
    b_out[2, 0, 1] = 7
    b_sp = a.spikes["n"].copy()
    b_sp[1, 1, 2] = 1
    m, compared = first_mismatch("x", a, RunResult(out=b_out, spikes={"n": b_sp}))
    assert (m.key, m.step, m.sample, m.neuron) == ("spikes/n", 1, 1, [2]) and compared == 48
    m, _ = first_mismatch("x", a, RunResult(out=a.out, spikes={}))
    assert m.key == "spikes/n" and m.got == "missing"


def test_integer_builds_are_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert main(["build", str(EXAMPLE), "--target", "c,gpu", "--calib", str(DATA), "-o", str(out), "-q"]) == 0
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()


def test_trained_recurrent_model_8bit_within_one_point(tmp_path, capsys):
    """Issue 4 acceptance: on the trained RLeaky mnist1d model, 8-bit weights (fpga profile)
    change test accuracy by at most 1 point versus float, as reported by validate."""
    model = ROOT / "models" / "rleaky_mnist1d"
    out = tmp_path / "rnn"
    code, _, err = cli(capsys, "build", "models.rleaky_mnist1d.model:build", "--weights", model / "weights.pt",
                       "--target", "c", "--profile", "fpga", "--calib", model / "data.npz", "-o", out, "-q")
    assert code == 0, err
    code, stdout, err = cli(capsys, "validate", out, "--data", model / "test.npz", "--json", "-q")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["samples"] == 1000
    assert report["float_accuracy"] == pytest.approx(80.3, abs=1e-9)  # the model card's number (percent)
    assert abs(report["float_accuracy"] - report["fixed_accuracy"]) <= 1.0
    assert report["accuracy_data"] == "test.npz (1000 samples)"
