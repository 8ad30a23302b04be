"""ANN-to-SNN conversion: exactness properties, accuracy on a trained digits MLP, report, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ann_fixtures import DigitsMLP, Mnist1dCNN, ResQ, trained
from rsnn_compiler.cli.main import main
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontend_api import ImportOptions
from rsnn_compiler.frontends.ann_convert import ConvertOptions, Method
from rsnn_compiler.frontends.conversion_report import repeat_input, snn_predict
from rsnn_compiler.frontends.torch_ann_import import load
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir import IF, Pool, PoolMode
from rsnn_compiler.ir.conversion_ops import DualThresholdIF, MultiThreshold


def _convert(model, x, y=None, **conv):
    opts = ImportOptions(calib_x=x[None], calib_y=y, extra={"convert": conv})
    return load(model, opts)


def _acc(graph, x, y, steps) -> float:
    return 100.0 * float((snn_predict(graph, x, steps) == y).mean())


def _ann_logits(model, x):
    with torch.no_grad():
        return model(torch.as_tensor(x)).numpy()


# ------------------------------------------------------------------------------------------
# exactness
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,shape", [
    (lambda: DigitsMLP("qcfs"), (64,)),
    (lambda: ResQ("qcfs"), (64,)),  # residual + one activation object called twice
    (lambda: Mnist1dCNN("qcfs", "max"), (1, 40)),  # max-pool is exact on graded spikes
    (lambda: Mnist1dCNN("qcfs", "avg"), (1, 40)),  # avg-pool folded into the next weights
])
def test_sfn_t1_equals_qcfs_ann(make, shape):
    torch.manual_seed(0)
    model = make().eval()
    for m in model.modules():
        if hasattr(m, "lam"):
            m.lam.data.fill_(float(torch.empty(()).uniform_(1.0, 3.0)))
    x = (torch.rand(64, *shape) * 2).numpy()
    res = _convert(model, x, method="sfn")
    ops = res.graph.nodes.values()
    assert all(not isinstance(op, (IF, DualThresholdIF)) for op in ops)
    assert sum(isinstance(op, MultiThreshold) for op in ops) >= 2
    out = run_float(res.graph, x[None], record=False).out[0]
    np.testing.assert_allclose(out, _ann_logits(model, x), rtol=1e-4, atol=2e-4)
    assert all(r["origin"] == "QCFS activation (exact)" for r in res.report.layers)
    if "max" in type(model).__name__ or any(isinstance(op, Pool) and op.mode is PoolMode.MAX for op in ops):
        assert not any("max-pool" in n for n in res.report.notes)


def test_avg_pool_becomes_sum_pool_with_folded_weights():
    model = Mnist1dCNN("qcfs", "avg").eval()
    res = _convert(model, np.random.default_rng(0).random((16, 1, 40), dtype=np.float32), method="maxnorm")
    pools = [op for op in res.graph.nodes.values() if isinstance(op, Pool)]
    assert pools and all(p.mode is PoolMode.SUM for p in pools)


def test_bias_is_injected_every_step_by_the_neuron():
    model, (xtr, xte, ytr, yte) = trained("digits_mlp", "relu")
    res = _convert(model, xtr[:200], method="maxnorm")
    neurons = [op for op in res.graph.nodes.values() if isinstance(op, IF)]
    assert len(neurons) == 2 and all(np.any(op.bias != 0) for op in neurons)
    # the readout keeps its bias in the synapse: out(t) = W o(t) + b every step
    r = run_float(res.graph, repeat_input(xte[:4], 3))
    assert r.out.shape == (3, 4, 10)


def test_maxnorm_thresholds_are_layer_maxima_and_v0_zero():
    model, (xtr, xte, ytr, yte) = trained("digits_mlp", "relu")
    res = _convert(model, xtr[:300], method="maxnorm", steps=8)
    for row in res.report.layers:
        assert row["neuron"] == "if" and row["v_init"] == 0.0
        assert row["origin"] == "max of calibration activations"
    half = _convert(model, xtr[:300], method="maxnorm", opts={"v_init": "half", "percentile": 99.9})
    assert all(r["v_init"] == pytest.approx(r["theta"] / 2) for r in half.report.layers)


def test_ecl_uses_dual_threshold_neurons_with_half_membrane():
    model, (xtr, xte, ytr, yte) = trained("digits_mlp", "clip")
    res = _convert(model, xtr[:200], method="ecl", steps=2, opts={"finetune": "never"})
    duals = [op for op in res.graph.nodes.values() if isinstance(op, DualThresholdIF)]
    assert len(duals) == 2
    for op in duals:
        np.testing.assert_allclose(op.v_init, op.theta / 2)
        assert (op.theta_neg == 0).all()
    assert all(r["origin"].startswith("activation's clip level") for r in res.report.layers)


def test_ecl_finetune_simulation_is_the_compiled_snn():
    """The fine-tune's T-step forward (``simulate`` / ``dual_if_steps``) is the float SNN the
    compiler builds, step for step: what the fine-tune optimises is what runs."""
    from rsnn_compiler.frontends.ann_convert import convert
    from rsnn_compiler.frontends.ecl import simulate
    from rsnn_compiler.frontends.onnx_import import read_onnx

    from ann_fixtures import mnist1d_data

    xtr, xte, ytr, yte = mnist1d_data()
    opts = ConvertOptions.from_dict({"method": "ecl", "steps": 3, "opts": {"epochs": 1, "theta_neg": -0.25}})
    conv = convert(read_onnx(_shipped("cnn_mnist1d")), opts, xtr[:128], None)
    assert conv.details["finetune"]["forward"] == "snn"
    for steps in (1, 2, 3):
        ref = run_float(conv.built.graph, repeat_input(xte[:64], steps), record=False).out.sum(0)
        np.testing.assert_allclose(simulate(conv.ann, conv.plans, xte[:64], steps).numpy(), ref,
                                   rtol=1e-4, atol=1e-3)


def test_ecl_default_finetune_reaches_clip_ann_on_shipped_cnn():
    """Issue 6 on models/cnn_mnist1d with the default 40 epochs: reading lam from the clip gives
    96.7 % at T = 2 and the old staircase fine-tune 96.8-97.1 %; the exact-SNN distillation
    fine-tune on the training split reaches 97.4-97.8 % (ANN 98.7 %) across oneMKL branches
    (AUTO/AVX2/COMPATIBLE, strict). A 15-epoch budget ranged 96.8-97.7 % across CPUs: too close
    to the bar to test."""
    from rsnn_compiler.frontends.onnx_import import load as load_onnx

    from ann_fixtures import mnist1d_data

    path = _shipped("cnn_mnist1d")
    xtr, xte, ytr, yte = mnist1d_data()
    res = load_onnx(path, ImportOptions(calib_x=xtr[None], calib_y=ytr, extra={"convert": {
        "method": "ecl", "steps": 2, "opts": {"report_samples": 64}}}))
    info = res.report.method_details["finetune"]
    assert info["forward"] == "snn" and info["samples"] == 4000
    assert _acc(res.graph, xte, yte, 2) >= 97.0


# ------------------------------------------------------------------------------------------
# accuracy (one real check in the default run; sweeps are slow)
# ------------------------------------------------------------------------------------------
def test_sfn_t1_within_half_point_of_relu_ann_digits():
    model, (xtr, xte, ytr, yte) = trained("digits_mlp", "relu")
    ann = 100.0 * float((_ann_logits(model, xte).argmax(1) == yte).mean())
    res = _convert(model, xtr, ytr, method="sfn", levels=8)
    snn = _acc(res.graph, xte, yte, 1)
    assert snn >= ann - 0.5, (ann, snn)


def test_ecl_t2_within_1_5_points_of_clip_ann_digits():
    model, (xtr, xte, ytr, yte) = trained("digits_mlp", "clip")
    ann = 100.0 * float((_ann_logits(model, xte).argmax(1) == yte).mean())
    res = _convert(model, xtr, ytr, method="ecl", steps=2)
    assert _acc(res.graph, xte, yte, 2) >= ann - 1.5


def test_ecl_finetunes_relu_ann_quickly():
    model, (xtr, xte, ytr, yte) = trained("digits_mlp", "relu")
    res = _convert(model, xtr, ytr, method="ecl", steps=2, opts={"epochs": 8, "ce": 0.5})
    info = res.report.method_details["finetune"]
    assert info["used_labels"] and set(info["lam"]) == {r["site"] for r in res.report.layers}
    assert all(r["origin"].startswith("learned by fine-tuning") for r in res.report.layers)
    assert _acc(res.graph, xte, yte, 2) > 90.0
    res = _convert(model, xtr, method="ecl", steps=2, opts={"epochs": 8, "ft_forward": "staircase"})
    info = res.report.method_details["finetune"]
    assert info["forward"] == "staircase" and not info["used_labels"]
    assert _acc(res.graph, xte, yte, 2) > 90.0


# ------------------------------------------------------------------------------------------
# report, options, errors
# ------------------------------------------------------------------------------------------
def test_report_has_thresholds_error_split_messages_and_accuracy():
    model, (xtr, xte, ytr, yte) = trained("digits_mlp", "relu")
    res = _convert(model, xtr[:256], ytr[:256], method="maxnorm", steps=4)
    rep = res.report
    assert rep.method == "maxnorm" and rep.steps == 4
    assert set(rep.accuracy["snn"]) == {"1", "2", "4", "8"} and rep.accuracy["ann"] is not None
    for row in rep.layers:
        for key in ("theta", "clipping_error", "quantisation_error", "unevenness_error", "messages_per_sample"):
            assert key in row
        assert row["clipping_error"] == 0.0  # max-norm never clips on its own calibration data
    assert rep.messages_per_sample > 0
    data = rep.to_json()
    json.dumps(data)
    assert data["metrics"]["layers"][0]["neuron"] == "if"


def test_error_split_dual_if_reduces_unevenness_vs_if():
    model, (xtr, xte, ytr, yte) = trained("digits_mlp", "clip")
    dual = _convert(model, xtr[:256], method="ecl", steps=4).report.layers
    # same thresholds with plain IF neurons
    plain = _convert(model, xtr[:256], method="maxnorm", steps=4, opts={"v_init": "half"}).report.layers
    assert sum(r["unevenness_error"] for r in dual) <= sum(r["unevenness_error"] for r in plain) + 1e-6


def test_options_are_checked():
    with pytest.raises(UserInputError, match="unknown conversion option 'bogus'"):
        ConvertOptions.from_dict({"method": "sfn", "opts": {"bogus": 1}})
    with pytest.raises(UserInputError, match="--convert must be one of"):
        ConvertOptions.from_dict({"method": "rate"})
    o = ConvertOptions.from_dict({"method": "ecl", "steps": None, "opts": {"theta_neg": "-0.5"}})
    assert o.method is Method.ECL and o.t == 2 and o.theta_neg == -0.5
    assert (o.epochs, o.temperature, o.ce, o.ft_forward) == (40, 4.0, 0.0, "snn")
    o = ConvertOptions.from_dict({"method": "ecl", "opts": {"ft_forward": "staircase", "temperature": "2", "ce": "0.5"}})
    assert (o.ft_forward, o.temperature, o.ce) == ("staircase", 2.0, 0.5)
    with pytest.raises(UserInputError, match="ft_forward must be snn or staircase"):
        ConvertOptions.from_dict({"method": "ecl", "opts": {"ft_forward": "ann"}})


def test_relu_without_calibration_is_an_error():
    model, _ = trained("digits_mlp", "relu")
    with pytest.raises(UserInputError, match="--calib"):
        load(model, ImportOptions(extra={"convert": {"method": "sfn"}, "input_shape": (64,)}))


def test_cli_build_run_onnx(tmp_path, capsys):
    model, (xtr, xte, ytr, yte) = trained("digits_mlp", "qcfs")
    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(model, torch.zeros(1, 64), str(onnx_path), dynamo=False, opset_version=17)
    np.savez(tmp_path / "calib.npz", x=xtr[None, :300], y=ytr[:300])
    np.savez(tmp_path / "test.npz", x=xte[None, :100], y=yte[:100])
    build = tmp_path / "b"
    code = main(["build", str(onnx_path), "--convert", "sfn", "--calib", str(tmp_path / "calib.npz"),
                 "-o", str(build), "--json", "-q"])
    assert code == 0
    manifest = json.loads(capsys.readouterr().out)
    imp = manifest["passes"][0]
    assert imp["metrics"]["method"] == "sfn" and imp["metrics"]["steps"] == 1
    assert main(["run", str(build), "--inputs", str(tmp_path / "test.npz"), "--out", str(tmp_path / "y.npz")]) == 0
    out = np.load(tmp_path / "y.npz")["out"]
    assert out.shape == (1, 100, 10)
    np.testing.assert_array_equal(out.sum(0).argmax(-1), _ann_logits(model, xte[:100]).argmax(1))
    code = main(["build", str(onnx_path), "--convert", "sfn", "--convert-opt", "nonsense", "-o", str(build)])
    assert code == 2


def _onnx_digits(tmp_path, kind="qcfs", steps=1):
    model, (xtr, xte, ytr, yte) = trained("digits_mlp", kind)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, torch.zeros(1, 64), str(path), dynamo=False, opset_version=17)
    np.savez(tmp_path / "calib.npz", x=np.repeat(xtr[None, :300], steps, 0), y=ytr[:300])
    np.savez(tmp_path / "test.npz", x=np.repeat(xte[None, :100], steps, 0), y=yte[:100])
    return path


@pytest.mark.parametrize("method,steps", [("sfn", 1), ("ecl", 2)])
def test_converted_model_compiles_and_validates_bit_exact(tmp_path, method, steps):
    path = _onnx_digits(tmp_path, steps=steps)
    build = tmp_path / "b"
    code = main(["build", str(path), "--convert", method, "--steps", str(steps), "--calib",
                 str(tmp_path / "calib.npz"), "--target", "c,gpu", "-o", str(build), "-q"])
    if code != 0:
        pytest.skip("c/gpu targets unavailable here")
    assert main(["validate", str(build), "--data", str(tmp_path / "test.npz"), "-q"]) == 0


@pytest.mark.lava
def test_converted_model_validates_on_lava(tmp_path):
    from rsnn_compiler.backends.lava import env as lava_env

    status = lava_env.lava_status()
    if not status.found:
        pytest.skip(status.reason)
    path = _onnx_digits(tmp_path)
    build = tmp_path / "b"
    assert main(["build", str(path), "--convert", "sfn", "--calib", str(tmp_path / "calib.npz"),
                 "--target", "lava", "-o", str(build), "-q"]) == 0
    assert main(["validate", str(build), "--data", str(tmp_path / "test.npz"), "-q"]) == 0


# ------------------------------------------------------------------------------------------
# shipped example models (models/), when present
# ------------------------------------------------------------------------------------------
def _shipped(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "models" / name / "model.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not built yet")
    return str(path)


def test_shipped_mlp_digits_sfn_and_ecl_acceptance():
    from ann_fixtures import digits_data
    from rsnn_compiler.frontends.ann_graph import forward
    from rsnn_compiler.frontends.onnx_import import load as load_onnx, read_onnx

    path = _shipped("mlp_digits")
    xtr, xte, ytr, yte = digits_data()  # the split the model was trained on (random_state 0)
    with torch.no_grad():
        ann = 100.0 * float((forward(read_onnx(path), xte).argmax(1).numpy() == yte).mean())
    for method, steps, bound in (("sfn", 1, 0.5), ("ecl", 2, 1.5)):
        res = load_onnx(path, ImportOptions(calib_x=xtr[None], calib_y=ytr,
                                            extra={"convert": {"method": method, "steps": steps}}))
        assert _acc(res.graph, xte, yte, steps) >= ann - bound, (method, ann)


@pytest.mark.slow
def test_shipped_cnn_mnist1d_acceptance(tmp_path):
    """Issue 6 on models/cnn_mnist1d (test split): sfn T = 1 within 0.5 points of the ANN; ecl at
    T = 2 with the default fine-tune on the training split within 1.5 points, as
    built and validated by the CLI: float SNN and fixed-point (c/gpu bit-exact) accuracy."""
    from ann_fixtures import mnist1d_data
    from rsnn_compiler.frontends.ann_graph import forward
    from rsnn_compiler.frontends.onnx_import import load as load_onnx, read_onnx

    path = _shipped("cnn_mnist1d")
    xtr, xte, ytr, yte = mnist1d_data()
    with torch.no_grad():
        ann = 100.0 * float((forward(read_onnx(path), xte).argmax(1).numpy() == yte).mean())
    res = load_onnx(path, ImportOptions(calib_x=xtr[None, :2000], calib_y=ytr[:2000],
                                        extra={"convert": {"method": "sfn"}}))
    assert _acc(res.graph, xte, yte, 1) >= ann - 0.5
    calib, test = tmp_path / "calib_train.npz", tmp_path / "test.npz"  # as models/cnn_mnist1d/make_calib.py
    np.savez(calib, x=np.repeat(xtr[None], 2, 0), y=ytr)
    np.savez(test, x=np.repeat(xte[None], 2, 0), y=yte)
    build = tmp_path / "ecl"
    args = ["build", path, "--convert", "ecl", "--steps", "2", "--calib", str(calib), "-o", str(build), "-q"]
    if main(args + ["--target", "c,gpu"]) != 0:
        assert main(args) == 0  # no C compiler / GPU runtime here: the fixed-point interpreter still runs
    assert main(["validate", str(build), "--data", str(test), "--allow-missing", "-q"]) == 0
    report = json.loads((build / "validate.json").read_text())
    print("ecl T=2 float", report["float_accuracy"], "fixed", report["fixed_accuracy"], "ANN", ann)
    assert report["float_accuracy"] >= ann - 1.5  # percent
    assert report["fixed_accuracy"] >= ann - 1.5


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["relu", "clip", "qcfs"])
def test_mnist1d_cnn_sweep(kind):
    model, (xtr, xte, ytr, yte) = trained("mnist1d_cnn", kind)
    ann = 100.0 * float((_ann_logits(model, xte).argmax(1) == yte).mean())
    sfn = _convert(model, xtr[:2000], ytr[:2000], method="sfn")
    assert _acc(sfn.graph, xte, yte, 1) >= ann - 0.5
    ecl = _convert(model, xtr[:2000], ytr[:2000], method="ecl", steps=2)
    mn = _convert(model, xtr[:2000], ytr[:2000], method="maxnorm")
    # ecl at T = 2 beats max-norm at T = 8
    assert _acc(ecl.graph, xte, yte, 2) > _acc(mn.graph, xte, yte, 8)


def test_ecl_optional_search_and_compensation_run():
    model, (xtr, xte, ytr, yte) = trained("digits_mlp", "clip")
    res = _convert(model, xtr[:300], method="ecl", steps=2, opts={"search": 1, "compensate": 1})
    details = res.report.method_details
    assert set(details["threshold_scale"]) == set(details["bias_compensation"])
    assert all("searched at T=2" in r["origin"] for r in res.report.layers)
    assert _acc(res.graph, xte, yte, 2) > 90.0
