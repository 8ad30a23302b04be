"""The pass pipelines a build runs, by pass name (docs/design.md, "Passes").

Float: ``canonicalize`` (then ``retarget_stock`` with ``--stock-neurons``), then
``prune_spatial -> prune_temporal`` with ``--prune`` (else one step ``prune`` that the build
records as skipped). Fixed point, once per profile:
``quantize_weights -> quantize_state``, then the lowering passes each integer target names
(``lowering_passes`` of its backend class: ``map_loihi2`` for lava).
This module imports nothing heavy, so ``rsnnc passes`` prints the pipelines at once.
"""

from __future__ import annotations

from rsnn_compiler import registry

PRUNE_STEP = "prune"  # the float step recorded as skipped when pruning is off or unavailable
# recorded after each fixed-point pipeline: what quantization changed (passes/quant_checks.py)
CHECK_STEP = "quant_check"


def float_pipeline_names(prune: bool, stock_neurons: bool = False) -> list[str]:
    """Pass names of the float pipeline (``PRUNE_STEP`` stands for skipped pruning)."""
    head = ["canonicalize", *(["retarget_stock"] if stock_neurons else [])]
    if prune and "prune_spatial" in registry.PASSES:
        temporal = ["prune_temporal"] if "prune_temporal" in registry.PASSES else []
        return [*head, "prune_spatial", *temporal]
    return [*head, PRUNE_STEP]


def fixed_pipeline(profile: str | None = None, targets=()) -> list[str]:
    """Pass names of the fixed-point pipeline of one profile for ``targets`` (backend objects,
    or target names whose classes are read without importing them)."""
    from rsnn_compiler.catalog import class_facts

    steps = ["quantize_weights", "quantize_state"]
    for target in targets:
        if isinstance(target, str):
            facts = class_facts(registry.BACKENDS[target], ("uses_fixed", "lowering_passes")).attrs
        else:
            facts = {"uses_fixed": target.uses_fixed, "lowering_passes": target.lowering_passes}
        if facts.get("uses_fixed"):
            steps += [s for s in facts.get("lowering_passes", ()) if s not in steps]
    return steps
