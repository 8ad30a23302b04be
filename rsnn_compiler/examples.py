"""A small generated recurrent network, for the README demo and tests.

input (8) -> dense (32) -> LIF (snnTorch-style subtract_deferred reset) with an all-to-all
recurrent affine on a one-step delay -> dense (4) -> LI readout. Weights come from a seeded
generator, so the network is identical on every machine.
"""

from __future__ import annotations

import numpy as np

from rsnn_compiler.ir.graph import Graph, GraphBuilder
from rsnn_compiler.ir.ops import LI, LIF, Affine, Input, Output, ResetMode, broadcast_params
from rsnn_compiler.passes_api import Prop


def recurrent_example(seed: int = 0, n_in: int = 8, n_hidden: int = 32, n_out: int = 4) -> Graph:
    rng = np.random.default_rng(seed)
    b = GraphBuilder("example_recurrent", dt=1e-3)
    b.add("input", Input(shape=(n_in,)))
    b.add("fc_in", Affine(weight=rng.normal(0, 0.6, (n_hidden, n_in))))
    lif = broadcast_params(
        (n_hidden,), beta=rng.uniform(0.8, 0.95, n_hidden), gain=1.0, bias=0.0, theta=1.0, v_reset=0.0, v_init=0.0
    )
    b.add("lif", LIF(**lif, reset=ResetMode.SUBTRACT_DEFERRED))
    b.add("w_rec", Affine(weight=rng.normal(0, 0.15, (n_hidden, n_hidden)), bias=np.full(n_hidden, 0.01)))
    b.add("fc_out", Affine(weight=rng.normal(0, 0.4, (n_out, n_hidden))))
    b.add("readout", LI(**broadcast_params((n_out,), beta=0.9, gain=1.0, bias=0.0, v_init=0.0)))
    b.add("output", Output(shape=(n_out,)))
    b.chain("input", "fc_in", "lif")
    b.connect("lif", "w_rec", delay=1)
    b.connect("w_rec", "lif")
    b.chain("lif", "fc_out", "readout", "output")
    g = b.build()
    return g.with_attrs(properties=frozenset({Prop.DISCRETIZED}))


def example_inputs(seed: int = 1, steps: int = 50, batch: int = 16, n_in: int = 8) -> np.ndarray:
    """Bernoulli spike trains (rate 0.3) shaped (steps, batch, n_in)."""
    rng = np.random.default_rng(seed)
    return (rng.random((steps, batch, n_in)) < 0.3).astype(np.float32)
