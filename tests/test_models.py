"""The shipped example models (models/*) still load and reproduce their recorded accuracy.

Each model's make.py records its accuracy on its data.npz in a JSON file next to it and in
CARD.md; here the factory + weights.pt are run on data.npz with plain torch / snnTorch and
must match within 0.5 point, so the artifacts cannot silently rot.
"""

from __future__ import annotations

import importlib
import json
import pathlib

import numpy as np
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
TOL = 0.5  # percentage points

# folder -> (metadata file, files that must exist)
CASES = {
    "rleaky_mnist1d": ("model_meta.json", ["make.py", "model.py", "weights.pt", "data.npz", "model.nir", "CARD.md"]),
    "mlp_digits": ("meta.json", ["make.py", "model.py", "weights.pt", "data.npz", "model.onnx", "CARD.md"]),
    "cnn_mnist1d": ("meta.json", ["make.py", "model.py", "weights.pt", "data.npz", "model.onnx", "CARD.md"]),
}


def _meta(folder: str) -> dict:
    return json.loads((MODELS / folder / CASES[folder][0]).read_text())


def _load(folder: str):
    mod = importlib.import_module(f"models.{folder}.model")
    net = mod.build()
    state = torch.load(MODELS / folder / "weights.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()
    return mod, net


def _data(folder: str) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(MODELS / folder / "data.npz") as d:
        x, y = d["x"], d["y"]
    assert x.dtype == np.float32 and x.ndim >= 3, "x must be (time, batch, *features) float32"
    assert y.dtype == np.int64 and y.shape == (x.shape[1],), "y must be (batch,) int64"
    return torch.from_numpy(x), torch.from_numpy(y)


@pytest.mark.parametrize("folder", sorted(CASES))
def test_files_and_card(folder: str) -> None:
    meta_name, files = CASES[folder]
    for f in files + [meta_name]:
        path = MODELS / folder / f
        assert path.is_file(), f"missing {path}"
        assert path.stat().st_size < 2 * 1024 * 1024, f"{path} is over 2 MB"
    meta = _meta(folder)
    card = (MODELS / folder / "CARD.md").read_text()
    assert f"{meta['data_accuracy']:.2f}" in card, "CARD.md does not state the data.npz accuracy"
    assert f"{meta['test_accuracy']:.2f}" in card, "CARD.md does not state the test accuracy"
    assert (MODELS / folder / "__init__.py").is_file()


@pytest.mark.parametrize("folder", sorted(CASES))
def test_accuracy_matches_card(folder: str) -> None:
    torch.manual_seed(0)
    mod, net = _load(folder)
    x, y = _data(folder)
    acc = float((mod.predict(net, x) == y).float().mean()) * 100
    assert abs(acc - _meta(folder)["data_accuracy"]) <= TOL, (acc, _meta(folder)["data_accuracy"])


def test_rleaky_meta_and_nir() -> None:
    nir = pytest.importorskip("nir")
    meta = _meta("rleaky_mnist1d")
    assert meta["reset"] == "subtract_deferred"
    assert meta["dt"] == pytest.approx(1e-4)
    from rsnn_compiler.ir.ops import ResetMode

    ResetMode(meta["reset"])  # a valid rsnnc reset mode

    graph = nir.read(str(MODELS / "rleaky_mnist1d" / "model.nir"))
    assert sorted(graph.nodes) == sorted(meta["nir_nodes"])
    assert len(graph.nodes) == 7
    assert sorted(tuple(e) for e in graph.edges) == sorted(tuple(e) for e in meta["nir_edges"])
    kinds = sorted(type(n).__name__ for n in graph.nodes.values())
    assert kinds == sorted(["Input", "Output", "Affine", "Affine", "Affine", "LIF", "LIF"])

    # the file carries the shipped weights
    _mod, net = _load("rleaky_mnist1d")
    sd = net.state_dict()
    np.testing.assert_array_equal(np.asarray(graph.nodes["0"].weight), sd["0.weight"].numpy())
    np.testing.assert_array_equal(np.asarray(graph.nodes["2"].weight), sd["2.weight"].numpy())
    lif = graph.nodes["1.lif"]
    np.testing.assert_allclose(np.asarray(lif.v_threshold), sd["1.threshold"].numpy())
    beta = sd["1.beta"].numpy().astype(np.float64)
    assert (beta >= 0).all() and (beta <= 1).all()  # stored inside snnTorch's run-time clamp
    np.testing.assert_allclose(1 - meta["dt"] / np.asarray(lif.tau, np.float64), beta, rtol=0, atol=1e-6)


@pytest.mark.parametrize("folder", ["mlp_digits", "cnn_mnist1d"])
def test_onnx(folder: str) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    g = onnx.load(str(MODELS / folder / "model.onnx"))
    onnx.checker.check_model(g)
    assert any(op.version == 17 for op in g.opset_import if op.domain in ("", "ai.onnx"))
    meta = _meta(folder)
    assert [n.op_type for n in g.graph.node] == meta["onnx_ops"]
    assert "Clip" in meta["onnx_ops"]
    # every weight tensor of the shipped state_dict appears among the ONNX initializers
    inits = [numpy_helper.to_array(t) for t in g.graph.initializer]
    _mod, net = _load(folder)
    for name, t in net.state_dict().items():
        if t.ndim < 2:
            continue
        assert any(a.shape == tuple(t.shape) and np.array_equal(a, t.numpy()) for a in inits), name


def test_cnn_onnx_clip_values() -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    g = onnx.load(str(MODELS / "cnn_mnist1d" / "model.onnx"))
    values = {t.name: numpy_helper.to_array(t) for t in g.graph.initializer}
    for node in g.graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    clips = [(float(values[n.input[1]]), float(values[n.input[2]])) for n in g.graph.node if n.op_type == "Clip"]
    _mod, net = _load("cnn_mnist1d")
    alphas = [float(p.detach()) for name, p in net.named_parameters() if name.endswith("alpha")]
    assert [lo for lo, _ in clips] == [0.0] * len(alphas)
    np.testing.assert_allclose([hi for _, hi in clips], alphas, rtol=0, atol=0)
