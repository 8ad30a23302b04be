"""What a neuron family is: its parameters, its states and one step, written once.

A ``Family`` is data plus one step function ``step(P, p, st, x) -> out`` written against a
primitive set ``P`` (an object whose methods are the elementary operations: ``decay``, ``ovf``,
``cmp``, ``where``...). Every executor supplies its own primitive set and so derives its neuron
code from the same definition:

    numpy int64 (fixed interpreter, Lava process)   torch int64 (GPU runtime)
    exact int + straight-through float (QAT)        C expression text (C emitter)
    torch float32 (float interpreter, GPU float)    float32 + surrogate spike (training)

``p`` holds the derived parameters (``derive``; arrays bound by ``P.param``), ``st`` the states
(attributes, including the hidden previous output ``s``); ``step`` assigns new states to ``st``
and returns the node's output. Values are combined with ``+ - *`` and the primitives only, so
the same text runs on arrays, tensors and C expressions. Static choices (reset mode, bit widths)
are Python values and branch with ``if``.

Imports only the standard library and numpy (the Lava environment loads this package by path).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .enums import Domain


@dataclass(frozen=True)
class Param:
    """One parameter of a family as the IR op spells it.

    ``per_neuron``: an array with the population's shape (else a static scalar or choice);
    ``default``: the value when omitted (None: required); ``choices``: the enum of a choice;
    ``allowed``: the members the family supports (empty: all); ``positive``: every value must be
    > 0 because the step divides by it (the IR verifier refuses other values, so a hostile file
    cannot make an executor divide by zero).
    """

    name: str
    default: Any = None
    per_neuron: bool = True
    choices: type[enum.Enum] | None = None
    allowed: tuple = ()
    positive: bool = False

    def options(self) -> tuple:
        """The choice's supported members."""
        return self.allowed or tuple(self.choices)

    def choose(self, value: Any, owner: str) -> enum.Enum:
        """``value`` (a member or its string) as a supported member; ValueError naming ``owner``."""
        member = self.choices(getattr(value, "value", value))
        if member not in self.options():
            raise ValueError(f"{owner}: {self.name} must be one of"
                             f" {', '.join(m.value for m in self.options())}, not {member.value}")
        return member


class Namespace:
    """Attribute bag for derived parameters and states (``p.theta``, ``st.v``)."""

    def __init__(self, **values: Any):
        self.__dict__.update(values)

    def items(self):
        return self.__dict__.items()

    def copy(self) -> "Namespace":
        return Namespace(**self.__dict__)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Namespace({', '.join(sorted(self.__dict__))})"


@dataclass(frozen=True)
class Family:
    """A neuron family in one domain (see the module docstring).

    ``states``: recorded states in record order (IR names: ``i``, ``v``, ``a``, ``c``...);
    ``hidden``: states kept but not recorded (``s``, the previous output);
    ``initial``: state -> derived parameter giving its initial value (others start at 0);
    ``derive``: raw parameters (numpy arrays / ints / enums) -> derived ones;
    ``takes_terms``: the step receives the list of per-edge input terms (float families add them
    one at a time onto the decayed state) instead of their sum;
    ``binary``: the output is a 0/1 spike (consumers may add weights without multiplying);
    ``squares_states``: the step multiplies two states (targets then bound the state width).
    """

    name: str
    domain: Domain
    params: tuple[Param, ...]
    states: tuple[str, ...]
    step: Callable[..., Any]
    derive: Callable[[Namespace], Namespace]
    spiking: bool = True
    hidden: tuple[str, ...] = ("s",)
    initial: dict[str, str] = field(default_factory=dict)
    takes_terms: bool = False
    binary: bool = False
    squares_states: bool = False
    doc: str = ""

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.params)

    def raw(self, values: dict[str, Any], shape: tuple[int, ...]) -> Namespace:
        """Complete and normalise raw parameters: defaults filled in, per-neuron values broadcast
        to ``shape`` (int64 for fixed, float32 for float), choices as enums."""
        out = {}
        for q in self.params:
            value = values.get(q.name, q.default)
            if value is None:
                raise ValueError(f"{self.name}: parameter '{q.name}' is required")
            if q.choices is not None:
                value = q.choose(value, self.name)
            elif q.per_neuron:
                dtype = np.int64 if self.domain is Domain.FIXED else np.float32
                value = np.broadcast_to(np.asarray(value, dtype=dtype), shape)
            elif self.domain is Domain.FIXED or isinstance(q.default, int):
                value = int(value)
            out[q.name] = value
        return Namespace(**out)

    def derived(self, values: dict[str, Any], shape: tuple[int, ...]) -> Namespace:
        """``derive`` applied to ``raw(values, shape)``."""
        return self.derive(self.raw(values, shape))


def bind(P, family: Family, derived: Namespace) -> Namespace:
    """Derived parameters in ``P``'s representation: arrays through ``P.param(name, array)``."""
    return Namespace(**{
        k: (P.param(k, v) if isinstance(v, np.ndarray) else v) for k, v in derived.items()
    })


def initial_state(P, family: Family, bound: Namespace, batch: int, shape: tuple[int, ...]) -> Namespace:
    """States at step 0: ``P.initial(value, batch, shape)`` (value None means zeros)."""
    names = family.states + tuple(h for h in family.hidden if h not in family.states)
    return Namespace(**{
        n: P.initial(getattr(bound, family.initial[n]) if n in family.initial else None, batch, shape)
        for n in names
    })


class Population:
    """One population of ``family`` run with primitive set ``P`` (batch-first values)."""

    def __init__(self, P, family: Family, values: dict[str, Any], shape: tuple[int, ...]):
        self.P, self.family, self.shape = P, family, tuple(shape)
        self.derived = family.derived(values, self.shape)
        self.p = bind(P, family, self.derived)
        self.takes_terms = family.takes_terms
        self.state_names = family.states

    def init(self, batch: int) -> Namespace:
        return initial_state(self.P, self.family, self.p, batch, self.shape)

    def step(self, st: Namespace, x):
        return self.family.step(self.P, self.p, st, x)

    def states(self, st: Namespace) -> dict[str, Any]:
        return {n: getattr(st, n) for n in self.family.states}


@dataclass(frozen=True)
class LinearForm:
    """How the input and the bias enter a family that quantizes through ``Extension.quantize``:
    the input is multiplied by ``gain`` (folded into the feeding synapses), ``bias`` is added to
    the membrane every step (state units per step, before scaling), and ``alpha`` is the decay of
    the synaptic current the input enters (None: no current). Arrays have the population's shape."""

    gain: Any = None
    bias: Any = None
    alpha: Any = None


@dataclass(frozen=True)
class Extension:
    """A neuron family added through the definition (``neurons.EXTENSIONS``).

    ``float`` is the family whose float32 arithmetic the IR op ``op_name`` has. It quantizes by
    one of two rules:

    - ``rewrite(values) -> (family, values)``: an existing float family that computes the same
      real-valued update (a library's own operation order rewritten as beta, gain and bias); the
      graph is quantized as that family;
    - ``quantize(values, S, common) -> parameters`` of the fixed family ``fixed_name`` (its own
      ``fixed`` family, IR op ``Fixed<op_name>``, or an existing one), at state scale ``S``;
      ``linear(values) -> LinearForm`` says how the input and bias enter (else the parameters
      ``gain`` and ``bias`` when present).
    """

    op_name: str
    float: Family
    fixed: Family | None = None
    quantize: Callable | None = None
    rewrite: Callable | None = None
    linear: Callable | None = None
    fixed_family: str = ""
    #: states besides v whose calibrated range bounds the state scale (e.g. large currents)
    bound_states: tuple[str, ...] = ()

    @property
    def fixed_name(self) -> str:
        """The fixed family ``quantize`` produces (empty for a ``rewrite`` extension)."""
        return self.fixed_family or (self.fixed.name if self.fixed is not None else "")
