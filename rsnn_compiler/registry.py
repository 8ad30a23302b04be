"""Explicit registry of frontends, passes and backends.

The core never imports a frontend, pass or backend module directly: it looks entries up here
and imports them lazily, so dependencies keep pointing one way (docs/design.md §2).
"""

from __future__ import annotations

import importlib
from typing import Any

from rsnn_compiler.errors import UserInputError

# name -> "module:attribute"
PASSES: dict[str, str] = {
    "canonicalize": "rsnn_compiler.passes.canonicalize:Canonicalize",
    "retarget_stock": "rsnn_compiler.passes.retarget_stock:RetargetStock",
    "prune_spatial": "rsnn_compiler.passes.prune_spatial:PruneSpatial",
    "prune_temporal": "rsnn_compiler.passes.prune_temporal:PruneTemporal",
    "quantize_weights": "rsnn_compiler.passes.quantize_weights:QuantizeWeights",
    "quantize_state": "rsnn_compiler.passes.quantize_state:QuantizeState",
    "retime": "rsnn_compiler.backends.lava.retime:Retime",
    "map_loihi2": "rsnn_compiler.backends.lava.map_loihi2:MapLoihi2",
    "qat_finetune": "rsnn_compiler.backends.gpu.qat_finetune:QatFinetune",
}

# the check after the fixed-point pipeline (clamps, saturation, silenced layers, accuracy gates)
QUANT_CHECKS = "rsnn_compiler.passes.quant_checks"

BACKENDS: dict[str, str] = {
    "ir": "rsnn_compiler.backends.ir.backend:IrBackend",
    "c": "rsnn_compiler.backends.c.backend:CBackend",
    "gpu": "rsnn_compiler.backends.gpu.backend:GpuBackend",
    "lava": "rsnn_compiler.backends.lava.backend:LavaBackend",
}

# executor name -> "module:Class" (``rsnnc run --executor``)
EXECUTORS: dict[str, str] = {
    "interp": "rsnn_compiler.executors:InterpreterExecutor",
    "c": "rsnn_compiler.backends.c.executor:CExecutor",
    "gpu": "rsnn_compiler.backends.gpu.executor:GpuExecutor",
    "lava": "rsnn_compiler.backends.lava.executor:LavaExecutor",
}

# extra CLI subcommands: name -> "module:attribute" of a click command, imported only when the
# command is named or listed (so the module must import only click at the top). Write it like
# the built-in ones in rsnn_compiler/cli/commands/: options as decorators, then
# ``@common_options @handler def command(args, out_console, err_console) -> exit code``.
COMMANDS: dict[str, str] = {}

# file suffix -> "module:function"; the function is ``load(source, options) -> ImportResult``
FRONTENDS: dict[str, str] = {
    ".rsnn": "rsnn_compiler.frontends.rsnn_file:load",
    ".nir": "rsnn_compiler.frontends.nir_import:load",
    ".pt": "rsnn_compiler.frontends.pytorch_import:load",
    ".pth": "rsnn_compiler.frontends.pytorch_import:load",
    ".onnx": "rsnn_compiler.frontends.onnx_import:load",
    ".net": "rsnn_compiler.frontends.netx_import:load",
}
# frontend used for ``pkg.module:factory`` sources
PYTHON_FRONTEND = "rsnn_compiler.frontends.pytorch_import:load"
# frontend for ``pkg.module:factory`` ANNs built with ``--convert`` (torch.fx)
PYTHON_ANN_FRONTEND = "rsnn_compiler.frontends.torch_ann_import:load"

# export format -> "module:function"; the function is ``export(graph, path) -> None``
EXPORTERS: dict[str, str] = {
    "nir": "rsnn_compiler.frontends.nir_export:export",
    "netx": "rsnn_compiler.backends.lava.netx_export:export",
}


def module(name: str) -> Any:
    """A module named in this registry (e.g. ``QUANT_CHECKS``), imported lazily."""
    return importlib.import_module(name)


def resolve(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_pass(name: str):
    if name not in PASSES:
        raise UserInputError(f"unknown pass '{name}'; known passes: {', '.join(sorted(PASSES))}")
    return resolve(PASSES[name])()


def get_backend(name: str):
    if name not in BACKENDS:
        raise UserInputError(
            f"unknown target '{name}'; available targets: {', '.join(sorted(BACKENDS))}"
            " (see `rsnnc targets`)"
        )
    return resolve(BACKENDS[name])()


def get_executor(name: str, **options):
    """A new executor ``name``; ``options`` are its fields (e.g. the gpu executor's ``processes``)."""
    if name not in EXECUTORS:
        raise UserInputError(
            f"unknown executor '{name}'; available: {', '.join(sorted(EXECUTORS))}"
        )
    return resolve(EXECUTORS[name])(**options)
