"""--stock-neurons: the retarget pass's exact steps, its report, and that the result lowers to
Lava's stock LIF only (no Lava needed)."""
from __future__ import annotations

import numpy as np
import pytest

from rsnn_compiler.pass_options import RetargetStockOptions
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir import GraphBuilder, Input, Output
from rsnn_compiler.ir.ops import LIF, Affine, Comparator, CubaLIF, ResetMode
from rsnn_compiler.passes_api import PassContext
from rsnn_compiler.passes.retarget_stock import RetargetStock, grouped, stock_neuron

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def lif_graph(reset=ResetMode.ZERO, theta=None, beta=0.9) -> tuple:
    r = np.random.default_rng(0)
    n = 6
    b = GraphBuilder("g")
    b.add("in", Input(shape=(4,)))
    b.add("fc", Affine(weight=r.normal(0, 1, (n, 4)).astype(np.float32)))
    b.add("h", LIF(beta=np.full(n, beta, np.float32), gain=np.ones(n, np.float32),
                   bias=r.normal(0, 0.1, n).astype(np.float32),
                   theta=np.asarray(theta if theta is not None else np.ones(n), np.float32),
                   v_reset=np.zeros(n, np.float32), v_init=np.zeros(n, np.float32), reset=reset))
    b.add("out", Output(shape=(n,)))
    b.chain("in", "fc", "h", "out")
    return b.build(), r.normal(0, 1, (30, 5, 4))


def test_threshold_normalisation_is_exact_for_zero_reset():
    theta = np.array([0.5, 1.0, 2.0, 4.0, 0.25, 1.5])
    g, x = lif_graph(theta=theta)
    new, changes = stock_neuron(g.nodes["h"], netx=False)
    assert np.all(new.theta == 1) and any("normalised" in c for c in changes)
    g2 = g.with_node("h", new)
    assert np.array_equal(run_float(g, x).spikes["h"], run_float(g2, x).spikes["h"])


def test_stock_neuron_changes_reset_comparator_and_decays():
    g, _ = lif_graph(reset=ResetMode.SUBTRACT_DEFERRED)
    op = g.nodes["h"].replace(beta=np.linspace(0.1, 0.99, 6).astype(np.float32), comparator=Comparator.GE)
    new, changes = stock_neuron(op, netx=True)
    assert new.reset is ResetMode.ZERO and new.comparator is Comparator.GT
    assert len(np.unique(new.beta)) == 1 and any("shared" in c for c in changes)
    lava, _ = stock_neuron(op, netx=False)
    assert len(np.unique(lava.beta)) == 4  # quantile groups: the Lava emitter splits into 4 LIFs
    assert len(np.unique(grouped(np.arange(10.0), 4))) == 4
    cuba = CubaLIF(alpha=np.linspace(0.2, 0.8, 3).astype(np.float32), beta=np.full(3, 0.9, np.float32),
                   gain_i=np.ones(3, np.float32), gain_v=np.ones(3, np.float32), bias=np.zeros(3, np.float32),
                   theta=np.full(3, 2.0, np.float32), v_reset=np.zeros(3, np.float32),
                   v_init=np.ones(3, np.float32))
    new, _ = stock_neuron(cuba, netx=True)
    assert np.all(new.gain_v == 0.5) and not new.v_init.any() and len(np.unique(new.alpha)) == 1


def test_pass_reports_accuracy_cost_and_lowers_to_stock_lifs(tmp_path):
    from rsnn_compiler.build import BuildOptions, build

    model = REPO / "models" / "rleaky_mnist1d"
    with np.load(model / "data.npz") as z:
        np.savez(tmp_path / "calib.npz", x=z["x"][:, :40], y=z["y"][:40])
    result = build("models.rleaky_mnist1d.model:build", tmp_path / "b", BuildOptions(
        targets=("lava",), weights=str(model / "weights.pt"), calib=str(tmp_path / "calib.npz"),
        stock=RetargetStockOptions(mode="lava", finetune_epochs=1), accept_accuracy_loss=True))
    acc = result.manifest["accuracy"]
    assert acc["data"] == "calib.npz (40 samples, calibration data, also the stock-neuron fine-tune's training data)"
    stock = acc["steps"][0]
    assert stock["step"] == "stock neurons (lava)" and stock["checked"] and "--stock-finetune" in stock["fix"]
    rep = next(p for p in result.manifest["passes"] if p["name"] == "retarget_stock")
    m = rep["metrics"]
    assert m["train_samples"] == 30 and m["holdout_samples"] == 10 and len(m["loss_per_epoch"]) == 1
    assert m["accuracy_cost_points"] == pytest.approx(m["accuracy_original"] - m["accuracy_finetuned"], abs=0.01)
    assert "cost" in rep["reason"] and m["report_data"] == "--calib's held-out quarter (10 samples)"
    art = result.manifest["targets"]["lava"]
    assert "0 custom" in art["summary"], art["summary"]
    assert result.manifest["pipeline"]["float"][:3] == ["import", "canonicalize", "retarget_stock"]


def test_a_lossy_retarget_stops_the_build_unless_the_loss_is_accepted(tmp_path, capsys):
    from rsnn_compiler.cli.main import main

    model = REPO / "models" / "rleaky_mnist1d"
    with np.load(model / "data.npz") as z:
        np.savez(tmp_path / "calib.npz", x=z["x"][:, :24], y=z["y"][:24])
    argv = ["build", "models.rleaky_mnist1d.model:build", "--weights", str(model / "weights.pt"),
            "--calib", str(tmp_path / "calib.npz"), "--stock-neurons", "lava", "--stock-finetune", "0",
            "--target", "ir", "-o", str(tmp_path / "b"), "-q", "--accuracy-tolerance", "0"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "stock neurons (lava) takes accuracy" in err and "--accept-accuracy-loss" in err
    assert main([*argv, "--accept-accuracy-loss"]) == 0
    assert "accuracy loss accepted" in capsys.readouterr().err


def test_cli_refuses_stock_options_without_stock_neurons(capsys):
    from rsnn_compiler.cli.main import main

    code = main(["build", "models.rleaky_mnist1d.model:build", "--stock-finetune", "3", "-o", "/tmp/x"])
    assert code == 2 and "--stock-neurons" in capsys.readouterr().err


def test_pass_without_labels_notes_it():
    g, x = lif_graph(reset=ResetMode.SUBTRACT)
    from rsnn_compiler.passes_api import Prop

    g = g.with_attrs(properties=frozenset({Prop.CANONICAL}))
    out, rep = RetargetStock().run(g, PassContext(calib_x=x, options=[RetargetStockOptions(mode="lava")]))
    assert out.nodes["h"].reset is ResetMode.ZERO and rep.accuracy_finetuned is None
    assert any("not fine-tuned" in n for n in rep.notes)
