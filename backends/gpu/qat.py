"""Straight-through fine-tuning of a fixed-point graph: ``FixedPointModule``.

The forward pass *is* the integer forward of ``run_fixed``: every value is a ``Dual`` — an exact
int64 tensor ``q`` computed with the runtime's integer equations (``gpu_fixed_ops``) — plus a
float64 surrogate ``g`` that carries gradients. Each integer primitive returns ``g`` anchored to
the exact value (``g``'s value is ``q``) with a straight-through derivative:

    weight mantissa  m = round_half_away(w / 2^e), clipped    dm/dw = 2^-e
    shift / decay    x·2^e, trunc(x·(4096−d)/4096)            2^e, (4096−d)/4096
    overflow, clip   identity                                  1
    floor_div(m, θ)  graded spike                              1/θ
    spike cmp(v, θ)  Heaviside                                 fast sigmoid 1/(θ·(1 + k|v−θ|/θ)^2)

Sums and products stay exact on ``q`` (int64) and are ordinary float ops on ``g``. Trainable
parameters are float64 "shadow" weights (and dense biases) in integer units: the shadow of
mantissa m with exponent e starts at m·2^e, so the untrained module equals the graph exactly.
``export_fixed_graph()`` re-quantizes the shadows with the same rule into a graph of the same
structure (same nodes, edges, exponents); ``run_fixed`` on it equals the module's forward.
With ``keep_zeros`` (the default) every weight whose mantissa is zero in the input graph (pruned,
or quantized to zero) is masked out of the forward pass: it gets no gradient and stays zero, so a
pruned graph keeps its sparsity through fine-tuning.
"""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.fixed import arith
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.ir import verify
from rsnn_compiler.ir.dynamics import population
from rsnn_compiler.ir.fixed_ops import FixedDense, FixedNeuron, Quantize, _FixedConv
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.ops import Comparator, Delay, Flatten, Identity, Output, Pool, PoolMode

from rsnn_compiler.backends.gpu import fixed_ops as fx
from rsnn_compiler.backends.gpu.exact import ExactLinear, choose_plan, exact_float_context
from rsnn_compiler.backends.gpu.runtime import (
    GraphRuntime, Trace, build_schedule, execute, resolve_device,
)

F64 = torch.float64


# --------------------------------------------------------------------------------------
# Dual values: exact integers + straight-through surrogate
# --------------------------------------------------------------------------------------
class _Anchor(torch.autograd.Function):
    """Forward: the exact value ``q`` as float64. Backward: ``grad · slope`` to ``g``."""

    @staticmethod
    def forward(ctx, g, q, slope):
        ctx.slope = slope
        ctx.g_shape = g.shape
        return q.to(F64)

    @staticmethod
    def backward(ctx, grad):
        out = grad * ctx.slope
        if out.shape != ctx.g_shape:
            out = out.sum_to_size(ctx.g_shape)
        return out, None, None


def anchor(g: torch.Tensor, q: torch.Tensor, slope) -> torch.Tensor:
    return _Anchor.apply(g, q, slope)


def _lift_g(value):
    if isinstance(value, Dual):
        return value.g
    if isinstance(value, torch.Tensor):
        return value.to(F64)
    return float(value)


class Dual:
    """An exact int64 tensor ``q`` and its differentiable float64 surrogate ``g`` (value ≈ q)."""

    __slots__ = ("q", "g")

    def __init__(self, q: torch.Tensor, g: torch.Tensor | None = None):
        self.q = q
        self.g = q.to(F64) if g is None else g

    @staticmethod
    def _parts(other):
        if isinstance(other, Dual):
            return other.q, other.g
        return other, _lift_g(other)

    def __add__(self, other):
        q, g = self._parts(other)
        return Dual(self.q + q, self.g + g)

    __radd__ = __add__

    def __sub__(self, other):
        q, g = self._parts(other)
        return Dual(self.q - q, self.g - g)

    def __rsub__(self, other):
        q, g = self._parts(other)
        return Dual(q - self.q, g - self.g)

    def __mul__(self, other):
        q, g = self._parts(other)
        return Dual(self.q * q, self.g * g)

    __rmul__ = __mul__

    def __neg__(self):
        return Dual(-self.q, -self.g)

    def __getitem__(self, idx):
        return Dual(self.q[idx], self.g[idx])

    @property
    def shape(self) -> torch.Size:
        return self.q.shape


def _q(x):
    return x.q if isinstance(x, Dual) else x


class DualOps(fx.TorchInt):
    """``fixed_ops.TorchInt`` on ``Dual`` values: exact forward, straight-through backward.
    Parameters stay plain int64 tensors; states and values are ``Dual``."""

    slope = 25.0  # fast-sigmoid steepness, in units of the threshold

    def initial(self, value, batch: int, shape: tuple[int, ...]) -> Dual:
        return Dual(super().initial(value, batch, shape))

    @staticmethod
    def decay(x: Dual, d: torch.Tensor) -> Dual:
        q = fx.TorchInt.decay(x.q, d)
        return Dual(q, anchor(x.g, q, (arith.DECAY_ONE - d).to(F64) / arith.DECAY_ONE))

    @staticmethod
    def mul_shift(a: Dual, b, n: int) -> Dual:
        prod = a * b
        q = fx.TorchInt.trunc_shift(prod.q, n)
        return Dual(q, anchor(prod.g, q, 2.0 ** -n))

    @staticmethod
    def lshift(x: Dual, n: int) -> Dual:
        if not n:
            return x
        q = x.q << n
        return Dual(q, anchor(x.g, q, float(1 << n)))

    @staticmethod
    def shift(x: Dual, mul: torch.Tensor, rsh: torch.Tensor) -> Dual:
        q = fx.TorchInt.shift(x.q, mul, rsh)
        return Dual(q, anchor(x.g, q, mul.to(F64) * torch.exp2(-rsh.to(F64))))

    @staticmethod
    def ovf(x: Dual, bits: int, mode, state: str = "") -> Dual:
        q = fx.overflow(x.q, bits, mode)
        return Dual(q, anchor(x.g, q, 1.0))

    @classmethod
    def _heaviside(cls, above: Dual | torch.Tensor, below, q: torch.Tensor, width) -> Dual:
        """Spike ``q`` = H(above − below) with a fast-sigmoid surrogate scaled by ``width``."""
        z = (_q(above) - _q(below)).to(F64)
        w = torch.clamp(_q(width).to(F64), min=1.0) if isinstance(width, (Dual, torch.Tensor)) else max(float(width), 1.0)
        slope = 1.0 / (w * (1.0 + cls.slope * z.abs() / w) ** 2)
        return Dual(q, anchor(_lift_g(above) - _lift_g(below), q, slope))

    @classmethod
    def cmp(cls, v: Dual, theta, comparator: Comparator) -> Dual:
        q = fx.TorchInt.cmp(v.q, _q(theta), comparator)
        return cls._heaviside(v, theta, q, theta)

    @classmethod
    def lt(cls, a: Dual, b) -> Dual:
        q = fx.TorchInt.lt(a.q, _q(b))
        return cls._heaviside(b, a, q, torch.abs(_q(b)))

    @staticmethod
    def positive(x: Dual) -> Dual:
        return Dual(fx.TorchInt.positive(x.q))

    @staticmethod
    def fired(s: Dual) -> torch.Tensor:
        return s.q > 0

    @staticmethod
    def where(cond: torch.Tensor, a, b) -> Dual:
        qa, qb = _q(a), _q(b)
        return Dual(torch.where(cond, qa, qb), torch.where(cond, _lift_g(a), _lift_g(b)))

    @staticmethod
    def floor_div(x: Dual, y: torch.Tensor) -> Dual:
        q = fx.TorchInt.floor_div(x.q, y)
        return Dual(q, anchor(x.g, q, 1.0 / y.to(F64)))

    @staticmethod
    def clip(x: Dual, lo: int, hi: int) -> Dual:
        q = torch.clamp(x.q, lo, hi)
        return Dual(q, anchor(x.g, q, 1.0))

    @staticmethod
    def full_like(value: torch.Tensor, like: Dual) -> Dual:
        return Dual(value.expand_as(like.q).clone())


# --------------------------------------------------------------------------------------
# Weight re-quantization (shared by forward and export)
# --------------------------------------------------------------------------------------
def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    return (torch.sign(x) * torch.floor(x.abs() + 0.5)).to(torch.int64)


def requantize(op: FixedDense | _FixedConv, shadow: torch.Tensor, profile: str | None) -> torch.Tensor:
    """Mantissas for float weights ``shadow`` (integer units) with the op's fixed exponents.

    ``m = round_half_away(w / 2^e)`` clipped to the op's mantissa range; on loihi2 a Dense
    matrix is snapped to Lava's grid (multiples of 2^k by sign mode, ``_loihi_snap``) so that
    Lava uses it unchanged (``arith.loihi_weights_exact``).
    """
    e = torch.as_tensor(np.asarray(op.weight_exp, np.float64), device=shadow.device)
    e = e.reshape((-1,) + (1,) * (shadow.ndim - 1))
    m = _round_half_away(shadow.detach() * torch.exp2(-e))
    if profile == "loihi2" and isinstance(op, FixedDense):
        return _loihi_snap(m, op.weight_bits)
    if profile == "loihi2":
        return torch.clamp(m, -256, 255)
    half = 1 << (op.weight_bits - 1)
    return torch.clamp(m, -half, half - 1)


def _loihi_snap(m: torch.Tensor, weight_bits: int) -> torch.Tensor:
    """Nearest matrix on Lava's grid for its sign mode: multiples of 2^k, MIXED in [−256, 255],
    EXC in [0, 255], INH in [−255, 0] (a fixed point of ``arith.loihi_weight_quantize``)."""
    S = arith.SignMode
    lo, hi = (int(m.min()), int(m.max())) if m.numel() else (0, 0)
    mode = S.EXCITATORY if lo >= 0 else (S.INHIBITORY if hi <= 0 else S.MIXED)
    step = 1 << arith.loihi_dropped_bits(weight_bits, mode)
    top = (255 // step) * step
    lo_q, hi_q = {S.MIXED: (-256, top), S.EXCITATORY: (0, top), S.INHIBITORY: (-top, 0)}[mode]
    snapped = torch.clamp(_round_half_away(m.to(F64) / step) * step, lo_q, hi_q)
    if mode is S.MIXED and snapped.numel() and int(snapped.max()) <= 0:
        # rounding emptied the positive side: Lava now reads it as INH, which excludes -256
        snapped = torch.clamp(snapped, -top, 0)
    return snapped


# --------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------
class _DualSynapse:
    """FixedDense / FixedConv on duals with trainable shadow weights (and bias)."""

    def __init__(self, module: "FixedPointModule", key: str, op, device):
        self.module, self.key, self.op = module, key, op
        self.base = fx.SynapseKernel(op, device)  # shift tensors, exact linear fn
        self.float_fn = fx._dense_fn if isinstance(op, FixedDense) else fx._conv_fn(op)
        self.x_bound = 0

    def __call__(self, x: Dual) -> Dual:
        op, m = self.op, self.module
        shadow = m.shadow(self.key)
        mant = requantize(op, shadow, m.profile)
        e = torch.as_tensor(np.asarray(op.weight_exp, np.float64), device=shadow.device)
        w = Dual(mant, anchor(shadow, mant, torch.exp2(-e).reshape((-1,) + (1,) * (shadow.ndim - 1))))
        linear = ExactLinear(mant, self.base.linear.fn)
        plan = choose_plan(m.int_matmul, m.device, linear.row_bound, self.x_bound)
        acc = Dual(linear.apply(x.q, plan), self.float_fn(x.g, w.g))
        y = DualOps.shift(acc, self.base.mul, self.base.rsh)
        if self.key in m.shadow_biases:
            sb = m.shadow_biases[self.key]
            bq = _round_half_away(sb.detach())
            lo, hi = arith.signed_range(op.acc_bits)
            bq = torch.clamp(bq, lo, hi)
            shape = self.base.mul.shape
            y = y + Dual(bq.reshape(shape), anchor(sb, bq, 1.0).reshape(shape))
        return DualOps.ovf(y, op.acc_bits, op.acc_overflow)


def _dual_stateless(op, device):
    if isinstance(op, (Output, Identity)) or (isinstance(op, Delay) and op.steps == 0):
        return lambda x: x
    if isinstance(op, Quantize):
        def quant(x: Dual) -> Dual:
            q = fx.quantize_values(op, x.q)
            return Dual(q, anchor(x.g, q, float(2.0 ** op.shift)))
        return quant
    if isinstance(op, Pool):
        return lambda x: _dual_pool(op, x)
    if isinstance(op, Flatten):
        return lambda x: Dual(fx.flatten(op, x.q), fx.flatten(op, x.g))
    raise UserInputError(f"FixedPointModule cannot evaluate {type(op).__name__}")


def _dual_pool(op: Pool, x: Dual) -> Dual:
    q = fx.pool_int(op, x.q)
    two_d = op.spatial_dims == 2
    if op.mode is PoolMode.MAX:
        fn = F.max_pool2d if two_d else F.max_pool1d
        g = x.g
        if any(op.padding):
            g = F.pad(g, [p for p in reversed(op.padding) for _ in (0, 1)], value=-float("inf"))
        g = fn(g, op.kernel, op.stride)
    else:
        ones = torch.ones((op.input_shape[0], 1, *op.kernel), dtype=F64, device=x.g.device)
        conv = F.conv2d if two_d else F.conv1d
        g = conv(x.g, ones, None, op.stride, op.padding, 1, op.input_shape[0])
    return Dual(q, anchor(g, q, 1.0))


# --------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------
def _key(index: int, name: str) -> str:
    return f"s{index}_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


class FixedPointModule(torch.nn.Module):
    """A fixed graph as a trainable module whose forward is the exact integer forward.

    ``forward(x)`` takes (time, batch, *input_shape) floats (or integers for graphs without a
    Quantize input) and returns the Output node's values (time, batch, *out) as float64 tensors
    holding exact integers, differentiable w.r.t. ``shadow_weights`` / ``shadow_biases`` (and
    the input when it requires grad). ``trace(x)`` returns the integer ``RunResult``.
    """

    def __init__(self, graph: Graph, device: str | torch.device | None = None,
                 int_matmul: str = "auto", surrogate_slope: float = 25.0, keep_zeros: bool = True):
        super().__init__()
        if graph.attrs.domain is not Domain.FIXED:
            raise UserInputError("FixedPointModule needs a fixed-point graph; quantize it first"
                                 " (FixedPointModule.from_float does it with the build's passes)")
        self.graph = graph
        self.profile = graph.attrs.profile
        self.device = resolve_device(device)
        self.int_matmul = int_matmul
        self.surrogate_slope = float(surrogate_slope)
        self._runtime = GraphRuntime(graph, device="cpu")  # input checks and value bounds
        self.shadow_weights = torch.nn.ParameterDict()
        self.shadow_biases = torch.nn.ParameterDict()
        self.synapse_keys: dict[str, str] = {}
        self.masks: dict[str, torch.Tensor] = {}  # key -> 0/1 float64, where a mantissa may be nonzero
        for i, (name, op) in enumerate(graph.nodes.items()):
            if isinstance(op, (FixedDense, _FixedConv)):
                key = _key(i, name)
                self.synapse_keys[name] = key
                e = np.asarray(op.weight_exp, np.float64).reshape((-1,) + (1,) * (op.weight.ndim - 1))
                w = torch.from_numpy(op.weight.astype(np.float64) * np.exp2(e))
                self.shadow_weights[key] = torch.nn.Parameter(w.to(self.device))
                if keep_zeros:  # pruned (and quantized-to-zero) weights stay exactly zero
                    self.masks[key] = torch.from_numpy((op.weight != 0).astype(np.float64)).to(self.device)
                if op.bias is not None:
                    b = torch.from_numpy(op.bias.astype(np.float64))
                    self.shadow_biases[key] = torch.nn.Parameter(b.to(self.device))
        self.slots = build_schedule(graph, lambda op, _name: population(DualOps(self.device), op), self._stateless)
        self.output = next(s.index for s in self.slots if s.name == graph.output_name)
        self._bounds_for: int | None = None

    @classmethod
    def from_float(cls, graph: Graph, profile: str = "fpga", calib_x: np.ndarray | None = None,
                   **kwargs) -> "FixedPointModule":
        """Quantize a float graph with the build's fixed pipeline, then wrap the result."""
        from rsnn_compiler.build import BuildOptions, fixed_pipeline, float_pipeline
        from rsnn_compiler.pass_manager import run_pipeline
        from rsnn_compiler.passes_api import PassContext

        ctx = PassContext(profile=profile, calib_x=calib_x)
        steps = float_pipeline(BuildOptions()) + fixed_pipeline()  # canonicalize, prune (off), quantize
        fixed, _reports = run_pipeline(graph, steps, ctx)
        return cls(fixed, **kwargs)

    def shadow(self, key: str) -> torch.Tensor:
        """The shadow weights of one synapse as the forward uses them: masked when
        ``keep_zeros`` (a zero mantissa of the input graph gets no gradient and stays zero)."""
        w = self.shadow_weights[key]
        mask = self.masks.get(key)
        return w if mask is None else w * mask

    def _stateless(self, op, name: str):
        if isinstance(op, (FixedDense, _FixedConv)):
            return _DualSynapse(self, self.synapse_keys[name], op, self.device)
        return _dual_stateless(op, self.device)

    def _inputs(self, x) -> Dual:
        grad_x = x if isinstance(x, torch.Tensor) and x.requires_grad else None
        xt = self._runtime.prepare_input(x).to(self.device)
        g = grad_x.to(device=self.device, dtype=F64) if grad_x is not None else None
        bound = self._runtime._input_bound(xt)
        if self._bounds_for is None or self._bounds_for < bound:
            bounds = self._runtime.value_bounds(max(bound, 1))
            for s in self.slots:
                if isinstance(s.kernel, _DualSynapse):
                    s.kernel.x_bound = sum(bounds[self.slots[src].name] for src, _d in s.edges)
            self._bounds_for = bound
        return Dual(xt, g)

    def _run(self, x, record: bool):
        DualOps.slope = self.surrogate_slope
        xd = self._inputs(x)
        zeros = [Dual(z.to(self.device)) for z in self._runtime.zeros(xd.q.shape[1])]
        with exact_float_context(self.device):
            return execute(self.slots, xd, zeros, record, self.output)

    def forward(self, x) -> torch.Tensor:
        hist, _ = self._run(x, record=False)
        outs = hist[self.output]
        q = torch.stack([o.q for o in outs])
        g = torch.stack([o.g for o in outs])
        return anchor(g, q, 1.0)

    def trace(self, x) -> RunResult:
        """The exact integer run (``run_fixed``'s RunResult) of the current shadow weights."""
        with torch.no_grad():
            hist, rec = self._run(x, record=True)
        stack = lambda seq: torch.stack([d.q for d in seq])  # noqa: E731
        trace = Trace(out=stack(hist[self.output]))
        trace.values = {s.name: stack(hist[s.index]) for s in self.slots}
        trace.spikes = {s.name: trace.values[s.name] for s in self.slots
                        if isinstance(s.op, FixedNeuron) and s.op.spiking}
        trace.states = {k: stack(v) for k, v in rec.items()}
        return trace.to_result()

    def export_fixed_graph(self) -> Graph:
        """The graph with re-quantized shadow weights/biases (same nodes, edges and exponents)."""
        graph = self.graph
        for name, key in self.synapse_keys.items():
            op = graph.nodes[name]
            changes = {"weight": requantize(op, self.shadow(key), self.profile).cpu().numpy()}
            if key in self.shadow_biases:
                lo, hi = arith.signed_range(op.acc_bits)
                b = _round_half_away(self.shadow_biases[key].detach())
                changes["bias"] = torch.clamp(b, lo, hi).cpu().numpy()
            graph = graph.with_node(name, op.replace(**changes))
        problems = verify(graph)
        if problems:
            raise UserInputError(f"the exported graph does not verify: {problems[0]}")
        return graph


__all__ = ["Dual", "DualOps", "FixedPointModule", "requantize"]
