"""Random valid float graphs for differential testing of float executors (GPU runtime).

``random_float_graph(seed, **knobs)`` builds Input -> [front end] -> [synapse -> neuron] x layers
-> [readout] -> Output, covering every float op the interpreter evaluates:

- front end (``front``: "none" | "conv1d" | "conv2d"): Conv (stride, padding, dilation, groups),
  BatchNorm, Pool (sum / avg / max, with padding), Flatten
- synapses: Affine with or without bias, optional Scale, optional Delay node (``steps >= 1``)
- neurons: LIF, IF, CubaLIF, ALIF, DualThresholdIF, MultiThreshold, Threshold; every reset mode
  and both comparators; gains of exactly 1 (no multiply) or not
- recurrent synapses (edge delay >= 1), skip synapses (several inputs into one neuron, added in
  edge order), edge delays, an LI / CubaLI readout or spikes, and an Output summing two edges

Knobs (``None`` = drawn from the seed): ``layers`` (1..3), ``width`` (2..10), ``n_in`` (2..8),
``front``, ``recurrent``, ``skip``, ``delays``, ``readout`` ("spikes" | "li" | "cuba_li").
``random_float_input(graph, steps, batch, seed)`` gives float32 inputs (rates, or analog values).
"""

from __future__ import annotations

import numpy as np

from rsnn_compiler.ir import verify
from rsnn_compiler.ir.conversion_ops import DualThresholdIF, MultiThreshold
from rsnn_compiler.ir.graph import Graph, GraphBuilder
from rsnn_compiler.ir.ops import (
    ALIF, IF, LI, LIF, Affine, BatchNorm, Comparator, Conv1d, Conv2d, CubaLI, CubaLIF, Delay,
    Flatten, Identity, Input, Output, Pool, PoolMode, ResetMode, Scale, Threshold,
)

NEURONS = ("lif", "if", "cuba_lif", "alif", "dual_if", "mtn", "threshold")


class _Gen:
    def __init__(self, seed: int, knobs: dict):
        self.r = np.random.default_rng(seed)
        self.k = knobs

    def flag(self, name: str, p: float = 0.5) -> bool:
        v = self.k.get(name)
        return bool(self.r.random() < p) if v is None else bool(v)

    def pick(self, name: str, lo: int, hi: int) -> int:
        v = self.k.get(name)
        return int(self.r.integers(lo, hi + 1)) if v is None else int(v)

    def vec(self, n: int, lo: float, hi: float) -> np.ndarray:
        return self.r.uniform(lo, hi, n).astype(np.float32)

    def gain(self, n: int) -> np.ndarray:
        return np.ones(n, np.float32) if self.r.random() < 0.5 else self.vec(n, 0.5, 1.5)

    def neuron(self, kind: str, n: int):
        r = self.r
        reset = ResetMode(r.choice([m.value for m in ResetMode]))
        cmp = Comparator(r.choice(["gt", "ge"]))
        theta = self.vec(n, 0.5, 1.5)
        common = dict(bias=self.vec(n, -0.1, 0.1) * (r.random() < 0.5), theta=theta,
                      v_reset=self.vec(n, -0.2, 0.2) * (r.random() < 0.3),
                      v_init=self.vec(n, -0.5, 0.5) * (r.random() < 0.5), reset=reset, comparator=cmp)
        if kind == "lif":
            return LIF(beta=self.vec(n, 0.5, 0.99), gain=self.gain(n), **common)
        if kind == "if":
            return IF(gain=self.gain(n), **common)
        if kind == "cuba_lif":
            return CubaLIF(alpha=self.vec(n, 0.3, 0.95), beta=self.vec(n, 0.5, 0.99),
                           gain_i=self.gain(n), gain_v=self.gain(n), **common)
        if kind == "alif":
            return ALIF(beta=self.vec(n, 0.5, 0.99), gain=self.gain(n), rho=self.vec(n, 0.5, 0.99),
                        kappa=self.vec(n, 0.0, 0.5), **common)
        if kind == "dual_if":
            return DualThresholdIF(bias=common["bias"], theta=theta, theta_neg=-self.vec(n, 0.0, 0.5),
                                   v_init=theta / 2, comparator=cmp)
        if kind == "mtn":
            return MultiThreshold(bias=common["bias"], theta=theta, v_init=theta / 2,
                                  levels=int(r.integers(1, 5)),
                                  reset=ResetMode(r.choice(["subtract", "zero"])))
        return Threshold(theta=self.vec(n, 0.0, 0.5), comparator=cmp)

    def readout(self, kind: str, n: int):
        if kind == "li":
            return LI(beta=self.vec(n, 0.5, 0.99), gain=self.gain(n), bias=self.vec(n, -0.1, 0.1),
                      v_init=self.vec(n, -0.2, 0.2))
        return CubaLI(alpha=self.vec(n, 0.3, 0.9), beta=self.vec(n, 0.5, 0.99), gain_i=self.gain(n),
                      gain_v=self.gain(n), bias=self.vec(n, -0.1, 0.1), v_init=np.zeros(n, np.float32))

    def affine(self, n_out: int, n_in: int, scale: float = 1.5) -> Affine:
        w = self.r.normal(0, scale / np.sqrt(n_in), (n_out, n_in)).astype(np.float32)
        bias = self.vec(n_out, -0.2, 0.2) if self.r.random() < 0.5 else None
        return Affine(weight=w, bias=bias)


def _front(gen: _Gen, b: GraphBuilder, kind: str, n_in: int) -> tuple[str, int]:
    """Conv front end; returns (last node, flattened width)."""
    r = gen.r
    c_in = 2
    if kind == "conv1d":
        in_shape = (c_in, n_in + 4)
        groups = int(r.choice([1, 2]))
        conv = Conv1d(weight=r.normal(0, 0.7, (4, c_in // groups, 3)).astype(np.float32),
                      bias=gen.vec(4, -0.1, 0.1) if r.random() < 0.5 else None, input_shape=in_shape,
                      stride=int(r.integers(1, 3)), padding=int(r.integers(0, 2)),
                      dilation=int(r.integers(1, 3)), groups=groups)
    else:
        in_shape = (c_in, 5, 5)
        conv = Conv2d(weight=r.normal(0, 0.5, (3, c_in, 2, 2)).astype(np.float32), input_shape=in_shape,
                      stride=1, padding=int(r.integers(0, 2)))
    b.add("in", Input(shape=in_shape))
    b.add("conv", conv)
    b.connect("in", "conv")
    prev, shape = "conv", conv.out_shape
    if r.random() < 0.5:
        c = shape[0]
        b.add("bn", BatchNorm(mean=gen.vec(c, -0.1, 0.1), var=gen.vec(c, 0.5, 2.0), gamma=gen.vec(c, 0.5, 1.5),
                              beta=gen.vec(c, 0.0, 0.1), shape=shape))  # verify() range-checks any "beta" as a decay
        b.connect(prev, "bn")
        prev = "bn"
    mode = PoolMode(r.choice(["sum", "avg", "max"]))
    if all(d >= 2 for d in shape[1:]):
        pool = Pool(mode=mode, kernel=2, stride=int(r.integers(1, 3)), padding=int(r.integers(0, 2)),
                    input_shape=shape)
        b.add("pool", pool)
        b.connect(prev, "pool")
        prev, shape = "pool", pool.out_shape
    b.add("flat", Flatten(input_shape=shape))
    b.connect(prev, "flat")
    return "flat", int(np.prod(shape))


def random_float_graph(seed: int, **knobs) -> Graph:
    """A random float graph that passes ``verify``; see the module docstring for the knobs."""
    gen = _Gen(seed, knobs)
    r = gen.r
    layers = gen.pick("layers", 1, 3)
    n_in = gen.pick("n_in", 2, 8)
    front = knobs.get("front") or str(r.choice(["none", "none", "conv1d", "conv2d"]))
    delays = gen.flag("delays", 0.5)
    kinds = knobs.get("neuron_kinds") or NEURONS
    readout = knobs.get("readout") or str(r.choice(["spikes", "li", "cuba_li"]))

    def delay(lo: int = 0) -> int:
        return int(r.integers(lo, 4)) if (delays or lo) else 0

    b = GraphBuilder(f"rand_float_s{seed}")
    if front == "none":
        b.add("in", Input(shape=(n_in,)))
        prev, n_prev = "in", n_in
    else:
        prev, n_prev = _front(gen, b, front, n_in)
    sources = [(prev, n_prev)]
    for li in range(layers):
        n = gen.pick("width", 2, 10)
        kind = str(kinds[int(r.integers(len(kinds)))])
        b.add(f"fc{li}", gen.affine(n, n_prev))
        b.connect(prev, f"fc{li}", delay())
        last = f"fc{li}"
        if r.random() < 0.3:
            b.add(f"scale{li}", Scale(scale=gen.vec(n, 0.5, 1.5)))
            b.connect(last, f"scale{li}")
            last = f"scale{li}"
        if r.random() < 0.25:
            b.add(f"delay{li}", Delay(shape=(n,), steps=int(r.integers(1, 4))))
            b.connect(last, f"delay{li}")
            last = f"delay{li}"
        b.add(f"n{li}", gen.neuron(kind, n))
        b.connect(last, f"n{li}")
        if kind != "threshold" and gen.flag("recurrent", 0.5):
            b.add(f"rec{li}", gen.affine(n, n, 0.8))
            b.connect(f"n{li}", f"rec{li}", delay(1))
            b.connect(f"rec{li}", f"n{li}")
        if li > 0 and gen.flag("skip", 0.3):
            src, n_src = sources[int(r.integers(len(sources) - 1))]
            b.add(f"skip{li}", gen.affine(n, n_src, 0.8))
            b.connect(src, f"skip{li}", delay())
            b.connect(f"skip{li}", f"n{li}")
        prev, n_prev = f"n{li}", n
        sources.append((prev, n_prev))
    if readout != "spikes":
        b.add("fc_out", gen.affine(3, n_prev))
        b.connect(prev, "fc_out", delay())
        b.add("readout", gen.readout(readout, 3))
        b.connect("fc_out", "readout")
        prev, n_prev = "readout", 3
    if r.random() < 0.3:
        b.add("id", Identity(shape=(n_prev,)))
        b.connect(prev, "id")
        prev = "id"
    b.add("out", Output(shape=(n_prev,)))
    b.connect(prev, "out")
    if r.random() < 0.3:  # the Output sums two edges: now and a few steps ago
        b.connect(prev, "out", int(r.integers(1, 3)))
    graph = b.build()
    problems = verify(graph)
    if problems:  # pragma: no cover - a generator bug
        raise AssertionError(f"random_float_graph(seed={seed}) is invalid: {problems[:3]}")
    return graph


def random_float_input(graph: Graph, steps: int, batch: int, seed: int) -> np.ndarray:
    """float32 inputs: Bernoulli spikes (rate 0.3) or analog values in [-1, 2), by seed."""
    rng = np.random.default_rng(seed)
    shape = (steps, batch, *graph.nodes[graph.input_name].in_shape)
    if rng.random() < 0.5:
        return (rng.random(shape) < 0.3).astype(np.float32)
    return rng.uniform(-1.0, 2.0, shape).astype(np.float32)
