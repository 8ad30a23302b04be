"""NIR neurons of Sinabs and Rockpool files, read as those libraries compute them (their update
forms: ``rsnn_compiler/neurons/sinabs.py``, ``rockpool.py``), under their ``--nir-source``.

Their exporters write fewer facts than the libraries use; what the file does not record is the
library's default, said in one WARNING line of the report (``warning``):

    sinabs    IF  (r = 1)                 -> Sinabs: v = v + x
              LIF (tau in steps, r = 1)   -> Sinabs: v = beta*v + (1 - beta)*x, beta = exp(-1/tau)
              spike_fn MultiSpike, reset MembraneSubtract, no tau_syn (not in the file)
    rockpool  CubaLIF (tau_mem, tau_syn, r = tau_mem*exp(-dt/tau_mem)/dt)
                                          -> Rockpool: alpha = exp(-dt/tau_mem), beta = exp(-dt/tau_syn)
              bias 0 (the exporter writes v_leak = 0), no recurrent weights (the exporter leaves
              out w_rec), max_spikes_per_dt 2^16 (not in the file)

Decays are computed with torch exactly as the libraries compute them from their float32
parameters (``torch.exp(-1 / tau)``; ``torch.exp(-dt / tau)`` with dt a Python float), so the
float interpreter reproduces their forward bit for bit.
"""

from __future__ import annotations

import numpy as np

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.family_ops import Rockpool, Sinabs
from rsnn_compiler.ir.ops import Op, ResetMode
from rsnn_compiler.neurons.sinabs import Spikes, Synapse

from rsnn_compiler.frontends._common import to_array
from rsnn_compiler.frontends.nir_sources import NirSource

#: NIR node kinds each source converts with its own update form
FORMS = {NirSource.SINABS: ("IF", "LIF"), NirSource.ROCKPOOL: ("CubaLIF",)}
ROCKPOOL_LEVELS = 1 << 16  # LIFTorch's default max_spikes_per_dt

WARNINGS = {
    NirSource.SINABS: "spike_fn MultiSpike, reset MembraneSubtract, no tau_syn and norm_input=True are Sinabs'"
                      " defaults, not read from the file (sinabs.to_nir records none of them); import the"
                      " PyTorch model directly for other settings",
    NirSource.ROCKPOOL: "bias 0, no recurrent weights and max_spikes_per_dt 2^16 are Rockpool's defaults, not"
                        " read from the file (its exporter writes v_leak = 0, leaves out w_rec and writes no"
                        " spike limit); a model with a bias or recurrent weights does not run as exported",
}


def warning(source: NirSource) -> str:
    return f"WARNING: {WARNINGS[source]}"


def _f32(node, attr: str, name: str, shape) -> np.ndarray:
    value = np.asarray(to_array(getattr(node, attr), f"'{name}'.{attr}"), np.float32)
    try:
        return np.broadcast_to(value, shape).copy()
    except ValueError:
        raise UserInputError(f"NIR node '{name}': {attr} of shape {value.shape} does not fit {tuple(shape)}") from None


def _exp(numerator: float, tau: np.ndarray) -> np.ndarray:
    """exp(numerator / tau) computed by torch on float32 tau, as the libraries compute their decays."""
    import torch

    with torch.no_grad():
        return torch.exp(numerator / torch.from_numpy(np.ascontiguousarray(tau, np.float32))).numpy()


def _positive(value: np.ndarray, name: str, attr: str) -> None:
    if not np.all(np.isfinite(value)) or np.any(value <= 0):
        what = "spike counts floor(v/threshold) need a threshold > 0" if attr == "v_threshold" else ""
        raise UserInputError(f"NIR node '{name}': every {attr} must be positive and finite{'; ' + what if what else ''}")


def convert(source: NirSource, name: str, node, kind: str, shape, dt: float) -> Op:
    """The op of one neuron node of a ``source`` file (module docstring)."""
    if source is NirSource.SINABS:
        return _sinabs(name, node, kind, shape)
    return _rockpool(name, node, shape, dt)


def _sinabs(name: str, node, kind: str, shape) -> Op:
    r = _f32(node, "r", name, shape)
    if not np.all(r == 1):
        raise UserInputError(f"NIR node '{name}' ({kind}) has r != 1, which sinabs.to_nir never writes;"
                             " this is not a Sinabs file: drop --nir-source sinabs")
    theta = _f32(node, "v_threshold", name, shape)
    _positive(theta, name, "v_threshold")
    zeros = np.zeros(shape, np.float32)
    if kind == "IF":
        beta, gain = np.ones(shape, np.float32), np.ones(shape, np.float32)
    else:
        tau = _f32(node, "tau", name, shape)
        _positive(tau, name, "tau")
        if np.any(_f32(node, "v_leak", name, shape) != 0):
            raise UserInputError(f"NIR node '{name}' (LIF) has v_leak != 0, which sinabs.to_nir never writes;"
                                 " this is not a Sinabs file: drop --nir-source sinabs")
        beta = _exp(-1.0, tau)
        gain = (1 - _as_tensor(beta)).numpy()  # Sinabs' norm_input: (1 - alpha_mem) * x, in float32
    return Sinabs(a_syn=zeros, beta=beta, gain=gain, theta=theta, v_reset=zeros, v_init=zeros,
                  synapse=Synapse.NONE, spikes=Spikes.MULTI, levels=0, reset=ResetMode.SUBTRACT)


def _as_tensor(a: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a, np.float32))


def _rockpool(name: str, node, shape, dt: float) -> Op:
    tau_mem, tau_syn = _f32(node, "tau_mem", name, shape), _f32(node, "tau_syn", name, shape)
    _positive(tau_mem, name, "tau_mem")
    _positive(tau_syn, name, "tau_syn")
    w_in = getattr(node, "w_in", None)
    if w_in is not None and not np.all(np.asarray(w_in) == 1):
        raise UserInputError(f"NIR node '{name}' (CubaLIF) has w_in != 1, which Rockpool's exporter never writes;"
                             " this is not a Rockpool file: drop --nir-source rockpool")
    alpha = _exp(-dt, tau_mem)
    expected = tau_mem.astype(np.float64) * alpha.astype(np.float64) / dt  # what the exporter writes as r
    r = _f32(node, "r", name, shape).astype(np.float64)
    if not np.allclose(r, expected, rtol=1e-4, atol=0):
        raise UserInputError(
            f"NIR node '{name}' (CubaLIF): r = {float(r.reshape(-1)[0]):g} is not tau_mem*exp(-dt/tau_mem)/dt for"
            f" dt = {dt:g} s (Rockpool's exporter writes that): pass --dt with the model's own dt"
        )
    zeros, theta = np.zeros(shape, np.float32), _f32(node, "v_threshold", name, shape)
    _positive(theta, name, "v_threshold")
    return Rockpool(alpha=alpha, beta=_exp(-dt, tau_syn), bias=zeros, theta=theta, v_init=zeros, levels=ROCKPOOL_LEVELS)
