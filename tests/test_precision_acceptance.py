"""Issue 17 acceptance on the bundled models (``-m slow``: each run takes minutes on 2 cores).

- pruned 80 % + fine-tune on models/rleaky_mnist1d: nonzero weights stay at or below the pruned
  count, fixed-point accuracy on the held-out test split within 2 points of the unpruned float model;
- a 4-bit-weight build recovered by ``rsnnc finetune`` is at least 10 points above the same build
  without it on the held-out split, or within 1 point of float;
- ``rsnnc sensitivity`` on the bundled models is deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler.accuracy import EvalData, accuracy_percent
from rsnn_compiler.cli.main import main
from rsnn_compiler.ir import load_graph
from rsnn_compiler.ir.fixed_ops import FixedDense

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "rleaky_mnist1d"
FLOAT_ACCURACY = 80.30  # models/rleaky_mnist1d/CARD.md, test split

pytestmark = pytest.mark.slow


def run(*argv) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def train():
    from models.rleaky_mnist1d.make_train_set import train_set

    return train_set()


@pytest.fixture(scope="module")
def train_full():
    from models.rleaky_mnist1d.make_train_set import full_train_set

    return full_train_set()


@pytest.fixture(scope="module")
def test_split():
    return EvalData.load(MODEL / "test.npz", "held out")


def _nonzero(graph) -> int:
    return int(sum(np.count_nonzero(op.weight) for op in graph.nodes.values()
                   if hasattr(op, "weight") and op.weight is not None))


def test_pruned_80_percent_and_finetuned_within_2_points_of_float(tmp_path, train, test_split):
    pruned, tuned = tmp_path / "p80", tmp_path / "p80-tuned"
    assert run("build", "models.rleaky_mnist1d.model:build", "--weights", MODEL / "weights.pt", "--prune", "0.8",
               "--prune-finetune", "5", "--prune-rounds", "2", "--calib", train, "--holdout", MODEL / "test.npz",
               "--target", "c,gpu", "-o", pruned, "-q") == 0
    manifest = json.loads((pruned / "manifest.json").read_text())
    spatial = next(p for p in manifest["passes"] if p["name"] == "prune_spatial")["metrics"]
    kept = spatial["weights_kept_after"]
    assert kept <= int(0.2 * spatial["weights_total"]) + 1
    assert run("finetune", pruned, "--data", train, "--holdout", MODEL / "test.npz", "-o", tuned, "-q") == 0
    fixed = load_graph(tuned / "graph.fpga.rsnn")
    assert _nonzero(load_graph(pruned / "graph.fpga.rsnn")) <= kept
    assert _nonzero(fixed) <= kept
    acc = accuracy_percent(fixed, test_split)
    print(f"\npruned 80 %: {kept} weights kept; fixed point after fine-tune {acc:.2f} % (float {FLOAT_ACCURACY} %)")
    assert acc >= FLOAT_ACCURACY - 2.0
    assert run("validate", tuned, "--data", MODEL / "data.npz", "-q") == 0


def test_4bit_weights_recovered_by_finetune(tmp_path, train_full, test_split):
    """Fine-tuned on the model's whole training data (12 000 signals): 81.5 % here; on the 4 000 of
    train.npz the last epoch lands between 78.3 % and 80.2 % depending on the settings."""
    build4, tuned = tmp_path / "w4", tmp_path / "w4-tuned"
    assert run("build", "models.rleaky_mnist1d.model:build", "--weights", MODEL / "weights.pt", "--weight-bits", "4",
               "--calib", MODEL / "data.npz", "--holdout", MODEL / "test.npz", "--accept-accuracy-loss",
               "--target", "c,gpu", "-o", build4, "-q") == 0
    assert all(op.weight_bits == 4 for op in load_graph(build4 / "graph.fpga.rsnn").nodes.values()
               if isinstance(op, FixedDense))
    assert run("finetune", build4, "--data", train_full, "--holdout", MODEL / "test.npz", "-o", tuned, "-q") == 0
    before = accuracy_percent(load_graph(build4 / "graph.fpga.rsnn"), test_split)
    after = accuracy_percent(load_graph(tuned / "graph.fpga.rsnn"), test_split)
    print(f"\n4-bit weights: {before:.2f} % -> {after:.2f} % after fine-tune (float {FLOAT_ACCURACY} %)")
    assert after >= before + 10.0 or after >= FLOAT_ACCURACY - 1.0
    assert run("validate", tuned, "--data", MODEL / "data.npz", "-q") == 0


@pytest.mark.parametrize("name,source,extra", [
    ("rleaky_mnist1d", "models.rleaky_mnist1d.model:build", ["--weights", MODEL / "weights.pt"]),
    ("mlp_digits", ROOT / "models" / "mlp_digits" / "model.onnx", ["--convert", "sfn"]),
    ("cnn_mnist1d", ROOT / "models" / "cnn_mnist1d" / "model.onnx", ["--convert", "sfn"]),
])
def test_sensitivity_on_the_bundled_models_is_deterministic(tmp_path, capsys, name, source, extra):
    data = ROOT / "models" / name / "data.npz"
    build = tmp_path / name
    assert run("build", source, *extra, "--calib", data, "--accept-accuracy-loss", "--target", "c", "-o", build,
               "-q") == 0
    capsys.readouterr()
    reports = []
    for _ in range(2):
        assert run("sensitivity", build, "--data", data, "--calib", data, "--weight-widths", "4",
                   "--state-widths", "8", "--json", "-q") == 0
        reports.append(capsys.readouterr().out)
    assert reports[0] == reports[1]
    rep = json.loads(reports[0])
    assert rep["layers"] and all(layer["costs"] for layer in rep["layers"])
