"""IR ops generated from the neuron families added through the definition (``neurons.EXTENSIONS``).

For each such family there is a float op (``TCLIF``, ``Izhikevich``, ``GLIF``, ``SJLIF``...) and,
when it has its own fixed family, a fixed op (``FixedTCLIF``...), frozen ``kw_only`` dataclasses like the hand-written ops: one field per
family parameter (per-neuron ones are read-only arrays with the population's shape; omitted ones
with a default are filled with it), choices as enums, ``kind`` / ``family`` / ``state_names``
from the family. Their meaning is the family's step (docstring: the family module's equations).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import ClassVar

import numpy as np

from rsnn_compiler.ir.fixed_ops import FixedNeuron, _int_arrays
from rsnn_compiler.ir.ops import NeuronOp, OpKind, check_shapes, freeze_array
from rsnn_compiler.neurons import EXTENSIONS, Domain, Family

def _post_init(self) -> None:
    family: Family = self._family_def
    present = [getattr(self, q.name) for q in family.params if q.per_neuron and getattr(self, q.name) is not None]
    if not present:
        raise ValueError(f"{type(self).__name__}: give at least one per-neuron parameter")
    shape = np.shape(present[0])
    dtype = np.int64 if family.domain is Domain.FIXED else np.float32
    for q in family.params:
        value = getattr(self, q.name)
        if q.choices is not None:
            value = q.choose(value, type(self).__name__)
        elif q.per_neuron:
            if value is None:
                if q.default is None:
                    raise ValueError(f"{type(self).__name__}: parameter '{q.name}' is required")
                value = np.broadcast_to(np.asarray(q.default), shape)
            arr = np.asarray(value)
            if family.domain is Domain.FIXED and arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
                raise ValueError(f"{type(self).__name__}: parameter '{q.name}' must hold integers")
            value = freeze_array(arr, dtype)
        else:
            value = int(value)
        object.__setattr__(self, q.name, value)
    if family.domain is Domain.FIXED:
        _int_arrays(self)
    check_shapes(self)


def make_op_class(family: Family, op_name: str) -> type[NeuronOp]:
    """The dataclass of ``family``'s IR op, ``op_name`` or ``Fixed<op_name>`` (module docstring)."""
    fixed = family.domain is Domain.FIXED
    name = ("Fixed" if fixed else "") + op_name
    fields = []
    for q in family.params:
        if q.per_neuron:
            fields.append((q.name, np.ndarray, dataclasses.field(default=None)))
        else:
            typ = q.choices if q.choices is not None else int
            fields.append((q.name, typ, dataclasses.field(default=q.default)))
    namespace = {
        "kind": OpKind(("fixed_" if fixed else "") + family.name),
        "family": family.name,
        "array_fields": tuple(q.name for q in family.params if q.per_neuron),
        "state_names": family.states,
        "spiking": family.spiking,
        "_family_def": family,
        "__post_init__": _post_init,
        "__doc__": f"{family.doc} ({family.domain.value}); equations: rsnn_compiler/neurons/{family.name}.py",
        "__annotations__": {k: ClassVar for k in ("kind", "family", "array_fields", "state_names",
                                                   "spiking", "_family_def")},
    }
    cls = dataclasses.make_dataclass(name, fields, bases=(FixedNeuron if fixed else NeuronOp,),
                                     namespace=namespace, frozen=True, eq=False, kw_only=True)
    cls.__module__ = __name__
    return cls


GENERATED: dict[str, type[NeuronOp]] = {}
for _ext in EXTENSIONS:
    for _family in (_ext.float, _ext.fixed):
        if _family is not None:
            _cls = make_op_class(_family, _ext.op_name)
            GENERATED[_cls.__name__] = _cls
globals().update(GENERATED)

__all__ = sorted(GENERATED)
