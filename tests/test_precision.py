"""Precision from the command line, few-bit membranes, the accuracy check, fixed-point inputs,
``rsnnc finetune`` and ``rsnnc sensitivity`` (issue 17).

A toy task (four classes of spike trains) and the example recurrent graph with hand-set weights
that solve it keep every test fast; the rleaky_mnist1d acceptance runs are marked slow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rsnn_compiler.backends.c.backend import CBackend
from rsnn_compiler.backends.c.batch import build_many, run_entry
from rsnn_compiler.backends.gpu.qat import FixedPointModule
from rsnn_compiler.backends.gpu.runtime import GraphRuntime
from rsnn_compiler.cli.main import main
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.examples import example_inputs, recurrent_example
from rsnn_compiler.fixed import arith
from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.interpreter import run_fixed
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir import load_graph, save_graph
from rsnn_compiler.ir.fixed_ops import FixedDense, FixedLI, FixedNeuron
from rsnn_compiler.ir.ops import Comparator
from rsnn_compiler.ir.text import structural_hash
from rsnn_compiler.ir.verify import verify
from rsnn_compiler.pass_manager import run_pipeline
from rsnn_compiler.passes_api import PassContext, Prop
from rsnn_compiler.precision import LayerPrecision, PrecisionOptions, load_precision_file, parse_precision
from rsnn_compiler.testing.random_graphs import random_fixed_graph, random_input

ROOT = Path(__file__).resolve().parents[1]


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("rsnnc: error:")]


def _task(seed: int, batch: int, steps: int = 24):
    """4 classes of spike trains: class c fires input channels 2c and 2c+1 more often."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, batch)
    rate = np.full((batch, 8), 0.2)
    rate[np.arange(batch), 2 * y] = rate[np.arange(batch), 2 * y + 1] = 0.5
    return (rng.random((steps, batch, 8)) < rate).astype(np.float32), y


def toy_model():
    """The example recurrent graph with hand-set weights that solve ``_task`` (no training)."""
    g = recurrent_example()
    rng = np.random.default_rng(5)
    group = np.arange(32) // 8
    w_in = np.where(group[:, None] == (np.arange(8) // 2)[None, :], 0.9, -0.25) + rng.normal(0, 0.08, (32, 8))
    w_rec = np.where(group[:, None] == group[None, :], 0.05, -0.04) + rng.normal(0, 0.03, (32, 32))
    w_out = np.where(np.arange(4)[:, None] == group[None, :], 0.5, -0.1) + rng.normal(0, 0.05, (4, 32))
    for n, w in (("fc_in", w_in), ("w_rec", w_rec), ("fc_out", w_out)):
        g = g.with_node(n, g.nodes[n].replace(weight=w.astype(np.float32)))
    return g


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The toy model file and labelled train / held-out / calibration files (and analog inputs)."""
    root = tmp_path_factory.mktemp("data")
    files = {"model": root / "toy.rsnn"}
    save_graph(toy_model(), files["model"])
    for name, seed, batch in (("train", 11, 96), ("test", 12, 96), ("calib", 13, 64)):
        x, y = _task(seed, batch)
        files[name] = root / f"{name}.npz"
        np.savez(files[name], x=x, y=y)
    files["analog"] = root / "analog.npz"
    np.savez(files["analog"], x=_task(14, 32)[0] * np.float32(0.75))  # analog: not 0/1
    return files


def _manifest(build: Path) -> dict:
    return json.loads((build / "manifest.json").read_text())


def _fixed(build: Path):
    return load_graph(build / "graph.fpga.rsnn")


# ------------------------------------------------------------------------------------------
# Precision options and files
# ------------------------------------------------------------------------------------------
def test_precision_files_toml_and_json_agree_and_flags_override_the_top_level(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text('weight_bits = 6\nstate_bits = "ternary"\n[layers."w_rec"]\nweight_bits = 3\n'
                    '[layers."lif"]\nstate_bits = 5\nstate_overflow = "wrap"\n')
    js = tmp_path / "p.json"
    js.write_text(json.dumps({"weight_bits": 6, "state_bits": "ternary",
                              "layers": {"w_rec": {"weight_bits": 3}, "lif": {"state_bits": 5, "state_overflow": "wrap"}}}))
    a, b = load_precision_file(toml), load_precision_file(js)
    assert a.default == b.default and a.layers == b.layers
    assert a.default == LayerPrecision(weight_bits=6, state_bits=2, state_overflow=Overflow.SATURATE_SYM)
    assert a.layer("w_rec") == LayerPrecision(weight_bits=3, state_bits=2, state_overflow=Overflow.SATURATE_SYM)
    assert a.layer("lif").state_bits == 5 and a.layer("lif").state_overflow is Overflow.WRAP
    c = load_precision_file(toml, {"weight_bits": 7, "state_bits": None})
    assert c.default.weight_bits == 7 and c.layer("w_rec").weight_bits == 3  # [layers] win over flags
    assert parse_precision(a.to_json(), "round trip") == PrecisionOptions(**{**a.__dict__, "source": "round trip"})


@pytest.mark.parametrize("text,needle", [
    ("weight_bits = 1\n", "weight_bits 1 is outside 2..16"),
    ("state_bits = 64\n", "state_bits 64 is outside 2..48"),
    ("colour = 3\n", "unknown key 'colour'"),
    ("state_overflow = \"clip\"\n", "state_overflow 'clip'"),
    ("state_scale = \"best\"\n", "state_scale 'best'"),
    ("[layers.x]\nwidth = 3\n", "unknown key 'width'"),
    ("weight_bits = \n", "could not be parsed"),
])
def test_bad_precision_files_are_one_line_errors(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserInputError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_precision_file(path)


def test_per_layer_entries_must_name_a_layer_of_the_right_kind(tmp_path, capsys, data):
    for body, needle in (('[layers."nope"]\nweight_bits = 4\n', "no layer named 'nope'"),
                         ('[layers."lif"]\nweight_bits = 4\n', "'lif' is a neuron layer"),
                         ('[layers."fc_in"]\nstate_bits = 4\n', "'fc_in' is a synapse layer")):
        path = tmp_path / "p.toml"
        path.write_text(body)
        code, _, err = cli(capsys, "build", data["model"], "--target", "c", "--precision", path, "-o", tmp_path / "b", "-q")
        assert code == 2 and needle in _error_lines(err)[0], err


def test_width_flags_reach_every_layer_and_the_build_validates(tmp_path, capsys, data):
    out = tmp_path / "b"
    code, _, err = cli(capsys, "build", data["model"], "--target", "c,gpu", "--calib", data["analog"], "-o", out, "-q",
                       "--weight-bits", 5, "--state-bits", 10, "--current-bits", 12, "--acc-bits", 24,
                       "--input-bits", 6, "--state-overflow", "wrap", "--state-scale", "threshold")
    assert code == 0, err
    g = _fixed(out)
    dense = [op for op in g.nodes.values() if isinstance(op, FixedDense)]
    neurons = [op for op in g.nodes.values() if isinstance(op, FixedNeuron)]
    assert dense and all(op.weight_bits == 5 and op.acc_bits == 24 and op.acc_overflow is Overflow.WRAP for op in dense)
    assert all(np.abs(op.weight).max() <= 15 for op in dense)
    assert neurons and all(op.v_bits == 10 and op.u_bits == 12 and op.v_overflow is Overflow.WRAP for op in neurons)
    assert g.nodes["input.q"].bits == 6
    assert _manifest(out)["options"]["precision"]["weight_bits"] == 5
    code, _, err = cli(capsys, "validate", out, "--data", data["analog"], "-q")
    assert code == 0, err


def test_precision_file_layers_override_the_flags(tmp_path, capsys, data):
    path = tmp_path / "mixed.toml"
    path.write_text('weight_bits = 6\n[layers."w_rec"]\nweight_bits = 3\n[layers."lif"]\nstate_bits = "ternary"\n')
    out = tmp_path / "b"
    code, _, err = cli(capsys, "build", data["model"], "--target", "c,gpu", "--calib", data["calib"], "-o", out, "-q",
                       "--precision", path, "--weight-bits", 7, "--accept-accuracy-loss")
    assert code == 0, err
    g = _fixed(out)
    assert g.nodes["w_rec"].weight_bits == 3 and g.nodes["fc_in"].weight_bits == 7 and g.nodes["fc_out"].weight_bits == 7
    lif = g.nodes["lif"]
    assert lif.v_bits == 2 and lif.v_overflow is Overflow.SATURATE_SYM and g.nodes["readout"].v_bits == 16
    assert int(lif.vth.max()) == 1 and lif.comparator is Comparator.GE  # fires at the top level
    notes = [n for p in _manifest(out)["passes"] if p["name"] == "quantize_state" for n in p["notes"]]
    assert any("2-bit membrane" in n and "comparator ge" in n for n in notes)
    res = run_fixed(g, np.load(data["calib"])["x"])
    assert set(np.unique(res.states["v/lif"])) <= {-1, 0, 1} and res.spikes["lif"].any()
    code, _, err = cli(capsys, "validate", out, "--data", data["calib"], "-q")
    assert code == 0, err


def test_state_bits_ternary_flag(tmp_path, capsys, data):
    out = tmp_path / "t"
    code, _, err = cli(capsys, "build", data["model"], "--target", "c", "--calib", data["calib"], "-o", out, "-q",
                       "--state-bits", "ternary", "--accept-accuracy-loss")
    assert code == 0, err
    neurons = [op for op in _fixed(out).nodes.values() if isinstance(op, FixedNeuron)]
    assert all(op.v_bits == 2 and op.v_overflow is Overflow.SATURATE_SYM for op in neurons)
    code, _, err = cli(capsys, "build", data["model"], "--target", "c", "--state-bits", "three", "-o", out, "-q")
    assert code == 2 and "state_bits must be an integer" in _error_lines(err)[0]


def test_state_scale_calibrate_searches_scales_and_corrects_rounding_bias(data):
    calib = np.load(data["calib"])
    graph = toy_model()
    reports = {}
    for scale in ("threshold", "calibrate"):
        ctx = PassContext(calib_x=calib["x"], profile="fpga",
                          options=[parse_precision({"state_bits": 5, "state_scale": scale}, "test")])
        fixed, reps = run_pipeline(graph.with_attrs(properties=graph.attrs.properties | {Prop.PRUNED}),
                                   ["quantize_weights", "quantize_state"], ctx)
        assert verify(fixed) == []
        reports[scale] = reps[-1]
    assert reports["threshold"].scale_calibration == []
    cal = reports["calibrate"].scale_calibration
    assert [c["node"] for c in cal] == ["lif", "readout"] and all(len(c["scores"]) >= 2 for c in cal)
    assert all(str(c["log2_scale"]) in c["scores"] for c in cal)


# ------------------------------------------------------------------------------------------
# Few-bit membranes are bit-exact on every integer executor
# ------------------------------------------------------------------------------------------
def _few_bit(graph, seed: int):
    """The random graph with every membrane/current narrowed to 2..5 bits (parameters clipped)."""
    r = np.random.default_rng(seed)
    for name, op in graph.nodes.items():
        if not isinstance(op, FixedNeuron):
            continue
        bits = int(r.integers(2, 6))
        mode = Overflow(r.choice(["saturate", "saturate_sym", "wrap"]))
        lo, hi = arith.signed_range(bits, mode)
        kw = {"v_bits": bits, "v_overflow": mode}
        if hasattr(op, "u_bits"):
            kw.update(u_bits=bits, u_overflow=mode)
        for p in ("v_init", "v_reset"):
            if hasattr(op, p):
                kw[p] = np.clip(getattr(op, p), lo, hi)
        if hasattr(op, "vth"):
            kw["vth"] = np.clip(op.vth, 1, max(1, hi >> op.vth_shift))
        if hasattr(op, "vth_neg"):
            kw["vth_neg"] = np.clip(op.vth_neg, lo >> op.vth_shift, hi >> op.vth_shift)
        if hasattr(op, "a_inc"):
            kw["a_inc"] = np.clip(op.a_inc, 0, hi)
        if hasattr(op, "bias_mant"):
            kw["bias_mant"] = np.clip(op.bias_mant, -3, 3)
            kw["bias_exp"] = np.clip(op.bias_exp, -2, 1)
        graph = graph.with_node(name, op.replace(**kw))
    assert verify(graph) == [], verify(graph)[:3]
    return graph


def test_few_bit_membranes_are_bit_exact_on_interpreter_c_and_gpu(tmp_path):
    graphs = [_few_bit(random_fixed_graph(seed, "fpga", quantize_input=seed % 2 == 0), seed) for seed in range(24)]
    assert {op.v_bits for g in graphs for op in g.nodes.values() if isinstance(op, FixedNeuron)} == {2, 3, 4, 5}
    for g in graphs:
        assert CBackend().check(g) == []
    entries = build_many(graphs, tmp_path, units=2)
    for i, (g, entry) in enumerate(zip(graphs, entries)):
        x = random_input(g, steps=12, batch=3, seed=i)
        ref = run_fixed(g, x)
        for label, got in (("c", run_entry(entry, g, x)), ("gpu", GraphRuntime(g, device="cpu").run(x))):
            assert np.array_equal(ref.out, got.out), (i, label)
            for key in ref.states:
                assert np.array_equal(ref.states[key], got.states[key]), (i, label, key)
            for key in ref.spikes:
                assert np.array_equal(ref.spikes[key], got.spikes[key]), (i, label, key)


# ------------------------------------------------------------------------------------------
# The accuracy check
# ------------------------------------------------------------------------------------------
def test_a_lossy_prune_stops_the_build_unless_the_loss_is_accepted(tmp_path, capsys, data):
    out = tmp_path / "b"
    args = ["build", data["model"], "--target", "c", "--prune", "0.95", "--no-prune-time", "--calib", data["calib"],
            "--holdout", data["test"], "-o", out, "-q"]
    code, _, err = cli(capsys, *args)
    assert code == 1 and not out.exists(), err
    (line,) = _error_lines(err)
    assert "accuracy check failed: on test.npz (96 samples, held out), pruning takes accuracy from" in line
    assert "--prune-finetune" in line and "--accept-accuracy-loss" in line
    code, stdout, err = cli(capsys, *args, "--accept-accuracy-loss")
    assert code == 0, err
    assert any(l.startswith("rsnnc: warning: accuracy loss accepted") for l in err.splitlines()), err
    acc = _manifest(out)["accuracy"]
    assert acc["accepted_loss"] and acc["unit"] == "percent" and acc["data"] == "test.npz (96 samples, held out)"
    assert acc["float_model"] >= 90 and acc["steps"][0]["step"] == "pruning" and not acc["steps"][0]["within_tolerance"]
    assert "accuracy on test.npz (96 samples, held out):" in stdout
    code, _, err = cli(capsys, *args, "--accuracy-tolerance", "100")
    assert code == 0 and "accuracy loss accepted" not in err, err
    code, _, err = cli(capsys, *args, "--accuracy-tolerance", "-1")
    assert code == 2 and "--accuracy-tolerance" in _error_lines(err)[0]


def test_holdout_must_not_be_the_finetune_data_and_labels_are_named(tmp_path, capsys, data):
    code, _, err = cli(capsys, "build", data["model"], "--target", "c", "--prune", "0.5", "--prune-finetune", "1",
                       "--finetune-data", data["train"], "--calib", data["calib"], "--holdout", data["train"],
                       "-o", tmp_path / "b", "-q")
    assert code == 2 and "also the pruning fine-tune's training data" in _error_lines(err)[0]
    out = tmp_path / "c"
    code, _, err = cli(capsys, "build", data["model"], "--target", "c", "--calib", data["calib"], "-o", out, "-q")
    assert code == 0, err
    m = _manifest(out)
    assert m["accuracy"]["data"] == "calib.npz (64 samples, calibration data)"
    qs = next(p for p in m["passes"] if p["name"] == "quantize_state")["metrics"]
    assert qs["accuracy_data"] == "calibration data (64 samples)" and 0 <= qs["accuracy_fixed"] <= 100


# ------------------------------------------------------------------------------------------
# Fixed-point inputs
# ------------------------------------------------------------------------------------------
def test_a_fixed_point_graph_builds_as_it_is(tmp_path, capsys, data):
    first = tmp_path / "first"
    assert cli(capsys, "build", data["model"], "--target", "c", "--calib", data["calib"], "-o", first, "-q")[0] == 0
    again = tmp_path / "again"
    code, _, err = cli(capsys, "build", first / "graph.fpga.rsnn", "--target", "c,gpu", "--holdout", data["test"],
                       "-o", again, "-q")
    assert code == 0, err
    m = _manifest(again)
    assert set(m["graphs"]) == {"fpga"} and m["graphs"]["fpga"]["hash"] == _manifest(first)["graphs"]["fpga"]["hash"]
    assert m["pipeline"] == {"fpga": ["import"]} and m["accuracy"]["float_model"] is None
    code, stdout, err = cli(capsys, "validate", again, "--data", data["test"])
    assert code == 0 and "no float graph" in stdout, err
    for extra, needle in ((["--target", "ir"], "needs a float graph"),
                          (["--target", "c", "--weight-bits", "4"], "applies to float models"),
                          (["--target", "c", "--prune", "0.5"], "applies to float models"),
                          (["--target", "lava"], "is a fpga graph")):
        code, _, err = cli(capsys, "build", first / "graph.fpga.rsnn", *extra, "-o", tmp_path / "x", "-q")
        assert code == 2 and needle in _error_lines(err)[0], (extra, err)


# ------------------------------------------------------------------------------------------
# Fine-tuning
# ------------------------------------------------------------------------------------------
def test_qat_keeps_zero_weights_zero():
    g = random_fixed_graph(3, "fpga", recurrent=True)
    dense = [n for n, op in g.nodes.items() if isinstance(op, FixedDense)]
    for n in dense:  # prune half of every matrix
        w = g.nodes[n].weight.copy()
        w.reshape(-1)[::2] = 0
        g = g.with_node(n, g.nodes[n].replace(weight=w))
    x = random_input(g, steps=6, batch=4, seed=0)
    for keep, check in ((True, lambda a, b: np.count_nonzero(b) <= np.count_nonzero(a) and not b[a == 0].any()),
                        (False, lambda a, b: True)):
        m = FixedPointModule(g, keep_zeros=keep)
        opt = torch.optim.SGD(m.parameters(), lr=50.0)
        for _ in range(2):
            loss = m(x).square().mean() - m(x).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        tuned = m.export_fixed_graph()
        for n in dense:
            assert check(g.nodes[n].weight, tuned.nodes[n].weight), (keep, n)
        assert np.array_equal(run_fixed(tuned, x).out.astype(np.float64), m(x).detach().numpy())


@pytest.fixture(scope="module")
def pruned_build(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("ft") / "pruned"
    code = main([str(a) for a in ("build", data["model"], "--target", "c,gpu", "--prune", "0.6", "--no-prune-time",
                                  "--calib", data["calib"], "--accept-accuracy-loss", "-o", out, "-q")])
    assert code == 0
    return out


def test_finetune_writes_a_complete_build_that_validates(tmp_path, capsys, data, pruned_build):
    new = tmp_path / "tuned"
    args = ["finetune", pruned_build, "--data", data["train"], "--holdout", data["test"], "--epochs", 2,
            "--lr", 0.05, "--batch-size", 32, "--seed", 3, "--distill", "--accept-accuracy-loss", "-o"]
    code, stdout, err = cli(capsys, *args, new, "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m == _manifest(new)
    assert m["pipeline"]["fpga"][-1] == "qat_finetune" and m["finetuned_from"]["build"] == "pruned"
    assert set(m["targets"]) == {"c", "gpu"} and {"graph.float.rsnn", "graph.fpga.rsnn", "c/rsnn_run"} <= set(m["files"])
    qat = next(p for p in m["passes"] if p["name"] == "qat_finetune")["metrics"]
    assert qat["nonzero_weights_after"] <= qat["nonzero_weights_before"] and qat["changed_weights"] > 0
    assert qat["distill"] and qat["epochs"] == 2 and len(qat["accuracy_per_epoch"]) == 2 and qat["batch_size"] == 32
    before, after = _fixed(pruned_build), _fixed(new)
    for n, op in before.nodes.items():
        if isinstance(op, FixedDense):
            assert not after.nodes[n].weight[op.weight == 0].any()  # pruned weights stay pruned
    steps = [s["step"] for s in m["accuracy"]["steps"]]
    assert steps[0].startswith("fixed point before fine-tune") and steps[1].startswith("fine-tune (fpga, 2 epoch(s)")
    assert m["accuracy"]["data"] == "test.npz (96 samples, held out)"
    code, _, err = cli(capsys, "validate", new, "--data", data["test"], "-q")
    assert code == 0, err
    again = tmp_path / "again"
    assert cli(capsys, *args, again, "-q")[0] == 0  # seeded: the same integers again
    assert _manifest(again)["graphs"]["fpga"]["hash"] == m["graphs"]["fpga"]["hash"]


def test_finetune_refusals_and_the_accuracy_check(tmp_path, capsys, data, pruned_build):
    base = ["finetune", pruned_build, "--data", data["train"], "-o", tmp_path / "n", "-q"]
    for extra, needle in ((["--holdout", data["train"]], "holds the same data"),
                          (["--profile", "loihi2"], "profile 'loihi2' is not in this build"),
                          (["--epochs", "0"], "--epochs"),
                          (["--data", data["analog"]], "has no labels")):
        code, _, err = cli(capsys, *base, *extra)
        assert code == 2 and needle in _error_lines(err)[0], (extra, err)
    code, _, err = cli(capsys, "finetune", tmp_path, "--data", data["train"], "-o", tmp_path / "n", "-q")
    assert code == 2 and "not an rsnnc build" in _error_lines(err)[0]
    wreck = [*base, "--holdout", data["test"], "--epochs", "1", "--lr", "5", "--accuracy-tolerance", "0"]
    code, _, err = cli(capsys, *wreck)
    assert code == 1 and "accuracy check failed" in _error_lines(err)[0] and not (tmp_path / "n").exists()
    code, _, err = cli(capsys, *base, "--epochs", "1", "--lr", "1e-12")  # too small to move a mantissa
    assert code == 0 and "the fine-tune changed no weight in 2 updates" in err, err


# ------------------------------------------------------------------------------------------
# Sensitivity
# ------------------------------------------------------------------------------------------
def test_sensitivity_is_deterministic_and_its_proposal_builds(tmp_path, capsys, data):
    build = tmp_path / "b"
    assert cli(capsys, "build", data["model"], "--target", "c", "--calib", data["calib"], "-o", build, "-q")[0] == 0
    args = ["sensitivity", build, "--data", data["test"], "--calib", data["calib"], "--budget", 3,
            "--weight-widths", "3", "--state-widths", "4", "--json", "-q"]
    code, first, err = cli(capsys, *args, "--write-precision", tmp_path / "p.toml")
    assert code == 0, err
    code, second, err = cli(capsys, *args)
    assert code == 0 and first == second
    rep = json.loads(first)
    kinds = {layer["node"]: (layer["kind"], [c["width"] for c in layer["costs"]]) for layer in rep["layers"]}
    assert kinds == {"fc_in": ("synapse", [3]), "w_rec": ("synapse", [3]), "fc_out": ("synapse", [3]),
                     "lif": ("neuron", [4]), "readout": ("neuron", [4])}
    assert [s["state_bits"] for s in rep["state_sweep"]] == [4]
    assert rep["data"] == "test.npz (96 samples, held out)" and rep["build_accuracy"] <= 100
    if rep["proposal"]:
        assert rep["build_accuracy"] - rep["proposal_accuracy"] <= 3
        mixed = tmp_path / "mixed"
        code, _, err = cli(capsys, "build", data["model"], "--target", "c", "--calib", data["calib"], "-o", mixed,
                           "--precision", tmp_path / "p.toml", "--holdout", data["test"], "-q", "--accept-accuracy-loss")
        assert code == 0, err
        assert _manifest(mixed)["accuracy"]["steps"][-1]["accuracy"] == pytest.approx(rep["proposal_accuracy"])
    code, _, err = cli(capsys, "sensitivity", build, "--data", data["test"], "-q")
    assert code == 2 and "pass it with --calib" in _error_lines(err)[0]
    code, _, err = cli(capsys, "sensitivity", build, "--data", data["test"], "--calib", data["analog"], "-q")
    assert code == 2 and "does not reproduce" in _error_lines(err)[0]
    code, _, err = cli(capsys, "sensitivity", build, "--data", data["test"], "--calib", data["calib"],
                       "--state-widths", "x", "-q")
    assert code == 2 and "--state-widths" in _error_lines(err)[0]
    code, _, err = cli(capsys, "sensitivity", build, "--data", data["test"], "--calib", data["calib"],
                       "--profile", "loihi2", "-q")
    assert code == 2 and "profile 'loihi2'" in _error_lines(err)[0]


def test_loihi2_weight_bits_and_finetune_validate_on_lava(tmp_path, capsys, data):
    """Lava where the profile allows: 5-bit Lava weights (num_weight_bits), fine-tuned, equal on Lava."""
    import os

    from rsnn_compiler.backends.lava import env as lava_env

    status = lava_env.lava_status()
    if not status.found:
        if os.environ.get("CI"):
            pytest.fail(f"Lava environment required in CI: {status.reason}")
        pytest.skip(status.reason)
    build, tuned = tmp_path / "l5", tmp_path / "l5-tuned"
    code, _, err = cli(capsys, "build", data["model"], "--target", "lava,c", "--calib", data["calib"],
                       "--weight-bits", 5, "-o", build, "-q")
    assert code == 0, err
    g = load_graph(build / "graph.loihi2.rsnn")
    assert all(op.weight_bits == 5 and arith.loihi_weights_exact(op.weight, 5)
               for op in g.nodes.values() if isinstance(op, FixedDense))
    code, _, err = cli(capsys, "finetune", build, "--data", data["train"], "--epochs", 1, "--lr", 0.05,
                       "--accept-accuracy-loss", "-o", tuned, "-q")
    assert code == 0, err
    assert load_graph(tuned / "graph.loihi2.rsnn").nodes["w_rec"].weight_bits == 5
    code, stdout, err = cli(capsys, "validate", tuned, "--data", data["test"])
    assert code == 0 and "lava" in stdout, err
    code, _, err = cli(capsys, "build", data["model"], "--target", "lava", "--state-bits", 8, "-o", tmp_path / "x", "-q")
    assert code == 2 and "loihi2 profile fixes state_bits" in _error_lines(err)[0]


def test_calibration_uses_the_first_calib_samples(tmp_path, capsys):
    """Quantization calibrates on the first --calib-samples samples (default 1024) and says so in
    its reports; the fixed graph is the one a calibration file of just those samples gives (6-bit
    membranes: their scales are calibrated, so the samples matter)."""
    from rsnn_compiler.build import CALIB_SAMPLES, BuildOptions, build
    from rsnn_compiler.precision import LayerPrecision

    example = ROOT / "models" / "example" / "recurrent.rsnn"
    x = np.load(ROOT / "models" / "example" / "data.npz")["x"]
    np.savez(tmp_path / "all.npz", x=x)
    np.savez(tmp_path / "first.npz", x=x[:, :6])

    def fixed(calib: str, n: int, name: str):
        options = BuildOptions(targets=("c",), calib=str(tmp_path / calib), calib_samples=n, accept_accuracy_loss=True,
                               precision=PrecisionOptions(default=LayerPrecision(state_bits=6)))
        out = build(str(example), tmp_path / name, options)
        g = load_graph(out.outdir / "graph.fpga.rsnn")
        notes = [note for rep in out.manifest["passes"] for note in rep.get("notes", [])]
        return structural_hash(g), notes

    capped, notes = fixed("all.npz", 6, "capped")
    assert "quantization calibrated on the first 6 of the 16 samples of --calib (--calib-samples;" \
           " 0 uses every sample)" in notes
    first, first_notes = fixed("first.npz", 0, "first")
    assert capped == first and not any("calibrated on the first" in n for n in first_notes)
    every, every_notes = fixed("all.npz", 0, "every")
    assert not any("calibrated on the first" in n for n in every_notes) and every != capped  # the cut mattered
    assert CALIB_SAMPLES == 1024 and fixed("all.npz", CALIB_SAMPLES, "default")[0] == every  # 16 < 1024
    code = main(["build", str(example), "-o", str(tmp_path / "neg"), "--calib", str(tmp_path / "all.npz"),
                 "--calib-samples", "-1"])
    assert code == 2 and "--calib-samples -1 must be a whole number >= 0" in capsys.readouterr().err
