"""Every op kind of the IR in one place: the structural and float ops (``ops``), the fixed-point
ops (``fixed_ops``) and the conversion neurons (``conversion_ops``).

The op modules import only downwards (``fixed_ops`` and ``conversion_ops`` import ``ops``,
never the reverse); this module imports all three, so nothing needs an import cycle to find an
op class by kind (``op_from_parts``, used when loading a graph) or a neuron op by its family
(``neuron_op_class``).
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from rsnn_compiler.ir import conversion_ops, family_ops, fixed_ops, ops
from rsnn_compiler.neurons import Domain as FamilyDomain

OP_CLASSES: dict[ops.OpKind, type[ops.Op]] = {
    cls.kind: cls
    for cls in (
        ops.Input, ops.Output, ops.Identity, ops.Affine, ops.Scale, ops.Conv1d, ops.Conv2d,
        ops.Pool, ops.Flatten, ops.Delay, ops.BatchNorm, ops.Threshold, ops.LIF, ops.IF,
        ops.CubaLIF, ops.LI, ops.CubaLI, ops.ALIF,
        *fixed_ops.FIXED_OP_CLASSES, *conversion_ops.CONVERSION_OP_CLASSES,
        *family_ops.GENERATED.values(),
    )
}


def neuron_op_class(domain: FamilyDomain, family: str) -> type[ops.NeuronOp]:
    """The IR op whose meaning is ``family`` in ``domain`` (fixed ops are ``FixedNeuron``)."""
    for cls in OP_CLASSES.values():
        if (issubclass(cls, ops.NeuronOp) and cls.family == family
                and issubclass(cls, fixed_ops.FixedNeuron) == (domain is FamilyDomain.FIXED)):
            return cls
    raise KeyError(f"no {domain.value} IR op for neuron family '{family}'")


def _enum_type(cls: type, name: str) -> type[enum.Enum] | None:
    """The enum class of field ``name`` (from its default value), if it is an enum field."""
    for f in dataclasses.fields(cls):
        if f.name == name and isinstance(f.default, enum.Enum):
            return type(f.default)
    return None


_ENUM_FIELDS: dict[str, type[enum.Enum]] = {
    "reset": ops.ResetMode, "comparator": ops.Comparator, "mode": ops.PoolMode,
    "acc_overflow": ops.Overflow, "u_overflow": ops.Overflow, "v_overflow": ops.Overflow,
}


def op_from_parts(kind: str, attributes: dict, arrays: dict[str, np.ndarray]) -> ops.Op:
    """Rebuild an op from ``attributes()`` and ``arrays()`` (used by load)."""
    cls = OP_CLASSES[ops.OpKind(kind)]
    kwargs = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in attributes.items():
        if key not in names:
            raise ValueError(f"{cls.__name__} has no attribute '{key}'")
        enum_cls = _ENUM_FIELDS.get(key) or _enum_type(cls, key)
        if enum_cls is not None:
            value = enum_cls(value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    for name in cls.array_fields:
        kwargs[name] = arrays.get(name)
    return cls(**kwargs)
