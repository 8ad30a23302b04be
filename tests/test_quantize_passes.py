"""quantize_weights + quantize_state: pipeline contract, exactness of the grid, float -> fixed fidelity."""

from __future__ import annotations

import numpy as np
import pytest

from rsnn_compiler.pass_options import QuantizeOptions
from rsnn_compiler.precision import parse_precision
from rsnn_compiler.errors import PipelineError, UserInputError
from rsnn_compiler.examples import example_inputs, recurrent_example
from rsnn_compiler.fixed import arith
from rsnn_compiler.interpreter import run_fixed, run_float
from rsnn_compiler.ir import (
    ALIF, IF, LI, LIF, Affine, Conv1d, CubaLIF, Domain, FixedDense, Flatten, GraphBuilder, Input,
    Output, Pool, PoolMode, ResetMode, broadcast_params, load_graph, save_graph, verify,
)
from rsnn_compiler.ir.conversion_ops import DualThresholdIF, MultiThreshold
from rsnn_compiler.pass_manager import SkippedStep, run_pipeline
from rsnn_compiler.passes.quant_common import spike_stats
from rsnn_compiler.passes.quantize_state import QuantizeState
from rsnn_compiler.passes.quantize_weights import QuantizeWeights
from rsnn_compiler.passes_api import PassContext, Prop
from rsnn_compiler.registry import get_pass

PRUNE_SKIPPED = SkippedStep("prune", "pruning off", frozenset({Prop.PRUNED}))


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The float interpreter runs tiny torch ops; extra threads only contend on a busy CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def quantize(graph, profile, calib_x=None, calib_y=None, per_channel=True, **widths):
    """``widths``: PrecisionOptions keys (weight_bits, state_bits, ...)."""
    options = [QuantizeOptions(per_channel=per_channel), parse_precision(widths, "test")]
    ctx = PassContext(calib_x=calib_x, calib_y=calib_y, profile=profile, options=options, verify_each=True)
    fixed, reports = run_pipeline(graph, [PRUNE_SKIPPED, "quantize_weights", "quantize_state"], ctx)
    return fixed, reports[1], reports[2]


def test_registered_and_contract():
    assert isinstance(get_pass("quantize_weights"), QuantizeWeights)
    assert isinstance(get_pass("quantize_state"), QuantizeState)
    g = recurrent_example()
    ctx = PassContext(profile="fpga")
    with pytest.raises(PipelineError, match="prune"):
        run_pipeline(g, ["quantize_weights", "quantize_state", PRUNE_SKIPPED], ctx)
    with pytest.raises(PipelineError, match="pruned"):
        QuantizeState().run(g, ctx)
    with pytest.raises(PipelineError, match="pruned"):
        QuantizeWeights().run(g, ctx)
    pruned = g.with_attrs(properties=g.attrs.properties | {Prop.PRUNED})
    with pytest.raises(PipelineError, match="quantize_weights"):
        QuantizeState().run(pruned, ctx)
    before = pruned.nodes["fc_in"].weight.copy()
    QuantizeWeights().run(pruned, ctx)
    assert np.array_equal(pruned.nodes["fc_in"].weight, before)  # input untouched


@pytest.mark.parametrize("profile", ["loihi2", "fpga"])
def test_example_network_keeps_spikes_and_predictions(profile, tmp_path):
    g = recurrent_example()
    x = example_inputs()
    fixed, wrep, srep = quantize(g, profile, calib_x=x)
    assert fixed.attrs.domain is Domain.FIXED and fixed.attrs.profile == profile
    assert Prop.QUANTIZED in fixed.attrs.properties and verify(fixed) == []
    ref, got = run_float(g, x), run_fixed(fixed, x)
    stats = spike_stats(ref, got)
    assert stats["spike_agreement"] > 0.9 and stats["spike_recall"] > 0.8, stats
    pred_ref = ref.out.sum(0).argmax(-1)
    pred_fix = got.out.sum(0).argmax(-1)
    assert np.mean(pred_ref == pred_fix) >= 0.8
    # reports carry the numbers
    assert wrep.min_sqnr_db > 30 and 0.0 <= wrep.clipped_fraction <= 0.01
    assert len(wrep.layers) == 3 and wrep.spike_agreement > 0.9
    assert srep.spike_agreement > 0.9 and srep.input["bits"] == 1
    assert all("/" in k for k in srep.overflow_events)
    assert srep.to_json()["metrics"]["layers"][0]["node"] == "lif"
    save_graph(fixed, tmp_path / "f.rsnn")
    assert np.array_equal(run_fixed(load_graph(tmp_path / "f.rsnn"), x).out, got.out)


def test_loihi2_weights_are_lava_exact_and_grid_is_not_rounded_twice():
    g = recurrent_example().with_attrs(properties=frozenset({Prop.PRUNED}))
    ctx = PassContext(profile="loihi2")
    snapped, _ = QuantizeWeights().run(g, ctx)
    again, rep = QuantizeWeights().run(snapped, ctx)
    assert all(np.array_equal(snapped.nodes[n].weight, again.nodes[n].weight) for n in ("fc_in", "w_rec"))
    assert rep.min_sqnr_db == float("inf")
    fixed, srep = QuantizeState().run(snapped.with_attrs(properties=frozenset({Prop.PRUNED, Prop.WEIGHTS_QUANTIZED})), ctx)
    k = {layer["node"]: layer["log2_scale"] for layer in srep.layers}["lif"]
    sigma = {"fc_in": fixed.nodes["input.q"].shift, "w_rec": 0}  # log2 of the input scale
    for name in ("fc_in", "w_rec"):
        op = fixed.nodes[name]
        assert isinstance(op, FixedDense) and arith.loihi_weights_exact(op.weight, op.weight_bits)
        assert len(set(op.weight_exp.tolist())) == 1
        # mantissa * 2^(e + 6) * sigma_in / S reproduces the snapped float weight exactly
        back = op.weight * 2.0 ** (op.weight_exp[:, None] + 6 + sigma[name] - k)
        assert np.array_equal(back.astype(np.float32), snapped.nodes[name].weight)


def _zoo_graph(analog: bool):
    """conv1d -> sum pool -> flatten -> CubaLIF (gain != 1) -> ALIF -> IF -> dual IF -> MTN -> LI."""
    rng = np.random.default_rng(3)
    b = GraphBuilder("zoo")
    b.add("in", Input(shape=(2, 8)))
    b.add("conv", Conv1d(weight=rng.normal(0, 0.5, (3, 2, 3)), bias=np.zeros(3), input_shape=(2, 8), padding=1))
    b.add("cn", LIF(**broadcast_params((3, 8), beta=0.9, gain=1.0, bias=0.0, theta=1.0, v_reset=0.0, v_init=0.0)))
    b.add("pool", Pool(mode=PoolMode.SUM, kernel=2, stride=2, input_shape=(3, 8)))
    b.add("flat", Flatten(input_shape=(3, 4)))
    n = 10
    b.add("fc1", Affine(weight=rng.normal(0, 0.6, (n, 12)), bias=rng.normal(0, 0.05, n)))
    b.add("cuba", CubaLIF(**broadcast_params((n,), alpha=0.8, beta=0.9, gain_i=0.5, gain_v=2.0, bias=0.01,
                                             theta=1.0, v_reset=0.0, v_init=0.0), reset=ResetMode.SUBTRACT))
    b.add("fc2", Affine(weight=rng.normal(0, 0.6, (n, n))))
    b.add("alif", ALIF(**broadcast_params((n,), beta=0.95, gain=1.0, bias=0.0, theta=0.8, rho=0.9, kappa=0.2,
                                          v_reset=0.0, v_init=0.0), reset=ResetMode.ZERO))
    b.add("rec", Affine(weight=rng.normal(0, 0.2, (n, n))))
    b.add("fc3", Affine(weight=rng.normal(0, 0.8, (n, n))))
    b.add("if", IF(**broadcast_params((n,), gain=1.0, bias=0.0, theta=1.0, v_reset=0.0, v_init=0.5),
                   reset=ResetMode.SUBTRACT, comparator="ge"))
    b.add("fc4", Affine(weight=rng.normal(0, 0.8, (n, n))))
    b.add("dual", DualThresholdIF(bias=np.zeros(n), theta=np.ones(n), theta_neg=np.zeros(n), v_init=np.full(n, 0.5)))
    b.add("fc5", Affine(weight=rng.normal(0, 0.8, (n, n))))
    b.add("mtn", MultiThreshold(bias=np.zeros(n), theta=np.full(n, 0.5), v_init=np.full(n, 0.25), levels=3,
                                reset=ResetMode.SUBTRACT))
    b.add("fc6", Affine(weight=rng.normal(0, 0.5, (4, n))))
    b.add("li", LI(**broadcast_params((4,), beta=0.8, gain=1.0, bias=0.0, v_init=0.0)))
    b.add("out", Output(shape=(4,)))
    b.chain("in", "conv", "cn", "pool", "flat", "fc1", "cuba", "fc2", "alif", "fc3", "if", "fc4", "dual",
            "fc5", "mtn", "fc6", "li", "out")
    b.connect("alif", "rec", 1)
    b.connect("rec", "alif")
    g = b.build().with_attrs(properties=frozenset({Prop.DISCRETIZED}))
    x = rng.normal(0, 1.0, (30, 6, 2, 8)) if analog else (rng.random((30, 6, 2, 8)) < 0.4).astype(np.float32)
    return g, x.astype(np.float32)


@pytest.mark.parametrize("profile", ["loihi2", "fpga"])
@pytest.mark.parametrize("analog", [False, True])
def test_every_neuron_kind_quantizes(profile, analog):
    g, x = _zoo_graph(analog)
    assert verify(g) == []
    fixed, _, srep = quantize(g, profile, calib_x=x)
    assert verify(fixed) == []
    kinds = {type(op).__name__ for op in fixed.nodes.values()}
    assert {"FixedLIF", "FixedALIF", "FixedDualIF", "FixedMultiThreshold", "FixedLI", "Quantize"} <= kinds
    assert ("FixedConv1d" in kinds)
    q = fixed.nodes["in.q"]
    assert (q.bits, q.signed) == ((8, True) if analog else (1, False))
    ref, got = run_float(g, x), run_fixed(fixed, x)
    stats = spike_stats(ref, got)
    assert stats["spike_agreement"] > 0.75, (stats, srep.overflow_events)
    assert got.states["c/dual"].min() >= 0


def test_trained_ish_lif_classifier_keeps_accuracy():
    """Rate-coded 4-class task: random LIF hidden layer, readout fitted by ridge regression."""
    rng = np.random.default_rng(7)
    n_in, n_h, classes, steps, batch = 20, 32, 4, 30, 96
    templates = rng.random((classes, n_in)) < 0.3
    y = rng.integers(0, classes, batch)
    rates = 0.05 + 0.4 * templates[y]
    x = (rng.random((steps, batch, n_in)) < rates[None]).astype(np.float32)
    w1 = rng.normal(0.1, 0.5, (n_h, n_in))

    def build(w2):
        b = GraphBuilder("clf")
        b.add("in", Input(shape=(n_in,)))
        b.add("fc1", Affine(weight=w1, bias=np.full(n_h, 0.02)))
        b.add("h", LIF(**broadcast_params((n_h,), beta=0.9, gain=1.0, bias=0.0, theta=1.0, v_reset=0.0,
                                          v_init=0.0), reset=ResetMode.SUBTRACT_DEFERRED))
        b.add("fc2", Affine(weight=w2))
        b.add("o", LI(**broadcast_params((classes,), beta=0.9, gain=1.0, bias=0.0, v_init=0.0)))
        b.add("out", Output(shape=(classes,)))
        b.chain("in", "fc1", "h", "fc2", "o", "out")
        return b.build().with_attrs(properties=frozenset({Prop.DISCRETIZED}))

    counts = run_float(build(np.zeros((classes, n_h))), x).spikes["h"].sum(0)
    target = np.eye(classes)[y] - 1.0 / classes
    w2 = np.linalg.solve(counts.T @ counts + 1.0 * np.eye(n_h), counts.T @ target).T
    g = build(w2)
    ref = run_float(g, x)
    acc_float = float(np.mean(ref.out.sum(0).argmax(-1) == y))
    assert acc_float > 0.8
    for profile in ("loihi2", "fpga"):
        fixed, wrep, srep = quantize(g, profile, calib_x=x, calib_y=y)
        got = run_fixed(fixed, x)
        acc_fixed = float(np.mean(got.out.sum(0).argmax(-1) == y))
        assert acc_fixed >= acc_float - 0.05, (profile, acc_float, acc_fixed)
        stats = spike_stats(ref, got)
        assert stats["spike_recall"] > 0.85 and stats["spike_agreement"] > 0.9, (profile, stats)
        assert srep.accuracy_fixed == pytest.approx(100 * acc_fixed)  # percent
        assert wrep.accuracy_before == pytest.approx(100 * acc_float)
        assert srep.accuracy_data == wrep.accuracy_data == f"calibration data ({x.shape[1]} samples)"


def test_without_calibration_data_and_bad_inputs():
    g = recurrent_example()
    fixed, wrep, srep = quantize(g, "fpga")
    assert verify(fixed) == [] and wrep.spike_agreement is None
    assert "assumed" in srep.input["from"]
    run_fixed(fixed, example_inputs())
    bad = g.with_node("fc_in", Pool(mode=PoolMode.AVG, kernel=1, stride=1, input_shape=(8, 1)))
    with pytest.raises(Exception):
        quantize(bad, "fpga")
    with pytest.raises(UserInputError, match="profile"):
        quantize(g, "tpu")


def test_fpga_options_per_layer_and_widths():
    g = recurrent_example()
    x = example_inputs()
    fixed, wrep, _ = quantize(g, "fpga", calib_x=x, per_channel=False, weight_bits=6, state_bits=20,
                              acc_bits=24, state_overflow="wrap")
    assert all(isinstance(layer["exponent"], list) and len(set(layer["exponent"])) == 1 for layer in wrep.layers)
    fc = fixed.nodes["fc_in"]
    assert len(set(fc.weight_exp.tolist())) == 1 and np.abs(fc.weight).max() <= 31
    assert fc.weight_bits == 6 and fc.acc_bits == 24
    lif = fixed.nodes["lif"]
    assert lif.v_bits == 20 and lif.v_overflow.value == "wrap"
    assert verify(fixed) == []


@pytest.mark.parametrize("profile", ["loihi2", "fpga"])
def test_linear_readout_and_shared_synapse(profile):
    rng = np.random.default_rng(0)

    def build(shared: bool):
        b = GraphBuilder("lin")
        b.add("in", Input(shape=(6,)))
        b.add("fc1", Affine(weight=rng.normal(0, 0.8, (8, 6))))
        b.add("h", LIF(**broadcast_params((8,), beta=0.9, gain=2.0, bias=0.0, theta=1.0, v_reset=0.0,
                                          v_init=0.0)))
        b.add("fc2", Affine(weight=rng.normal(0, 0.5, (3, 8)), bias=np.array([0.5, 0.0, -0.5])))
        b.add("out", Output(shape=(3,)))
        b.chain("in", "fc1", "h", "fc2", "out")
        if shared:  # fc1 also feeds a second population
            b.add("h2", LIF(**broadcast_params((8,), beta=0.5, gain=1.0, bias=0.0, theta=3.0, v_reset=0.0,
                                               v_init=0.0)))
            b.connect("fc1", "h2")
            b.add("fc3", Affine(weight=np.zeros((3, 8))))
            b.chain("h2", "fc3", "out")
        return b.build().with_attrs(properties=frozenset({Prop.DISCRETIZED}))

    g = build(False)
    x = (rng.random((20, 8, 6)) < 0.5).astype(np.float32)
    fixed, wrep, srep = quantize(g, profile, calib_x=x)
    assert wrep.gains_folded == 1 and verify(fixed) == []
    ref, got = run_float(g, x), run_fixed(fixed, x)
    assert spike_stats(ref, got)["spike_agreement"] > 0.95
    if profile == "fpga":  # linear readout: integer output proportional to the float one
        corr = np.corrcoef(ref.out.reshape(-1), got.out.reshape(-1).astype(float))[0, 1]
        assert corr > 0.95
    else:
        assert any("bias was dropped" in n for n in srep.notes)
    with pytest.raises(UserInputError, match="feeds several nodes"):
        quantize(build(True), profile)


@pytest.mark.parametrize("profile", ["loihi2", "fpga"])
def test_golden_quantized_example(profile):
    """Text form of the quantized example (no calibration data: fully deterministic).
    Regenerate deliberately with RSNNC_UPDATE_GOLDEN=1."""
    import os
    from pathlib import Path

    from rsnn_compiler.ir import to_text

    fixed, _, _ = quantize(recurrent_example(), profile)
    text = to_text(fixed)
    golden = Path(__file__).parent / "golden" / f"example_recurrent_{profile}.txt"
    if os.environ.get("RSNNC_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()
