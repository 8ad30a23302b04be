"""The one definition of neuron dynamics (issue 13): every executor derives its neurons from here.

``FAMILIES[(domain, name)]`` is a ``family.Family``: parameters, states and one step function
written over a primitive set (``family`` explains the contract). ``fixed_dynamics`` and
``float_dynamics`` hold the first families (LIF, IF, CUBA, LI, ALIF, dual-threshold IF,
multi-threshold); each module of ``MODULES`` adds families through the definition, as one
``Extension`` each (its float family, its IR op name and how it quantizes: its own fixed family
with a ``quantize`` rule, or a ``rewrite`` into an existing float family). Their IR ops are
generated from them (``rsnn_compiler.ir.family_ops``). Most update forms of the peer libraries
(``spikingjelly``, ``norse``, ``sinabs``, ``rockpool``, snnTorch's ``alpha`` and ``lapicque``)
are float families with the library's own float32 operation order whose fixed family is an
existing one. ``numpy_prims`` is the numpy integer primitive set. This package imports only the
standard library and numpy, with relative imports, so the Lava environment (Python 3.10, no
rsnn_compiler) loads it by path.
"""

from __future__ import annotations

from . import alpha, glif, izhikevich, lapicque, multispike, norse, rockpool, sinabs, spikingjelly, tclif
from .enums import Comparator, Domain, Overflow, ResetMode
from .family import Extension, Family, LinearForm, Namespace, Param, Population
from .fixed_dynamics import BASE_FIXED_FAMILIES
from .float_dynamics import BASE_FLOAT_FAMILIES
from .numpy_prims import NumpyInt

#: modules that add families through the definition
MODULES = (tclif, izhikevich, glif, multispike, alpha, lapicque, spikingjelly, norse, sinabs, rockpool)


def _extensions(module) -> tuple[Extension, ...]:
    """A module's ``EXTENSIONS``, or the one family of a module written as FLOAT, FIXED, OP_NAME
    and ``quantize`` (TC-LIF, Izhikevich, GLIF)."""
    if hasattr(module, "EXTENSIONS"):
        return tuple(module.EXTENSIONS)
    return (Extension(module.OP_NAME, module.FLOAT, module.FIXED, module.quantize),)


EXTENSIONS: tuple[Extension, ...] = tuple(e for m in MODULES for e in _extensions(m))

FIXED_FAMILIES: dict[str, Family] = {**BASE_FIXED_FAMILIES, **{e.fixed.name: e.fixed for e in EXTENSIONS if e.fixed}}
FLOAT_FAMILIES: dict[str, Family] = {**BASE_FLOAT_FAMILIES, **{e.float.name: e.float for e in EXTENSIONS}}
#: float family -> its extension
EXTENSION_OF: dict[str, Extension] = {e.float.name: e for e in EXTENSIONS}
#: float family -> rule(values, S, common) giving the fixed op's parameters at state scale S
QUANTIZE_RULES = {e.float.name: e.quantize for e in EXTENSIONS if e.quantize is not None}
#: float family -> rule(values) giving (existing float family, its values) with the same real-valued update
REWRITES = {e.float.name: e.rewrite for e in EXTENSIONS if e.rewrite is not None}

FAMILIES: dict[tuple[Domain, str], Family] = {
    **{(Domain.FIXED, k): f for k, f in FIXED_FAMILIES.items()},
    **{(Domain.FLOAT, k): f for k, f in FLOAT_FAMILIES.items()},
}


def family(domain: Domain, name: str) -> Family:
    return FAMILIES[(domain, name)]


__all__ = [
    "EXTENSIONS", "EXTENSION_OF", "FAMILIES", "FIXED_FAMILIES", "FLOAT_FAMILIES", "MODULES",
    "QUANTIZE_RULES", "REWRITES", "Comparator", "Domain", "Extension", "Family", "LinearForm",
    "Namespace", "NumpyInt", "Overflow", "Param", "Population", "ResetMode", "family",
]
