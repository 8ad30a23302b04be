"""snnTorch/PyTorch importer: run_float reproduces snnTorch spike for spike (0 mismatches)."""

from __future__ import annotations

import itertools
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import snntorch as snn

from rsnn_compiler import registry
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontend_api import ImportOptions
from rsnn_compiler.frontends.pytorch_import import import_module, load
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir import LIF, BatchNorm, CubaLIF, ResetMode

warnings.filterwarnings("ignore", category=UserWarning)
torch.set_num_threads(1)  # tiny matmuls: thread start-up dominates, worse on a loaded 2-core box
NO_FID = ImportOptions(extra={"skip_fidelity": True})
STEPS = 120


# ------------------------------------------------------------------------------------------
# Reference: snnTorch stepped by hand, every neuron with explicit state (init_hidden=False)
# ------------------------------------------------------------------------------------------
def snntorch_spikes(net: nn.Sequential, x: torch.Tensor) -> list[np.ndarray]:
    """Per neuron layer spikes (time, batch, *shape) from snnTorch's own forward."""
    states: dict[int, tuple] = {}
    out: dict[int, list] = {}
    for m in net:
        if hasattr(m, "reset_mem"):
            m.reset_mem()
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = x[t]
            for i, m in enumerate(net):
                if isinstance(m, snn.RSynaptic):
                    st = states.get(i) or (torch.zeros_like(h),) * 3
                    spk, syn, mem = m(h, *st)
                    states[i] = (spk, syn, mem)
                elif isinstance(m, snn.RLeaky):
                    st = states.get(i) or (torch.zeros_like(h),) * 2
                    spk, mem = m(h, *st)
                    states[i] = (spk, mem)
                elif isinstance(m, snn.Synaptic):
                    st = states.get(i) or (torch.zeros_like(h),) * 2
                    spk, syn, mem = m(h, *st)
                    states[i] = (syn, mem)
                elif isinstance(m, snn.Leaky):
                    st = states.get(i) or (torch.zeros_like(h),)
                    spk, mem = m(h, *st)
                    states[i] = (mem,)
                else:
                    h = m(h)
                    continue
                out.setdefault(i, []).append(spk.clone())
                h = spk
    return [torch.stack(out[i]).numpy() for i in sorted(out)]


def ir_spikes(graph, x: torch.Tensor) -> list[np.ndarray]:
    res = run_float(graph, x.numpy())
    neurons = [n for n, op in graph.nodes.items() if isinstance(op, (LIF, CubaLIF))]
    return [res.spikes[n] for n in neurons]


def assert_same_spikes(net, x, graph=None):
    graph = graph or import_module(net, options=NO_FID).graph
    ref, got = snntorch_spikes(net, x), ir_spikes(graph, x)
    assert len(ref) == len(got)
    total = 0
    for a, b in zip(ref, got):
        assert a.shape == b.shape
        total += int((a != b).sum())
    assert total == 0, f"{total} spike mismatches"
    assert sum(int(a.sum()) for a in ref) > 0, "test network never spikes"
    return ref


def make_cell(kind: str, n, mech="subtract", delay=True, gen=None, **extra):
    gen = gen or torch.Generator().manual_seed(0)
    shape = n if isinstance(n, tuple) else (n,)
    beta = torch.rand(shape, generator=gen) * 0.5 + 0.5
    thr = torch.rand(shape, generator=gen) * 0.5 + 0.5
    kw = dict(beta=beta, threshold=thr, reset_mechanism=mech, reset_delay=delay, **extra)
    if kind == "Leaky":
        return snn.Leaky(**kw)
    if kind == "Synaptic":
        return snn.Synaptic(alpha=torch.rand(shape, generator=gen) * 0.5 + 0.4, **kw)
    if kind == "RLeaky":
        return snn.RLeaky(linear_features=shape[0], **kw)
    return snn.RSynaptic(alpha=torch.rand(shape, generator=gen) * 0.5 + 0.4, linear_features=shape[0], **kw)


def spikes_in(steps, batch, n, p=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, batch, n, generator=gen) < p).float()


# ------------------------------------------------------------------------------------------
# Differential tests
# ------------------------------------------------------------------------------------------
CELLS = ["Leaky", "Synaptic", "RLeaky", "RSynaptic"]


@pytest.mark.parametrize(
    "kind,mech,delay", list(itertools.product(CELLS, ["subtract", "zero", "none"], [True, False]))
)
def test_every_cell_reset_and_delay_matches_snntorch(kind, mech, delay):
    torch.manual_seed(hash((kind, mech, delay)) % 1000)
    net = nn.Sequential(
        nn.Linear(24, 48), make_cell(kind, 48, mech, delay), nn.Linear(48, 16), make_cell(kind, 16, mech, delay)
    )
    with torch.no_grad():
        net[0].weight.mul_(2.0)
    x = spikes_in(STEPS, 4, 24)
    assert_same_spikes(net, x)
    result = import_module(net)
    fid = result.report.fidelity
    assert fid["total_mismatches"] == 0 and fid["steps"] == 100
    assert set(fid["layers"]) == {"1", "3"}
    assert all(v["agreement"] == 1.0 for v in fid["layers"].values())


@pytest.mark.parametrize(
    "kind,mech,delay,expected",
    [
        ("Leaky", "subtract", True, ResetMode.SUBTRACT_DEFERRED),
        ("Leaky", "subtract", False, ResetMode.SUBTRACT_NODELAY),
        ("Leaky", "zero", True, ResetMode.ZERO),
        ("Leaky", "zero", False, ResetMode.ZERO),
        ("Synaptic", "zero", True, ResetMode.ZERO_HOLD),
        ("Synaptic", "zero", False, ResetMode.ZERO),
        ("RLeaky", "zero", True, ResetMode.ZERO_HOLD),
        ("RSynaptic", "subtract", False, ResetMode.SUBTRACT_DEFERRED),
        ("RSynaptic", "zero", False, ResetMode.ZERO_HOLD),
        ("RLeaky", "none", False, ResetMode.NONE),
    ],
)
def test_reset_mode_mapping(kind, mech, delay, expected):
    net = nn.Sequential(nn.Linear(3, 5), make_cell(kind, 5, mech, delay))
    result = import_module(net, options=NO_FID)
    assert result.graph.nodes["1"].reset is expected
    assert result.report.reset == expected.value
    if kind == "RSynaptic" and not delay:
        assert any("RSynaptic ignores reset_delay=False" in n for n in result.report.notes)


def test_recurrent_delay_on_edge_leaving_neuron_and_bias_from_t0():
    net = nn.Sequential(nn.Linear(4, 6), make_cell("RLeaky", 6))
    g = import_module(net, options=NO_FID).graph
    edges = {(e.src, e.dst): e.delay for e in g.edges}
    assert edges[("1", "1.w_rec")] == 1 and edges[("1.w_rec", "1")] == 0
    ins = [e.src for e in g.edges if e.dst == "1"]
    assert ins == ["0", "1.w_rec"]  # feed-forward first: (beta*v + x) + W s + b
    # recurrent bias alone drives the neuron from t = 0
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].bias.zero_()
        net[1].recurrent.weight.zero_()
        net[1].recurrent.bias.fill_(2.0)
    g = import_module(net, options=NO_FID).graph
    x = torch.zeros(3, 1, 4)
    ref = assert_same_spikes(net, x, g)
    assert ref[0][0].sum() == 6  # fires at t = 0


def test_long_wide_recurrent_run_is_bit_exact_including_membranes():
    torch.manual_seed(1)
    n = 96
    cell = snn.RLeaky(beta=torch.rand(n) * 0.5 + 0.5, threshold=torch.ones(n), linear_features=n)
    net = nn.Sequential(nn.Linear(40, n), cell)
    g = import_module(net, options=NO_FID).graph
    x = spikes_in(300, 8, 40)
    res = run_float(g, x.numpy())
    spk = torch.zeros(8, n)
    mem = torch.zeros(8, n)
    mems, spks = [], []
    with torch.no_grad():
        for t in range(300):
            spk, mem = cell(net[0](x[t]), spk, mem)
            mems.append(mem.clone())
            spks.append(spk.clone())
    assert np.array_equal(torch.stack(spks).numpy(), res.spikes["1"])
    assert np.array_equal(torch.stack(mems).numpy(), res.states["v/1"])


def _train_briefly(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor, iters: int = 15) -> None:
    """A few surrogate-gradient steps so the weights are 'trained', not random."""
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(iters):
        for m in net:
            if hasattr(m, "reset_mem"):
                m.reset_mem()
        counts = 0
        for t in range(x.shape[0]):
            out = x[t]
            for m in net:
                out = m(out)
                if isinstance(out, tuple):
                    out = out[0]
            counts = counts + out
        loss = nn.functional.cross_entropy(counts, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m in net:
        if hasattr(m, "reset_mem"):
            m.reset_mem()


@pytest.mark.parametrize("second", ["RLeaky", "RSynaptic", "Leaky"])
def test_briefly_trained_network_matches(second):
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Linear(20, 40), make_cell("Leaky", 40, init_hidden=True),
        nn.Linear(40, 30), make_cell(second, 30, init_hidden=True),
        nn.Linear(30, 5), make_cell("Synaptic", 5, "zero", init_hidden=True),
    )
    xtrain = spikes_in(25, 16, 20, seed=5)
    ytrain = torch.randint(0, 5, (16,))
    before = [p.detach().clone() for p in net.parameters()]
    _train_briefly(net, xtrain, ytrain)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    # same modules, stepped with explicit state
    for m in net:
        if hasattr(m, "init_hidden"):
            m.init_hidden = False
    assert_same_spikes(net, spikes_in(STEPS, 4, 20, seed=9))


def test_conv_pool_flatten_batchnorm_network():
    torch.manual_seed(4)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), make_cell("Leaky", (4, 8, 8)),
        nn.AvgPool2d(2), nn.Conv2d(4, 6, 3, stride=1, padding="valid"), make_cell("Synaptic", (6, 2, 2), "zero"),
        nn.Flatten(), nn.Linear(24, 5), make_cell("RLeaky", 5),
    )
    bn = net[1]
    bn.running_mean.uniform_(-0.2, 0.2)
    bn.running_var.uniform_(0.5, 1.5)
    with torch.no_grad():
        bn.weight.uniform_(0.8, 1.5)
        net[0].weight.mul_(2)
        net[4].weight.mul_(2)
        net[7].weight.mul_(3)
    net.eval()
    gen = torch.Generator().manual_seed(2)
    x = (torch.rand(100, 3, 2, 8, 8, generator=gen) < 0.4).float()
    result = import_module(net, example_input=x[0], options=ImportOptions(calib_x=x.numpy()))
    assert isinstance(result.graph.nodes["1"], BatchNorm)
    assert result.report.fidelity["total_mismatches"] == 0
    assert_same_spikes(net, x, result.graph)


def test_recurrent_conv_and_one_to_one_cells():
    torch.manual_seed(6)
    conv_cell = snn.RLeaky(beta=0.8, threshold=0.7, conv2d_channels=3, kernel_size=3)
    v_cell = snn.RSynaptic(alpha=0.6, beta=torch.rand(10) * 0.4 + 0.5, threshold=torch.ones(10) * 0.8,
                           all_to_all=False, V=torch.rand(10))
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), conv_cell, nn.Flatten(), nn.Linear(3 * 36, 10), v_cell)
    with torch.no_grad():
        net[0].weight.mul_(3)
    x = (torch.rand(100, 2, 1, 6, 6) < 0.5).float()
    g = import_module(net, example_input=x[0], options=NO_FID).graph
    assert type(g.nodes["1.w_rec"]).__name__ == "Conv2d" and type(g.nodes["4.w_rec"]).__name__ == "Scale"
    assert_same_spikes(net, x, g)


def test_scalar_and_tensor_parameters_broadcast_per_neuron():
    net = nn.Sequential(nn.Linear(3, 4), snn.Leaky(beta=0.9, threshold=torch.tensor([0.5, 1.0, 1.5, 2.0])))
    g = import_module(net, options=NO_FID).graph
    op = g.nodes["1"]
    assert op.beta.shape == (4,) and np.allclose(op.beta, 0.9) and op.theta.tolist() == [0.5, 1.0, 1.5, 2.0]


def test_beta_is_clamped_like_snntorch():
    net = nn.Sequential(nn.Linear(3, 2), snn.Leaky(beta=torch.tensor([1.2, -0.1])))
    op = import_module(net, options=NO_FID).graph.nodes["1"]
    assert op.beta.tolist() == [1.0, 0.0]


# ------------------------------------------------------------------------------------------
# Containers
# ------------------------------------------------------------------------------------------
class ChainNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 12)
        self.lif1 = snn.Leaky(beta=0.9, init_hidden=True)
        self.fc2 = nn.Linear(12, 3)
        self.lif2 = snn.Leaky(beta=0.8, init_hidden=True, reset_mechanism="zero")

    def forward(self, x):
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))


class ReshapeNet(ChainNet):
    def forward(self, x):
        h = self.lif1(self.fc1(x))
        return self.lif2(self.fc2(h * 1.0))


def test_custom_chain_container_imports_with_names():
    net = ChainNet()
    r = import_module(net)
    assert list(r.graph.nodes) == ["input", "fc1", "lif1", "fc2", "lif2", "output"]
    assert r.report.fidelity["total_mismatches"] == 0


def test_non_chain_forward_is_rejected_naming_module():
    with pytest.raises(UserInputError, match="module 'fc2' is not fed the previous layer's output"):
        import_module(ReshapeNet())


def test_unsupported_module_is_named():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    with pytest.raises(UserInputError, match=r"module '1' \(ReLU\) is not supported"):
        import_module(net)


def test_nan_weights_rejected():
    net = nn.Sequential(nn.Linear(3, 4), snn.Leaky(beta=0.9))
    with torch.no_grad():
        net[0].weight[1, 2] = float("nan")
    with pytest.raises(UserInputError, match="module '0' parameter 'weight' contains NaN") as err:
        import_module(net)
    assert "\n" not in str(err.value)


def test_conv_without_shape_needs_example():
    with pytest.raises(UserInputError, match="cannot infer the model's input shape"):
        import_module(nn.Sequential(nn.Conv2d(1, 2, 3), snn.Leaky(beta=0.5)))


# ------------------------------------------------------------------------------------------
# load(): factory + weights, pickled checkpoints
# ------------------------------------------------------------------------------------------
FACTORY = textwrap.dedent(
    """
    import torch, snntorch as snn
    from torch import nn

    def build():
        return nn.Sequential(nn.Linear(5, 7), snn.Leaky(beta=torch.full((7,), 0.9), init_hidden=True),
                             nn.Linear(7, 2), snn.RLeaky(beta=0.7, linear_features=2, init_hidden=True))
    """
)


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    name = f"rsnnc_test_factory_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_factory_with_weights(factory_module, tmp_path):
    import importlib

    model = importlib.import_module(factory_module).build()
    with torch.no_grad():
        model[0].weight.mul_(4)
    weights = tmp_path / "w.pt"
    torch.save(model.state_dict(), weights)
    r = load(f"{factory_module}:build", ImportOptions(weights=str(weights)))
    assert np.array_equal(r.graph.nodes["0"].weight, model[0].weight.detach().numpy())
    assert r.report.fidelity["total_mismatches"] == 0
    assert r.report.source_format == "pytorch"


def test_factory_missing_weights(factory_module, tmp_path):
    import importlib

    state = importlib.import_module(factory_module).build().state_dict()
    del state["2.weight"]
    weights = tmp_path / "partial.pt"
    torch.save(state, weights)
    with pytest.raises(UserInputError, match="missing 1: 2.weight"):
        load(f"{factory_module}:build", ImportOptions(weights=str(weights)))
    with pytest.raises(UserInputError, match="does not exist"):
        load(f"{factory_module}:build", ImportOptions(weights=str(tmp_path / "nope.pt")))
    with pytest.raises(UserInputError, match="has no callable 'nope'"):
        load(f"{factory_module}:nope", ImportOptions())


def test_pickled_checkpoint_needs_trust(tmp_path):
    net = nn.Sequential(nn.Linear(3, 4), nn.Flatten())  # snnTorch surrogates are local closures: not picklable
    path = tmp_path / "model.pt"
    torch.save(net, path)
    with pytest.raises(UserInputError, match="--trust-checkpoint") as err:
        load(str(path), ImportOptions())
    assert "runs arbitrary code" in str(err.value)
    r = load(str(path), ImportOptions(trust_checkpoint=True))
    assert r.graph.nodes["0"].weight.shape == (4, 3)


def test_registry_points_to_frontends():
    assert registry.resolve(registry.FRONTENDS[".pt"]) is load
    assert registry.resolve(registry.FRONTENDS[".pth"]) is load
    assert registry.resolve(registry.PYTHON_FRONTEND) is load
