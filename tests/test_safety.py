"""Regression tests for the ten defects of issue 15 ("safe by construction"), one section each.
Defect 1 (code from a graph name) is in test_sanitize.py with the property test."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler.artifact import TEMP_TAG, atomic_directory, swap_into_place
from rsnn_compiler.build import BuildOptions, build
from rsnn_compiler.examples import recurrent_example
from rsnn_compiler.ir.graph import GraphBuilder
from rsnn_compiler.ir.ops import LIF, Affine, Input, Output, ResetMode, broadcast_params
from rsnn_compiler.ir.serialize import save_graph
from rsnn_compiler.passes_api import PassContext, Prop

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example" / "recurrent.rsnn"
DATA = ROOT / "models" / "example" / "data.npz"
HAVE_CC = shutil.which(os.environ.get("CC", "cc").split()[0]) is not None
RSNNC = [sys.executable, "-m", "rsnn_compiler.cli.main"]


def one_error(err: str) -> str:
    """The single 'rsnnc: error:' line of ``err`` (every line is rsnnc's, none a traceback)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err and all(ln.startswith("rsnnc: ") for ln in lines), err
    errors = [ln for ln in lines if ln.startswith("rsnnc: error:")]
    assert len(errors) == 1, err
    return errors[0]


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def c_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("safety") / "build"
    build(str(EXAMPLE), out, BuildOptions(targets=("c", "gpu") if HAVE_CC else ("gpu",)))
    return out


def copy_build(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------------------------------------
# 2: -o on an existing folder that is not a build
# ---------------------------------------------------------------------------------------------
def test_out_refuses_a_folder_that_is_not_a_build(tmp_path, cli_run):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.txt").write_text("three years of work")
    code, _, err = cli_run("build", EXAMPLE, "-o", folder, "-q")
    assert code == 2 and "not an rsnnc build" in one_error(err) and "--force" in err
    assert (folder / "thesis.txt").read_text() == "three years of work"
    code, _, err = cli_run("build", EXAMPLE, "-o", folder, "-q", "--force")
    assert code == 0 and (folder / "manifest.json").is_file() and not (folder / "thesis.txt").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_run("build", EXAMPLE, "-o", empty, "-q")[0] == 0  # an empty folder loses nothing
    assert cli_run("build", EXAMPLE, "-o", folder, "-q")[0] == 0  # an earlier build is replaced
    (tmp_path / "file").write_text("x")
    assert cli_run("build", EXAMPLE, "-o", tmp_path / "file", "-q")[0] == 2
    assert hidden(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# 3: build folders are verified against the manifest hashes before anything of them runs
# ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_tampered_binary_is_never_executed(c_build, tmp_path, cli_run):
    b = copy_build(c_build, tmp_path / "b")
    marker = tmp_path / "executed"
    binary = b / "c" / "rsnn_run"
    binary.write_text(f"#!/bin/sh\ntouch {marker}\n")
    binary.chmod(0o755)
    code, _, err = cli_run("run", b, "--inputs", DATA, "--out", tmp_path / "y.npz", "--executor", "c", "-q")
    assert code == 2 and "c/rsnn_run does not match the SHA-256" in one_error(err)
    code, _, err = cli_run("validate", b, "--data", DATA, "-q")
    assert code == 2 and "rsnn_run" in one_error(err)
    assert not marker.exists() and not (tmp_path / "y.npz").exists()


def test_replaced_graph_and_bad_manifests_are_refused(c_build, tmp_path, cli_run):
    b = copy_build(c_build, tmp_path / "b")
    other = recurrent_example(seed=5)
    save_graph(other, b / "graph.float.rsnn")
    for argv in (("validate", b, "--data", DATA), ("inspect", b), ("export", b, "--format", "nir", "-o", tmp_path / "x.nir"),
                 ("run", b, "--inputs", DATA, "--out", tmp_path / "y.npz")):
        code, _, err = cli_run(*argv, "-q") if argv[0] != "inspect" else cli_run(*argv)
        assert code == 2 and "graph.float.rsnn" in one_error(err), argv
    manifest = json.loads((c_build / "manifest.json").read_text())
    for broken in ([], {**manifest, "files": []}, {**manifest, "graphs": {"float": {"file": 3}}},
                   {**manifest, "steps": "all"}, {**manifest, "graphs": {"float": {"file": "../../etc/passwd"}}}):
        b2 = copy_build(c_build, tmp_path / f"m{len(list(tmp_path.iterdir()))}")
        (b2 / "manifest.json").write_text(json.dumps(broken))
        code, _, err = cli_run("run", b2, "--inputs", DATA, "--out", tmp_path / "y.npz", "-q")
        assert code == 2, err
        one_error(err)
    # the parts `rsnnc report` renders: a malformed accuracy block or pipeline is bad input, not a bug
    record = {"data": "d", "float_model": 80.0, "steps": [{"step": "fpga", "accuracy": 79.5, "drop": 0.5}],
              "tolerance": 2, "notes": []}
    for broken in ({**manifest, "accuracy": "x"}, {**manifest, "accuracy": {"a": 1}},
                   {**manifest, "accuracy": {**record, "steps": [{"step": "s", "accuracy": "high"}]}},
                   {**manifest, "accuracy": {**record, "float_model": "80"}}, {**manifest, "pipeline": {"float": 1}},
                   {**manifest, "targets": {t: {**v, "details": 5} for t, v in manifest["targets"].items()}}):
        b2 = copy_build(c_build, tmp_path / f"r{len(list(tmp_path.iterdir()))}")
        (b2 / "manifest.json").write_text(json.dumps(broken))
        code, _, err = cli_run("report", b2)
        assert code == 2 and "not a valid rsnnc manifest" in one_error(err), (broken.get("accuracy"), err)
    b4 = copy_build(c_build, tmp_path / "bad-timings")  # timings.json is not hashed: shown only when sound
    timings = json.loads((b4 / "timings.json").read_text())
    timings["passes"][0]["wall_time_s"] = "slow"
    (b4 / "timings.json").write_text(json.dumps(timings))
    code, _, err = cli_run("report", b4)
    assert code == 0, err
    b3 = copy_build(c_build, tmp_path / "good-accuracy")
    (b3 / "manifest.json").write_text(json.dumps({**manifest, "accuracy": record}))
    code, out, err = cli_run("report", b3)
    assert code == 0 and "fpga: 79.50%" in out, err


def test_files_written_later_do_not_break_verification(c_build, tmp_path, cli_run):
    b = copy_build(c_build, tmp_path / "b")
    for _ in range(2):  # validate.json from the first run is not in the manifest: fine
        code, _, err = cli_run("validate", b, "--data", DATA, "-q")
        assert code == 0, err
    assert (b / "validate.json").is_file()
    code, _, err = cli_run("run", b, "--inputs", DATA, "--out", b / "graph.float.rsnn", "-q")
    assert code == 2 and "overwrite a file of the build" in one_error(err)


# ---------------------------------------------------------------------------------------------
# 4: steps in a .rsnn file
# ---------------------------------------------------------------------------------------------
def rewrite_rsnn(src: Path, dst: Path, edit) -> Path:
    zin = zipfile.ZipFile(src)
    with zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "graph.json":
                meta = json.loads(data)
                edit(meta)
                data = json.dumps(meta).encode()
            zout.writestr(info, data)
    return dst


@pytest.mark.parametrize("steps", [-1, 0, 1e12, 10**12, "5", True, 2.5])
def test_bad_steps_are_refused(steps, tmp_path, cli_run):
    path = rewrite_rsnn(EXAMPLE, tmp_path / "g.rsnn", lambda m: m["attrs"].__setitem__("steps", steps))
    code, _, err = cli_run("inspect", path)
    assert code == 2 and "steps" in one_error(err)


# ---------------------------------------------------------------------------------------------
# 5: quantization says what it changed and can fail the build
# ---------------------------------------------------------------------------------------------
def two_layer(theta=1.0, wide=False, bias=None, readout_bias=None) -> "Graph":  # noqa: F821
    rng = np.random.default_rng(0)
    b = GraphBuilder("q", dt=1e-3)
    b.add("input", Input(shape=(8,)))
    w = rng.normal(0, 0.6, (32, 8))
    if wide:
        w[0, 0] = 0.6 * 5000  # a 5000:1 weight range under one Loihi 2 exponent
    b.add("fc", Affine(weight=w, bias=None if bias is None else np.full(32, bias)))
    b.add("lif", LIF(**broadcast_params((32,), beta=0.9, gain=1.0, bias=0.0, theta=theta, v_reset=0.0, v_init=0.0),
                     reset=ResetMode.SUBTRACT))
    b.add("fc2", Affine(weight=rng.normal(0, 0.6, (4, 32))))
    if readout_bias is not None:  # a linear readout: Affine -> Output
        b.add("ro", Affine(weight=np.eye(4), bias=np.full(4, readout_bias)))
        b.add("output", Output(shape=(4,)))
        b.chain("input", "fc", "lif", "fc2", "ro", "output")
        return b.build().with_attrs(properties=frozenset({Prop.DISCRETIZED}))
    b.add("lif2", LIF(**broadcast_params((4,), beta=0.9, gain=1.0, bias=0.0, theta=1.0, v_reset=0.0, v_init=0.0),
                      reset=ResetMode.SUBTRACT))
    b.add("output", Output(shape=(4,)))
    b.chain("input", "fc", "lif", "fc2", "lif2", "output")
    return b.build().with_attrs(properties=frozenset({Prop.DISCRETIZED}))


@pytest.fixture(scope="module")
def quant_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("quant")
    save_graph(two_layer(theta=1e9), d / "big.rsnn")
    save_graph(two_layer(theta=-1.0), d / "neg.rsnn")
    save_graph(two_layer(wide=True), d / "wide.rsnn")
    save_graph(two_layer(bias=1e6, readout_bias=0.5), d / "bias.rsnn")
    rng = np.random.default_rng(3)
    np.savez(d / "calib.npz", x=(rng.random((40, 64, 8)) < 0.3).astype(np.float32), y=rng.integers(0, 4, 64))
    return d


def warnings_of(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("rsnnc: warning:")]


def test_clamped_thresholds_warn(quant_files, tmp_path, cli_run):
    code, _, err = cli_run("build", quant_files / "big.rsnn", "--target", "gpu", "--profile", "loihi2", "-o", tmp_path / "a", "-q")
    assert code == 0 and any("lif: theta clamped for 32 of 32" in w and "1e+09" in w for w in warnings_of(err)), err
    code, _, err = cli_run("build", quant_files / "neg.rsnn", "--target", "gpu", "-o", tmp_path / "b", "-q")
    assert code == 0 and any("lif: theta clamped" in w and "-1 is stored as" in w for w in warnings_of(err)), err
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["warnings"] == [w.removeprefix("rsnnc: warning: ") for w in warnings_of(err)]
    assert manifest["pipeline"]["fpga"][-1] == "quant_check"
    code, out, _ = cli_run("report", tmp_path / "b")
    assert code == 0 and "theta clamped" in out and "warnings (" in out
    code, _, err = cli_run("build", quant_files / "bias.rsnn", "--target", "gpu", "--profile", "loihi2", "-o", tmp_path / "c", "-q")
    ws = warnings_of(err)
    assert code == 0 and any("lif: bias clamped" in w for w in ws) and any(": bias dropped" in w for w in ws), err


def test_wide_weight_range_warns_and_gates_fail_the_build(quant_files, tmp_path, cli_run):
    base = ("build", quant_files / "wide.rsnn", "--target", "gpu", "--profile", "loihi2", "-q")
    code, _, err = cli_run(*base, "-o", tmp_path / "a")  # no --calib: random inputs still reveal it
    ws = warnings_of(err)
    assert code == 0 and any("fc:" in w and "became zero" in w for w in ws), err
    assert any("lif: keeps only" in w and "random inputs" in w for w in ws), err
    code, _, err = cli_run(*base, "-o", tmp_path / "b", "--calib", quant_files / "calib.npz", "--max-accuracy-drop", "0")
    assert code == 1 and "drops accuracy" in err and not (tmp_path / "b").exists()
    drop, before, after = map(float, re.search(r"drops accuracy (\S+) points \((\S+)% -> (\S+)%", err).groups())
    assert 0 < drop <= 100 and abs(drop - (before - after)) < 0.011, err  # points of percentages
    code, _, err = cli_run(*base, "-o", tmp_path / "e", "--calib", quant_files / "calib.npz", "--max-accuracy-drop", "100",
                           "--accept-accuracy-loss")
    assert code == 0, err  # no drop exceeds 100 points
    code, _, err = cli_run(*base, "-o", tmp_path / "c", "--min-spike-agreement", "0.95")
    assert code == 1 and "below --min-spike-agreement 0.95" in err and not (tmp_path / "c").exists()
    for bad in ("nan", "inf"):
        code, _, err = cli_run(*base, "-o", tmp_path / "d", "--calib", quant_files / "calib.npz", "--max-accuracy-drop", bad)
        assert code == 2 and "--max-accuracy-drop" in one_error(err)
    code, _, err = cli_run(*base, "-o", tmp_path / "d", "--max-accuracy-drop", "1")  # no labels
    assert code == 2 and "needs labels" in one_error(err)
    assert hidden(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# 6: memory is budgeted before allocation
# ---------------------------------------------------------------------------------------------
def npz_with_member(path: Path, name: str, payload: bytes, compress: bool = True) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{name}.npy", payload)
    return path


def npy_header(shape, dtype="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_zip_bombs_and_forged_headers_are_refused(c_build, tmp_path, cli_run):
    bomb = npy_header((512, 1024, 64)) + bytes(512 * 1024 * 64 * 4)  # 128 MiB of zeros, ~130 KB zipped
    npz_with_member(tmp_path / "bomb.npz", "x", bomb)
    assert (tmp_path / "bomb.npz").stat().st_size < 1 << 20
    npz_with_member(tmp_path / "forged.npz", "x", npy_header((10**6, 10**6)) + bytes(64))
    for data in ("bomb.npz", "forged.npz"):
        code, _, err = cli_run("run", c_build, "--inputs", tmp_path / data, "--out", tmp_path / "y.npz", "-q")
        assert code == 2, err
        one_error(err)
    # the same inside a .rsnn graph file
    rsnn = tmp_path / "g.rsnn"
    zin = zipfile.ZipFile(EXAMPLE)
    with zipfile.ZipFile(rsnn, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            zout.writestr(info.filename, npy_header((10**6, 10**6)) if info.filename.endswith("fc_in/weight.npy") else data)
    code, _, err = cli_run("inspect", rsnn)
    assert code == 2 and "fc_in" in one_error(err)
    assert not (tmp_path / "y.npz").exists()


def test_nir_dataset_bomb_is_refused(tmp_path, cli_run):
    import h5py

    path = tmp_path / "bomb.nir"
    shutil.copyfile(ROOT / "models" / "rleaky_mnist1d" / "model.nir", path)
    with h5py.File(path, "r+") as f:  # 1.5 GiB of zeros in a few KiB of gzip chunks
        del f["node/nodes/0/weight"]
        f.create_dataset("node/nodes/0/weight", shape=(20000, 20000), dtype="f4", chunks=(1000, 1000),
                         compression="gzip", fillvalue=0)[0, 0] = 1.0
    code, _, err = cli_run("inspect", path)
    assert code == 2 and "zip bomb" in one_error(err)


def test_memory_budget_applies_before_allocation(c_build, tmp_path):
    """A refused data file does not raise the process' peak memory (a child's maxrss)."""
    x = np.zeros((64, 64, 8), np.float32)
    np.savez(tmp_path / "ok.npz", x=x)
    env = dict(os.environ, RSNNC_MEMORY_BUDGET="100K")
    proc = subprocess.Popen([*RSNNC, "run", str(c_build), "--inputs", str(tmp_path / "ok.npz"), "--out",
                             str(tmp_path / "y.npz"), "-q"], env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read()
    assert os.waitstatus_to_exitcode(status) == 2 and "memory budget" in one_error(err)
    assert usage.ru_maxrss < 2 * 1024 * 1024  # KiB: far below what running would take


def test_canonicalize_keeps_a_factorised_pair():
    from rsnn_compiler.passes.canonicalize import Canonicalize

    rng = np.random.default_rng(0)
    n = 20_000
    b = GraphBuilder("lowrank", dt=1e-3)
    b.add("input", Input(shape=(n,)))
    b.add("down", Affine(weight=rng.normal(size=(8, n)).astype(np.float32)))
    b.add("up", Affine(weight=rng.normal(size=(n, 8)).astype(np.float32)))
    b.add("lif", LIF(**broadcast_params((n,), beta=0.9, gain=1.0, bias=0.0, theta=1.0, v_reset=0.0, v_init=0.0)))
    b.add("output", Output(shape=(n,)))
    b.chain("input", "down", "up", "lif", "output")
    g, report = Canonicalize().run(b.build(), PassContext())
    assert report.merged_affines == 0 and {"down", "up"} <= set(g.nodes)  # not a 400M-entry matrix


# ---------------------------------------------------------------------------------------------
# 7: malformed inputs are one-line errors (exit 2), never internal errors
# ---------------------------------------------------------------------------------------------
def test_malformed_inputs_exit_2(c_build, tmp_path, cli_run):
    d = tmp_path
    np.save(d / "x.npy", np.zeros((4, 2, 8), np.float32))
    os.replace(d / "x.npy", d / "npy_as.npz")
    np.savez(d / "zero_batch.npz", x=np.zeros((4, 0, 8), np.float32))
    np.savez(d / "zero_steps.npz", x=np.zeros((0, 2, 8), np.float32))
    np.savez(d / "complex.npz", x=np.zeros((4, 2, 8), np.complex64))
    np.savez(d / "nan_labels.npz", x=np.zeros((4, 2, 8), np.float32), y=np.array([0.0, np.nan]))
    np.savez_compressed(d / "deflate.npz", x=np.arange(4 * 2 * 8, dtype=np.float32).reshape(4, 2, 8))
    raw = bytearray((d / "deflate.npz").read_bytes())
    raw[80:120] = bytes(40)
    (d / "deflate.npz").write_bytes(bytes(raw))
    for data in ("npy_as.npz", "zero_batch.npz", "zero_steps.npz", "complex.npz", "nan_labels.npz", "deflate.npz"):
        code, _, err = cli_run("validate", c_build, "--data", d / data, "-q")
        assert code == 2, (data, err)
        one_error(err)
    graph_list = rewrite_rsnn(EXAMPLE, d / "list.rsnn", lambda m: (m.clear(), m.update({"schema": "rsnn-graph", "nodes": 5})))
    zero = rewrite_rsnn(EXAMPLE, d / "zero.rsnn", lambda m: m["nodes"][0]["attributes"].__setitem__("shape", [0]))
    for path in (graph_list, zero):
        code, _, err = cli_run("inspect", path)
        assert code == 2, err
        one_error(err)
    (d / "empty.pt").write_bytes(b"")
    code, _, err = cli_run("build", "models.rleaky_mnist1d.model:build", "--weights", d / "empty.pt", "-o", d / "o", "-q")
    assert code == 2 and "empty.pt" in one_error(err)
    code, _, err = cli_run("run", c_build, "--inputs", DATA, "--out", d / "missing" / "y.npz", "-q")
    assert code == 2 and "does not exist" in one_error(err)


def test_onnx_raw_data_mismatch_and_fixed_widths(tmp_path, cli_run):
    import onnx

    from rsnn_compiler.testing.random_graphs import random_fixed_graph

    model = onnx.load(str(ROOT / "models" / "mlp_digits" / "model.onnx"))
    t = next(t for t in model.graph.initializer if t.raw_data)
    t.raw_data = t.raw_data[:-4]
    onnx.save(model, str(tmp_path / "m.onnx"))
    code, _, err = cli_run("build", tmp_path / "m.onnx", "--calib", ROOT / "models" / "mlp_digits" / "data.npz",
                           "-o", tmp_path / "o", "-q")
    assert code == 2 and "raw_data" in one_error(err)
    save_graph(random_fixed_graph(0, "fpga"), tmp_path / "f.rsnn")
    edit = lambda m: [n["attributes"].__setitem__("v_bits", 0) for n in m["nodes"] if "v_bits" in n["attributes"]]  # noqa: E731
    code, _, err = cli_run("inspect", rewrite_rsnn(tmp_path / "f.rsnn", tmp_path / "v0.rsnn", edit))
    assert code == 2 and "v_bits = 0" in one_error(err)


# ---------------------------------------------------------------------------------------------
# 8: the generated C keeps to the range its overflow proof assumed
# ---------------------------------------------------------------------------------------------
DRIVER = r"""
#include <stdint.h>
#include <stdio.h>
#include "model.h"
int main(void)
{
    static rsnn_state_t s;
    int32_t x[RSNN_N_IN + 1];
    int64_t y[RSNN_N_OUT + 1];
    long t, k;
    rsnn_reset(&s);
    for (t = 0; t < 6; ++t) {
        for (k = 0; k < RSNN_N_IN; ++k) {
            x[k] = (t + k) % 2 ? INT32_MAX : INT32_MIN;
        }
        if (rsnn_input_ok(x)) {
            return 3;
        }
        rsnn_step(&s, x, y);
    }
    puts("ok");
    return 0;
}
"""


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_c_inputs_outside_the_proven_range(tmp_path):
    from rsnn_compiler.testing.random_graphs import random_fixed_graph
    from test_c_backend import _sanitizer_available, _sanitizer_flags

    from rsnn_compiler.backends.c.backend import source_files
    from rsnn_compiler.backends.c.toolchain import compile_c

    g = random_fixed_graph(0, "fpga", quantize_input=True, graded=True)
    files, src = source_files(g)
    assert src.plan.input_mode == "host_quantize"
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "driver.c").write_text(DRIVER)
    assert "Input contract" in files["model.h"] and json.loads(files["layout.json"])["input"]["range"]
    flags = _sanitizer_flags() if _sanitizer_available(tmp_path) else ("-O1",)
    compile_c(["harness.c", "model.c"], "run", tmp_path, extra_flags=("-O0",))
    x = np.full((2, 1, src.plan.n_in), 1 << 30, dtype="<i4")
    x.tofile(tmp_path / "x.bin")
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    res = subprocess.run([str(tmp_path / "run"), "-w", "4", "2", "1", str(tmp_path / "x.bin"), str(tmp_path / "y.bin")],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 8 and "outside the range the model was compiled for" in res.stderr
    compile_c(["driver.c", "model.c"], "driver", tmp_path, extra_flags=flags)  # rsnn_step clamps: no UB
    res = subprocess.run([str(tmp_path / "driver")], capture_output=True, text=True, env=env)
    assert res.returncode == 0 and res.stdout.strip() == "ok" and "runtime error" not in res.stderr, res.stderr


# ---------------------------------------------------------------------------------------------
# 9: atomic replacement, temp folders on every exit path
# ---------------------------------------------------------------------------------------------
def test_sigterm_during_emit_leaves_nothing(tmp_path, cli_run, monkeypatch):
    import rsnn_compiler.build as build_module

    real = build_module.write_json

    def write_then_terminate(path, data):
        real(path, data)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(build_module, "write_json", write_then_terminate)
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or one a library (Ray) installed earlier
    code, _, err = cli_run("build", EXAMPLE, "-o", tmp_path / "out", "-q")
    assert code == 128 + signal.SIGTERM and "terminated" in err
    assert sorted(os.listdir(tmp_path)) == []
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is restored


def test_leftovers_of_a_killed_build_are_removed_by_the_next_build(tmp_path, cli_run):
    """What SIGKILL leaves (a temp folder named after a process that is gone) goes with the next
    build; a live process' temp folder (a concurrent build) stays."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".out.{TEMP_TAG}-{dead.pid}-abc123"
    (stale / "c").mkdir(parents=True)
    live = tmp_path / f".out.{TEMP_TAG}-{os.getppid()}-def456"
    live.mkdir()
    code, _, err = cli_run("build", EXAMPLE, "-o", tmp_path / "out", "-q")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == sorted(["out", live.name])


@pytest.mark.slow
def test_sigkill_leftovers_are_removed_by_the_next_build(tmp_path, cli_run):
    proc = subprocess.Popen([*RSNNC, "build", str(EXAMPLE), "--target", "gpu", "-o", str(tmp_path / "out"), "-q"],
                            cwd=ROOT, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not any(TEMP_TAG in n for n in os.listdir(tmp_path)):
        if proc.poll() is not None:
            pytest.skip("the build finished before it could be killed")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(TEMP_TAG in n for n in os.listdir(tmp_path))  # what SIGKILL leaves behind
    code, _, err = cli_run("build", EXAMPLE, "-o", tmp_path / "out", "-q")
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_build_into_the_working_directory(c_build, tmp_path, cli_run, monkeypatch):
    b = copy_build(c_build, tmp_path / "here")
    monkeypatch.chdir(b)
    code, _, err = cli_run("build", EXAMPLE, "-o", ".", "-q")
    assert code == 0, err
    monkeypatch.chdir(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["here"] and (b / "manifest.json").is_file()


def test_replacing_a_build_never_leaves_the_path_missing(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "manifest.json").write_text("0")
    stop, missing = threading.Event(), []

    def watch():
        while not stop.is_set():
            if not (target / "manifest.json").exists():
                missing.append(time.time())

    def builder(k):
        for i in range(40):
            tmp = tmp_path / f".out.{TEMP_TAG}-{os.getpid()}-{k}-{i}"
            tmp.mkdir()
            (tmp / "manifest.json").write_text(f"{k}.{i}")
            swap_into_place(tmp, target)
            shutil.rmtree(tmp)

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = [threading.Thread(target=builder, args=(k,)) for k in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    watcher.join()
    assert missing == [] and sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.slow
def test_racing_builds_all_land_whole(tmp_path):
    out = tmp_path / "out"
    procs = [subprocess.Popen([*RSNNC, "build", str(EXAMPLE), "-o", str(out), "-q"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    assert sorted(os.listdir(tmp_path)) == ["out"] and (out / "manifest.json").is_file()


def test_atomic_directory_cleans_up_on_error(tmp_path):
    for target in (tmp_path / "out", tmp_path / "new" / "deep" / "out"):  # parents it made go too
        with pytest.raises(RuntimeError):
            with atomic_directory(target) as tmp:
                (tmp / "partial").write_text("x")
                raise RuntimeError("emit failed")
        assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# 10: exit codes hold for every failure mode of user code and data
# ---------------------------------------------------------------------------------------------
FACTORIES = '''
import os, sys
class Boom(BaseException):
    pass
def sysexit():
    raise SystemExit(0)
def osexit():
    os._exit(0)
def boom():
    raise Boom("kaboom")
def fails():
    raise ValueError("bad layer")
'''


@pytest.mark.parametrize("factory,convert,says", [
    ("sysexit", False, "sys.exit(0)"), ("osexit", False, "os._exit(0)"), ("boom", False, "raised Boom: kaboom"),
    ("sysexit", True, "sys.exit(0)"), ("osexit", True, "os._exit(0)"), ("fails", True, "ValueError: bad layer"),
])
def test_factory_failures_are_one_line_exit_2(factory, convert, says, tmp_path, cli_run, monkeypatch):
    module = f"rsnnc_bad_factories_{factory}_{int(convert)}"
    (tmp_path / f"{module}.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    extra = ["--convert", "sfn", "--calib", ROOT / "models" / "mlp_digits" / "data.npz"] if convert else []
    code, _, err = cli_run("build", f"{module}:{factory}", "--initial-weights", *extra, "-o", tmp_path / "out", "-q")
    assert code == 2 and says in one_error(err), err
    assert not (tmp_path / "out").exists() and os._exit.__module__ in ("os", "posix", "nt")


def test_run_failure_leaves_no_output_and_manifest_ignores_the_path_spelling(c_build, tmp_path, cli_run, monkeypatch):
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 2, 3), np.float32))
    code, _, err = cli_run("run", c_build, "--inputs", tmp_path / "wrong.npz", "--out", tmp_path / "y.npz", "-q")
    assert code == 2 and not (tmp_path / "y.npz").exists()
    one_error(err)
    monkeypatch.chdir(ROOT)
    assert cli_run("build", "models/example/recurrent.rsnn", "-o", tmp_path / "rel", "-q")[0] == 0
    monkeypatch.chdir(tmp_path)
    assert cli_run("build", EXAMPLE, "-o", tmp_path / "abs", "-q")[0] == 0
    assert (tmp_path / "rel" / "manifest.json").read_bytes() == (tmp_path / "abs" / "manifest.json").read_bytes()


# ---------------------------------------------------------------------------------------------
# lava-dl .net files (netx import) and lava build folders: the same guarantees (1, 3, 6, 7)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def netx_file(tmp_path_factory) -> Path:
    from rsnn_compiler.backends.lava.netx_export import export
    from test_netx import chain_graph

    path = tmp_path_factory.mktemp("netx") / "chain.net"
    export(chain_graph(5, layers=2, recurrent=True, graded=True), path)
    return path


def edited_net(src: Path, dst: Path, edits: dict) -> Path:
    """A copy of a .net file with datasets replaced (a value, or ``"group"`` for a group)."""
    import h5py

    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        for name, value in edits.items():
            del f[name]
            if isinstance(value, str) and value == "group":
                f.create_group(name)
            elif isinstance(value, tuple):  # a compressed dataset declaring this shape
                f.create_dataset(name, shape=value, dtype="f8", chunks=(1, 1024), compression="gzip")
            else:
                f.create_dataset(name, data=value)
    return dst


def test_netx_file_name_never_reaches_generated_code(netx_file, tmp_path, cli_run):
    """Defect 1 for netx: the graph is named after the file; a hostile file name builds for c and
    lava (the C compiles under -Werror; the quantization check runs the integer network on
    binary spikes) and no generated source holds the name's raw characters."""
    stem = "x*\\\n??/*\u202e"
    hostile = tmp_path / (stem.replace("/", "_") + ".net")
    shutil.copyfile(netx_file, hostile)
    targets = "c,lava" if HAVE_CC else "lava"
    code, _, err = cli_run("build", hostile, "--target", targets, "-o", tmp_path / "b", "-q")
    assert code == 0, err
    for path in (tmp_path / "b").rglob("*"):
        if path.suffix in (".c", ".h", ".md", ".py", "") and path.is_file() and path.name != "rsnn_run":
            text = path.read_text(errors="replace")
            assert "x*\\" not in text and "\u202e" not in text, path


def test_netx_bombs_and_huge_shapes_are_refused(netx_file, tmp_path, cli_run, monkeypatch):
    """Defect 6 for netx: sizes declared in the file are checked before any dataset is read."""
    monkeypatch.setenv("RSNNC_MEMORY_BUDGET", "256M")
    bomb = edited_net(netx_file, tmp_path / "bomb.net", {"layer/1/weight": (10**6, 10**6)})
    code, _, err = cli_run("inspect", bomb)
    assert code == 2 and "zip bomb" in one_error(err)
    huge = edited_net(netx_file, tmp_path / "huge.net", {"layer/0/shape": np.array([10**6, 10**6, 10])})
    code, _, err = cli_run("inspect", huge)
    assert code == 2 and "memory budget" in one_error(err)


@pytest.mark.parametrize("edit", [
    {"layer/1/type": "group"}, {"layer/1/weight": np.full((3,), np.nan)}, {"layer/1/weight": np.array([1e30, 1.0])},
    {"layer/1/shape": np.array([-3])}, {"layer/1/neuron/vThMant": np.array(b"x")}, {"layer/0/shape": np.zeros(0)},
    {"layer/1/type": np.array(b"conv")}, {"layer/1/weight": np.array([[1 + 2j]])},
])
def test_malformed_netx_files_exit_2(edit, netx_file, tmp_path, cli_run):
    """Defect 7 for netx: every malformed field is one line naming the layer, never exit 3."""
    path = edited_net(netx_file, tmp_path / "bad.net", edit)
    code, _, err = cli_run("build", path, "--target", "ir", "-o", tmp_path / "o", "-q")
    assert code == 2, err
    assert "netx import" in one_error(err)
    assert not (tmp_path / "o").exists()


def test_tampered_lava_build_is_refused(netx_file, tmp_path, cli_run):
    """Defect 3 for lava: a changed lava/ file is refused (one line) before Lava runs anything."""
    b = tmp_path / "b"
    code, _, err = cli_run("build", netx_file, "--target", "lava", "-o", b, "-q")
    assert code == 0, err
    doc = json.loads((b / "lava" / "network.json").read_text())
    doc["meta"]["rsnnc"]["max_stage"] = 0
    (b / "lava" / "network.json").write_text(json.dumps(doc))
    import h5py

    with h5py.File(netx_file) as f:
        n_in = int(np.prod(f["layer/0/shape"][()]))
    x = tmp_path / "x.npz"
    np.savez(x, x=np.ones((4, 1, n_in), np.int64))
    code, _, err = cli_run("run", b, "--inputs", x, "--out", tmp_path / "y.npz", "--executor", "lava", "-q")
    assert code == 2 and "lava/network.json does not match the SHA-256" in one_error(err)
    code, _, err = cli_run("validate", b, "--data", x, "-q")
    assert code == 2 and "lava/network.json" in one_error(err)
    assert not (tmp_path / "y.npz").exists()


def test_exports_write_whole_files_or_nothing(netx_file, tmp_path, cli_run):
    """netx and NIR exports go through one atomic writer: a bad -o is one line, a good one leaves
    the file and no temporary sibling."""
    b = tmp_path / "b"
    assert cli_run("build", netx_file, "--target", "lava", "-o", b, "-q")[0] == 0
    out = tmp_path / "out"
    out.mkdir()
    for fmt in ("netx", "nir"):
        code, _, err = cli_run("export", b, "--format", fmt, "-o", out / "missing" / "m", "-q")
        assert code == 2 and "does not exist" in one_error(err)
        code, _, err = cli_run("export", b, "--format", fmt, "-o", out, "-q")
        assert code == 2 and "is a directory" in one_error(err)
        code, _, err = cli_run("export", b, "--format", fmt, "-o", out / f"m.{fmt}", "-q")
        assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["m.netx", "m.nir"]


# ---------------------------------------------------------------------------------------------
# 4b: parameters a neuron divides by
# ---------------------------------------------------------------------------------------------
def test_divisor_parameters_must_be_positive(tmp_path, cli_run):
    """A family parameter the step divides by (multi-spike theta / vth, SpikingJelly's k ...) is
    declared ``positive``; the verifier refuses 0 or a negative value, so a hostile .rsnn file
    cannot make an executor divide by zero (the C simulator would die of SIGFPE)."""
    from rsnn_compiler.ir import verify
    from rsnn_compiler.ir.catalogue import neuron_op_class
    from rsnn_compiler.neurons import FAMILIES, Domain as FamilyDomain

    positive = {(f.domain.value, f.name, q.name) for f in FAMILIES.values() for q in f.params if q.positive}
    assert {("float", "lif_multi", "theta"), ("fixed", "lif_multi", "vth"), ("float", "mtn", "theta"),
            ("fixed", "mtn", "vth")} <= positive, positive

    def graph(theta):
        cls = neuron_op_class(FamilyDomain.FLOAT, "lif_multi")
        n = 4
        b = GraphBuilder("div", dt=1e-3)
        b.add("input", Input(shape=(3,)))
        b.add("fc", Affine(weight=np.ones((n, 3))))
        b.add("lm", cls(alpha=np.full(n, 0.5), beta=np.full(n, 0.9), gain_i=np.ones(n), gain_v=np.ones(n),
                        bias=np.zeros(n), theta=theta, v_reset=np.zeros(n), v_init=np.zeros(n), levels=3))
        b.add("output", Output(shape=(n,)))
        b.chain("input", "fc", "lm", "output")
        return b.build()

    assert verify(graph(np.ones(4))) == []
    problems = verify(graph(np.array([1.0, 0.0, 1.0, 1.0])))
    assert len(problems) == 1 and "'theta' = 0 at index (1,) must be > 0" in problems[0], problems
    save_graph(graph(np.array([1.0, 1.0, 1.0, -2.0])), tmp_path / "bad.rsnn")
    code, _, err = cli_run("inspect", tmp_path / "bad.rsnn")
    assert code == 2 and "must be > 0" in one_error(err)


def test_missing_data_files_are_refused_before_the_build_starts(tmp_path, cli_run, monkeypatch):
    """Each data-file option is checked before the build starts (``build()`` is never called):
    one line naming the option, exit 2, no output folder (--stock-data used to fail only after
    import and canonicalisation)."""
    import rsnn_compiler.build as build_module

    def never(*_a, **_k):
        raise AssertionError("build() ran although a data file is missing")

    monkeypatch.setattr(build_module, "build", never)
    cases = [("--calib", []), ("--holdout", ["--calib", str(DATA)]),
             ("--stock-data", ["--stock-neurons", "netx"]), ("--finetune-data", ["--prune", "0.5", "--calib", str(DATA)])]
    for flag, extra in cases:
        out = tmp_path / flag.strip("-")
        code, _, err = cli_run("build", EXAMPLE, "--target", "ir", "-o", out, *extra, flag, tmp_path / "absent.npz")
        assert code == 2 and f"given to {flag})" in one_error(err) and "absent.npz not found" in err, (flag, err)
        assert not out.exists()
    code, _, err = cli_run("build", EXAMPLE, "--target", "ir", "-o", tmp_path / "d", "--calib", tmp_path)
    assert code == 2 and "is a directory" in one_error(err)


def test_terminal_output_is_safe_for_text_from_files(tmp_path, cli_run):
    """Text from files and paths reaches the terminal as text: a '[/]' in a path or a manifest
    field is printed literally (rich markup would raise MarkupError: exit 3), and an escape
    sequence in a manifest field is written as '\\x1b', never emitted."""
    out = tmp_path / "o[" / "]x"  # the path reads ".../o[/]x"
    code, stdout, err = cli_run("build", EXAMPLE, "--target", "ir", "-o", out, "-q")
    assert code == 0, err
    assert f"-> {out}" in stdout and "o[/]x" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["passes"][0]["name"] = "canon\x1b[2J[/]icalize[bold]"
    (out / "manifest.json").write_text(json.dumps(manifest))
    code, stdout, err = cli_run("report", out)
    assert code == 0 and "\x1b" not in stdout + err, (code, stdout, err)
    assert "\\x1b[2J[/]" in stdout
    from rsnn_compiler.sanitize import terminal_text

    assert terminal_text("a\x1b[31mb\tc\nd\x07") == "a\\x1b[31mb\tc\nd\\x07"


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_lines_are_safe_for_text_from_files(terminal):
    """Progress messages (live bars on a terminal, plain lines otherwise) carry names from files:
    '[/]' is printed literally and escape sequences as text."""
    import io

    from rsnn_compiler import progress
    from rsnn_compiler.cli.common import _safe_console_class

    console = _safe_console_class()(file=io.StringIO(), force_terminal=terminal, markup=False, width=200)
    with progress.reporting(progress.for_console(console, False)):
        progress.step("c: compiling [/] evil\x1b[2J")
        for _ in progress.track(range(2), "validate [/]\x1b[5m", unit="batch"):
            pass
    text = console.file.getvalue()
    assert "\x1b[2J" not in text and "\x1b[5m" not in text
    if not terminal:
        assert "c: compiling [/] evil\\x1b[2J" in text
