"""The link from an IR neuron op to its definition in ``rsnn_compiler.neurons``.

``family_of(op)`` is the op's ``Family`` (domain from the op: fixed ops are ``FixedNeuron``);
``population(P, op)`` binds it to a primitive set ``P`` with the op's parameters.
"""

from __future__ import annotations

import dataclasses

from rsnn_compiler.neurons import Domain, Family, Population, family
from rsnn_compiler.ir.ops import NeuronOp


def domain_of(op: NeuronOp) -> Domain:
    from rsnn_compiler.ir.fixed_ops import FixedNeuron

    return Domain.FIXED if isinstance(op, FixedNeuron) else Domain.FLOAT


def has_family(op) -> bool:
    return isinstance(op, NeuronOp) and bool(op.family)


def family_of(op: NeuronOp) -> Family:
    if not op.family:
        raise TypeError(f"{type(op).__name__} has no neuron family")
    return family(domain_of(op), op.family)


def op_values(op: NeuronOp) -> dict:
    """The op's fields by name (arrays and attributes): the family's raw parameters."""
    return {f.name: getattr(op, f.name) for f in dataclasses.fields(op)}


def population(P, op: NeuronOp) -> Population:
    """``op`` as a population of its family run with primitive set ``P``."""
    return Population(P, family_of(op), op_values(op), tuple(op.shape))
