"""Fuzz every input kind (NIR, ONNX, lava-dl .net, .npz, .rsnn, state dicts, factories, build folders, CLI
arguments) through the real ``rsnnc`` entry point, in-process (tests/fuzz_cases.py makes the
cases). Each case must end in success (0) or one-line refusal (2): never an internal error (3), a
traceback, a leftover temporary file, a file outside its folder, or memory beyond the budget.
A few hundred cases run by default; ``-m slow`` runs ten times as many.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import shutil
from pathlib import Path

import pytest

from fuzz_cases import EXAMPLE, KINDS, Context, make_case, netx_files
from rsnn_compiler.build import BuildOptions, build
from rsnn_compiler.cli.main import main

HAVE_CC = shutil.which(os.environ.get("CC", "cc").split()[0]) is not None
BUDGET = "256M"
MAX_RSS_GROWTH_KIB = 1536 * 1024  # the process may grow by at most this much over all cases
DEFAULT_CASES = {"rsnn": 50, "npz": 50, "nir": 25, "onnx": 25, "netx": 30, "state_dict": 20, "factory": 40,
                 "build_folder": 50, "cli": 60}
SLOW_FACTOR = 10
# what a successful case may create in its folder (besides the inputs it was given)
OUTPUTS = ("out", "y.npz", "x.out", "b/validate.json", "b/lava/mapping.png", "b/mapping.png", "__pycache__")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> Context:
    out = tmp_path_factory.mktemp("fuzz-build") / "build"
    build(str(EXAMPLE), out, BuildOptions(targets=("c", "gpu") if HAVE_CC else ("gpu",)))
    return Context(build=out, netx=netx_files(tmp_path_factory.mktemp("fuzz-netx")))


def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def allowed(rel: str, code: int) -> bool:
    if rel.startswith("__pycache__") or rel.endswith(".pyc"):
        return True
    return code == 0 and any(rel == o or rel.startswith(o + "/") for o in OUTPUTS)


def run_case(kind: str, seed: int, root: Path, ctx: Context) -> str | None:
    """Run one case; the problem found, or None."""
    folder = root / f"{kind}-{seed}"
    folder.mkdir()
    argv = make_case(kind, seed, folder, ctx)
    before, siblings = tree(folder), set(os.listdir(root))
    build_before = tree(ctx.build)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        os.chdir(cwd)
    err_text = err.getvalue()
    lines = [ln for ln in err_text.splitlines() if ln.strip()]
    where = f"{kind} seed {seed}: rsnnc {' '.join(argv)[:300]} -> exit {code}"
    if code not in (0, 2):
        return f"{where}: {err_text[-600:]}"
    if "Traceback" in err_text or any(not ln.startswith("rsnnc") for ln in lines):
        return f"{where}: stderr is not rsnnc's one-line messages: {err_text[-600:]}"
    if code == 2 and not any(ln.startswith("rsnnc: error:") for ln in lines):
        return f"{where}: exit 2 without an error line: {err_text[-300:]}"
    new = sorted(rel for rel in tree(folder) - before if not allowed(rel, code))
    if new:
        return f"{where}: left {new[:5]}"
    if set(os.listdir(root)) != siblings:
        return f"{where}: wrote outside its folder: {sorted(set(os.listdir(root)) - siblings)}"
    touched = {rel for rel in tree(ctx.build) - build_before if rel not in ("validate.json", "lava/mapping.png", "mapping.png")}
    if touched:
        return f"{where}: changed the shared build: {sorted(touched)[:5]}"
    shutil.rmtree(folder, ignore_errors=True)
    return None


def fuzz(kind: str, n: int, ctx: Context, root: Path, monkeypatch) -> None:
    monkeypatch.setenv("RSNNC_MEMORY_BUDGET", BUDGET)
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    problems = [p for p in (run_case(kind, seed, root, ctx) for seed in range(n)) if p]
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start
    assert not problems, f"{len(problems)} of {n} cases failed:\n" + "\n".join(problems[:8])
    assert grown < MAX_RSS_GROWTH_KIB, f"peak memory grew by {grown // 1024} MiB over {n} {kind} cases"
    assert sorted(p.name for p in root.iterdir()) == [], "a case folder kept files"


@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_inputs(kind, ctx, tmp_path, monkeypatch):
    fuzz(kind, DEFAULT_CASES[kind], ctx, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_inputs_slow(kind, ctx, tmp_path, monkeypatch):
    fuzz(kind, SLOW_FACTOR * DEFAULT_CASES[kind], ctx, tmp_path, monkeypatch)
