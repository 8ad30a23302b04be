"""Custom Lava neuron processes for what Lava's LIF lacks (runs inside the Lava environment).

Standalone like ``lava_runner.py``: imports only numpy (and lava, lazily), never ``rsnn_compiler``.
One process kind, ``RsnnNeuron``, with a ``fixed_pt`` model whose ``kind`` names a fixed neuron
family of the one neuron definition (``rsnn_compiler/neurons``, shipped beside this file as the
package ``rsnn_neurons``): its step is that definition run with the numpy integer primitive set,
the same arithmetic as the fixed-point interpreter, for every family (``lif`` with any reset mode,
comparator, per-neuron ``du``/``dv``/``vth`` and overflow rule; ``alif``; ``li``; ``dual_if``;
``mtn``; and the families added since).

On Loihi 2 silicon each of these needs custom neuron microcode; here they are Lava CPU process
models. The model records its own states (no sink processes) and saves them at the last step.
Parameter ``start`` (the population's retiming stage) keeps the neuron idle in its initial state
for the first ``start`` Lava steps, so that it begins at the IR's step 0 (docs/design.md §4).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

DEFINITION = "rsnn_neurons"  # the neuron definition's package name in the Lava environment


def load_definition():
    """The neuron definition package: ``rsnn_compiler.neurons`` when the compiler is importable,
    else loaded by path as ``rsnn_neurons`` from beside this file (a build's lava/ folder) or from
    the compiler's source tree / installation (this file in ``backends/lava/``)."""
    try:
        from rsnn_compiler import neurons
        return neurons
    except ImportError:
        pass
    if DEFINITION in sys.modules:
        return sys.modules[DEFINITION]
    here = Path(__file__).resolve().parent
    for folder in (here / DEFINITION, here.parents[1] / "neurons", here.parents[1] / "rsnn_compiler" / "neurons"):
        if (folder / "__init__.py").is_file():
            spec = importlib.util.spec_from_file_location(
                DEFINITION, folder / "__init__.py", submodule_search_locations=[str(folder)])
            module = importlib.util.module_from_spec(spec)
            sys.modules[DEFINITION] = module
            spec.loader.exec_module(module)
            return module
    raise ImportError(f"the neuron definition ({DEFINITION}/) is missing beside {__file__}")


N = load_definition()

FAMILIES = N.FIXED_FAMILIES
KINDS = tuple(FAMILIES)
#: kind -> name -> (default, per-neuron allowed); choices are strings (enum values)
PARAMS: dict[str, dict[str, tuple[Any, bool]]] = {
    kind: {**{q.name: (getattr(q.default, "value", q.default), q.per_neuron) for q in f.params},
           "start": (0, False)}
    for kind, f in FAMILIES.items()
}
#: kind -> choice parameter -> allowed strings
CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    kind: {q.name: tuple(c.value for c in q.choices) for q in f.params if q.choices is not None}
    for kind, f in FAMILIES.items()
}
STATES = {kind: f.states for kind, f in FAMILIES.items()}
RECORDABLE = ("spikes",) + tuple(sorted({s for f in FAMILIES.values() for s in f.states}))


class NeuronState:
    """States of one population and its step: the family's definition on numpy int64."""

    def __init__(self, kind: str, size: int, params: dict[str, Any]):
        family = FAMILIES[kind]
        values = {k: v for k, v in params.items() if k != "start"}
        self.p = {k: params.get(k, d) for k, (d, _) in PARAMS[kind].items()}
        self.pop = N.Population(N.NumpyInt(), family, values, (size,))
        self.st = self.pop.init(1)
        self.out = np.zeros(size, np.int64)

    @property
    def s(self) -> np.ndarray:
        return self.out

    def step(self, x: np.ndarray) -> np.ndarray:
        """Advance one step on the summed input ``x``; return the message sent."""
        self.out = np.asarray(self.pop.step(self.st, np.asarray(x, dtype=np.int64)[None]))[0]
        return self.out

    def read(self, what: str) -> np.ndarray:
        return self.out if what == "spikes" else getattr(self.st, what)[0]


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
