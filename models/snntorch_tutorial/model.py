"""snnTorch models written the way the snnTorch tutorials write them: a class whose ``forward``
loops over the time steps of x (T, batch, 8) with explicit neuron state, returning the output
spikes and membranes stacked over time. rsnnc imports them by tracing ``forward``
(docs/frontends.md, "Models whose forward loops over time").

    FeedForward:  x[t] -> Linear(8, hidden) -> Leaky -> Linear(hidden, 10) -> Leaky
    Recurrent:    x[t] -> Linear(8, hidden) -> RLeaky (all-to-all) -> Linear(hidden, 10) -> Synaptic

Inputs are mnist1d signals cut into windows (``models.rleaky_mnist1d.model.encode``: T = 17).
The factories take the hidden width as an argument (``--factory-args '{"hidden": 64}'``).
"""

from __future__ import annotations

import snntorch as snn
import torch
from torch import nn

N_IN = 8
N_OUT = 10


class FeedForward(nn.Module):
    def __init__(self, hidden: int = 64, beta: float = 0.9):
        super().__init__()
        self.fc1 = nn.Linear(N_IN, hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(hidden, N_OUT)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec = []
        mem2_rec = []
        for step in range(x.size(0)):
            cur1 = self.fc1(x[step])
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)


class Recurrent(nn.Module):
    def __init__(self, hidden: int = 64, beta: float = 0.85, alpha: float = 0.6):
        super().__init__()
        self.fc1 = nn.Linear(N_IN, hidden)
        self.rlif1 = snn.RLeaky(beta=beta, linear_features=hidden)
        self.fc2 = nn.Linear(hidden, N_OUT)
        self.syn2 = snn.Synaptic(alpha=alpha, beta=beta)

    def forward(self, x):
        spk1, mem1 = self.rlif1.init_rleaky()
        syn2, mem2 = self.syn2.init_synaptic()
        spk_rec = []
        for step in range(x.shape[0]):
            spk1, mem1 = self.rlif1(self.fc1(x[step]), spk1, mem1)
            spk2, syn2, mem2 = self.syn2(self.fc2(spk1), syn2, mem2)
            spk_rec.append(spk2)
        return torch.stack(spk_rec)


def feedforward(hidden: int = 64) -> FeedForward:
    return FeedForward(hidden=hidden)


def recurrent(hidden: int = 64) -> Recurrent:
    return Recurrent(hidden=hidden)


def predict(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = net(x)
        spk = out[0] if isinstance(out, tuple) else out
        return spk.sum(0).argmax(1)
