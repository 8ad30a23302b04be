"""Direct imports of SpikingJelly, Sinabs, Norse and snnTorch neuron modules (no NIR exporter).

Every supported module must reproduce the library's own forward spike for spike (membrane for
membrane for non-spiking readouts) over >= 100 steps, for random and briefly trained weights,
feed-forward and recurrent where the library has recurrent modules: the import's own fidelity
check, and here the model's output run by the library against ``run_float`` of the graph. What
the IR cannot express is refused with one line naming it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontend_api import ImportOptions
from rsnn_compiler.frontends.pytorch_import import import_module
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir import IF, ResetMode
from rsnn_compiler.ir.family_ops import Sinabs
from rsnn_compiler.neurons.sinabs import Spikes

warnings.filterwarnings("ignore")
peer_models = pytest.importorskip("peer_models")  # skips without SpikingJelly and Sinabs
from peer_models import (  # noqa: E402
    BATCH, CASES, N_IN, STEPS, functional, layer, sinabs_run, sinabs_squeeze_run, sj_neuron, sj_run, sl, spikes_in,
    surrogate,
)
from sinabs.activation import MembraneReset, MembraneSubtract, MultiSpike, SingleSpike  # noqa: E402


def exact(net: nn.Module, x: torch.Tensor):
    result = import_module(net, options=ImportOptions(calib_x=x.numpy()))
    fid = result.report.fidelity
    assert fid["exact"] and fid["total_mismatches"] == 0 and fid["steps"] == STEPS
    counts = [v["spikes_source"] for v in fid["layers"].values()]
    assert all(c != 0 for c in counts), f"a layer never spikes: {counts}"
    return result


def train_briefly(net: nn.Module, run, iters: int = 8, steps: int = 20, batch: int = 8) -> None:
    """A few surrogate-gradient steps on random data so the weights are trained, not random."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    for _ in range(iters):
        x = (torch.rand(steps, batch, N_IN, generator=gen) < 0.3).float()
        y = torch.randint(0, 4, (batch,), generator=gen)
        loss = nn.functional.cross_entropy(run(net, x).sum(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


# ------------------------------------------------------------------------------------------
# SpikingJelly IFNode
# ------------------------------------------------------------------------------------------
def sj_net(v_reset1=0.0, v_reset2=None, mode="s"):
    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(N_IN, 16), sj_neuron.IFNode(v_reset=v_reset1, surrogate_function=surrogate.ATan()),
                        layer.Linear(16, 4), sj_neuron.IFNode(v_reset=v_reset2, surrogate_function=surrogate.ATan()))
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[2].weight.mul_(2.0)
    functional.set_step_mode(net, mode)
    return net


@pytest.mark.parametrize("v_reset1,v_reset2,mode", [(0.0, None, "s"), (-0.2, 0.0, "s"), (None, 0.3, "m"), (0.0, 0.0, "m")])
def test_spikingjelly_ifnode_single_and_multi_step(v_reset1, v_reset2, mode):
    net = sj_net(v_reset1, v_reset2, mode)
    result = exact(net, spikes_in())
    op = result.graph.nodes["1"]
    assert isinstance(op, IF) and op.comparator.value == "ge"
    assert op.reset is (ResetMode.SUBTRACT if v_reset1 is None else ResetMode.ZERO)
    train_briefly(net, sj_run)
    exact(net, spikes_in(seed=2))


class SJLoop(nn.Module):
    """A SpikingJelly single-step model written as a loop over time."""

    def __init__(self):
        super().__init__()
        self.fc1 = layer.Linear(N_IN, 12)
        self.sn1 = sj_neuron.IFNode()
        self.fc2 = layer.Linear(12, 4)
        self.sn2 = sj_neuron.IFNode(v_reset=None)
        with torch.no_grad():
            self.fc1.weight.mul_(2.0)
            self.fc2.weight.mul_(3.0)

    def forward(self, x):
        functional.reset_net(self)
        out = []
        for t in range(x.shape[0]):
            out.append(self.sn2(self.fc2(self.sn1(self.fc1(x[t])))))
        return torch.stack(out)


def test_spikingjelly_time_loop_model():
    torch.manual_seed(0)
    exact(SJLoop(), spikes_in(seed=3))


# ------------------------------------------------------------------------------------------
# Sinabs IAF / LIF (SingleSpike)
# ------------------------------------------------------------------------------------------
def sinabs_net(kind: str, reset):
    torch.manual_seed(0)
    if kind == "IAF":
        cells = [sl.IAF(spike_fn=SingleSpike, reset_fn=reset), sl.IAF(spike_fn=SingleSpike, reset_fn=reset)]
    else:
        cells = [sl.LIF(tau_mem=torch.rand(16) * 8 + 2, spike_fn=SingleSpike, reset_fn=reset),
                 sl.LIF(tau_mem=4.0, spike_fn=SingleSpike, reset_fn=reset, norm_input=False)]
    net = nn.Sequential(nn.Linear(N_IN, 16), cells[0], nn.Linear(16, 4), cells[1])
    with torch.no_grad():
        net[0].weight.mul_(4.0 if kind == "LIF" else 2.0)
        net[2].weight.mul_(4.0 if kind == "LIF" else 2.0)
        net[0].bias.add_(0.5 if kind == "LIF" else 0.0)
        net[2].bias.add_(0.3 if kind == "LIF" else 0.0)
    return net


@pytest.mark.parametrize("kind", ["IAF", "LIF"])
@pytest.mark.parametrize("reset", [MembraneSubtract(), MembraneReset()], ids=["subtract", "zero"])
def test_sinabs_single_spike_layers(kind, reset):
    net = sinabs_net(kind, reset)
    result = exact(net, spikes_in(seed=4))
    op = result.graph.nodes["1"]
    assert isinstance(op, Sinabs) and op.spikes is Spikes.SINGLE
    assert op.reset is (ResetMode.SUBTRACT if isinstance(reset, MembraneSubtract) else ResetMode.ZERO)
    train_briefly(net, sinabs_run)
    x = spikes_in(seed=5)
    assert_library_forward(net, sinabs_run, exact(net, x), x)


# ------------------------------------------------------------------------------------------
# Sinabs squeeze layers: the same neurons on (batch*T, ...) folded batch-major
# ------------------------------------------------------------------------------------------
def squeeze_net(fold: dict, spike_fn) -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(N_IN, 16), sl.IAFSqueeze(spike_fn=spike_fn, **fold), nn.Linear(16, 4),
                        sl.LIFSqueeze(tau_mem=torch.rand(4) * 6 + 2, spike_fn=spike_fn, **fold))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(3.0)
        net[2].bias.add_(0.5)
    return net


@pytest.mark.parametrize("fold", [{"batch_size": BATCH}, {"num_timesteps": STEPS}], ids=["batch_size", "num_timesteps"])
@pytest.mark.parametrize("spike_fn", [SingleSpike, MultiSpike], ids=["single", "multi"])
def test_sinabs_squeeze_layers_reproduce_sinabs_on_the_folded_input(fold, spike_fn):
    net = squeeze_net(fold, spike_fn)
    x = spikes_in(seed=11)
    result = exact(net, x)
    op = result.graph.nodes["1"]
    assert isinstance(op, Sinabs) and op.spikes is (Spikes.SINGLE if spike_fn is SingleSpike else Spikes.MULTI)
    assert_library_forward(net, sinabs_squeeze_run, result, x)
    layout = result.report.conventions[0]
    assert "X.reshape(" in layout and ".swapaxes(0, 1)" in layout and "batch-major" in layout, layout
    # briefly trained, on the sizes the layers fix
    train_briefly(net, sinabs_squeeze_run, steps=STEPS if "num_timesteps" in fold else 20,
                  batch=BATCH if "batch_size" in fold else 8)
    x = spikes_in(seed=12)
    result = exact(net, x)
    assert_library_forward(net, sinabs_squeeze_run, result, x)
    if spike_fn is MultiSpike:
        assert max(float(v.max()) for v in run_float(result.graph, x.numpy()).spikes.values()) > 1


def test_sinabs_squeeze_conv_model_and_random_fidelity_input():
    """Conv2d on (batch*T, C, H, W), the layout squeeze layers exist for; without calibration data
    the import's own check draws an input the fold accepts (batch_size = 2)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), sl.IAFSqueeze(batch_size=2, spike_fn=SingleSpike), nn.Flatten(),
                        nn.Linear(64, 5), sl.ExpLeakSqueeze(tau_mem=3.0, batch_size=2))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    result = import_module(net, example_input=np.zeros((2, 1, 6, 6), np.float32))
    fid = result.report.fidelity
    assert fid["exact"] and fid["batch"] == 2 and fid["steps"] >= 100 and fid["layers"]["1"]["spikes_source"] > 0
    x = (torch.rand(STEPS, 2, 1, 6, 6, generator=torch.Generator().manual_seed(3)) < 0.4).float()
    assert_library_forward(net, sinabs_squeeze_run, result, x)


class SqueezeForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(N_IN, 4)
        self.sn = sl.IAFSqueeze(batch_size=BATCH)

    def forward(self, x):
        return self.sn(self.fc(x))


@pytest.mark.parametrize("make,needle", [
    (lambda: nn.Sequential(nn.Linear(N_IN, 4), sl.IAFSqueeze(batch_size=BATCH), nn.Linear(4, 4), sl.IAF()),
     "use the squeeze variant for every neuron layer"),
    (lambda: nn.Sequential(nn.Linear(N_IN, 4), sl.IAFSqueeze(batch_size=BATCH), nn.Linear(4, 4),
                           sl.LIFSqueeze(tau_mem=3.0, num_timesteps=STEPS)), "the same batch_size"),
    (lambda: nn.Sequential(nn.Linear(N_IN, 4), sl.IAFSqueeze(batch_size=BATCH), nn.Linear(4, 4),
                           sl.IAFSqueeze(batch_size=BATCH + 1)), "unfold (batch*T, ...) differently"),
    (SqueezeForward, "put the layers in an nn.Sequential"),
], ids=["mixed with IAF", "batch_size vs num_timesteps", "two batch sizes", "custom forward"])
def test_sinabs_squeeze_layouts_the_graph_cannot_express_are_refused(make, needle):
    with pytest.raises(UserInputError) as err:
        import_module(make(), options=ImportOptions(extra={"skip_fidelity": True}))
    msg = str(err.value)
    assert needle in msg and "\n" not in msg, msg


# ------------------------------------------------------------------------------------------
# The update forms of the libraries (rsnn_compiler/neurons: sj_lif, sinabs, norse_*, alpha,
# lapicque): each model is run by its library, imported, compared, trained briefly, compared again
# ------------------------------------------------------------------------------------------
def assert_library_forward(net, run, result, x) -> None:
    """The library's own forward of the whole model equals ``run_float`` of the graph, bit for bit."""
    with torch.no_grad():
        ref = run(net, x).numpy()
    got = run_float(result.graph, x.numpy()).out
    assert got.shape == ref.shape and np.array_equal(got, ref), f"{int((got != ref).sum())} of {ref.size} differ"


@pytest.mark.parametrize("name", sorted(CASES))
def test_update_forms_reproduce_the_library(name):
    make, run = CASES[name]
    net = make()
    for seed, trained in ((7, False), (8, True)):
        if trained:
            train_briefly(net, run)
        x = spikes_in(seed)
        result = exact(net, x)
        assert_library_forward(net, run, result, x)
        library = name.split()[0]  # case names start with the library ("norse LIFBox ...")
        assert result.report.source_library.lower() == library
        assert library in result.report.reset_origin.lower() and library in result.report.dt_origin.lower()
        if "multi" in name or "Max" in name:  # counts above one occur
            assert max(float(v.max()) for v in run_float(result.graph, x.numpy()).spikes.values()) > 1


# ------------------------------------------------------------------------------------------
# Still refused: arithmetic the IR does not have (one line, what is missing)
# ------------------------------------------------------------------------------------------
def _refused():
    cases = [
        ("Sinabs ALIF", lambda: sl.ALIF(tau_mem=5.0, tau_adapt=10.0), "adapts its threshold"),
        ("Sinabs min_v_mem", lambda: sl.IAF(min_v_mem=-1.0), "min_v_mem clamps the membrane"),
        ("Sinabs MultiSpike threshold 0", lambda: sl.IAF(spike_threshold=0.0), "needs spike_threshold > 0"),
        ("SpikingJelly QIFNode", lambda: sj_neuron.QIFNode(), "not supported; supported: IFNode, LIFNode"),
    ]
    try:
        import norse.torch as nt

        cases.append(("Norse adjoint", lambda: nt.LIFCell(nt.LIFParameters(method="adjoint")),
                      "not a heaviside forward"))
    except ImportError:
        pass
    return cases


@pytest.mark.parametrize("name,make,needle", _refused(), ids=[c[0] for c in _refused()])
def test_inexact_modules_are_refused_naming_what_is_missing(name, make, needle):
    net = nn.Sequential(nn.Linear(N_IN, 16), make())
    with pytest.raises(UserInputError) as err:
        import_module(net, options=ImportOptions(extra={"skip_fidelity": True}))
    msg = str(err.value)
    assert needle in msg and "\n" not in msg, msg


def test_norse_sequence_modules_in_a_forward_and_in_sequential_state():
    """Norse's sequence modules (LIF, LSNN: the whole (T, batch, ...) per call) in a user's forward
    and in Norse's own SequentialState container."""
    nt = pytest.importorskip("norse.torch")

    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.lif = nn.Linear(N_IN, 8), nt.LIF(nt.LIFParameters(v_th=torch.tensor(0.3)))
            self.fc2, self.lsnn = nn.Linear(8, 4), nt.LSNN(nt.LSNNParameters(v_th=torch.tensor(0.2)))
            with torch.no_grad():
                self.fc1.weight.mul_(10.0)
                self.fc2.weight.mul_(10.0)

        def forward(self, x):
            return self.lsnn(self.fc2(self.lif(self.fc1(x))[0]))[0]

    torch.manual_seed(0)
    for net in (Seq(), _norse_state_net(nt)):
        x = spikes_in(9)
        assert_library_forward(net, lambda n, x: n(x)[0] if isinstance(n, nt.SequentialState) else n(x),
                               exact(net, x), x)


def _norse_state_net(nt):
    net = nt.SequentialState(nn.Linear(N_IN, 8), nt.LIF(nt.LIFParameters(v_th=torch.tensor(0.3))))
    with torch.no_grad():
        net[0].weight.mul_(10.0)
    return net


def test_snntorch_alpha_and_lapicque_in_a_time_loop_with_their_states():
    """The snnTorch tutorial pattern with explicit states: spk, syn_exc, syn_inh, mem = alpha(x, ...)."""
    snn = pytest.importorskip("snntorch")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.a1 = nn.Linear(N_IN, 16), snn.Alpha(alpha=0.9, beta=0.8)
            self.fc2, self.l2 = nn.Linear(16, 4), snn.Lapicque(beta=0.9, threshold=0.5)
            with torch.no_grad():
                self.fc1.weight.mul_(2.0)
                self.fc1.bias.add_(0.3)
                self.fc2.weight.mul_(6.0)
                self.fc2.bias.add_(0.4)

        def forward(self, x):
            exc, inh, mem1 = self.a1.init_alpha()
            mem2 = self.l2.init_lapicque()
            out = []
            for t in range(x.shape[0]):
                spk1, exc, inh, mem1 = self.a1(self.fc1(x[t]), exc, inh, mem1)
                spk2, mem2 = self.l2(self.fc2(spk1), mem2)
                out.append(spk2)
            return torch.stack(out)

    torch.manual_seed(0)
    net = Net()
    x = spikes_in(10)
    assert_library_forward(net, lambda n, x: n(x), exact(net, x), x)
