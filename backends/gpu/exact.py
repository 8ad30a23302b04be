"""Exact integer linear maps (dense / conv) on any torch device, and value bounds that pick them.

Contract: ``ExactLinear.apply(x)`` returns the mathematically exact ``W ⊛ x`` as int64 (wrapping
mod 2^64 exactly like numpy int64 when the true sum leaves int64, which no legal graph does).

Strategies (``LinearPlan.dtype``):
- ``int64``: torch's integer matmul/conv — exact, CPU only (CUDA has no int64 GEMM/conv), and
  slow (no BLAS): the CPU uses it only when float64 could round.
- ``float32`` / ``float64``: cast to float, multiply, cast back. Exact when every partial sum is an
  integer of magnitude < 2^24 (float32) / 2^53 (float64): then no addition ever rounds, whatever
  the summation order. ``row_bound * x_bound`` bounds every partial sum, where
  ``row_bound = max_o Σ_j |W[o, j]|`` and ``x_bound = max |x|``. Reduced-precision float32 modes
  (TF32, bf16) must be off (``exact_float_context``) and cuDNN is disabled for these convs
  (FFT/Winograd would round).
- event-driven: a dense layer on the CPU whose input has at most ``EVENT_MAX_DENSITY`` nonzeros
  (spikes at low activity) multiplies a CSR copy of the input instead (only the active inputs'
  weight rows are read; 0.26x the dense time at 2 % activity, 0.8x at 10 %, B=32, 1024x1024).
  Exact under the same float32/float64 bound: the terms are the same integers, only their order
  differs, and no partial sum rounds.
- limbs: when the bound exceeds 2^53, split ``x = Σ_k x_k·2^(kL)`` into L-bit limbs so each
  ``W ⊛ x_k`` is exact in float64, then recombine in int64.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Callable

import torch

INT_POLICIES = ("auto", "int64", "float", "float32", "float64", "limbs")
TEST_LIMB_BITS = 3  # ``limbs`` policy: always split, to exercise the limb path on small graphs
#: event-driven (CSR) products: a dense layer's input with at most this fraction of nonzeros (on the
#: 1.79M-synapse bench network at 2-3 % activity the fixed runtime takes 0.7x the time; forced at
#: 10 % it takes 1.1x, so the cut is below that) ...
EVENT_MAX_DENSITY = 0.05
#: ... and at least this many input and output features: the CSR conversion costs a fixed
#: ~150 us at B=32 x 1024, which only wide outputs repay (1024 -> 20 at 5 %: CSR 3.3x slower)
EVENT_MIN_FEATURES = 256
FLOAT32_EXACT = 1 << 24
FLOAT64_EXACT = 1 << 53
UNKNOWN_BOUND = (1 << 63) - 1


@dataclass(frozen=True)
class LinearPlan:
    """How one integer linear map is evaluated: dtype and, for float64, the limb split."""

    dtype: str  # "int64" | "float32" | "float64"
    limbs: int = 1
    limb_bits: int = 0

    def describe(self) -> str:
        if self.limbs > 1:
            return f"{self.dtype} x{self.limbs} limbs of {self.limb_bits} bits"
        return self.dtype


def choose_plan(policy: str, device: torch.device, row_bound: int, x_bound: int) -> LinearPlan:
    """Cheapest exact strategy for ``|partial sums| <= row_bound * x_bound`` under ``policy``.

    ``auto``: CPU float32 (BLAS) below 2^24 (2.7x faster than float64 on the 1.79M-synapse bench
    network, whose 0/1-input sums stay below 2^16), float64 below 2^53, else int64; CUDA float32
    below 2^24, float64 below 2^53, else float64 limbs. ``float``: the CUDA rule on any device. ``float32``/``float64``
    force the dtype where exact (float32 falls back to float64 when it would round). ``limbs``
    always splits into limbs of at most ``TEST_LIMB_BITS`` bits (for tests). ``int64``: integer
    kernels (refused on CUDA).
    """
    if policy not in INT_POLICIES:
        raise ValueError(f"int_matmul policy '{policy}' is not one of {', '.join(INT_POLICIES)}")
    if policy == "int64" and device.type == "cuda":
        raise ValueError("CUDA has no exact int64 matmul/conv; use int_matmul='auto' or 'float'")
    bound = row_bound * x_bound
    if policy == "int64" or (policy == "auto" and device.type != "cuda" and bound >= FLOAT64_EXACT):
        return LinearPlan("int64")
    if policy == "auto" and device.type != "cuda":
        return LinearPlan("float32" if bound < FLOAT32_EXACT else "float64")
    if policy in ("auto", "float", "float32") and bound < FLOAT32_EXACT:
        return LinearPlan("float32")
    if bound < FLOAT64_EXACT and policy != "limbs":
        return LinearPlan("float64")
    limb_bits = 52 - max(int(row_bound), 1).bit_length()
    if policy == "limbs":
        limb_bits = min(limb_bits, TEST_LIMB_BITS)
    if limb_bits < 1:
        raise ValueError(f"weights too large for exact float64 evaluation (row sum {row_bound})")
    x_bits = max(int(x_bound), 1).bit_length()
    limbs = max(2 if policy == "limbs" else 1, math.ceil((x_bits + 1) / limb_bits))
    return LinearPlan("float64", limbs, limb_bits)


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class ExactLinear:
    """An integer linear map ``f(x, W)`` with its weights prepared for every strategy."""

    def __init__(self, weight: torch.Tensor, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 events: bool = False):
        self.weight = weight  # int64
        self.fn = fn
        # a dense map (fn = x @ W^T) on the CPU wide enough for event-driven products to pay
        self.events = (events and weight.device.type == "cpu" and weight.ndim == 2
                       and min(weight.shape) >= EVENT_MIN_FEATURES)
        self._wt: dict[torch.dtype, torch.Tensor] = {}
        flat = weight.reshape(weight.shape[0], -1).abs()
        self.row_bound = int(flat.sum(dim=1).max().item()) if weight.numel() else 0
        self._float: dict[torch.dtype, torch.Tensor] = {}

    def _w(self, dtype: torch.dtype) -> torch.Tensor:
        if dtype not in self._float:
            self._float[dtype] = self.weight.to(dtype)
        return self._float[dtype]

    def apply(self, x: torch.Tensor, plan: LinearPlan, cache: bool = False, keep_float: bool = False) -> torch.Tensor:
        """``W ⊛ x`` exactly under ``plan``; ``cache``: keep ``x``'s float copy on ``x`` for the
        next product that reads the same tensor (``as_dtype``). ``x`` may be int64 or hold exact
        integers in a float dtype. ``keep_float`` (a one-limb float plan): the product in the
        plan's float dtype, not cast back (exact integers; the reader converts)."""
        if plan.dtype == "int64":
            return self.fn(x if not x.is_floating_point() else x.to(torch.int64), self.weight)
        dtype = _DTYPES[plan.dtype]
        w = self._w(dtype)
        with _no_cudnn(x.device):
            if plan.limbs == 1:
                xf = as_dtype(x, dtype) if cache else x.to(dtype)
                if self.events and x.ndim == 2 and x.numel() and _sparse(x):
                    y = self._event_product(xf, dtype)
                else:
                    y = self.fn(xf, w)
                return y if keep_float else y.to(torch.int64)
            if x.is_floating_point():
                x = x.to(torch.int64)
            mask = (1 << plan.limb_bits) - 1
            rest = x
            total = None
            for k in range(plan.limbs):
                last = k == plan.limbs - 1
                limb = rest if last else rest & mask
                part = self.fn(limb.to(dtype), w).to(torch.int64) << (k * plan.limb_bits)
                total = part if total is None else total + part
                rest = rest >> plan.limb_bits
            return total


    def _event_product(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """x @ W^T with x as CSR: the same integer terms as the dense product, fewer of them."""
        if dtype not in self._wt:
            self._wt[dtype] = self._w(dtype).t().contiguous()
        with warnings.catch_warnings():  # torch marks CSR beta with a UserWarning; this product is stable
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
            return torch.sparse.mm(x.to_sparse_csr(), self._wt[dtype])


#: attribute of an int64 value tensor holding its float copies (dtype -> tensor), made once: a
#: spike tensor read by several float synapses (a recurrent layer at t+1 and a feed-forward one
#: at t) is cast once (bundled model, B=1024: 0.96x CPU time). Only integers below the plan's
#: bound reach a float plan, so the copy is exact wherever it is read. The runtime asks for it
#: only when it does not record (a recorded run keeps every step's tensors, and would keep
#: their copies too).
AS_DTYPE = "_rsnn_as_dtype"


def as_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x.to(dtype)``, cached on ``x`` (see ``AS_DTYPE``); ``x`` itself when it has ``dtype``."""
    if x.dtype == dtype:
        return x
    cache = getattr(x, AS_DTYPE, None)
    if cache is None:
        cache = {}
        try:
            setattr(x, AS_DTYPE, cache)
        except AttributeError:  # not a plain tensor: no cache
            return x.to(dtype)
    got = cache.get(dtype)
    if got is None:
        got = cache[dtype] = x.to(dtype)
    return got


def _sparse(x: torch.Tensor) -> bool:
    return int(torch.count_nonzero(x)) <= EVENT_MAX_DENSITY * x.numel()


@contextlib.contextmanager
def _no_cudnn(device: torch.device):
    """cuDNN off (its FFT/Winograd convs round); torch's im2col + GEMM conv is used instead.
    Only the ``enabled`` switch is touched (``cudnn.flags()`` would also reset precision flags)."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.enabled
    torch.backends.cudnn.enabled = False
    try:
        yield
    finally:
        torch.backends.cudnn.enabled = saved


# (backend, attribute) pairs of torch's float32 precision switches; "ieee" = full float32
_FP32_SWITCHES = (
    ("torch.backends.cuda.matmul", "fp32_precision"),
    ("torch.backends.cudnn.conv", "fp32_precision"),
    ("torch.backends.mkldnn.matmul", "fp32_precision"),
    ("torch.backends.mkldnn.conv", "fp32_precision"),
)


def _switches():
    for path, attr in _FP32_SWITCHES:
        obj = torch
        try:
            for part in path.split(".")[1:]:
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if hasattr(obj, attr):
            yield obj, attr


@contextlib.contextmanager
def exact_float_context(device: torch.device, cpu_too: bool = True):
    """Full-precision float32 (no TF32 / bf16 internals) for the duration; restored after.

    Uses torch's ``fp32_precision`` switches where they exist, else the legacy ``allow_tf32``
    flags. ``cpu_too=False`` leaves CPU settings alone (float graphs must match the interpreter,
    which runs under the user's settings).
    """
    if device.type != "cuda" and not cpu_too:
        yield
        return
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr in _switches()]
    legacy = not saved
    if legacy:
        saved = [(torch.backends.cuda.matmul, "allow_tf32", torch.backends.cuda.matmul.allow_tf32),
                 (torch.backends.cudnn, "allow_tf32", torch.backends.cudnn.allow_tf32)]
    try:
        for obj, attr, _ in saved:
            setattr(obj, attr, False if legacy else "ieee")
        yield
    finally:
        for obj, attr, value in saved:
            setattr(obj, attr, value)


def cap(bound: int) -> int:
    return min(int(bound), UNKNOWN_BOUND)
