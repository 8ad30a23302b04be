"""Differentiable surrogate-gradient runner for float graphs and a short masked fine-tune.

``TorchGraph`` evaluates a float IR graph exactly like ``interpreter.float_interp`` (same op
order, same per-edge accumulation onto the decayed state, float32), but the spike nonlinearity
has a fast-sigmoid surrogate gradient

    forward  s = H(v - theta)          backward  ds/dv = 1 / (1 + k |v - theta|)^2

and the reset term is detached (as snnTorch does). The trainable parameters are the weights and
biases of Affine / Conv layers; a 0/1 mask per layer multiplies the weight in the forward pass,
so pruned weights stay exactly zero (and the bias of a row with no weight left stays as it was).
``finetune`` minimises the cross-entropy of ``logits = scale * out.sum(0)`` (same argmax as the
CLI's prediction ``argmax(out.sum(0))``; scale 1/T for a value readout, 0.5 for spike counts)
with Adam, the learning rate cosine-annealed to 0; it is seeded and deterministic on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.float_interp import apply_stateless
from rsnn_compiler import progress
from rsnn_compiler.ir import topology
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import (
    ALIF, IF, LI, LIF, Affine, Comparator, Conv1d, Conv2d, CubaLI, CubaLIF, Delay, Input,
    NeuronOp, ResetMode, Threshold,
)

DTYPE = torch.float32


class _FastSigmoidSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor, slope: float, ge: bool) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.slope = slope
        return (u >= 0 if ge else u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (u,) = ctx.saved_tensors
        return grad / (1.0 + ctx.slope * u.abs()) ** 2, None, None


def spike(v: torch.Tensor, theta: torch.Tensor, cmp: Comparator, slope: float) -> torch.Tensor:
    """Heaviside with a fast-sigmoid surrogate gradient (``>`` or ``>=`` per ``cmp``)."""
    return _FastSigmoidSpike.apply(v - theta, slope, cmp is Comparator.GE)


def _p(arr) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, dtype=np.float32))


class _State:
    def __init__(self, op: NeuronOp, batch: int):
        shape = (batch, *op.shape)
        zeros = torch.zeros(shape, dtype=DTYPE)
        self.v = _p(op.v_init).expand(shape).clone() if hasattr(op, "v_init") else zeros
        self.i = zeros
        self.a = zeros
        self.s = zeros


class TorchGraph(nn.Module):
    """A float graph as a torch module; ``forward(x) -> out`` with x (T, B, *in), out (T, B, *out)."""

    def __init__(self, graph: Graph, masks: dict[str, np.ndarray] | None = None, slope: float = 25.0):
        super().__init__()
        if graph.attrs.domain is not Domain.FLOAT:
            raise UserInputError("fine-tuning needs a float graph (prune before quantize)")
        self.graph = graph
        self.slope = slope
        self.order = topology.evaluation_order(graph)
        self.in_edges = {n: graph.in_edges(n) for n in graph.nodes}
        self.weights = nn.ParameterDict()
        self.biases = nn.ParameterDict()
        self.masks: dict[str, torch.Tensor] = {}
        self.bias_alive: dict[str, torch.Tensor] = {}
        self.bias_frozen: dict[str, torch.Tensor] = {}
        self.key: dict[str, str] = {}  # node name -> parameter key (node names may contain '.')
        for name, op in graph.nodes.items():
            if isinstance(op, (Affine, Conv1d, Conv2d)):
                key = self.key[name] = f"n{len(self.key)}"
                self.weights[key] = nn.Parameter(_p(op.weight))
                if op.bias is not None:
                    self.biases[key] = nn.Parameter(_p(op.bias))
                mask = None if masks is None else masks.get(name)
                self.masks[name] = _p(mask if mask is not None else np.ones(op.weight.shape))
                if op.bias is not None:  # a row with no weight left keeps its bias as it is
                    alive = self.masks[name].reshape(op.weight.shape[0], -1).any(dim=1)
                    self.bias_alive[name] = alive.to(DTYPE)
                    self.bias_frozen[name] = _p(op.bias)

    def weight(self, name: str) -> torch.Tensor:
        return self.weights[self.key[name]] * self.masks[name]

    def bias(self, name: str) -> torch.Tensor | None:
        if self.key[name] not in self.biases:
            return None
        alive = self.bias_alive[name]
        return self.bias_frozen[name] + (self.biases[self.key[name]] - self.bias_frozen[name]) * alive

    def _synapse(self, name: str, op, x: torch.Tensor) -> torch.Tensor:
        b = self.bias(name)
        if isinstance(op, Affine):
            return F.linear(x, self.weight(name), b)
        conv = F.conv1d if isinstance(op, Conv1d) else F.conv2d
        return conv(x, self.weight(name), b, op.stride, op.padding, op.dilation, op.groups)

    def _neuron(self, op: NeuronOp, st: _State, xs: list[torch.Tensor]) -> torch.Tensor:
        def acc(start, gain):
            g = None if bool((gain == 1).all()) else _p(gain)
            for x in xs:
                start = start + (x if g is None else g * x)
            return start

        if isinstance(op, (LI, CubaLI)):
            if isinstance(op, LI):
                st.v = acc(_p(op.beta) * st.v, op.gain) + _p(op.bias)
            else:
                st.i = acc(_p(op.alpha) * st.i, op.gain_i)
                gv = st.i if bool((op.gain_v == 1).all()) else _p(op.gain_v) * st.i
                st.v = _p(op.beta) * st.v + gv + _p(op.bias)
            return st.v
        if isinstance(op, CubaLIF):
            st.i = acc(_p(op.alpha) * st.i, op.gain_i)
            gv = st.i if bool((op.gain_v == 1).all()) else _p(op.gain_v) * st.i
            base = _p(op.beta) * st.v + gv + _p(op.bias)
        elif isinstance(op, IF):
            base = acc(st.v, op.gain) + _p(op.bias)
        elif isinstance(op, (LIF, ALIF)):
            base = acc(_p(op.beta) * st.v, op.gain) + _p(op.bias)
        else:
            raise UserInputError(f"fine-tuning does not support {type(op).__name__} yet")
        theta = _p(op.theta)
        if isinstance(op, ALIF):
            theta = theta + _p(op.kappa) * st.a
        cmp, mode, k = op.comparator, op.reset, self.slope
        prev = st.s.detach()
        if mode is ResetMode.ZERO:
            s = spike(base, theta, cmp, k)
            v = torch.where(s.detach() > 0, _p(op.v_reset).expand_as(base), base)
        elif mode is ResetMode.SUBTRACT:
            s = spike(base, theta, cmp, k)
            v = base - theta * s.detach()
        elif mode is ResetMode.SUBTRACT_DEFERRED:
            v = base - theta * prev
            s = spike(v, theta, cmp, k)
        elif mode is ResetMode.SUBTRACT_NODELAY:
            r = (st.v >= theta if cmp is Comparator.GE else st.v > theta).to(DTYPE).detach()
            b = base - theta * r
            s = spike(b, theta, cmp, k)
            v = b - theta * (s.detach() - r)
        elif mode is ResetMode.ZERO_HOLD:
            v = (1.0 - prev) * base
            s = spike(v, theta, cmp, k)
        else:
            v = base
            s = spike(v, theta, cmp, k)
        if isinstance(op, ALIF):
            st.a = _p(op.rho) * st.a + s.detach()
        st.v, st.s = v, s
        return s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        graph = self.graph
        steps, batch = x.shape[0], x.shape[1]
        states = {n: _State(op, batch) for n, op in graph.nodes.items()
                  if isinstance(op, NeuronOp) and not isinstance(op, Threshold)}
        values: dict[str, list[torch.Tensor]] = {n: [] for n in graph.nodes}
        delay_in: dict[str, list[torch.Tensor]] = {
            n: [] for n, op in graph.nodes.items() if isinstance(op, Delay) and op.steps >= 1
        }

        def terms(name: str, t: int) -> list[torch.Tensor]:
            out = [values[e.src][t - e.delay] for e in self.in_edges[name] if t - e.delay >= 0]
            return out or [torch.zeros((batch, *graph.nodes[name].in_shape), dtype=DTYPE)]

        def gather(name: str, t: int) -> torch.Tensor:
            items = terms(name, t)
            total = items[0]
            for v in items[1:]:
                total = total + v
            return total

        for t in range(steps):
            for name in self.order:
                op = graph.nodes[name]
                if isinstance(op, Input):
                    y = x[t]
                elif name in delay_in:
                    k = t - op.steps
                    y = delay_in[name][k] if k >= 0 else torch.zeros((batch, *op.shape), dtype=DTYPE)
                elif isinstance(op, Threshold):
                    y = spike(gather(name, t), _p(op.theta), op.comparator, self.slope)
                elif isinstance(op, NeuronOp):
                    y = self._neuron(op, states[name], terms(name, t))
                elif name in self.key:
                    y = self._synapse(name, op, gather(name, t))
                else:
                    y = apply_stateless(op, gather(name, t))
                values[name].append(y)
            for name in delay_in:
                delay_in[name].append(gather(name, t))
        return torch.stack(values[graph.output_name])

    def to_graph(self) -> Graph:
        """The graph with the current (masked) weights and biases written back as float32."""
        graph = self.graph
        with torch.no_grad():
            for name in self.key:
                op = graph.nodes[name]
                mask = self.masks[name].numpy() > 0
                w = np.where(mask, self.weights[self.key[name]].numpy(), 0.0).astype(np.float32)  # no -0.0
                b = self.bias(name)
                b = None if b is None else b.numpy().astype(np.float32)
                graph = graph.with_node(name, op.replace(weight=w, bias=b))
        return graph


def spiking_output(graph: Graph) -> bool:
    """Whether the output node records spikes (else a value readout such as LI)."""
    return any(
        isinstance(graph.nodes[e.src], NeuronOp) and graph.nodes[e.src].spiking
        for e in graph.in_edges(graph.output_name)
    )


@dataclass
class FinetuneConfig:
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    slope: float = 25.0  # surrogate steepness k
    max_grad_norm: float = 1.0
    seed: int = 0
    cosine: bool = True  # cosine-anneal the learning rate to 0 over the run
    logit_scale: float | None = None  # logits = scale * out.sum(0); None: 1/T for a value
    # readout (the time mean), 0.5 for spike counts (snnTorch's usual count scaling)


@dataclass
class FinetuneResult:
    epochs: int
    updates: int
    samples: int
    loss_per_epoch: list[float] = field(default_factory=list)


def finetune(
    graph: Graph,
    x: np.ndarray,
    y: np.ndarray,
    masks: dict[str, np.ndarray] | None = None,
    config: FinetuneConfig | None = None,
) -> tuple[Graph, FinetuneResult]:
    """Train the graph's synapse weights/biases on (x (T, N, *in), y (N,)); masked weights stay 0.

    Also trains from scratch when ``masks`` is None (every weight trainable)."""
    config = config or FinetuneConfig()
    if y is None:
        raise UserInputError("fine-tuning needs labels y in the data")
    torch.manual_seed(config.seed)
    model = TorchGraph(graph, masks, slope=config.slope)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    n = xt.shape[1]
    scale = config.logit_scale
    if scale is None:
        scale = 0.5 if spiking_output(graph) else 1.0 / max(xt.shape[0], 1)
    gen = torch.Generator().manual_seed(config.seed)
    total_updates = config.epochs * ((n + config.batch_size - 1) // config.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(total_updates, 1)) if config.cosine else None
    result = FinetuneResult(epochs=config.epochs, updates=0, samples=int(n))
    for _ in progress.track(range(config.epochs), "fine-tune", unit="epoch"):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, config.batch_size):
            idx = perm[start : start + config.batch_size]
            logits = model(xt[:, idx]).sum(0) * scale
            loss = F.cross_entropy(logits.reshape(len(idx), -1), yt[idx])
            opt.zero_grad()
            loss.backward()
            if config.max_grad_norm:
                nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(idx)
            result.updates += 1
        result.loss_per_epoch.append(total / n)
    return model.to_graph(), result


__all__ = ["FinetuneConfig", "FinetuneResult", "TorchGraph", "finetune", "spike", "spiking_output"]
