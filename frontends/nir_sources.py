"""Which library wrote a NIR file, and that library's conventions (``--nir-source``).

NIR records neither dt, nor the reset mechanism (only hard reset to ``v_reset``), nor the spike
comparator, and exporters add quirks of their own (facts: shared/notes/peer-conventions.md).
A source is chosen by ``--nir-source`` or detected from a trace its exporter leaves:

    rockpool       node names carry Rockpool module classes ('1_LIFTorch')
    spikingjelly   torch.fx node names ('input_1', '_0') and float64 neuron parameters
    norse          0-d (scalar) neuron parameters and a batch dim of 1 in the Input type
    snntorch       float32 per-neuron arrays with r = tau/1e-4 on every LIF/CubaLIF

Each ``Convention`` says what the library computes and what its exporter leaves out. Where the
library's arithmetic is one of the neuron definition's update forms, ``nir_peer_forms`` converts
its nodes (Sinabs, Rockpool); what no IR op computes is refused naming what is missing: never an
approximation.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

import numpy as np

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.ops import Comparator, ResetMode

SNNTORCH_DT = 1e-4
SPIKING = ("IF", "LIF", "CubaLIF")
NEURONS = ("IF", "I", "LI", "LIF", "CubaLI", "CubaLIF")


class NirSource(enum.Enum):
    SNNTORCH = "snntorch"
    NORSE = "norse"
    SINABS = "sinabs"
    SPIKINGJELLY = "spikingjelly"
    ROCKPOOL = "rockpool"
    LAVA_DL = "lava-dl"


SOURCE_CHOICES = "|".join(s.value for s in NirSource)


@dataclass(frozen=True)
class Convention:
    """What a library's NIR files mean beyond the NIR fields."""

    source: NirSource
    dt: float | None
    dt_why: str
    reset: ResetMode
    reset_why: str
    reset_per_model: bool  # the library lets each model choose: the file cannot tell which
    comparator: Comparator
    comparator_why: str
    batch_hint: str  # how to export without a batch/time dim in the Input type, in the library's API
    leading_dims_why: str  # why extra leading Input dims are removed under this source
    refused: dict[str, str] = field(default_factory=dict)  # NIR node type -> what is missing
    v_init_why: str = ""  # set when the library starts the membrane at v_reset (NIR: at 0)

    def refusal(self, kind: str) -> str | None:
        return self.refused.get(kind) or self.refused.get("*" if kind in NEURONS else "")


_NEURON_ORDER = (
    "the file does not record every fact that update needs, so it is refused rather than approximated;"
    " import the PyTorch model directly (rsnnc build pkg.module:factory), which computes it exactly"
)

CONVENTIONS: dict[NirSource, Convention] = {
    NirSource.SNNTORCH: Convention(
        NirSource.SNNTORCH, SNNTORCH_DT, "snntorch.export_to_nir writes r = tau/dt with dt = 1e-4",
        ResetMode.SUBTRACT_DEFERRED,
        "snnTorch's default reset_mechanism='subtract' with reset_delay=True; the file cannot record it"
        " (v_reset = 0 is written for every mechanism): pass --reset zero|zero_hold|subtract_nodelay|none"
        " for other settings", True,
        Comparator.GT, "snnTorch fires on mem > threshold",
        "export with snntorch.export_nir.export_to_nir(net, sample, ignore_dims=[0])",
        "export_to_nir without ignore_dims=[0] writes the batch dim into the Input type",
    ),
    NirSource.SPIKINGJELLY: Convention(
        NirSource.SPIKINGJELLY, SNNTORCH_DT, "spikingjelly nir_exchange writes r and tau with dt = 1e-4",
        ResetMode.ZERO, "SpikingJelly exports hard reset only (v <- v_reset; soft reset raises NotImplementedError)",
        False,
        Comparator.GE, "SpikingJelly fires on v >= v_threshold (the file does not record the comparator)",
        "export a sample without the batch dim (spikingjelly.activation_based.nir_exchange.export_to_nir)",
        "SpikingJelly's sample shape includes the batch dim",
        refused={
            "LIF": "SpikingJelly's LIFNode computes v + (v_reset - v + x)/tau (decay_input=True) or"
                   " v + (v_reset - v)/tau + x, ParametricLIFNode the same times sigmoid(w), and both write"
                   " this NIR LIF, so the file does not say whether float32 divides or multiplies; " + _NEURON_ORDER,
            "CubaLIF": "SpikingJelly's CUBALIFNode arithmetic is not verified against the IR; " + _NEURON_ORDER,
            "LI": "SpikingJelly's leaky integrator computes v + (x - v)/tau; " + _NEURON_ORDER,
        },
        v_init_why="SpikingJelly starts every membrane at v_reset",
    ),
    NirSource.NORSE: Convention(
        NirSource.NORSE, 1e-3, "Norse's default dt = 1e-3 s",
        ResetMode.ZERO, "Norse resets to v_reset", False,
        Comparator.GT, "Norse fires on v > v_th (heaviside)",
        "norse.torch.to_nir(model, sample) always writes the batch dim; rsnnc removes it under --nir-source norse",
        "Norse's to_nir writes the batch dim of its sample into the Input type",
        refused={
            "*": "Norse integrates with forward Euler in its own order (LIFBox: v + dt*tau_mem_inv*(x + v_leak - v),"
                 " LIF: v + dt*tau_mem_inv*((v_leak - v) + i)), and norse 1.1.0's"
                 " exporter writes tau = dt/tau_mem_inv (wrong units, norse#411) and w_in = 1 for LIFCell;"
                 " " + _NEURON_ORDER,
        },
    ),
    NirSource.SINABS: Convention(
        NirSource.SINABS, 1.0, "Sinabs time constants are in steps (dt = 1 step)",
        ResetMode.SUBTRACT, "Sinabs' default MembraneSubtract (the file writes no v_reset)", False,
        Comparator.GE, "Sinabs fires on v >= spike_threshold",
        "export with sinabs.to_nir(model, sample) on a sample shaped (batch, *features)",
        "sinabs.to_nir writes the time dimension of its sample into the Input type",
        refused={
            "LI": "Sinabs' ExpLeak decays exactly and the file does not record norm_input (ExpLeak's default"
                  " False, where NIR's r = 1 means 1 - exp(-1/tau)); import the PyTorch model directly",
            "CubaLIF": "sinabs.to_nir never writes CubaLIF (it drops tau_syn); this is not a Sinabs file",
        },
    ),
    NirSource.ROCKPOOL: Convention(
        NirSource.ROCKPOOL, 1e-3, "Rockpool's default dt = 1e-3 s",
        ResetMode.SUBTRACT, "Rockpool subtracts the threshold", False,
        Comparator.GE, "Rockpool fires on v >= threshold",
        "rockpool's to_nir(net) writes an Input type [1, N]; rsnnc removes it under --nir-source rockpool",
        "Rockpool's to_nir writes a leading 1 into the Input type",
        refused={
            "*": "Rockpool's exporter writes LIFTorch as CubaLIF; other neuron nodes are not LIFTorch and their"
                 " Rockpool arithmetic is not known to rsnnc",
        },
    ),
    NirSource.LAVA_DL: Convention(
        NirSource.LAVA_DL, None, "lava-dl does not record dt",
        ResetMode.ZERO, "lava-dl's CUBA neuron resets to 0", False,
        Comparator.GE, "Loihi fires on v >= threshold",
        "build lava-dl networks from their PyTorch modules",
        "lava-dl's sample shape includes the batch dim",
        refused={
            "*": "lava-dl's CUBA neurons run Loihi 2 fixed-point decays (12-bit, with their own rounding), which the"
                 " float IR cannot reproduce from NIR's continuous parameters",
        },
    ),
}


def parse_source(value) -> NirSource | None:
    if value is None or isinstance(value, NirSource):
        return value
    try:
        return NirSource(str(value).lower())
    except ValueError:
        raise UserInputError(f"--nir-source '{value}' is not one of: {SOURCE_CHOICES.replace('|', ', ')}") from None


# ------------------------------------------------------------------------------------------
# Detection
# ------------------------------------------------------------------------------------------
_ROCKPOOL_NAME = re.compile(r"(^|\.)\d+_[A-Za-z]+Torch$")
_FX_NAME = re.compile(r"(^|\.)(_\d+|input_\d+)$")


def _kind(node) -> str:
    return type(node).__name__


def _arrays(node, names) -> list[np.ndarray]:
    out = []
    for n in names:
        v = getattr(node, n, None)
        if v is not None:
            out.append(np.asarray(v))
    return out


_PARAMS = ("tau", "tau_mem", "tau_syn", "r", "v_threshold", "w_in", "v_leak")


def detect(nodes: dict[str, object]) -> tuple[NirSource | None, str]:
    """(source, the trace it was detected by), or (None, why none was found)."""
    names = list(nodes)
    neurons = {n: v for n, v in nodes.items() if _kind(v) in NEURONS}
    hits = [n for n in names if _ROCKPOOL_NAME.search(n)]
    if hits:
        return NirSource.ROCKPOOL, f"node names carry Rockpool module classes ('{hits[0]}')"
    fx = [n for n in names if _FX_NAME.search(n)]
    f64 = [n for n, v in neurons.items() if any(a.dtype == np.float64 for a in _arrays(v, _PARAMS))]
    if fx and (f64 or not neurons):
        return NirSource.SPIKINGJELLY, (f"torch.fx node names ('{fx[0]}') and float64 neuron parameters"
                                        " (SpikingJelly's nir_exchange)")
    inputs = [v for v in nodes.values() if _kind(v) == "Input"]
    scalar = [n for n, v in neurons.items() if all(a.ndim == 0 for a in _arrays(v, _PARAMS))]
    batch_in = [v for v in inputs if _input_shape(v)[:1] == (1,) and len(_input_shape(v)) >= 2]
    if neurons and len(scalar) == len(neurons) and batch_in:
        return NirSource.NORSE, "0-d (scalar) neuron parameters and a batch dim of 1 in the Input type (norse.torch.to_nir)"
    spiking = {n: v for n, v in neurons.items() if _kind(v) in ("LIF", "CubaLIF")}
    if spiking and all(_snntorch_like(v) for v in spiking.values()):
        return NirSource.SNNTORCH, ("float32 per-neuron parameters with r = tau/1e-4 on every LIF/CubaLIF"
                                    " (snntorch.export_to_nir's convention)")
    return None, "no exporter trace found"


def _input_shape(node) -> tuple[int, ...]:
    t = getattr(node, "input_type", None) or {}
    shape = t.get("input") if isinstance(t, dict) else None
    return tuple(int(d) for d in np.atleast_1d(shape)) if shape is not None and np.size(shape) else ()


def _snntorch_like(node) -> bool:
    tau = np.asarray(node.tau if _kind(node) == "LIF" else node.tau_mem)
    r = np.asarray(node.r)
    if tau.dtype != np.float32 or tau.ndim == 0 or r.ndim == 0:
        return False
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = tau.astype(np.float64) / r.astype(np.float64)
    fin = np.isfinite(ratio)
    return bool(fin.any()) and bool(np.all(np.abs(ratio[fin] - SNNTORCH_DT) <= 1e-4 * SNNTORCH_DT)) \
        and not bool(np.all(r == 1))
