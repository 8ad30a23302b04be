"""The layout's contracts (DESIGN §2): every registry entry resolves, and imports point one way:
the core never imports a frontend, pass or backend (only ``registry`` names them, as strings);
no generic pass imports a backend; the neuron definition imports only numpy and itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rsnn_compiler import registry

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ("rsnn_compiler.frontends", "rsnn_compiler.passes", "rsnn_compiler.backends")


def _entries() -> list[tuple[str, str]]:
    out = []
    for table in ("PASSES", "BACKENDS", "EXECUTORS", "FRONTENDS", "EXPORTERS", "COMMANDS"):
        for key, spec in getattr(registry, table).items():
            out.append((f"{table}[{key}]", spec))
    out += [("PYTHON_FRONTEND", registry.PYTHON_FRONTEND), ("PYTHON_ANN_FRONTEND", registry.PYTHON_ANN_FRONTEND)]
    return out


@pytest.mark.parametrize("where,spec", _entries(), ids=[e[0] for e in _entries()])
def test_every_registry_entry_resolves(where, spec):
    assert registry.resolve(spec) is not None, where


def _imports(path: Path) -> list[str]:
    """Absolute module names imported anywhere in ``path`` (function-level imports included);
    relative imports are resolved against the file's package."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] in ("frontends", "passes", "backends"):
        parts = ["rsnn_compiler", *parts]
    package = parts[:-1]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names.append(".".join(base + ([node.module] if node.module else [])))
            else:
                names.append(node.module)
    return names


def _is_plugin(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in PLUGINS)


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_core_imports_no_frontend_pass_or_backend():
    bad = []
    for path in _files("rsnn_compiler"):
        for name in _imports(path):
            if _is_plugin(name):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "the core reaches plugins only through rsnn_compiler/registry.py:\n" + "\n".join(bad)


def test_generic_passes_import_no_backend():
    bad = [f"{p.relative_to(ROOT)} imports {n}" for p in _files("passes") for n in _imports(p)
           if n.startswith("rsnn_compiler.backends")]
    assert not bad, "\n".join(bad)


def test_op_modules_import_downwards_only():
    """ops <- fixed_ops, conversion_ops <- catalogue: no cycle among the op modules."""
    ops = _imports(ROOT / "rsnn_compiler" / "ir" / "ops.py")
    assert not any(n.startswith(("rsnn_compiler.ir.fixed_ops", "rsnn_compiler.ir.conversion_ops",
                                 "rsnn_compiler.ir.catalogue")) for n in ops), ops
    for name in ("fixed_ops.py", "conversion_ops.py"):
        assert "rsnn_compiler.ir.catalogue" not in _imports(ROOT / "rsnn_compiler" / "ir" / name)
