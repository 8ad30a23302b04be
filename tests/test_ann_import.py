"""ANN import (torch.fx and ONNX): structure, activation recognition, exact forward, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ann_fixtures import Conv2dNet, DigitsMLP, Mnist1dCNN, ResQ, trained
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontends.ann_graph import ActKind, AnnKind, fold_batchnorm, forward
from rsnn_compiler.frontends.onnx_import import read_onnx
from rsnn_compiler.frontends.torch_ann_import import read_module


def _export(model: nn.Module, shape, path) -> str:
    torch.onnx.export(model.eval(), torch.zeros(1, *shape), str(path), dynamo=False, opset_version=17,
                      do_constant_folding=False)  # keeps BatchNormalization nodes
    return str(path)


def _randomise_bn(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
    return model.eval()


CASES = [
    (lambda: DigitsMLP("relu"), (64,)),
    (lambda: DigitsMLP("qcfs"), (64,)),
    (lambda: DigitsMLP("clip"), (64,)),
    (lambda: Mnist1dCNN("qcfs", "max"), (1, 40)),
    (lambda: Conv2dNet("relu", "max"), (1, 8, 8)),
    (lambda: Conv2dNet("clip", "avg"), (1, 8, 8)),
    (lambda: ResQ("qcfs"), (64,)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("fmt", ["fx", "onnx"])
def test_forward_matches_torch(case, fmt, tmp_path):
    make, shape = CASES[case]
    torch.manual_seed(case)
    model = _randomise_bn(make())
    ann = read_module(model, shape) if fmt == "fx" else read_onnx(_export(model, shape, tmp_path / "m.onnx"))
    x = torch.randn(32, *shape) * 2
    with torch.no_grad():
        ref = model(x)
        got = forward(ann, x)
        folded = forward(fold_batchnorm(ann)[0], x)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(folded.numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)


def test_activation_recognition_fx_and_onnx(tmp_path):
    model = DigitsMLP("qcfs").eval()
    model.a1.lam.data.fill_(2.5)
    for ann in (read_module(model, (64,)), read_onnx(_export(model, (64,), tmp_path / "q.onnx"))):
        specs = [n.p("spec") for n in ann.acts()]
        assert [s.kind for s in specs] == [ActKind.QUANT, ActKind.QUANT]
        assert specs[0].levels == 4 and specs[0].lam == pytest.approx(2.5, rel=1e-5)
        assert specs[0].shift == 0.5
    clip = DigitsMLP("clip").eval()
    clip.a2.lam.data.fill_(3.0)
    ann = read_module(clip, (64,))
    assert [n.p("spec").kind for n in ann.acts()] == [ActKind.CLIP, ActKind.CLIP]
    assert ann.acts()[1].p("spec").lam == pytest.approx(3.0)
    six = nn.Sequential(nn.Linear(4, 4), nn.ReLU6(), nn.Linear(4, 2), nn.Hardtanh(0.0, 2.0), nn.Linear(2, 2))
    for ann in (read_module(six, (4,)), read_onnx(_export(six, (4,), tmp_path / "six.onnx"))):
        assert [(n.p("spec").kind, n.p("spec").lam) for n in ann.acts()] == [(ActKind.CLIP, 6.0), (ActKind.CLIP, 2.0)]


def test_reused_module_gets_one_site_per_call(tmp_path):
    model = ResQ("relu").eval()
    for ann in (read_module(model, (64,)), read_onnx(_export(model, (64,), tmp_path / "r.onnx"))):
        acts = ann.acts()
        assert len(acts) == 2 and acts[0].name != acts[1].name
        assert [n.kind for n in ann.nodes].count(AnnKind.ADD) == 1


def test_batchnorm_is_folded():
    ann = read_module(_randomise_bn(DigitsMLP("relu")), (64,))
    assert [n.kind for n in ann.nodes].count(AnnKind.BN) == 2
    folded, count = fold_batchnorm(ann)
    assert count == 2 and AnnKind.BN not in [n.kind for n in folded.nodes]


def test_matmul_plus_add_becomes_dense(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    w2 = rng.normal(size=(3, 2)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["a"]), helper.make_node("MatMul", ["a", "w2"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"), numpy_helper.from_array(w2, "w2")])
    onnx.save(helper.make_model(graph), tmp_path / "mm.onnx")
    ann = read_onnx(tmp_path / "mm.onnx")
    assert [n.kind for n in ann.nodes] == [AnnKind.INPUT, AnnKind.DENSE, AnnKind.ACT, AnnKind.DENSE]
    x = rng.normal(size=(4, 5)).astype(np.float32)
    np.testing.assert_allclose(forward(ann, x).numpy(), np.maximum(x @ w1 + b1, 0) @ w2, rtol=1e-5, atol=1e-5)


def test_unsupported_onnx_op_is_named(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))
    with pytest.raises(UserInputError, match=r"unsupported ONNX op 'Sigmoid' at ONNX node \d+ '.*Sigmoid"):
        read_onnx(_export(model, (4,), tmp_path / "s.onnx"))


def test_unsupported_fx_ops_are_named():
    class F1(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return torch.sigmoid(self.fc(x))

    with pytest.raises(UserInputError, match="unsupported operation at fx node 'sigmoid'"):
        read_module(F1(), (4,))
    with pytest.raises(UserInputError, match=r"activation at module '1' \(Tanh\) is not supported"):
        read_module(nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)), (4,))
    with pytest.raises(UserInputError, match="LSTM"):
        read_module(nn.Sequential(nn.LSTM(4, 4)), (4,))


def test_trained_fixture_imports():
    model, (xtr, xte, ytr, yte) = trained("digits_mlp", "relu")
    ann = read_module(model, (64,))
    with torch.no_grad():
        np.testing.assert_allclose(forward(ann, xte[:50]).numpy(), model(torch.as_tensor(xte[:50])).numpy(),
                                   rtol=1e-4, atol=1e-4)


def test_onnx_batchnorm_nodes_are_read(tmp_path):
    model = _randomise_bn(DigitsMLP("relu"))
    ann = read_onnx(_export(model, (64,), tmp_path / "bn.onnx"))
    assert [n.kind for n in ann.nodes].count(AnnKind.BN) == 2


def test_inplace_relu_and_functional_clamp_are_recognised():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 4)
            self.r = nn.ReLU(inplace=True)
            self.fc2 = nn.Linear(4, 4)
            self.fc3 = nn.Linear(4, 2)

        def forward(self, x):
            h = self.r(self.fc1(x))
            return self.fc3(torch.clamp(self.fc2(h), 0.0, 1.5))

    ann = read_module(Net(), (4,))
    assert [(n.p("spec").kind, n.p("spec").lam) for n in ann.acts()] == [(ActKind.RELU, None), (ActKind.CLIP, 1.5)]
