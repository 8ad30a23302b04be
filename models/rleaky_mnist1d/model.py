"""Recurrent SNN (snnTorch RLeaky) for mnist1d.

Per time step t the network sees one window of the 40-sample mnist1d signal
(WINDOW = 8 samples, stride 2, so T = 17 steps):

    x[t] (8) -> Linear(8, 128) -> RLeaky(128, all-to-all recurrent, per-neuron beta/threshold)
             -> Linear(128, 10) -> Leaky(10)  -> output spikes

Prediction = argmax over classes of the output spike count summed over the T steps (ties go to
the lowest class index, as torch.argmax does).

Both spiking layers use snnTorch's default reset: reset_mechanism="subtract", reset_delay=True
(theta subtracted one step late), which is rsnnc ResetMode "subtract_deferred".

``build()`` returns a single-step module (``init_hidden=True``): call ``run(net, x)`` to
simulate a whole (T, B, 8) sequence. This is the form snnTorch's NIR exporter expects.
"""

from __future__ import annotations

import numpy as np
import snntorch as snn
import torch
from snntorch import utils as snn_utils
from torch import nn

SIGNAL_LEN = 40
WINDOW = 8
STRIDE = 2
N_STEPS = (SIGNAL_LEN - WINDOW) // STRIDE + 1  # 17
N_IN = WINDOW
N_HIDDEN = 128
N_OUT = 10
RESET_MECHANISM = "subtract"
RESET_DELAY = True
RSNNC_RESET = "subtract_deferred"
DT = 1e-4  # snnTorch's exporter hard-codes this


def build() -> nn.Sequential:
    """Untrained network with the shipped architecture (load weights.pt into it)."""
    return nn.Sequential(
        nn.Linear(N_IN, N_HIDDEN),
        snn.RLeaky(
            beta=torch.full((N_HIDDEN,), 0.85),
            threshold=torch.ones(N_HIDDEN),
            learn_beta=True,
            all_to_all=True,
            linear_features=N_HIDDEN,
            reset_mechanism=RESET_MECHANISM,
            reset_delay=RESET_DELAY,
            init_hidden=True,
        ),
        nn.Linear(N_HIDDEN, N_OUT),
        snn.Leaky(
            beta=torch.full((N_OUT,), 0.9),
            threshold=torch.ones(N_OUT),
            learn_beta=True,
            reset_mechanism=RESET_MECHANISM,
            reset_delay=RESET_DELAY,
            init_hidden=True,
            output=True,
        ),
    )


def encode(signals: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(B, 40) mnist1d signals -> (T=17, B, 8) float32 windows (window 8, stride 2)."""
    x = torch.as_tensor(np.asarray(signals, dtype=np.float32))
    return x.unfold(1, WINDOW, STRIDE).permute(1, 0, 2).contiguous()


def run(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Simulate from rest: x (T, B, 8) -> output spikes (T, B, 10)."""
    snn_utils.reset(net)
    out = []
    for t in range(x.shape[0]):
        spk, _mem = net(x[t])
        out.append(spk)
    snn_utils.reset(net)
    return torch.stack(out)


def predict(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class = argmax of summed output spikes."""
    with torch.no_grad():
        return run(net, x).sum(0).argmax(1)
