"""What ``rsnnc targets`` and ``rsnnc passes`` list, read from the registered classes' source.

Importing a pass or backend pulls numpy, torch, scipy or Lava (seconds); listing them should not.
So the facts are read from the source with ``ast``, without running it: a class's literal
attributes (strings, numbers, booleans, None, tuples/lists/sets/frozensets of them, and
``Name.ATTR`` constants of a class defined or imported in the same module) and the module's
docstring. Anything not readable that way (a computed value, a module that cannot be found)
falls back to importing the class, so the answer is always the class's own value.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsnn_compiler import registry


class Unreadable(Exception):
    """A value that only running the code can give."""


@dataclass(frozen=True)
class ClassFacts:
    """Attributes of a registered class, its methods' names and its module's docstring."""

    attrs: dict[str, Any]
    methods: frozenset[str] = field(default_factory=frozenset)
    module_doc: str = ""

    @property
    def summary(self) -> str:
        lines = self.module_doc.strip().splitlines()
        return lines[0] if lines else ""


@functools.lru_cache(maxsize=None)
def _module_tree(module: str) -> ast.Module:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise Unreadable(module) from exc
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise Unreadable(module)
    return ast.parse(Path(spec.origin).read_text(encoding="utf-8"))


def _class_node(tree: ast.Module, name: str) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise Unreadable(name)


def _attr_node(cls: ast.ClassDef, attr: str) -> ast.expr:
    node = _assignments(cls).get(attr)
    if node is None:
        raise Unreadable(f"{cls.name}.{attr}")
    return node


def _assignments(cls: ast.ClassDef) -> dict[str, ast.expr]:
    found: dict[str, ast.expr] = {}
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found[node.target.id] = node.value
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
    return found


def _constant_of(tree: ast.Module, module: str, owner: str, attr: str) -> Any:
    """``owner.attr`` where ``owner`` is a class of this module or imported into it."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == owner:
            return _literal(_attr_node(node, attr), tree, module)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if (alias.asname or alias.name) == owner:
                    source = _module_tree(node.module)
                    return _literal(_attr_node(_class_node(source, alias.name), attr), source, node.module)
    raise Unreadable(f"{owner}.{attr}")


def _literal(node: ast.expr, tree: ast.Module, module: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [_literal(e, tree, module) for e in node.elts]
        return {ast.Tuple: tuple, ast.List: list, ast.Set: frozenset}[type(node)](items)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in ("frozenset", "set", "tuple") and len(node.args) <= 1 and not node.keywords):
        return frozenset(_literal(node.args[0], tree, module)) if node.args else frozenset()
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return _constant_of(tree, module, node.value.id, node.attr)
    raise Unreadable(ast.dump(node))


def class_facts(spec: str, names: tuple[str, ...]) -> ClassFacts:
    """The attributes ``names`` of the class ``"module:Class"`` (missing ones are left out)."""
    module, _, cls_name = spec.partition(":")
    try:
        tree = _module_tree(module)
        cls = _class_node(tree, cls_name)
        values = _assignments(cls)
        attrs = {name: _literal(values[name], tree, module) for name in names if name in values}
        if not all(name in values for name in names) and cls.bases:
            raise Unreadable("inherited attributes")
        methods = frozenset(n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
        return ClassFacts(attrs, methods, ast.get_docstring(tree) or "")
    except (Unreadable, OSError, SyntaxError):
        import sys

        cls_obj = registry.resolve(spec)
        attrs = {name: getattr(cls_obj, name) for name in names if hasattr(cls_obj, name)}
        methods = frozenset(n for n in dir(cls_obj) if callable(getattr(cls_obj, n, None)) and not n.startswith("_"))
        return ClassFacts(attrs, methods, sys.modules[cls_obj.__module__].__doc__ or "")


PASS_FACTS = ("requires", "establishes", "forbids")
TARGET_FACTS = ("description", "uses_fixed", "requires_profile")


@dataclass(frozen=True)
class PassInfo:
    name: str
    requires: tuple[str, ...]
    establishes: tuple[str, ...]
    forbids: tuple[str, ...]
    doc: str


@dataclass(frozen=True)
class TargetInfo:
    name: str
    description: str
    uses_fixed: bool
    requires_profile: str | None
    checks_environment: bool  # has a ``status()`` that looks at this machine (seconds)

    @property
    def profile(self) -> str | None:
        return self.requires_profile or ("loihi2 or fpga" if self.uses_fixed else None)


def passes() -> list[PassInfo]:
    rows = []
    for name in sorted(registry.PASSES):
        facts = class_facts(registry.PASSES[name], PASS_FACTS)
        rows.append(PassInfo(name, *(tuple(sorted(facts.attrs.get(k, ()))) for k in PASS_FACTS), facts.summary))
    return rows


def targets() -> list[TargetInfo]:
    rows = []
    for name in sorted(registry.BACKENDS):
        facts = class_facts(registry.BACKENDS[name], TARGET_FACTS)
        rows.append(TargetInfo(name, facts.attrs.get("description", ""), bool(facts.attrs.get("uses_fixed")),
                               facts.attrs.get("requires_profile"), "status" in facts.methods))
    return rows
