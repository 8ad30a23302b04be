"""Models of the peer libraries for the import and build tests: each library's own forward
(``*_run(net, x)``, x shaped (T, batch, features)) and one small two-layer model per update form
(``CASES``: name -> (make, run)), scaled so that every layer spikes."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

warnings.filterwarnings("ignore")
sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
from spikingjelly.activation_based import functional, layer, surrogate  # noqa: E402

sl = pytest.importorskip("sinabs.layers")
from sinabs.activation import MembraneReset, SingleSpike  # noqa: E402

STEPS, BATCH, N_IN = 120, 3, 10


def spikes_in(seed=0, steps=STEPS):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, BATCH, N_IN, generator=gen) < 0.3).float()


def sj_run(net, x):
    functional.reset_net(net)
    if net[1].step_mode == "m":
        return net(x)
    return torch.stack([net(x_t) for x_t in x])


def sinabs_run(net, x):
    for m in net:
        if hasattr(m, "reset_states"):
            m.reset_states()
    return net(x.transpose(0, 1)).transpose(0, 1)


def sinabs_squeeze_run(net, x):
    """Sinabs squeeze models as their users feed them: x (T, batch, ...) folded batch-major into
    (batch*T, ...) (row b*T + t: sample b at step t), the output unfolded back to (T, batch, ...)."""
    for m in net:
        if hasattr(m, "reset_states"):
            m.reset_states()
    steps, batch = x.shape[:2]
    out = net(x.transpose(0, 1).reshape(batch * steps, *x.shape[2:]))
    return out.reshape(batch, steps, *out.shape[1:]).transpose(0, 1)


def _scaled(net: nn.Sequential, scale: float, bias: float = 0.0) -> nn.Sequential:
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(scale)
                if m.bias is not None:
                    m.bias.add_(bias)
    return net


def _chain(make_cells, scale: float, bias: float = 0.0, linear=nn.Linear) -> nn.Sequential:
    """Linear -> cell -> Linear -> cell; ``make_cells()`` runs after the seed, so cells with their own
    weights (recurrent cells) are the same whatever ran before in the process."""
    torch.manual_seed(0)
    cells = make_cells()
    return _scaled(nn.Sequential(linear(N_IN, 16), cells[0], linear(16, 4), cells[1]), scale, bias)


def norse_run(net, x):
    """Norse cells stepped as Norse users write it: z, state = cell(x, state)."""
    states: dict[int, object] = {}
    out = []
    for x_t in x:
        h = x_t
        for k, m in enumerate(net):
            if type(m).__module__.startswith("norse"):
                h, states[k] = m(h, states.get(k))
            else:
                h = m(h)
        out.append(h)
    return torch.stack(out)


def snntorch_run(net, x):
    for m in net:
        if hasattr(m, "reset_mem"):
            m.reset_mem()
    return torch.stack([net(x_t) for x_t in x])


def _sj(mode="s"):
    from spikingjelly.activation_based import neuron as sjn

    def make():
        net = _chain(lambda: [sjn.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()),
                      sjn.ParametricLIFNode(init_tau=3.0, decay_input=False, v_reset=None)], 3.0, linear=layer.Linear)
        if mode == "m":
            net = _chain(lambda: [sjn.ParametricLIFNode(init_tau=2.5, v_reset=-0.1),
                          sjn.LIFNode(tau=4.0, decay_input=False, v_reset=None)], 3.0, 0.3, linear=layer.Linear)
        functional.set_step_mode(net, mode)
        return net
    return make


def _norse_cases():
    nt = pytest.importorskip("norse.torch")
    lif = nt.LIFParameters(tau_mem_inv=torch.tensor(150.0), v_th=torch.tensor(0.5))
    box = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(200.0), v_th=torch.tensor(0.3))
    from norse.torch.functional.reset import reset_subtract

    box_sub = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(300.0), v_th=torch.tensor(0.2), reset_method=reset_subtract)
    lsnn = nt.LSNNParameters(tau_adapt_inv=torch.tensor(50.0), beta=torch.tensor(0.3), v_th=torch.tensor(0.3))
    return {
        "norse LIFCell + LICell": lambda: _chain(lambda: [nt.LIFCell(lif), nt.LICell()], 12.0, 0.5),
        "norse LIFBoxCell zero + subtract": lambda: _chain(lambda: [nt.LIFBoxCell(box), nt.LIFBoxCell(box_sub)], 3.0, 0.2),
        "norse LIFRecurrentCell + IAFCell": lambda: _chain(
            lambda: [nt.LIFRecurrentCell(16, 16, lif), nt.IAFCell(nt.IAFParameters(v_th=torch.tensor(0.5)))], 4.0, 0.5),
        "norse LSNNCell + LSNNRecurrentCell": lambda: _chain(
            lambda: [nt.LSNNCell(lsnn), nt.LSNNRecurrentCell(4, 4, lsnn)], 12.0, 0.5),
    }


def _sinabs_cases():
    from sinabs.activation import MaxSpike, MultiSpike

    return {
        "sinabs IAF + LIF multi spike": lambda: _chain(lambda: [sl.IAF(), sl.LIF(tau_mem=torch.rand(4) * 6 + 2)], 3.0, 0.5),
        "sinabs LIF tau_syn MaxSpike(2) + IAF MembraneReset(0.5)": lambda: _chain(
            lambda: [sl.LIF(tau_mem=5.0, tau_syn=3.0, spike_fn=MaxSpike(2), norm_input=False),
             sl.IAF(spike_fn=SingleSpike, reset_fn=MembraneReset(reset_value=0.5))], 2.0, 0.2),
        "sinabs IAFRecurrent + LIFRecurrent": lambda: _chain(
            lambda: [sl.IAFRecurrent(rec_connect=nn.Linear(16, 16, bias=False)),
             sl.LIFRecurrent(tau_mem=4.0, rec_connect=nn.Linear(4, 4), spike_fn=MultiSpike, norm_input=False)], 1.5),
        "sinabs LIF + ExpLeak": lambda: _chain(lambda: [sl.LIF(tau_mem=3.0, norm_input=False), sl.ExpLeak(tau_mem=4.0)], 2.0),
    }


def _snntorch_cases():
    snn = pytest.importorskip("snntorch")
    return {
        "snntorch Alpha subtract + zero": lambda: _chain(
            lambda: [snn.Alpha(alpha=0.9, beta=0.8, init_hidden=True, reset_mechanism="subtract"),
             snn.Alpha(alpha=0.8, beta=0.5, init_hidden=True, threshold=0.5)], 2.0, 0.3),
        "snntorch Alpha none + Lapicque zero": lambda: _chain(
            lambda: [snn.Alpha(alpha=0.7, beta=0.6, init_hidden=True, reset_mechanism="none", threshold=0.8),
             snn.Lapicque(beta=0.8, init_hidden=True, reset_mechanism="zero", threshold=0.5)], 3.0, 0.3),
        "snntorch Lapicque R C subtract": lambda: _chain(
            lambda: [snn.Lapicque(R=2.0, C=3.0, time_step=0.5, init_hidden=True, threshold=0.5),
             snn.Lapicque(beta=0.7, init_hidden=True, threshold=0.3)], 3.0, 0.3),
    }


def _cases():
    cases = {"spikingjelly LIFNode + ParametricLIFNode (s)": (_sj("s"), sj_run),
             "spikingjelly ParametricLIFNode + LIFNode (m)": (_sj("m"), sj_run)}
    cases.update({k: (v, sinabs_run) for k, v in _sinabs_cases().items()})
    try:
        cases.update({k: (v, norse_run) for k, v in _norse_cases().items()})
    except pytest.skip.Exception:
        pass
    try:
        cases.update({k: (v, snntorch_run) for k, v in _snntorch_cases().items()})
    except pytest.skip.Exception:
        pass
    return cases


CASES = _cases()
