"""1-D CNN on mnist1d with clipped-ReLU activations (ANN for ANN-to-SNN conversion).

    x (1, 40) -> 3 x [Conv1d(k=5, pad=2) -> ClipReLU(0, a_l) -> AvgPool1d(2)] -> Flatten
              -> Linear(32*5, 10) -> logits

Channels 32 in every conv. Trained with BatchNorm after each conv; the BatchNorm is folded into
the conv weights/bias before saving, so the shipped network has no BatchNorm. Each ClipReLU
has one learnable clip value a_l (PACT-style, initialised at 2.0; trained values are in
meta.json) and is exported to ONNX as Clip(min=0, max=a_l).
Prediction = argmax of the logits. In the rsnnc data format a signal is one time step:
x has shape (1, B, 1, 40).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SIGNAL_LEN = 40
CHANNELS = 32
KERNEL = 5
N_OUT = 10
CLIP_INIT = 2.0


class ClipReLU(nn.Module):
    """y = clamp(x, 0, alpha) with a learnable scalar alpha."""

    def __init__(self, alpha: float = CLIP_INIT) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, torch.zeros((), dtype=x.dtype), self.alpha)


def build(batchnorm: bool = False) -> nn.Sequential:
    """Shipped architecture (batchnorm=False); make.py trains the batchnorm=True variant."""
    layers: list[nn.Module] = []
    c_in = 1
    for _ in range(3):
        layers.append(nn.Conv1d(c_in, CHANNELS, KERNEL, padding=KERNEL // 2))
        if batchnorm:
            layers.append(nn.BatchNorm1d(CHANNELS))
        layers += [ClipReLU(), nn.AvgPool1d(2)]
        c_in = CHANNELS
    layers += [nn.Flatten(), nn.Linear(CHANNELS * (SIGNAL_LEN // 8), N_OUT)]
    return nn.Sequential(*layers)


def fold_batchnorm(trained: nn.Sequential) -> nn.Sequential:
    """Copy a build(batchnorm=True) network into build() with BatchNorm folded into the convs."""
    out = build()
    src = list(trained)
    dst = [m for m in out]
    j = 0
    with torch.no_grad():
        i = 0
        while i < len(src):
            m = src[i]
            if isinstance(m, nn.Conv1d) and i + 1 < len(src) and isinstance(src[i + 1], nn.BatchNorm1d):
                bn = src[i + 1]
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                dst[j].weight.copy_(m.weight * scale[:, None, None])
                dst[j].bias.copy_((m.bias - bn.running_mean) * scale + bn.bias)
                i += 2
            else:
                if list(m.state_dict()):
                    dst[j].load_state_dict(m.state_dict())
                i += 1
            j += 1
    return out


def encode(signals: np.ndarray) -> torch.Tensor:
    """(B, 40) mnist1d signals -> (1, B, 1, 40) float32."""
    return torch.from_numpy(np.asarray(signals, dtype=np.float32))[None, :, None, :]


def predict(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x (T, B, 1, 40) -> class per sample (logits summed over T; T = 1 here)."""
    with torch.no_grad():
        return torch.stack([net(x[t]) for t in range(x.shape[0])]).sum(0).argmax(1)
