"""Differentiable surrogate-gradient runner for float graphs and a short masked fine-tune.

``TorchGraph`` evaluates a float IR graph exactly like ``interpreter.float_interp``: the same
time-step driver (``interpreter.schedule``) and the same neuron definitions
(``rsnn_compiler.neurons.float_dynamics``), run with the surrogate primitive set
``float_prims.SurrogateFloat``: the spike nonlinearity has a fast-sigmoid surrogate gradient

    forward  s = H(v - theta)          backward  ds/dv = 1 / (1 + k |v - theta|)^2

and the reset term is detached (as snnTorch does). The trainable parameters are the weights and
biases of Affine / Conv layers; a 0/1 mask per layer multiplies the weight in the forward pass,
so pruned weights stay exactly zero (and the bias of a row with no weight left stays as it was).
``finetune`` minimises the cross-entropy of ``logits = scale * out.sum(0)`` (same argmax as the
CLI's prediction ``argmax(out.sum(0))``; scale 1/T for a value readout, 0.5 for spike counts)
with Adam, the learning rate cosine-annealed to 0 (``rsnn_compiler.training``, the loop every
fine-tune shares); it is seeded and deterministic on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.float_interp import apply_stateless
from rsnn_compiler.interpreter.float_prims import SurrogateFloat, spike
from rsnn_compiler.interpreter.schedule import build_schedule, execute, output_index, zero_inputs
from rsnn_compiler.ir.dynamics import population
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import Affine, Conv1d, Conv2d, NeuronOp, Threshold
from rsnn_compiler.training import LoopConfig, train_loop

DTYPE = torch.float32


def _p(arr) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, dtype=np.float32))


class TorchGraph(nn.Module):
    """A float graph as a torch module; ``forward(x) -> out`` with x (T, B, *in), out (T, B, *out)."""

    def __init__(self, graph: Graph, masks: dict[str, np.ndarray] | None = None, slope: float = 25.0):
        super().__init__()
        if graph.attrs.domain is not Domain.FLOAT:
            raise UserInputError("fine-tuning needs a float graph (prune before quantize)")
        self.graph = graph
        self.slope = slope
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

    def _stateless(self, op, name: str):
        if isinstance(op, Threshold):
            theta = _p(op.theta)
            return lambda x: spike(x, theta, op.comparator, self.slope)
        if name in self.key:
            return lambda x: self._synapse(name, op, x)
        return lambda x: apply_stateless(op, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prims = SurrogateFloat(self.slope)
        slots = build_schedule(self.graph, lambda op, _name: population(prims, op), self._stateless)
        zeros = zero_inputs(slots, x.shape[1], lambda shape: torch.zeros(shape, dtype=DTYPE))
        output = output_index(slots, self.graph.output_name)
        hist, _ = execute(slots, x, zeros, False, output)
        return torch.stack(hist[output])

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


def float_logit_scale(graph: Graph, steps: int) -> float:
    """The float fine-tune's logit scale: 0.5 for spike counts, 1/T for a value readout."""
    return 0.5 if spiking_output(graph) else 1.0 / max(steps, 1)


def finetune(
    graph: Graph,
    x: np.ndarray,
    y: np.ndarray,
    masks: dict[str, np.ndarray] | None = None,
    config: FinetuneConfig | None = None,
) -> tuple[Graph, FinetuneResult]:
    """Train the graph's synapse weights/biases on (x (T, N, *in), y (N,)); masked weights stay 0.

    Also trains from scratch when ``masks`` is None (every weight trainable). The loop (batch
    order, cosine schedule, progress) is ``rsnn_compiler.training.train_loop``."""
    config = config or FinetuneConfig()
    if y is None:
        raise UserInputError("fine-tuning needs labels y in the data")
    torch.manual_seed(config.seed)
    model = TorchGraph(graph, masks, slope=config.slope)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    scale = config.logit_scale if config.logit_scale is not None else float_logit_scale(graph, xt.shape[0])

    def step(idx: np.ndarray, lr: float) -> float:
        idx = torch.from_numpy(idx)
        logits = model(xt[:, idx]).sum(0) * scale
        loss = F.cross_entropy(logits.reshape(len(idx), -1), yt[idx])
        opt.zero_grad()
        loss.backward()
        if config.max_grad_norm:
            nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        return float(loss.detach())

    loop = LoopConfig(config.epochs, config.batch_size, config.lr, config.seed, config.cosine)
    run = train_loop(int(xt.shape[1]), loop, step, "fine-tune")
    result = FinetuneResult(epochs=config.epochs, updates=run.updates, samples=int(xt.shape[1]),
                            loss_per_epoch=run.loss_per_epoch)
    return model.to_graph(), result


__all__ = ["FinetuneConfig", "FinetuneResult", "TorchGraph", "finetune", "float_logit_scale", "spike", "spiking_output"]
