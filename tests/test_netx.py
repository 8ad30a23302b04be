"""netx export against the real lava-dl: every exported file is loaded with lava-dl 0.6.0's
``netx.hdf5.Network`` in the Lava environment, run in Lava ``fixed_pt`` (backends/lava/netx_runner.py)
and compared with the loihi2 interpreter on every layer's spikes, u and v after the stage shift.

Tests marked ``lava`` need the Python 3.10 environment with lava-dl (``scripts/setup_lava.sh``):
without it they skip locally and fail when ``CI`` is set.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from rsnn_compiler.pass_options import RetargetStockOptions
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed import arith
from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.interpreter.fixed_interp import run_fixed
from rsnn_compiler.ir import (
    Domain, FixedConv1d, FixedConv2d, FixedDense, FixedLIF, Flatten, GraphBuilder, Input, Output,
    Quantize, ResetMode, verify,
)
from rsnn_compiler.ir.fixed_ops import make_neuron
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.backends.lava import env as lava_env
from rsnn_compiler.backends.lava.executor import host_inputs
from rsnn_compiler.backends.lava.netx_export import export, plan_netx
from rsnn_compiler.backends.lava.netx_format import netx_dense_weights

REPO = Path(__file__).resolve().parents[1]
STEPS, BATCH = 30, 1  # netx runs one sample per Lava run


def dense(w: np.ndarray, e: int) -> FixedDense:
    return FixedDense(weight=w, weight_exp=np.full(w.shape[0], e), weight_bits=8, acc_bits=32,
                      acc_overflow=Overflow.WRAP)


def _weights(r, shape, mode: str, e: int) -> tuple[np.ndarray, int]:
    """Lava-exact mantissas whose integer weights W = M * 2^e stay inside netx's range."""
    lim = 254 >> max(e, 0)
    w = r.integers(-lim, lim + 1, shape) * (r.random(shape) < 0.7)
    w = np.abs(w) if mode == "exc" else -np.abs(w) if mode == "inh" else w
    if mode == "inh":
        w[0, 0] = min(w[0, 0], -2)  # no all-zero matrix
    if e < 0:  # a negative exponent is exact for netx when M is a multiple of 2^-e
        w = (w >> -e) << -e
    return arith.loihi_weight_quantize(w, 8), e


def chain_graph(seed: int, layers: int = 2, recurrent: bool = True, graded: bool = False,
                delays: bool = False) -> Graph:
    """Input [-> Quantize] -> [dense (+ recurrent) -> CUBA LIF] x layers, inside netx's subset
    (biases multiples of 64 that cannot fire a layer before its input arrives; a draw whose
    weights netx would change is redrawn)."""
    for attempt in range(50):
        g = _chain_graph(np.random.default_rng([seed, attempt]), f"netx{seed}", layers, recurrent,
                         graded, delays)
        if not plan_netx(g).diagnostics:
            return g
    raise AssertionError(f"no netx-exportable draw for seed {seed}")


def _chain_graph(r, name: str, layers: int, recurrent: bool, graded: bool, delays: bool) -> Graph:
    seed = int(r.integers(0, 2))
    n_in = int(r.integers(3, 8))
    b = GraphBuilder(name)
    b.add("in", Input(shape=(n_in,)))
    b.add("q", Quantize(shape=(n_in,), shift=3 if graded else 0, bits=8 if graded else 1,
                        signed=graded))
    b.connect("in", "q")
    prev, n_prev = "q", n_in
    for k in range(layers):
        n = int(r.integers(3, 9))
        w, e = _weights(r, (n, n_prev), str(r.choice(["mixed", "exc", "inh"] if k else ["mixed", "exc"])),
                        int(r.choice([0, 0, 1, 2, -1])))
        b.add(f"fc{k}", dense(w, e))
        rec = recurrent and (k % 2 == 0 or seed % 2)
        delay = int(r.choice([0, 1, 3])) if delays and not rec else 0
        b.connect(prev, f"fc{k}", delay)
        vth = int(r.integers(20, 150))
        bias = r.integers(-vth // 4, vth // 4 + 1, n) if not delays else np.zeros(n, np.int64)
        b.add(f"n{k}", make_neuron(FixedLIF, (n,), du=int(r.choice([0, 100, 4095])),
                                   dv=int(r.choice([0, 300, 4095])), vth=vth, bias_mant=bias, bias_exp=6))
        b.connect(f"fc{k}", f"n{k}")
        if rec:
            wr, er = _weights(r, (n, n), "mixed", int(r.choice([0, 1])))
            b.add(f"rec{k}", dense(wr, er))
            b.connect(f"n{k}", f"rec{k}", 1)
            b.connect(f"rec{k}", f"n{k}")
        prev, n_prev = f"n{k}", n
    b.add("out", Output(shape=(n_prev,)))
    b.connect(prev, "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="loihi2")
    assert not verify(g)
    return g


def conv_graph(seed: int, one_d: bool = False) -> Graph:
    """(1-D or 2-D) conv -> LIF -> flatten -> dense -> LIF, binary input."""
    r = np.random.default_rng(seed)
    b = GraphBuilder(f"netxconv{seed}")
    if one_d:
        shape = (2, 9)
        conv = FixedConv1d(weight=r.integers(-256, 256, (3, 2, 3)), weight_exp=np.zeros(3),
                           input_shape=shape, stride=2, padding=1, acc_bits=24,
                           acc_overflow=Overflow.WRAP, weight_bits=8)
    else:
        shape = (2, 5, 6)
        conv = FixedConv2d(weight=r.integers(-256, 256, (3, 2, 3, 2)), weight_exp=np.zeros(3),
                           input_shape=shape, stride=(1, 2), padding=(1, 0), acc_bits=24,
                           acc_overflow=Overflow.WRAP, weight_bits=8)
    b.add("in", Input(shape=shape))
    b.add("conv", conv)
    b.add("flat", Flatten(input_shape=conv.out_shape))
    n0 = int(np.prod(conv.out_shape))
    vth = int(r.integers(100, 400))
    b.add("n0", make_neuron(FixedLIF, (n0,), du=300, dv=100, vth=vth,
                            bias_mant=np.repeat(r.integers(-vth // 4, vth // 4, 3), n0 // 3), bias_exp=6))
    w1, e1 = _weights(r, (4, n0), "mixed", 1)
    b.add("fc1", dense(w1, e1))
    b.add("n1", make_neuron(FixedLIF, (4,), du=4095, dv=50, vth=100, bias_mant=8, bias_exp=6))
    b.add("out", Output(shape=(4,)))
    b.chain("in", "conv", "flat", "n0", "fc1", "n1", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="loihi2")
    assert not verify(g)
    return g


def cases() -> list[tuple[str, Graph]]:
    out = [(f"chain{s}", chain_graph(s, layers=1 + s % 3, recurrent=s % 4 != 3, graded=s % 2 == 1))
           for s in range(6)]
    out += [("delays", chain_graph(10, layers=3, recurrent=False, delays=True)),
            ("conv2d", conv_graph(1)), ("conv1d", conv_graph(2, one_d=True))]
    return out


def inputs(g: Graph, seed: int) -> np.ndarray:
    shape = g.nodes[g.input_name].shape
    r = np.random.default_rng(seed)
    q = next((op for op in g.nodes.values() if isinstance(op, Quantize)), None)
    if q is not None and q.bits > 1:
        return r.normal(0, 4, (STEPS, BATCH, *shape))
    return (r.random((STEPS, BATCH, *shape)) < 0.5).astype(np.int64)


def compare_with_netx(items, folder: Path, python: Path) -> int:
    """Export each (name, graph, x), run all files with netx, compare every layer; spikes seen."""
    jobs, plans = [], []
    for name, g, x in items:
        path = folder / f"{name}.net"
        export(g, path)
        plan = plan_netx(g)
        q = next((n for n, op in g.nodes.items() if isinstance(op, Quantize)), None)
        x_int = host_inputs(g, {"quantize": q}, x)
        steps = x.shape[0] + max(layer.stage for layer in plan.layers)
        jobs.append(lava_env.NetxJob(path, x_int.reshape(*x.shape[:2], -1), steps,
                                     reset_interval=steps if plan.needs_reset else None,
                                     reset_offset=1 if plan.needs_reset else 0,
                                     input_message_bits=plan.input_message_bits))
        plans.append(plan)
    results = lava_env.run_netx(jobs, python=python, timeout=900)
    spikes = 0
    for (name, g, x), plan, got in zip(items, plans, results):
        ref = run_fixed(g, x).to_npz_dict()
        steps, batch = x.shape[:2]
        for layer, index in zip(plan.layers, plan.file_indices()):
            s = layer.stage
            for key, ref_key in (("spikes", "spikes"), ("u", "i"), ("v", "v")):
                want = ref[f"{ref_key}/{layer.node}"].reshape(steps, batch, -1)
                have = got[f"{key}/{index}"][s:s + steps]
                bad = np.argwhere(have != want)
                assert bad.size == 0, (f"{name} {layer.node} {key}: {len(bad)} differences, first at"
                                       f" (step, sample, neuron) {tuple(bad[0])}")
            spikes += int(ref[f"spikes/{layer.node}"].sum())
    return spikes


@pytest.mark.lava
def test_real_netx_runs_every_export_like_the_interpreter(tmp_path, netx_python):
    items = [(name, g, inputs(g, k)) for k, (name, g) in enumerate(cases())]
    plans = {name: plan_netx(g) for name, g, _ in items}
    assert sum(p.needs_reset for p in plans.values()) >= 3  # biased layers after stage 0
    assert any(p.input_message_bits for p in plans.values())  # graded input
    assert any(layer.delay for p in plans.values() for layer in p.layers)
    assert any(layer.weight_rec is not None for p in plans.values() for layer in p.layers)
    assert compare_with_netx(items, tmp_path, netx_python) > 100


# --------------------------------------------------------------------------------------------
# What netx cannot express is refused with the reason (no Lava needed)
# --------------------------------------------------------------------------------------------


def test_netx_weight_path_facts():
    """netx's optimizer + Lava's quantization keep 8-bit mixed/excitatory matrices, odd mixed
    weights (9 bits), and lose an inhibitory matrix whose scaling overflows Lava's -255."""
    def lossless(w, w_rec=None):
        return all(d.lossless for d in netx_dense_weights(np.array(w), w_rec))

    assert lossless([[254, -256], [2, 0]]) and lossless([[3, -5], [7, 1]]) and lossless([[255, 0], [1, 3]])
    assert not lossless([[-128, 0], [-64, -128]])
    assert not lossless([[300, -2]])  # clipped to 254
    with pytest.raises(ValueError, match="all-zero"):
        netx_dense_weights(np.zeros((2, 2)))
    # dense_rec: one 9-bit setting for both synapses zeroes the all-positive one in Lava
    with pytest.raises(ValueError, match="negative count"):
        netx_dense_weights(np.array([[201, 3]]), np.array([[-1]]))


def test_outside_the_subset_lists_every_reason():
    g = chain_graph(1, layers=2)
    op = g.nodes["n1"]
    g = g.with_node("n1", op.replace(reset=ResetMode.SUBTRACT, dv=np.arange(op.shape[0])))
    fc0 = g.nodes["fc0"]
    g = g.with_node("fc0", fc0.replace(weight=fc0.weight | 2, weight_exp=np.full(fc0.weight.shape[0], -2)))
    g = g.with_node("n0", g.nodes["n0"].replace(bias_mant=np.full(g.nodes["n0"].shape, 100),
                                                 bias_exp=np.zeros(g.nodes["n0"].shape)))
    problems = " | ".join(d.problem for d in plan_netx(g).diagnostics)
    assert "weight_exp -2 floors" in problems and "reset 'subtract'" in problems
    assert "per-neuron dv" in problems and "not a multiple of 64" in problems
    with pytest.raises(UserInputError, match="netx export"):
        export(g, "/nonexistent.net")


def test_bias_that_fires_before_the_input_arrives_is_refused():
    g = chain_graph(3, layers=2, recurrent=True)
    op = g.nodes["n1"]
    g = g.with_node("n1", op.replace(bias_mant=np.full(op.shape, int(op.vth.flat[0]) + 1)))
    problems = [d.problem for d in plan_netx(g).diagnostics]
    assert any("fires from its bias alone" in p for p in problems), problems


def test_netx_layout(tmp_path):
    g = conv_graph(1)
    how = export(g, tmp_path / "c.net")
    assert "reset_interval" in how and "reset_offset=1" in how
    with h5py.File(tmp_path / "c.net") as f:
        assert [f[f"layer/{i}/type"][()] for i in range(4)] == [b"input", b"conv", b"flatten", b"dense"]
        assert list(f["layer/1/shape"][()]) == [3, 5, 3] and list(f["layer/1/stride"][()]) == [1, 2]
        assert f["layer/1/bias"].shape == (3, 5, 3)  # netx's (x, y, c) layout
        for key in ("iDecay", "vDecay", "vThMant", "refDelay", "gradedSpike"):
            assert key in f["layer/3/neuron"]
        assert f["rsnnc/reset_offset"][()] == 1 and f["rsnnc/input_message_bits"][()] == 24


def test_cli_export_refuses_with_one_line(tmp_path, capsys):
    from rsnn_compiler.cli.main import main

    model = REPO / "models" / "example" / "recurrent.rsnn"
    assert main(["build", str(model), "--target", "lava", "-o", str(tmp_path / "b"), "-q"]) == 0
    capsys.readouterr()
    code = main(["export", str(tmp_path / "b"), "--format", "netx", "-o", str(tmp_path / "m.net")])
    err = capsys.readouterr().err
    # the example uses snnTorch's deferred subtract reset: outside what netx expresses
    assert code == 2 and "netx export" in err and "subtract_deferred" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.lava
def test_bundled_model_on_stock_neurons_exports_to_netx(tmp_path, netx_python):
    """models/rleaky_mnist1d retargeted to stock neurons (--stock-neurons netx, no fine-tune here:
    equality does not need accuracy): every population on Lava's stock LIF, the lava target
    validates, and the netx export runs in the real netx exactly like the interpreter."""
    from rsnn_compiler.build import BuildOptions, build
    from rsnn_compiler.executors import load_build_graph
    from rsnn_compiler.validate import validate

    model = REPO / "models" / "rleaky_mnist1d"
    with np.load(model / "data.npz") as z:
        x, y = z["x"][:, :3], z["y"][:3]
        np.savez(tmp_path / "calib.npz", x=z["x"][:, :32], y=z["y"][:32])
    out = tmp_path / "stock"
    result = build("models.rleaky_mnist1d.model:build", out, BuildOptions(
        targets=("lava",), weights=str(model / "weights.pt"), calib=str(tmp_path / "calib.npz"),
        stock=RetargetStockOptions(mode="netx", finetune_epochs=0), accept_accuracy_loss=True))
    art = result.manifest["targets"]["lava"]
    assert "0 custom" in art["summary"] and all("stock Lava LIF" in line for line in art["details"])
    report = validate(out, result.manifest, x, y)
    assert report.ok, report.problems
    [lava] = [c for c in report.executors if c.executor == "lava"]
    parts = {p.part: p for p in lava.parts}
    assert parts["stock Lava processes"].status == "equal" and not parts["custom processes"].nodes
    g = load_build_graph(out, result.manifest, "loihi2")
    assert compare_with_netx([("rleaky_stock", g, x)], tmp_path, netx_python) > 50


@pytest.mark.lava
def test_netx_weight_widths_and_integer_finetune_run_in_netx(tmp_path, netx_python):
    """--stock-neurons netx with --weight-bits 6 (Lava num_weight_bits on integer weights), then
    `rsnnc finetune` on separate training samples: the widths and netx's integer weights survive
    the fine-tune, and the tuned export runs in the real netx exactly like the interpreter."""
    from rsnn_compiler.build import BuildOptions, build
    from rsnn_compiler.cli.main import main
    from rsnn_compiler.ir.fixed_ops import FixedDense
    from rsnn_compiler.ir import load_graph
    from rsnn_compiler.precision import parse_precision

    model = REPO / "models" / "rleaky_mnist1d"
    with np.load(model / "data.npz") as z:
        x = z["x"][:, :3]
        np.savez(tmp_path / "calib.npz", x=z["x"][:, :32], y=z["y"][:32])
        np.savez(tmp_path / "train.npz", x=z["x"][:, 32:96], y=z["y"][32:96])
    out, tuned = tmp_path / "stock6", tmp_path / "stock6-tuned"
    build("models.rleaky_mnist1d.model:build", out, BuildOptions(
        targets=("lava",), weights=str(model / "weights.pt"), calib=str(tmp_path / "calib.npz"),
        stock=RetargetStockOptions(mode="netx", finetune_epochs=0),
        precision=parse_precision({"weight_bits": 6}, "test"), accept_accuracy_loss=True))
    assert main(["finetune", str(out), "--data", str(tmp_path / "train.npz"), "--epochs", "1", "--lr", "0.05",
                 "--accept-accuracy-loss", "-o", str(tuned), "-q"]) == 0
    before = load_graph(out / "graph.loihi2.rsnn")
    g = load_graph(tuned / "graph.loihi2.rsnn")
    dense = {n: op for n, op in g.nodes.items() if isinstance(op, FixedDense)}
    assert dense and all(op.weight_bits == 6 and arith.loihi_weights_exact(op.weight, 6)
                         and not np.any(op.weight_exp) for op in dense.values())
    assert any(np.any(op.weight != before.nodes[n].weight) for n, op in dense.items())  # it did train
    assert compare_with_netx([("rleaky_stock6", g, x)], tmp_path, netx_python) > 50
