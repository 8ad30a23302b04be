"""Custom Lava neuron processes for what Lava's LIF lacks (runs inside the Lava environment).

Standalone like ``lava_runner.py``: imports only numpy (and lava, lazily), never ``rsnn_compiler``.
One process kind, ``RsnnNeuron``, with a ``fixed_pt`` model whose ``kind`` selects the dynamics,
written from docs/fixed-point.md §3 for the ``loihi2`` profile (u wraps once into ``u_bits``,
v saturates symmetrically to ``v_bits``; decays in 1/4096, rounded toward zero):

- ``lif``: Lava's LIF current/voltage update with any reset mode (zero with ``v_reset``,
  subtract, subtract_deferred, subtract_nodelay, zero_hold, none), comparator gt/ge and
  per-neuron ``du``, ``dv``, ``vth`` (Lava's LIF takes scalars).
- ``alif``: ``lif`` with an adaptive threshold (``da``, ``a_inc``).
- ``li``: the ``lif`` integration without firing; sends ``v`` as a graded message.
- ``dual_if``: dual-threshold IF, signed spikes -1/0/+1 (net count state ``c``).
- ``mtn``: multi-threshold neuron, graded spikes 0..levels.

On Loihi 2 silicon each of these needs custom neuron microcode; here they are Lava CPU process
models. The model records its own states (no sink processes) and saves them at the last step.
Parameter ``start`` (the population's retiming stage) keeps the neuron idle in its initial state
for the first ``start`` Lava steps, so that it begins at the IR's step 0 (DESIGN §4).
"""
from __future__ import annotations

from typing import Any

import numpy as np

KINDS = ("lif", "alif", "li", "dual_if", "mtn")
RESETS = ("zero", "subtract", "subtract_deferred", "subtract_nodelay", "zero_hold", "none")
COMPARATORS = ("gt", "ge")
#: name -> (default, per-neuron allowed); strings are enum choices
PARAMS: dict[str, dict[str, tuple[Any, bool]]] = {}
_COMMON = {"bias_mant": (0, True), "bias_exp": (0, True), "v_init": (0, True),
           "input_shift": (6, False), "v_bits": (24, False), "start": (0, False)}
_CURRENT = {"du": (4095, True), "dv": (0, True), "du_offset": (1, False), "u_bits": (24, False)}
_FIRE = {"vth": (10, True), "vth_shift": (6, False)}
PARAMS["lif"] = {**_COMMON, **_CURRENT, **_FIRE, "v_reset": (0, True), "reset": ("zero", False),
                 "comparator": ("gt", False)}
PARAMS["alif"] = {**PARAMS["lif"], "da": (0, True), "a_inc": (0, True)}
PARAMS["li"] = {**_COMMON, **_CURRENT}
PARAMS["dual_if"] = {**_COMMON, **_FIRE, "vth_neg": (0, True), "comparator": ("ge", False)}
PARAMS["mtn"] = {**_COMMON, **_FIRE, "levels": (1, False), "reset": ("subtract", False)}
STATES = {"lif": ("u", "v"), "alif": ("u", "v", "a"), "li": ("u", "v"), "dual_if": ("v", "c"),
          "mtn": ("v",)}
RECORDABLE = ("spikes", "u", "v", "a", "c")


# --------------------------------------------------------------------------------------------
# Integer arithmetic (int64 numpy)
# --------------------------------------------------------------------------------------------


def decay(x: np.ndarray, d) -> np.ndarray:
    """x * (4096 - d) / 4096 rounded toward zero."""
    p = x * (4096 - np.asarray(d, dtype=np.int64))
    return np.sign(p) * (np.abs(p) >> 12)


def shift(x, e) -> np.ndarray:
    """x << e for e >= 0, arithmetic (floor) x >> -e otherwise; e may be per neuron."""
    x, e = np.asarray(x, dtype=np.int64), np.asarray(e, dtype=np.int64)
    return np.where(e >= 0, x << np.maximum(e, 0), x >> np.maximum(-e, 0))


def wrap_once(x: np.ndarray, bits: int) -> np.ndarray:
    half, full = 1 << (bits - 1), 1 << bits
    return np.where(x > half, x - full, np.where(x <= -half, x + full, x))


def saturate_sym(x: np.ndarray, bits: int) -> np.ndarray:
    hi = (1 << (bits - 1)) - 1
    return np.clip(x, -hi, hi)


def _cmp(v: np.ndarray, theta: np.ndarray, comparator: str) -> np.ndarray:
    return (v >= theta if comparator == "ge" else v > theta).astype(np.int64)


class NeuronState:
    """States of one population and the step function (the process model's arithmetic)."""

    def __init__(self, kind: str, size: int, params: dict[str, Any]):
        self.kind, self.p = kind, {k: params.get(k, d) for k, (d, _) in PARAMS[kind].items()}
        arr = lambda v: np.broadcast_to(np.asarray(v, dtype=np.int64), (size,)).copy()  # noqa: E731
        self.u = np.zeros(size, np.int64)
        self.v = arr(self.p["v_init"])
        self.a = np.zeros(size, np.int64)
        self.c = np.zeros(size, np.int64)
        self.s = np.zeros(size, np.int64)

    def _sat(self, x: np.ndarray) -> np.ndarray:
        return saturate_sym(x, self.p["v_bits"])

    def _integrate(self, x: np.ndarray) -> np.ndarray:
        p = self.p
        drive = x << p["input_shift"]
        self.u = wrap_once(decay(self.u, np.asarray(p["du"]) + p["du_offset"]) + drive, p["u_bits"])
        return self._sat(decay(self.v, p["dv"]) + self.u + shift(p["bias_mant"], p["bias_exp"]))

    def step(self, x: np.ndarray) -> np.ndarray:
        """Advance one step on the summed input ``x``; return the message sent."""
        x = np.asarray(x, dtype=np.int64)
        kind = self.kind
        if kind == "li":
            self.v = self._integrate(x)
            return self.v
        if kind in ("lif", "alif"):
            return self._fire(self._integrate(x))
        p = self.p
        theta = np.asarray(p["vth"], dtype=np.int64) << p["vth_shift"]
        m = self._sat(self.v + (x << p["input_shift"]) + shift(p["bias_mant"], p["bias_exp"]))
        if kind == "dual_if":
            pos = _cmp(m, theta, p["comparator"])
            theta_neg = np.asarray(p["vth_neg"], dtype=np.int64) << p["vth_shift"]
            neg = ((m < theta_neg) & (self.c > 0)).astype(np.int64) * (1 - pos)
            s = pos - neg
            self.v, self.c = self._sat(m - s * theta), self.c + s
        else:  # mtn
            theta = np.broadcast_to(theta, m.shape)
            s = np.clip(np.floor_divide(m, theta), 0, p["levels"])
            self.v = (np.broadcast_to(np.asarray(p["v_init"], np.int64), m.shape).copy()
                      if p["reset"] == "zero" else self._sat(m - s * theta))
        self.s = s
        return s

    def _fire(self, base: np.ndarray) -> np.ndarray:
        p = self.p
        theta = np.asarray(p["vth"], dtype=np.int64) << p["vth_shift"]
        if self.kind == "alif":
            theta = theta + self.a
        cmp, mode = p["comparator"], p["reset"]
        if mode == "zero":
            s = _cmp(base, theta, cmp)
            v = np.where(s > 0, np.asarray(p["v_reset"], np.int64), base)
        elif mode == "subtract":
            s = _cmp(base, theta, cmp)
            v = self._sat(base - theta * s)
        elif mode == "subtract_deferred":
            v = self._sat(base - theta * self.s)
            s = _cmp(v, theta, cmp)
        elif mode == "subtract_nodelay":
            r = _cmp(self.v, theta, cmp)
            m = self._sat(base - theta * r)
            s = _cmp(m, theta, cmp)
            v = self._sat(m - theta * (s - r))
        elif mode == "zero_hold":
            v = np.where(self.s > 0, 0, base)
            s = _cmp(v, theta, cmp)
        else:  # none
            v = base
            s = _cmp(v, theta, cmp)
        if self.kind == "alif":
            self.a = self._sat(decay(self.a, p["da"]) + np.asarray(p["a_inc"], np.int64) * s)
        self.v, self.s = np.broadcast_to(v, base.shape).astype(np.int64), s
        return s

    def read(self, what: str) -> np.ndarray:
        return self.s if what == "spikes" else getattr(self, what)


# --------------------------------------------------------------------------------------------
# Lava process and fixed_pt model (defined on first use; need lava)
# --------------------------------------------------------------------------------------------

_CLASSES: dict[str, type] = {}


def lava_classes() -> dict[str, type]:
    """``RsnnNeuron`` (process) and ``PyRsnnNeuronModel`` (its fixed_pt model).

    Process kwargs: ``shape``, ``kind``, ``params`` (dict of ints / int64 arrays / choices),
    ``record`` (subset of RECORDABLE), ``num_steps`` and ``path`` (an ``.npz`` the model writes
    at step ``num_steps`` with one (n, num_steps) array per recorded item).
    """
    if _CLASSES:
        return _CLASSES
    from lava.magma.core.decorator import requires, tag
    from lava.magma.core.model.py.model import PyLoihiProcessModel
    from lava.magma.core.model.py.ports import PyInPort, PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.ports.ports import InPort, OutPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

    class RsnnNeuron(AbstractProcess):
        def __init__(self, *, shape: tuple[int, ...], kind: str, params: dict, record: tuple,
                     num_steps: int, path: str, name: str | None = None):
            super().__init__(shape=shape, kind=kind, params=params, record=tuple(record),
                             num_steps=num_steps, path=path, name=name)
            self.a_in = InPort(shape=shape)
            self.s_out = OutPort(shape=shape)

    @requires(CPU)
    @tag("fixed_pt")
    class PyRsnnNeuronModel(PyLoihiProcessModel):
        implements_process = RsnnNeuron
        implements_protocol = LoihiProtocol
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

        def __init__(self, proc_params):
            super().__init__(proc_params)
            size = int(np.prod(proc_params["shape"]))
            # attribute names prefixed: Lava's model classes own names like ``start``
            self.rs_state = NeuronState(proc_params["kind"], size, proc_params["params"])
            self.rs_steps = int(proc_params["num_steps"])
            self.rs_first = int(self.rs_state.p["start"])
            self.rs_rec = {w: np.zeros((size, self.rs_steps), np.int64) for w in proc_params["record"]}

        def run_spk(self):
            a = self.a_in.recv()
            if self.time_step <= self.rs_first:  # before the population's stage: idle, initial
                out = np.zeros_like(self.rs_state.s)
            else:
                out = self.rs_state.step(a)
            self.s_out.send(out.astype(np.int32))
            t = self.time_step - 1
            if t < self.rs_steps:
                for what, buf in self.rs_rec.items():
                    buf[:, t] = self.rs_state.read(what)
            if self.time_step == self.rs_steps:
                np.savez(self.proc_params["path"], **self.rs_rec)

    _CLASSES.update(RsnnNeuron=RsnnNeuron, PyRsnnNeuronModel=PyRsnnNeuronModel)
    return _CLASSES
