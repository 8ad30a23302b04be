"""The one definition of neuron dynamics (issue 13): every executor derives its neurons from here.

``FAMILIES[(domain, name)]`` is a ``family.Family``: parameters, states and one step function
written over a primitive set (``family`` explains the contract). ``fixed_dynamics`` and
``float_dynamics`` hold the families and their equations; ``numpy_prims`` the numpy integer
primitive set. This package imports only the standard library and numpy, with relative imports,
so the Lava environment (Python 3.10, no rsnn_compiler) loads it by path (``load_by_path``).
"""

from __future__ import annotations

from .enums import Comparator, Domain, Overflow, ResetMode
from .family import Family, Namespace, Param, Population
from .fixed_dynamics import FIXED_FAMILIES
from .float_dynamics import FLOAT_FAMILIES
from .numpy_prims import NumpyInt

FAMILIES: dict[tuple[Domain, str], Family] = {
    **{(Domain.FIXED, k): f for k, f in FIXED_FAMILIES.items()},
    **{(Domain.FLOAT, k): f for k, f in FLOAT_FAMILIES.items()},
}


def family(domain: Domain, name: str) -> Family:
    return FAMILIES[(domain, name)]


__all__ = [
    "FAMILIES", "FIXED_FAMILIES", "FLOAT_FAMILIES", "Comparator", "Domain", "Family", "Namespace",
    "NumpyInt", "Overflow", "Param", "Population", "ResetMode", "family",
]
