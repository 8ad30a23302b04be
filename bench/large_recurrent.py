"""The 1.79M-synapse recurrent benchmark network of issue 18 (not a test).

    x (700 spike channels) -> Linear(700, 1024) -> snnTorch RLeaky(1024, all-to-all recurrence)
                           -> Linear(1024, 20) -> Leaky(20)

716,800 + 1,048,576 + 20,480 = 1,785,856 synapses. Random weights (seeded) scaled so that with
10 % Poisson input spikes about 10 % of the hidden neurons fire per step; snnTorch's default
reset (subtract, one step late = rsnnc ``subtract_deferred``). ``build()`` is a factory rsnnc
imports (``large_recurrent:build`` with bench/ on the path); ``inputs`` draws the spike trains,
``run`` steps the snnTorch module from rest.
"""

from __future__ import annotations

import numpy as np
import snntorch as snn
import torch
from torch import nn

from models.rleaky_mnist1d.model import run  # noqa: F401 (snnTorch stepped from rest: (T, B, in) -> spikes)

N_IN, N_HIDDEN, N_OUT = 700, 1024, 20
SYNAPSES = N_IN * N_HIDDEN + N_HIDDEN * N_HIDDEN + N_HIDDEN * N_OUT
INPUT_RATE = 0.1


def build(seed: int = 0) -> nn.Sequential:
    """The network with its seeded random weights (eval mode)."""
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(N_IN, N_HIDDEN, bias=False),
        snn.RLeaky(beta=torch.full((N_HIDDEN,), 0.9), threshold=torch.ones(N_HIDDEN), all_to_all=True,
                   linear_features=N_HIDDEN, init_hidden=True),
        nn.Linear(N_HIDDEN, N_OUT, bias=False),
        snn.Leaky(beta=torch.full((N_OUT,), 0.9), threshold=torch.ones(N_OUT), init_hidden=True, output=True),
    )
    with torch.no_grad():
        net[0].weight.copy_(torch.randn(N_HIDDEN, N_IN, generator=gen) * 0.05 + 0.001)
        net[1].recurrent.weight.copy_(torch.randn(N_HIDDEN, N_HIDDEN, generator=gen) * 0.03)
        net[1].recurrent.bias.zero_()
        net[2].weight.copy_(torch.randn(N_OUT, N_HIDDEN, generator=gen) * 0.08)
    return net.eval()


def inputs(steps: int, batch: int, seed: int = 1, rate: float = INPUT_RATE) -> np.ndarray:
    """Poisson spike trains (steps, batch, 700) float32 of the given rate."""
    rng = np.random.default_rng(seed)
    return (rng.random((steps, batch, N_IN)) < rate).astype(np.float32)
