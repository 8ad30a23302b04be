"""Fold a connection path's linear ops (sum pools, flattens) into the one Lava synapse it becomes.

A retimed path (``backends/lava/retime.py``) is ``population -> [relays] -> [synapse] -> [relays]
-> neuron``; relays are Identity, Flatten, Delay (timing only) and sum Pool. Lava has no pooling
process, so a pool *before* the synapse is folded into it, exactly:

- into a dense matrix: ``W' = W @ P`` (``P``: the pools' and flattens' 0/1-count matrix), or
  ``P`` itself when the path has no synapse; ``W'`` must still be a matrix Lava keeps as it is;
- into a conv: a sum pool (kernel ``kp``, stride ``sp``, padding ``pp``) followed by a conv
  (``kc``, ``sc``, ``pc``, dilation ``dc``) is, per spatial axis, one conv on the unpooled input with
  stride ``sp*sc``, padding ``sp*pc + pp``, kernel ``sp*dc*(kc - 1) + kp`` whose tap
  ``sp*dc*k + r`` (``r < kp``) carries ``W[k]`` (taps of overlapping windows add up). It equals
  the original when the conv's zero padding maps to positions outside the unpooled input
  (``kp <= sp + pp`` on the left, ``sp*L_pooled - pp >= L`` on the right) and the output length
  is unchanged; the folded weights must stay in the loihi2 conv range.

Pools after the synapse would pool wrapped (conv) or shifted (dense) sums and are refused, as
are max pools (not linear).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsnn_compiler.fixed.profiles import LOIHI2
from rsnn_compiler.interpreter.fixed_interp import apply_stateless
from rsnn_compiler.ir.fixed_ops import FixedConv1d, FixedDense, _FixedConv
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.ops import Delay, Flatten, Identity, Op, Pool, PoolMode

from rsnn_compiler.backends.lava.retime import Path


class FoldError(ValueError):
    """The path's linear ops cannot be one exact Lava synapse (the message says why)."""


@dataclass(frozen=True)
class ConvGeometry:
    """A Lava ``Conv`` in torch terms, always 2-D (a 1-D conv has height 1)."""

    weight: np.ndarray  # (C_out, C_in / groups, kH, kW) int64
    input_shape: tuple[int, int, int]  # (C, H, W)
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    @property
    def out_shape(self) -> tuple[int, int, int]:
        spatial = []
        for i in range(2):
            eff = self.dilation[i] * (self.weight.shape[2 + i] - 1) + 1
            spatial.append((self.input_shape[1 + i] + 2 * self.padding[i] - eff) // self.stride[i] + 1)
        return (int(self.weight.shape[0]), *spatial)


def as_conv2d(op: _FixedConv) -> ConvGeometry:
    w = np.asarray(op.weight, np.int64)
    if isinstance(op, FixedConv1d):
        c, length = op.input_shape
        return ConvGeometry(w[:, :, None, :], (int(c), 1, int(length)), (1, op.stride[0]),
                            (0, op.padding[0]), (1, op.dilation[0]), int(op.groups))
    return ConvGeometry(w, tuple(int(v) for v in op.input_shape), tuple(op.stride),
                        tuple(op.padding), tuple(op.dilation), int(op.groups))


def _pool2d(pool: Pool) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int, int]]:
    """(kernel, stride, padding, input (C, H, W)) of a 1-D or 2-D pool as 2-D."""
    if pool.spatial_dims == 1:
        c, length = pool.input_shape
        return (1, pool.kernel[0]), (1, pool.stride[0]), (0, pool.padding[0]), (int(c), 1, int(length))
    return tuple(pool.kernel), tuple(pool.stride), tuple(pool.padding), tuple(int(v) for v in pool.input_shape)


def fold_pool_into_conv(pool: Pool, conv: ConvGeometry) -> ConvGeometry:
    """The conv on the pool's input that equals ``conv(pool(x))`` (module docstring)."""
    kp, sp, pp, in_shape = _pool2d(pool)
    pooled = tuple(int(v) for v in pool.out_shape) if pool.spatial_dims == 2 else (
        int(pool.out_shape[0]), 1, int(pool.out_shape[1]))
    if pooled != conv.input_shape:
        raise FoldError(f"pool output {pooled} does not match the conv input {conv.input_shape}")
    kc = conv.weight.shape[2:]
    kernel, stride, padding = [], [], []
    for i in range(2):
        if kp[i] > sp[i] + pp[i] or sp[i] * pooled[1 + i] - pp[i] < in_shape[1 + i]:
            raise FoldError("the conv's zero padding would read pooled-away inputs")
        kernel.append(sp[i] * conv.dilation[i] * (kc[i] - 1) + kp[i])
        stride.append(sp[i] * conv.stride[i])
        padding.append(sp[i] * conv.padding[i] + pp[i])
    w = np.zeros(conv.weight.shape[:2] + tuple(kernel), np.int64)
    for k0 in range(kc[0]):
        for k1 in range(kc[1]):
            m0 = sp[0] * conv.dilation[0] * k0
            m1 = sp[1] * conv.dilation[1] * k1
            w[:, :, m0:m0 + kp[0], m1:m1 + kp[1]] += conv.weight[:, :, k0:k0 + 1, k1:k1 + 1]
    out = ConvGeometry(w, in_shape, tuple(stride), tuple(padding), (1, 1), conv.groups)
    if out.out_shape != conv.out_shape:
        raise FoldError(f"folding changes the output shape {conv.out_shape} -> {out.out_shape}")
    lo, hi = LOIHI2.conv_weight_range
    if w.min(initial=0) < lo or w.max(initial=0) > hi:
        raise FoldError(f"overlapping pool windows sum conv weights beyond [{lo}, {hi}]")
    return out


@dataclass(frozen=True)
class FoldedPath:
    """What one Lava connection computes: a dense matrix (``weight @ s``, exponent, bits) or a
    conv; ``pools`` names the folded pools."""

    weight: np.ndarray | None = None  # (n_dst, n_src), dense kinds
    weight_exp: int = 0
    weight_bits: int = 8
    conv: ConvGeometry | None = None
    pools: tuple[str, ...] = ()


def split_path(graph: Graph, path: Path) -> tuple[list[tuple[str, Op]], list[tuple[str, Op]]]:
    """The ops before and after the path's synapse (forward order)."""
    pre: list[tuple[str, Op]] = []
    post: list[tuple[str, Op]] = []
    seen = False
    for name in path.via:
        if name == path.synapse:
            seen = True
            continue
        (post if seen else pre).append((name, graph.nodes[name]))
    return pre, post


def count_matrix(ops: list[tuple[str, Op]], in_shape: tuple[int, ...]) -> np.ndarray:
    """The (n_out, n_in) integer matrix of a chain of linear relays (pools, flattens)."""
    n_in = int(np.prod(in_shape)) if in_shape else 1
    x = np.eye(n_in, dtype=np.int64).reshape(n_in, *in_shape)
    for name, op in ops:
        if isinstance(op, (Identity, Delay)):  # values unchanged (a Delay only shifts time)
            continue
        x = apply_stateless(op, x, None, name)
    return x.reshape(n_in, -1).T.copy()


def fold_path(graph: Graph, path: Path, src_shape: tuple[int, ...]) -> FoldedPath:
    """Fold ``path``'s pools and flattens into its synapse, or raise FoldError with the reason."""
    pre, post = split_path(graph, path)
    for name, op in pre + post:
        if isinstance(op, Pool) and op.mode is not PoolMode.SUM:
            raise FoldError(f"{op.mode.value} pool '{name}' is not linear (Lava has no pooling process)")
    if any(isinstance(op, Pool) for _, op in post):
        raise FoldError("a pool after the synapse pools wrapped / shifted sums (Lava has no pooling"
                        " process); pool the neurons' output instead")
    pools = tuple(name for name, op in pre if isinstance(op, Pool))
    syn = graph.nodes[path.synapse] if path.synapse is not None else None
    if isinstance(syn, _FixedConv):
        conv = as_conv2d(syn)
        for name, op in reversed(pre):
            if isinstance(op, Pool):
                conv = fold_pool_into_conv(op, conv)
            elif isinstance(op, Flatten):
                raise FoldError(f"flatten '{name}' before a conv")
        if int(np.prod(conv.input_shape)) != int(np.prod(src_shape)):
            raise FoldError(f"the conv reads {conv.input_shape}, the population has {src_shape}")
        return FoldedPath(conv=conv, pools=pools)
    p = count_matrix(pre, src_shape) if pools else None
    if syn is None:
        if p is None:
            return FoldedPath()
        return FoldedPath(weight=p, pools=pools)
    if not isinstance(syn, FixedDense):
        raise FoldError(f"{type(syn).__name__} is not emitted to Lava (dense and conv synapses are)")
    w = np.asarray(syn.weight, np.int64)
    e = int(syn.weight_exp.flat[0]) if syn.weight_exp.size else 0
    if p is not None:
        w = w @ p
    return FoldedPath(weight=w, weight_exp=e, weight_bits=int(syn.weight_bits), pools=pools)


__all__ = ["ConvGeometry", "FoldError", "FoldedPath", "as_conv2d", "fold_path", "fold_pool_into_conv"]
