"""MLP on sklearn digits (8x8 images, 64 features scaled to [0, 1]).

    x (64) -> Linear(64, 128) -> ClipReLU(0, 1) -> Linear(128, 10) -> logits

The clip is fixed at 1.0 (nn.Hardtanh(0, 1), exported to ONNX as Clip(min=0, max=1)), which
makes the hidden activation a rate in [0, 1] for ANN-to-SNN conversion.
Prediction = argmax of the logits. In the rsnnc data format the images are one time step:
x has shape (1, B, 64).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

N_IN = 64
N_HIDDEN = 128
N_OUT = 10
CLIP = 1.0
INPUT_SCALE = 1.0 / 16.0  # sklearn digits pixels are 0..16


def build() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(N_IN, N_HIDDEN),
        nn.Hardtanh(0.0, CLIP),
        nn.Linear(N_HIDDEN, N_OUT),
    )


def encode(images: np.ndarray) -> torch.Tensor:
    """(B, 64) raw sklearn digits -> (1, B, 64) float32 in [0, 1]."""
    x = np.asarray(images, dtype=np.float32) * INPUT_SCALE
    return torch.from_numpy(x)[None]


def predict(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x (T, B, 64); the ANN ignores time except for summing over it (T = 1 here)."""
    with torch.no_grad():
        return net(x).sum(0).argmax(1)
