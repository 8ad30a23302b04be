"""Run in .venv-peers (nir 1.0.4): write NIR files with Sinabs' and Rockpool's own exporters at
their default settings, plus each library's own forward on a fixed input.

    .venv-peers/bin/python tests/peers/export_old_nir.py OUT_DIR

Writes OUT_DIR/<case>.nir and OUT_DIR/<case>.npz (x (T, B, N) float32, spikes (T, B, M) float32).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nir
import numpy as np
import torch

T, B, N_IN, N_OUT = 100, 2, 6, 4


def _x() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(T, B, N_IN, generator=gen) < 0.3).float()


def sinabs_cases(out: Path) -> None:
    import sinabs
    import sinabs.layers as sl

    for name, neuron, scale in (("sinabs_iaf", sl.IAF(), 6.0), ("sinabs_lif", sl.LIF(tau_mem=5.0), 30.0)):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(N_IN, N_OUT), neuron)
        with torch.no_grad():  # strong enough for several spikes per step (MultiSpike, the default)
            net[0].weight.mul_(scale)
            net[0].bias.add_(0.3)
        x = _x()
        with torch.no_grad():
            spikes = net(x.permute(1, 0, 2))  # sinabs layers take (batch, time, ...)
        graph = sinabs.to_nir(net, torch.zeros(B, T, N_IN))
        nir.write(str(out / f"{name}.nir"), graph)
        np.savez(out / f"{name}.npz", x=x.numpy(), spikes=spikes.permute(1, 0, 2).numpy())


def rockpool_cases(out: Path) -> None:
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch
    from rockpool.nn.modules.torch.nir import to_nir

    torch.manual_seed(0)
    net = Sequential(LinearTorch((N_IN, N_OUT)), LIFTorch(N_OUT, tau_mem=torch.rand(N_OUT) * 0.02 + 0.005,
                                                          tau_syn=0.01, threshold=0.5))
    with torch.no_grad():
        net[0].weight.mul_(4.0)
    x = _x()
    with torch.no_grad():
        spikes, _state, _rec = net(x.permute(1, 0, 2))
    nir.write(str(out / "rockpool_lif.nir"), to_nir(net))
    np.savez(out / "rockpool_lif.npz", x=x.numpy(), spikes=spikes.permute(1, 0, 2).numpy())


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    sinabs_cases(target)
    rockpool_cases(target)
    print("wrote", ", ".join(sorted(p.name for p in target.glob("*.nir"))))
