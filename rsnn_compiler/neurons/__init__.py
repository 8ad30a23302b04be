"""The one definition of neuron dynamics (issue 13): every executor derives its neurons from here.

``FAMILIES[(domain, name)]`` is a ``family.Family``: parameters, states and one step function
written over a primitive set (``family`` explains the contract). ``fixed_dynamics`` and
``float_dynamics`` hold the first families (LIF, IF, CUBA, LI, ALIF, dual-threshold IF,
multi-threshold); each module of ``EXTENSIONS`` adds one family in both domains with its
quantization rule, and its IR ops are generated from it (``rsnn_compiler.ir.family_ops``).
``numpy_prims`` is the numpy integer primitive set. This package imports only the standard
library and numpy, with relative imports, so the Lava environment (Python 3.10, no
rsnn_compiler) loads it by path.
"""

from __future__ import annotations

from . import glif, izhikevich, tclif
from .enums import Comparator, Domain, Overflow, ResetMode
from .family import Family, Namespace, Param, Population
from .fixed_dynamics import BASE_FIXED_FAMILIES
from .float_dynamics import BASE_FLOAT_FAMILIES
from .numpy_prims import NumpyInt

#: family modules added through the definition (float + fixed family + ``quantize`` rule each)
EXTENSIONS = (tclif, izhikevich, glif)

FIXED_FAMILIES: dict[str, Family] = {**BASE_FIXED_FAMILIES, **{m.FIXED.name: m.FIXED for m in EXTENSIONS}}
FLOAT_FAMILIES: dict[str, Family] = {**BASE_FLOAT_FAMILIES, **{m.FLOAT.name: m.FLOAT for m in EXTENSIONS}}
#: float family -> rule(values, S, common) giving the fixed op's parameters at state scale S
QUANTIZE_RULES = {m.FLOAT.name: m.quantize for m in EXTENSIONS}

FAMILIES: dict[tuple[Domain, str], Family] = {
    **{(Domain.FIXED, k): f for k, f in FIXED_FAMILIES.items()},
    **{(Domain.FLOAT, k): f for k, f in FLOAT_FAMILIES.items()},
}


def family(domain: Domain, name: str) -> Family:
    return FAMILIES[(domain, name)]


__all__ = [
    "EXTENSIONS", "FAMILIES", "FIXED_FAMILIES", "FLOAT_FAMILIES", "QUANTIZE_RULES", "Comparator",
    "Domain", "Family", "Namespace", "NumpyInt", "Overflow", "Param", "Population", "ResetMode",
    "family",
]
