"""Executors run a built graph on inputs: ``run(build_dir, manifest, domain, profile, x)``.

``interp`` is the reference interpreter (core); backends register further executors (gpu, c,
lava) in ``registry.EXECUTORS``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from rsnn_compiler.artifact import build_file, verify_target_files
from rsnn_compiler.budget import require_run_within_budget
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.ir.serialize import load_graph


class Executor(Protocol):
    name: ClassVar[str]
    # the domains it runs ("float", "fixed"); absent means both (``rsnnc run`` defaults to float)
    domains: ClassVar[tuple[str, ...]]

    def run(self, build: Path, manifest: dict, domain: Domain, profile: str | None, x: np.ndarray) -> RunResult: ...


def fixed_profiles(manifest: dict) -> list[str]:
    return sorted(k for k in manifest.get("graphs", {}) if k != "float")


def resolve_profile(manifest: dict, domain: Domain, profile: str | None) -> str | None:
    """The graph key to run: 'float' or one fixed profile present in the build."""
    if domain == Domain.FLOAT:
        return "float"
    available = fixed_profiles(manifest)
    if not available:
        raise UserInputError(
            "this build has no fixed-point graph; rebuild with a fixed-point target (e.g. --target c)"
        )
    if profile is None:
        if len(available) > 1:
            raise UserInputError(f"the build has several fixed-point profiles ({', '.join(available)}); choose one with --profile")
        return available[0]
    if profile not in available:
        raise UserInputError(f"profile '{profile}' is not in this build (available: {', '.join(available)})")
    return profile


def load_build_graph(build: Path, manifest: dict, key: str) -> Graph:
    """The build's graph ``key`` ('float' or a profile), after checking its manifest hash."""
    entry = manifest["graphs"].get(key)
    if entry is None:
        raise UserInputError(f"build {build} has no {key} graph; rebuild it with `rsnnc build`")
    return load_graph(build_file(build, manifest, entry["file"]))


def check_run_budget(build: Path, manifest: dict, x: np.ndarray) -> None:
    """Refuse (exit 2, before anything runs) inputs whose recorded run would exceed the memory
    budget (``budget.run_bytes`` of the build's float graph; the fixed graph records as much, and
    stands in for it in a build made from a fixed-point graph, which has no float graph)."""
    key = "float" if "float" in manifest.get("graphs", {}) else next(iter(fixed_profiles(manifest)), "float")
    graph = load_build_graph(build, manifest, key)
    require_run_within_budget(graph, x.shape[0], x.shape[1])


def target_program(
    build: Path, manifest: dict, domain: Domain, profile: str | None, target: str, label: str, marker: str
) -> tuple[Path, str]:
    """For an executor that runs a target's emitted fixed-point program: the target's folder
    (``<build>/<target>``, which must hold ``marker``) and the key of the graph it runs."""
    if domain != Domain.FIXED:
        raise UserInputError(f"the {target} executor runs the fixed-point graph; use --domain fixed")
    build = Path(build)
    entry = manifest.get("targets", {}).get(target)
    folder = build / target
    if entry is None or not (folder / marker).is_file():
        raise UserInputError(f"{build} has no {label} target; rebuild with --target {target}")
    verify_target_files(build, manifest, target)  # nothing of it runs unless every hash matches
    return folder, resolve_profile(manifest, domain, profile or entry.get("profile"))


@dataclass
class InterpreterExecutor:
    name: ClassVar[str] = "interp"

    def run(self, build: Path, manifest: dict, domain: Domain, profile: str | None, x: np.ndarray) -> RunResult:
        key = resolve_profile(manifest, domain, profile)
        graph = load_build_graph(build, manifest, key)
        if key == "float":
            return run_float(graph, x)
        try:
            fixed = importlib.import_module("rsnn_compiler.interpreter.fixed_interp")
        except ImportError:
            raise UserInputError("the fixed-point interpreter is not available in this installation") from None
        return fixed.run_fixed(graph, x)
