"""NIR importer: snnTorch-exported files reproduce snnTorch, every node type, both cycle
encodings, dt/reset inference, and one-line errors for bad files."""

from __future__ import annotations

import warnings

import h5py
import nir
import numpy as np
import pytest
import torch
from torch import nn

import snntorch as snn

from rsnn_compiler import registry
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontend_api import ImportOptions
from rsnn_compiler.frontends.nir_import import import_graph, load
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir import (
    IF, LI, LIF, Affine, Conv1d, Conv2d, CubaLI, CubaLIF, Delay, Flatten, Pool, PoolMode, ResetMode,
    Scale, Threshold,
)
from test_snntorch_import import ir_spikes, snntorch_spikes, spikes_in

warnings.filterwarnings("ignore")
torch.set_num_threads(1)


def export_snntorch(net, sample, path) -> str:
    pytest.importorskip("nirtorch")  # snnTorch's exporter needs it
    from snntorch.export_nir import export_to_nir

    neurons = [m for m in net if hasattr(m, "init_hidden")]
    for m in neurons:  # snnTorch's tracer calls the Sequential: states must be hidden
        m.init_hidden = True
    graph = export_to_nir(net, sample, ignore_dims=[0])
    for m in neurons:  # the reference loop passes state explicitly
        m.init_hidden = False
        m.reset_mem()
    nir.write(str(path), graph)
    return str(path)


def vec(n, lo, hi, seed):
    return torch.rand(n, generator=torch.Generator().manual_seed(seed)) * (hi - lo) + lo


def check_same(net, x, result):
    ref, got = snntorch_spikes(net, x), ir_spikes(result.graph, x)
    mism = sum(int((a != b).sum()) for a, b in zip(ref, got))
    assert mism == 0, f"{mism} spike mismatches"
    assert sum(int(a.sum()) for a in ref) > 0


# ------------------------------------------------------------------------------------------
# Files written by snnTorch's own exporter
# ------------------------------------------------------------------------------------------
def test_snntorch_zero_reset_file_reproduces_snntorch(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(10, 32), snn.Leaky(beta=vec(32, 0.5, 1.0, 1), threshold=vec(32, 0.5, 1.0, 2), reset_mechanism="zero"),
        nn.Linear(32, 6), snn.Leaky(beta=vec(6, 0.5, 1.0, 3), threshold=torch.ones(6), reset_mechanism="zero",
                                     reset_delay=False),
    )
    with torch.no_grad():
        net[0].weight.mul_(2)
    path = export_snntorch(net, torch.zeros(1, 10), tmp_path / "ff.nir")
    # the file looks like snnTorch's (r = tau/1e-4), and snnTorch files do not record the reset: stop
    with pytest.raises(UserInputError, match="looks like a snntorch export.*--nir-source snntorch.*--reset zero"):
        load(path, ImportOptions())
    result = load(path, ImportOptions(reset=ResetMode.ZERO))
    rep = result.report
    assert rep.dt == pytest.approx(1e-4) and rep.dt_origin.startswith("snntorch convention")
    assert rep.reset == "zero" and rep.reset_origin == "option" and rep.source_library == "snntorch"
    assert rep.conventions[0].startswith("source snntorch (detected: float32 per-neuron")
    assert rep.discretisation.startswith("forward Euler")
    assert result.graph.attrs.properties == frozenset({"discretized"})
    # beta recovered exactly from float32 tau, gains exactly 1
    assert np.array_equal(result.graph.nodes["1"].beta, net[1].beta.numpy())
    assert np.all(result.graph.nodes["1"].gain == 1)
    check_same(net, spikes_in(120, 4, 10), result)


def test_snntorch_default_subtract_needs_subtract_deferred(tmp_path):
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Linear(8, 24), snn.Leaky(beta=vec(24, 0.5, 1.0, 4), threshold=vec(24, 0.5, 1.5, 5)),
        nn.Linear(24, 12), snn.Synaptic(alpha=vec(12, 0.4, 0.9, 6), beta=vec(12, 0.5, 1.0, 7), threshold=torch.ones(12)),
        nn.Linear(12, 5), snn.RLeaky(beta=0.8, threshold=0.5, linear_features=5),
    )
    with torch.no_grad():
        net[0].weight.mul_(2)
        net[2].weight.mul_(2)
    path = export_snntorch(net, torch.zeros(1, 8), tmp_path / "sub.nir")
    # flat dotted recurrent encoding (5.lif <-> 5.w_rec) is what snnTorch writes
    assert ("5.lif", "5.w_rec") in nir.read(path).edges
    result = load(path, ImportOptions(reset=ResetMode.SUBTRACT_DEFERRED))
    assert result.report.reset == "subtract_deferred" and result.report.reset_origin == "option"
    assert not any(n.startswith("WARNING") for n in result.report.notes)
    edges = {(e.src, e.dst): e.delay for e in result.graph.edges}
    assert edges[("5.lif", "5.w_rec")] == 1 and edges[("5.w_rec", "5.lif")] == 0
    x = spikes_in(120, 4, 8, seed=2)
    check_same(net, x, result)
    # --nir-source snntorch applies snnTorch's default reset (subtract, reset_delay=True), with a warning
    by_source = load(path, ImportOptions(nir_source="snntorch"))
    assert by_source.report.reset == "subtract_deferred" and by_source.report.reset_origin.startswith("snntorch")
    assert any(n.startswith("WARNING: reset subtract_deferred is snntorch's default") for n in by_source.report.notes)
    check_same(net, x, by_source)
    # the same file under NIR's value reset does not reproduce snnTorch
    wrong = load(path, ImportOptions(reset=ResetMode.ZERO))
    ref, got = snntorch_spikes(net, x), ir_spikes(wrong.graph, x)
    assert sum(int((a != b).sum()) for a, b in zip(ref, got)) > 0


def test_snntorch_zero_hold_cells(tmp_path):
    torch.manual_seed(2)
    net = nn.Sequential(
        nn.Linear(8, 16), snn.Synaptic(alpha=vec(16, 0.4, 0.9, 8), beta=vec(16, 0.5, 1.0, 9), threshold=torch.ones(16),
                                       reset_mechanism="zero"),
        nn.Linear(16, 6), snn.RSynaptic(alpha=0.7, beta=0.85, threshold=0.8, linear_features=6, reset_mechanism="zero"),
    )
    with torch.no_grad():
        net[0].weight.mul_(2)
    path = export_snntorch(net, torch.zeros(1, 8), tmp_path / "hold.nir")
    result = load(path, ImportOptions(reset=ResetMode.ZERO_HOLD))
    assert isinstance(result.graph.nodes["1"], CubaLIF)
    check_same(net, spikes_in(120, 4, 8, seed=3), result)


def test_snntorch_conv_file(tmp_path):
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), snn.Leaky(beta=torch.full((3, 6, 6), 0.9), threshold=torch.ones(3, 6, 6),
                                                 reset_mechanism="zero"),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(27, 4),
        snn.Leaky(beta=vec(4, 0.6, 0.9, 10), threshold=torch.full((4,), 0.5), reset_mechanism="zero"),
    )
    with torch.no_grad():
        net[0].weight.mul_(3)
    path = export_snntorch(net, torch.zeros(1, 1, 6, 6), tmp_path / "conv.nir")
    result = load(path, ImportOptions(reset=ResetMode.ZERO))
    assert isinstance(result.graph.nodes["2"], Pool) and result.graph.nodes["2"].mode is PoolMode.AVG
    assert isinstance(result.graph.nodes["3"], Flatten)
    x = (torch.rand(100, 2, 1, 6, 6, generator=torch.Generator().manual_seed(4)) < 0.5).float()
    check_same(net, x, result)


# ------------------------------------------------------------------------------------------
# Recurrence encodings
# ------------------------------------------------------------------------------------------
def _rnn_parts(n=4, seed=0):
    rng = np.random.default_rng(seed)
    w_in = rng.normal(0, 1, (n, 3)).astype(np.float32)
    w_rec = rng.normal(0, 0.6, (n, n)).astype(np.float32)
    b_rec = rng.normal(0, 0.2, n).astype(np.float32)
    lif = lambda: nir.LIF(tau=np.full(n, 1e-3, np.float32), r=np.full(n, 10.0, np.float32),  # noqa: E731
                          v_leak=np.zeros(n, np.float32), v_threshold=np.ones(n, np.float32),
                          v_reset=np.zeros(n, np.float32))
    return w_in, w_rec, b_rec, lif


def test_nested_and_flat_cycle_encodings_agree(tmp_path):
    n = 4
    w_in, w_rec, b_rec, lif = _rnn_parts(n)
    flat = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([3])), "fc": nir.Linear(w_in), "rnn.lif": lif(),
               "rnn.w_rec": nir.Affine(w_rec, b_rec), "output": nir.Output(np.array([n]))},
        edges=[("input", "fc"), ("rnn.w_rec", "rnn.lif"), ("fc", "rnn.lif"), ("rnn.lif", "rnn.w_rec"),
               ("rnn.lif", "output")],
    )
    sub = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([n])), "lif": lif(), "w_rec": nir.Affine(w_rec, b_rec),
               "output": nir.Output(np.array([n]))},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )
    nested = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([3])), "fc": nir.Linear(w_in), "rnn": sub, "output": nir.Output(np.array([n]))},
        edges=[("input", "fc"), ("fc", "rnn"), ("rnn", "output")],
    )
    nir.write(str(tmp_path / "nested.nir"), nested)
    a = import_graph(flat, ImportOptions(reset=ResetMode.SUBTRACT))
    b = load(str(tmp_path / "nested.nir"), ImportOptions(reset=ResetMode.SUBTRACT))
    assert set(a.graph.nodes) == set(b.graph.nodes) == {"input", "fc", "rnn.lif", "rnn.w_rec", "output"}
    for g in (a.graph, b.graph):
        edges = {(e.src, e.dst): e.delay for e in g.edges}
        assert edges == {("input", "fc"): 0, ("fc", "rnn.lif"): 0, ("rnn.lif", "rnn.w_rec"): 1,
                         ("rnn.w_rec", "rnn.lif"): 0, ("rnn.lif", "output"): 0}
        assert [e.src for e in g.edges if e.dst == "rnn.lif"] == ["fc", "rnn.w_rec"]
    x = np.random.default_rng(1).random((60, 3, 3), dtype=np.float32)
    ra, rb = run_float(a.graph, x), run_float(b.graph, x)
    assert np.array_equal(ra.out, rb.out) and ra.out.sum() > 0
    # hand reference: v = beta v + W x + (W_rec s[t-1] + b) from t = 0, subtract reset
    beta = np.float32(0.9)
    v, s, outs = np.zeros((3, n), np.float32), np.zeros((3, n), np.float32), []
    for t in range(60):
        v = (beta * v + x[t] @ w_in.T) + (s @ w_rec.T + b_rec)
        s = (v > 1).astype(np.float32)
        v = v - s
        outs.append(s)
    assert np.array_equal(np.stack(outs), ra.out)


def test_algebraic_loop_without_neuron_is_rejected():
    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([2])), "a": nir.Linear(np.eye(2, dtype=np.float32)),
               "b": nir.Linear(np.eye(2, dtype=np.float32)), "output": nir.Output(np.array([2]))},
        edges=[("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")],
    )
    with pytest.raises(UserInputError, match="algebraic loop a -> b -> a contains no neuron") as err:
        import_graph(g)
    assert "\n" not in str(err.value)


def test_loop_through_delay_node_needs_no_cut():
    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([2])), "a": nir.Linear(np.eye(2, dtype=np.float32)),
               "d": nir.Delay(np.full(2, 3e-3, np.float32)), "output": nir.Output(np.array([2]))},
        edges=[("input", "a"), ("a", "d"), ("d", "a"), ("a", "output")],
    )
    r = import_graph(g, ImportOptions(dt=1e-3))
    assert r.graph.nodes["d"].steps == 3 and all(e.delay == 0 for e in r.graph.edges)
    out = run_float(r.graph, np.ones((7, 1, 2), np.float32)).out[:, 0, 0]
    assert out.tolist() == [1, 1, 1, 2, 2, 2, 3]
    with pytest.raises(UserInputError, match="pass --dt"):
        import_graph(g)


# ------------------------------------------------------------------------------------------
# Node catalogue and discretisation
# ------------------------------------------------------------------------------------------
def test_every_node_type_converts():
    f = lambda *s: np.random.default_rng(sum(s)).normal(0, 0.5, s).astype(np.float32)  # noqa: E731
    n = 8
    full = lambda v: np.full(n, v, np.float32)  # noqa: E731
    nodes = {
        "input": nir.Input(np.array([2, 6, 6])),
        "c2": nir.Conv2d(input_shape=None, weight=f(2, 2, 3, 3), stride=1, padding="same", dilation=1, groups=1,
                         bias=f(2)),
        "sp": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "ap": nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([1, 1]), padding=np.array([1, 1])),
        "fl": nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=1, end_dim=2),
        "c1": nir.Conv1d(input_shape=9, weight=f(2, 2, 3), stride=2, padding="valid", dilation=1, groups=1, bias=f(2)),
        "fl2": nir.Flatten(input_type={"input": np.array([2, 4])}, start_dim=0, end_dim=-1),
        "lin": nir.Linear(f(n, 8)),
        "sc": nir.Scale(full(2.0)),
        "th": nir.Threshold(full(0.1)),
        "aff": nir.Affine(f(n, n), f(n)),
        "i": nir.I(r=full(1e4)),
        "if": nir.IF(r=full(1e4), v_threshold=full(1.0), v_reset=full(-0.5)),
        "li": nir.LI(tau=full(1e-3), r=full(10.0), v_leak=full(0.5)),
        "lif": nir.LIF(tau=full(2e-3), r=full(20.0), v_leak=full(0.0), v_threshold=full(1.0), v_reset=full(0.0)),
        "cli": nir.CubaLI(tau_syn=full(5e-4), tau_mem=full(1e-3), r=full(10.0), v_leak=full(0.0), w_in=full(5.0)),
        "clif": nir.CubaLIF(tau_syn=full(5e-4), tau_mem=full(1e-3), r=full(10.0), v_leak=full(0.0), w_in=full(5.0),
                            v_threshold=full(1.0), v_reset=full(0.0)),
        "dl": nir.Delay(full(2e-4)),
        "output": nir.Output(np.array([n])),
    }
    chain = ["input", "c2", "sp", "ap", "fl", "c1", "fl2", "lin", "sc", "th", "aff", "i", "if", "li", "lif", "cli",
             "clif", "dl", "output"]
    g = nir.NIRGraph(nodes=nodes, edges=list(zip(chain, chain[1:])), type_check=False)
    r = import_graph(g, ImportOptions(reset=ResetMode.ZERO))
    ops = r.graph.nodes
    assert r.report.dt == pytest.approx(1e-4)
    assert isinstance(ops["c2"], Conv2d) and ops["c2"].padding == (1, 1) and ops["c2"].in_shape == (2, 6, 6)
    assert ops["sp"].mode is PoolMode.SUM and ops["sp"].out_shape == (2, 3, 3)
    assert ops["ap"].mode is PoolMode.AVG and ops["ap"].padding == (1, 1)
    assert isinstance(ops["fl"], Flatten) and ops["fl"].out_shape == (2, 9)
    assert isinstance(ops["c1"], Conv1d) and ops["c1"].padding == (0,) and ops["c1"].out_shape == (2, 4)
    assert isinstance(ops["lin"], Affine) and ops["lin"].bias is None
    assert isinstance(ops["sc"], Scale) and isinstance(ops["th"], Threshold)
    assert isinstance(ops["i"], LI) and np.all(ops["i"].beta == 1) and np.all(ops["i"].gain == 1)
    assert isinstance(ops["if"], IF) and np.all(ops["if"].gain == 1) and np.all(ops["if"].v_reset == -0.5)
    assert isinstance(ops["li"], LI) and np.allclose(ops["li"].beta, 0.9) and np.allclose(ops["li"].bias, 0.05)
    assert isinstance(ops["lif"], LIF) and np.allclose(ops["lif"].beta, 0.95) and np.all(ops["lif"].gain == 1)
    assert ops["lif"].reset is ResetMode.ZERO
    assert isinstance(ops["cli"], CubaLI) and np.allclose(ops["cli"].alpha, 0.8) and np.all(ops["cli"].gain_i == 1)
    assert isinstance(ops["clif"], CubaLIF) and np.all(ops["clif"].gain_v == 1)
    assert isinstance(ops["dl"], Delay) and ops["dl"].steps == 2
    res = run_float(r.graph, np.random.default_rng(0).random((10, 2, 2, 6, 6), dtype=np.float32))
    assert res.out.shape == (10, 2, n)


def test_dt_option_overrides_inference_and_scales_constants():
    n = 3
    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([n])),
               "lif": nir.LIF(tau=np.full(n, 1e-2), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n),
                              v_reset=np.zeros(n)),
               "output": nir.Output(np.array([n]))},
        edges=[("input", "lif"), ("lif", "output")],
    )
    r = import_graph(g, ImportOptions(dt=1e-3, reset=ResetMode.SUBTRACT))
    op = r.graph.nodes["lif"]
    assert r.report.dt_origin == "option" and r.graph.attrs.dt == 1e-3
    assert np.allclose(op.beta, 0.9) and np.allclose(op.gain, 0.1) and op.reset is ResetMode.SUBTRACT
    # r = 1 on every neuron: tau/r is no time step (Norse, SpikingJelly, Sinabs, Rockpool write r = 1)
    with pytest.raises(UserInputError, match="dt is not determined by this NIR file: every neuron has r = 1"):
        import_graph(g)


def test_scalar_neuron_parameters_take_the_input_shape():
    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([5])), "lif": nir.LIF(tau=np.array(1e-3), r=np.array(10.0),
               v_leak=np.array(0.0), v_threshold=np.array(1.0), v_reset=np.array(0.0)),
               "output": nir.Output(np.array([5]))},
        edges=[("input", "lif"), ("lif", "output")], type_check=False,
    )
    assert import_graph(g).graph.nodes["lif"].shape == (5,)


def test_inconsistent_tau_over_r_requires_dt():
    n = 2
    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([n])),
               "lif": nir.LIF(tau=np.array([1e-3, 5e-3]), r=np.ones(n), v_leak=np.zeros(n),
                              v_threshold=np.ones(n), v_reset=np.zeros(n)),
               "output": nir.Output(np.array([n]))},
        edges=[("input", "lif"), ("lif", "output")],
    )
    with pytest.raises(UserInputError, match="dt is not determined.*pass --dt SECONDS or --nir-source"):
        import_graph(g)
    g.nodes["lif"].r = np.array([10.0, 10.0])
    with pytest.raises(UserInputError, match="dt cannot be inferred: tau/r ranges.*pass --dt"):
        import_graph(g)


def test_names_are_sanitised():
    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([2])), "enc/fc 1": nir.Linear(np.eye(2, dtype=np.float32)),
               "output": nir.Output(np.array([2]))},
        edges=[("input", "enc/fc 1"), ("enc/fc 1", "output")],
    )
    r = import_graph(g)
    assert "enc_fc_1" in r.graph.nodes and any("renamed" in n for n in r.report.notes)


# ------------------------------------------------------------------------------------------
# Bad input: one line, names the problem and the fix
# ------------------------------------------------------------------------------------------
def _small_file(tmp_path, weight=None, name="ok.nir"):
    w = np.eye(3, dtype=np.float32) if weight is None else weight
    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([3])), "fc": nir.Affine(w, np.zeros(w.shape[0], np.float32)),
               "output": nir.Output(np.array([w.shape[0]]))},
        edges=[("input", "fc"), ("fc", "output")], type_check=False,
    )
    path = tmp_path / name
    nir.write(str(path), g)
    return path


def _one_line_error(path, match, **opts):
    with pytest.raises(UserInputError, match=match) as err:
        load(str(path), ImportOptions(**opts))
    assert "\n" not in str(err.value)
    return str(err.value)


def test_truncated_hdf5(tmp_path):
    path = _small_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _one_line_error(path, "cannot read NIR file .*truncated, corrupt")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.nir"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _one_line_error(path, "is not an HDF5 file")


def test_missing_file(tmp_path):
    _one_line_error(tmp_path / "absent.nir", "does not exist")


def test_unknown_node_type(tmp_path):
    path = _small_file(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["node/nodes/fc/type"]
        f["node/nodes/fc"].create_dataset("type", data="Sigmoid", dtype=h5py.string_dtype())
    _one_line_error(path, "NIR node 'fc' has unknown type 'Sigmoid'; supported types: IF")


def test_mismatched_shapes(tmp_path):
    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([3])), "a": nir.Linear(np.ones((4, 3), np.float32)),
               "b": nir.Linear(np.ones((2, 5), np.float32)), "output": nir.Output(np.array([2]))},
        edges=[("input", "a"), ("a", "b"), ("b", "output")], type_check=False,
    )
    nir.write(str(tmp_path / "shape.nir"), g)
    _one_line_error(tmp_path / "shape.nir", "shape mismatch, 'a' produces \\(4,\\) but 'b' expects \\(5,\\)")


def test_nan_weights(tmp_path):
    w = np.eye(3, dtype=np.float32)
    w[1, 1] = np.nan
    path = _small_file(tmp_path, w, "nan.nir")
    _one_line_error(path, "parameter 'weight' contains NaN.*finite")


def test_batch_dim_in_input_type_gets_a_hint():
    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([1, 3])), "fc": nir.Linear(np.ones((2, 3), np.float32)),
               "output": nir.Output(np.array([2]))},
        edges=[("input", "fc"), ("fc", "output")], type_check=False,
    )
    with pytest.raises(UserInputError, match="include a batch or time dim: re-export without it, or pass --nir-source"):
        import_graph(g)
    # under a named source the exporter's quirk is undone and recorded
    r = import_graph(g, ImportOptions(nir_source="snntorch"))
    assert r.graph.nodes["input"].shape == (3,)
    assert any("(1, 3) -> (3,): export_to_nir without ignore_dims=[0]" in c for c in r.report.conventions)


def test_dt_larger_than_tau_is_rejected():
    n = 2
    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([n])),
               "lif": nir.LIF(tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                              v_reset=np.zeros(n)),
               "output": nir.Output(np.array([n]))},
        edges=[("input", "lif"), ("lif", "output")],
    )
    with pytest.raises(UserInputError, match="dt = 0.01 s is larger than .* of node 'lif'.*smaller --dt"):
        import_graph(g, ImportOptions(dt=1e-2))


def test_missing_weight_dataset(tmp_path):
    path = _small_file(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["node/nodes/fc/weight"]
    _one_line_error(path, "cannot read NIR file")


def test_registry_entry():
    assert registry.resolve(registry.FRONTENDS[".nir"]) is load


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_large_snntorch_file_sweep(tmp_path, seed):
    """784-256-128-10, per-neuron beta in [0.5, 1), default subtract reset (NIR notes §3)."""
    torch.manual_seed(seed)
    sizes = [784, 256, 128, 10]
    layers = []
    for k, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(a, b), snn.Leaky(beta=vec(b, 0.5, 1.0, 100 * seed + k), threshold=torch.ones(b))]
    net = nn.Sequential(*layers)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(3)
    path = export_snntorch(net, torch.zeros(1, 784), tmp_path / "big.nir")
    result = load(path, ImportOptions(reset=ResetMode.SUBTRACT_DEFERRED))
    check_same(net, spikes_in(100, 16, 784, p=0.2, seed=seed), result)


def test_beta_recovered_exactly_from_float32_tau():
    from rsnn_compiler.frontends._common import decay_from_tau

    beta = np.random.default_rng(0).uniform(0.5, 1.0, 50000).astype(np.float32)
    tau = (np.float32(1e-4) / (np.float32(1) - beta)).astype(np.float32)  # snnTorch's export formula
    assert np.array_equal(decay_from_tau(tau, 1e-4), beta)
    assert decay_from_tau(np.array([np.inf], np.float32), 1e-4).tolist() == [1.0]
