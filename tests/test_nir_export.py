"""NIR exporter: NIR -> IR -> NIR keeps nodes, edges and parameters; IR -> NIR -> IR is lossless."""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch
from torch import nn

import snntorch as snn

from rsnn_compiler import registry
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontend_api import ImportOptions
from rsnn_compiler.frontends.nir_export import export
from rsnn_compiler.frontends.nir_import import import_graph, load
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir import (
    IF, LI, LIF, Affine, BatchNorm, Comparator, Conv1d, Conv2d, CubaLI, CubaLIF, Delay, Flatten,
    GraphBuilder, Identity, Input, Output, Pool, PoolMode, ResetMode, Scale, Threshold,
    structural_hash, to_text,
)

warnings.filterwarnings("ignore")
torch.set_num_threads(1)

PARAMS = ("weight", "bias", "scale", "tau", "tau_syn", "tau_mem", "r", "w_in", "v_leak", "v_threshold",
          "v_reset", "threshold", "delay", "kernel_size", "stride", "padding", "start_dim", "end_dim")


def _snntorch_file(tmp_path) -> str:
    pytest.importorskip("nirtorch")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(32, 8),
        snn.Leaky(beta=torch.rand(8, generator=gen) * 0.5 + 0.5, threshold=torch.ones(8), init_hidden=True),
        nn.Linear(8, 6),
        snn.Synaptic(alpha=torch.full((6,), 0.7), beta=torch.full((6,), 0.9), threshold=torch.ones(6), init_hidden=True),
        nn.Linear(6, 3), snn.RLeaky(beta=0.8, threshold=0.5, linear_features=3, init_hidden=True),
    )
    path = tmp_path / "src.nir"
    nir.write(str(path), export_to_nir(net, torch.zeros(1, 1, 6, 6), ignore_dims=[0]))
    return str(path)


def test_nir_ir_nir_preserves_nodes_edges_parameters(tmp_path):
    src = _snntorch_file(tmp_path)
    imported = load(src, ImportOptions(reset=ResetMode.SUBTRACT_DEFERRED))
    out = tmp_path / "out.nir"
    export(imported.graph, str(out))
    a, b = nir.read(src), nir.read(str(out))
    assert set(a.nodes) == set(b.nodes)
    assert sorted(a.edges) == sorted(b.edges)
    compared = 0
    for name, na in a.nodes.items():
        nb = b.nodes[name]
        assert type(na) is type(nb), name
        for p in PARAMS:
            if hasattr(na, p) and getattr(na, p) is not None:
                x, y = np.asarray(getattr(na, p)), np.asarray(getattr(nb, p))
                if x.dtype.kind in "fc":
                    # float64 tau from snnTorch's RLeaky export comes back as float32
                    np.testing.assert_allclose(y, x, rtol=2e-7, err_msg=f"{name}.{p}")
                else:
                    assert np.array_equal(x, y), f"{name}.{p}"
                compared += 1
    assert compared > 30
    # the re-exported file imports to exactly the same IR, and so runs the same
    again = load(str(out))
    assert structural_hash(again.graph) == structural_hash(imported.graph)
    assert again.report.reset_origin == "rsnnc export metadata"
    assert again.report.dt_origin == "rsnnc export metadata"


def _all_ops_graph():
    rng = np.random.default_rng(0)
    f = lambda *s: rng.normal(0, 0.5, s).astype(np.float32)  # noqa: E731
    n = 6
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)  # noqa: E731
    z = np.zeros(n, np.float32)
    b = GraphBuilder("allops", dt=1e-3)
    b.add("in", Input(shape=(2, 6, 6)))
    b.add("conv", Conv2d(weight=f(3, 2, 3, 3), bias=None, input_shape=(2, 6, 6), padding=(1, 1)))
    b.add("pool", Pool(mode=PoolMode.SUM, kernel=(2, 2), stride=(2, 2), input_shape=(3, 6, 6)))
    b.add("avg", Pool(mode=PoolMode.AVG, kernel=(3, 3), stride=(1, 1), padding=(1, 1), input_shape=(3, 3, 3)))
    b.add("fl", Flatten(input_shape=(3, 3, 3), start_dim=1, end_dim=2))
    b.add("c1", Conv1d(weight=f(2, 3, 3), bias=f(2), input_shape=(3, 9), stride=(2,)))
    b.add("fl2", Flatten(input_shape=(2, 4)))
    b.add("fc", Affine(weight=f(n, 8), bias=f(n)))
    b.add("sc", Scale(scale=u(0.5, 2)))
    b.add("id", Identity(shape=(n,)))
    b.add("th", Threshold(theta=u(-0.1, 0.1), comparator=Comparator.GE))
    b.add("lif", LIF(beta=u(0.3, 1), gain=u(0.5, 2), bias=u(-0.1, 0.1), theta=u(0.5, 1), v_reset=z, v_init=z,
                     reset=ResetMode.SUBTRACT_NODELAY))
    b.add("if", IF(gain=u(0.5, 2), bias=u(0, 0.1), theta=u(0.5, 1), v_reset=u(-0.2, 0), v_init=z,
                   reset=ResetMode.SUBTRACT, comparator=Comparator.GE))
    b.add("clif", CubaLIF(alpha=u(0.2, 0.9), beta=u(0.5, 1), gain_i=u(0.5, 2), gain_v=u(0.5, 2), bias=z,
                          theta=u(0.5, 1), v_reset=z, v_init=z, reset=ResetMode.ZERO_HOLD))
    b.add("rec", Affine(weight=f(n, n), bias=f(n)))
    b.add("dl", Delay(shape=(n,), steps=2))
    b.add("li", LI(beta=u(0.5, 1), gain=u(0.5, 2), bias=u(-0.1, 0.1), v_init=z))
    b.add("cli", CubaLI(alpha=u(0.2, 0.9), beta=u(0.5, 1), gain_i=u(0.5, 2), gain_v=u(0.5, 2), bias=z, v_init=z))
    b.add("out", Output(shape=(n,)))
    b.chain("in", "conv", "pool", "avg", "fl", "c1", "fl2", "fc", "sc", "id", "th", "lif", "if", "clif")
    b.connect("clif", "rec", 1)  # canonical recurrent delay
    b.connect("rec", "clif")
    b.connect("clif", "dl")
    b.connect("dl", "li")
    b.connect("lif", "li", 3)  # non-canonical delay on a feed-forward edge
    b.chain("li", "cli", "out")
    return b.build()


def test_ir_nir_ir_is_lossless(tmp_path):
    g = _all_ops_graph()
    path = tmp_path / "all.nir"
    export(g, str(path))
    back = load(str(path))
    assert to_text(back.graph) == to_text(g.with_attrs(properties=frozenset({"discretized"})))
    x = np.random.default_rng(1).random((20, 2, 2, 6, 6), dtype=np.float32)
    assert np.array_equal(run_float(g, x).out, run_float(back.graph, x).out)
    # the NIR fields alone (what other tools read) describe the same dynamics at dt
    plain = nir.read(str(path))
    for node in plain.nodes.values():
        node.metadata = {}
    plain.metadata = {}
    plain_ir = import_graph(plain, ImportOptions(dt=1e-3, reset=ResetMode.SUBTRACT_NODELAY)).graph
    lif = plain_ir.nodes["lif"]
    np.testing.assert_allclose(lif.beta, g.nodes["lif"].beta, rtol=1e-6)
    np.testing.assert_allclose(lif.gain, g.nodes["lif"].gain, rtol=1e-5)
    np.testing.assert_allclose(lif.bias, g.nodes["lif"].bias, rtol=1e-4, atol=1e-7)
    clif = plain_ir.nodes["clif"]
    np.testing.assert_allclose(clif.gain_i, g.nodes["clif"].gain_i, rtol=1e-5)
    assert plain_ir.nodes["dl"].steps == 2


def test_exporter_is_registered_and_rejects_what_nir_cannot_say(tmp_path):
    assert registry.resolve(registry.EXPORTERS["nir"]) is export
    b = GraphBuilder("bn")
    b.add("in", Input(shape=(3,)))
    one = np.ones(3, np.float32)
    b.add("bn", BatchNorm(mean=one * 0, var=one, gamma=one, beta=one * 0, shape=(3,)))
    b.add("out", Output(shape=(3,)))
    b.chain("in", "bn", "out")
    with pytest.raises(UserInputError, match="NIR has no BatchNorm; run canonicalize"):
        export(b.build(), str(tmp_path / "bn.nir"))
    assert not (tmp_path / "bn.nir").exists() and not (tmp_path / "bn.nir.tmp").exists()
