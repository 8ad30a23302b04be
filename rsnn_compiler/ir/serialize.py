"""Save and load graphs as a ``.rsnn`` file: a zip of ``graph.json`` plus one ``.npy`` per array.

No pickle anywhere (arrays are read with ``allow_pickle=False``) and fixed zip timestamps, so
saving the same graph twice gives identical bytes.

Integer arrays are stored at the narrowest signed width holding their values (a node's
``"widen"`` entry names the arrays to restore to their integer dtype on load; files without it
load as before), and entries of at least ``STORE_BYTES`` are stored without deflate (compressing
megabytes of weights cost seconds for little gain).
"""

from __future__ import annotations

import dataclasses
import enum
import io
import json
import math
import typing
import zipfile
from pathlib import Path

import numpy as np

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.graph import Domain, Edge, Graph, GraphAttrs
from rsnn_compiler.ir.catalogue import OP_CLASSES, op_from_parts
from rsnn_compiler.ir.ops import OpKind
from rsnn_compiler.ir.verify import MAX_STEPS
from rsnn_compiler.npyio import NpzReader

SCHEMA = "rsnn-graph"
SCHEMA_VERSION = 1
_EPOCH = (1980, 1, 1, 0, 0, 0)
ATTR_INT_LIMIT = (1 << 31) - 1  # integer attributes, shape entries and delays fit int32
STORE_BYTES = 1 << 18  # entries this large are stored, smaller ones deflated
_NARROW = (np.int8, np.int16, np.int32)


def narrow_int(arr: np.ndarray) -> np.ndarray:
    """``arr`` at the narrowest signed integer dtype holding its values (non-integers as they are)."""
    if arr.dtype.kind not in "iu" or arr.size == 0:
        return arr
    lo, hi = int(arr.min()), int(arr.max())
    for dt in _NARROW:
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return arr.astype(dt) if np.dtype(dt).itemsize < arr.dtype.itemsize else arr
    return arr


def graph_to_dict(graph: Graph) -> dict:
    a = graph.attrs
    attrs = {
        "name": a.name,
        "dt": a.dt,
        "domain": a.domain.value,
        "profile": a.profile,
        "properties": sorted(a.properties),
    }
    if a.steps is not None:  # written only when set, so older files stay byte-identical
        attrs["steps"] = a.steps
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "attrs": attrs,
        "nodes": [
            _node_dict(n, op) for n, op in graph.nodes.items()
        ],
        "edges": [[e.src, e.dst, e.delay] for e in graph.edges],
    }


def _node_dict(name: str, op) -> dict:
    arrays = op.arrays()
    entry = {"name": name, "kind": op.kind.value, "attributes": op.attributes(), "arrays": sorted(arrays)}
    widen = {p: str(a.dtype) for p, a in sorted(arrays.items()) if narrow_int(np.asarray(a)).dtype != np.asarray(a).dtype}
    if widen:  # written only when needed, so files of float graphs keep their bytes
        entry["widen"] = widen
    return entry


def _write_entry(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_STORED if len(data) >= STORE_BYTES else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def save_graph(graph: Graph, path: str | Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        _write_entry(zf, "graph.json", json.dumps(graph_to_dict(graph), indent=1).encode())
        for name, op in graph.nodes.items():
            for pname, arr in op.arrays().items():
                npy = io.BytesIO()
                np.lib.format.write_array(npy, np.ascontiguousarray(narrow_int(np.asarray(arr))), allow_pickle=False)
                _write_entry(zf, f"arrays/{name}/{pname}.npy", npy.getvalue())
    Path(path).write_bytes(buf.getvalue())


MAX_META_BYTES = 64 << 20  # graph.json


def _fail(path: Path, what: str) -> UserInputError:
    return UserInputError(f"{path}: {what}; re-export it with rsnn_compiler.ir.save_graph")


def _expect(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise _fail(path, what)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_attribute(path: Path, where: str, key: str, value, hint) -> None:
    """A JSON attribute value must have the op field's type (see ``ops``): no strings where the
    C emitter writes numbers, no giant or fractional shapes."""
    ok = True
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = _is_int(value) and abs(value) <= ATTR_INT_LIMIT
    elif hint is float:
        ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        ok = isinstance(value, str) and value in {m.value for m in hint}
    elif typing.get_origin(hint) is tuple:
        ok = (_is_int(value) and 0 <= value <= ATTR_INT_LIMIT) or (
            isinstance(value, list) and len(value) <= 8 and all(_is_int(v) and abs(v) <= ATTR_INT_LIMIT for v in value))
    _expect(ok, path, f"{where}: attribute '{key}' = {str(value)[:40]!r} is not a valid {getattr(hint, '__name__', hint)}")


def _op(path: Path, entry, read_array) -> tuple[str, object]:
    _expect(isinstance(entry, dict), path, "a node entry is not an object")
    name, kind, attributes, arrays = (entry.get(k) for k in ("name", "kind", "attributes", "arrays"))
    _expect(isinstance(name, str), path, "a node has no text name")
    where = f"node {name[:60]!r}"
    _expect(isinstance(kind, str) and kind in {k.value for k in OP_CLASSES}, path, f"{where}: unknown kind {str(kind)[:40]!r}")
    cls = OP_CLASSES[OpKind(kind)]
    _expect(isinstance(attributes, dict), path, f"{where}: 'attributes' is not an object")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)} - set(cls.array_fields)
    for key, value in attributes.items():
        _expect(key in fields, path, f"{where}: {cls.__name__} has no attribute {str(key)[:40]!r}")
        _check_attribute(path, where, key, value, hints[key])
    _expect(isinstance(arrays, list) and all(isinstance(a, str) and a in cls.array_fields for a in arrays),
            path, f"{where}: 'arrays' must list {cls.__name__} parameters")
    params = {p: read_array(f"arrays/{name}/{p}.npy", f"{where} parameter '{p}'") for p in arrays}
    widen = entry.get("widen", {})
    _expect(isinstance(widen, dict), path, f"{where}: 'widen' is not an object")
    for p, dtype in widen.items():
        ok = p in params and dtype in ("int16", "int32", "int64") and params[p].dtype.kind == "i"
        _expect(ok, path, f"{where}: 'widen' entry {str(p)[:40]!r}: {str(dtype)[:20]!r} is not a stored integer array's dtype")
        params[p] = params[p].astype(np.dtype(dtype))
    try:
        return name, op_from_parts(kind, attributes, params)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise _fail(path, f"{where}: {type(exc).__name__}: {str(exc)[:160]}") from None


def _attrs(path: Path, a) -> GraphAttrs:
    _expect(isinstance(a, dict), path, "'attrs' is not an object")
    name, dt, steps, profile, props = (a.get(k) for k in ("name", "dt", "steps", "profile", "properties"))
    _expect(isinstance(name, str), path, "graph name is not a text")
    _expect(dt is None or ((_is_int(dt) or isinstance(dt, float)) and math.isfinite(dt) and dt > 0), path,
            f"dt {str(dt)[:40]!r} is not a positive number of seconds")
    _expect(steps is None or (_is_int(steps) and 1 <= steps <= MAX_STEPS), path,
            f"steps {str(steps)[:40]!r} is not an integer in 1..{MAX_STEPS} (or absent: every step of the data)")
    _expect(profile is None or isinstance(profile, str), path, "profile is not a text")
    _expect(isinstance(props, list) and all(isinstance(p, str) for p in props), path, "properties must be a list of texts")
    _expect(a.get("domain") in {d.value for d in Domain}, path, f"domain {str(a.get('domain'))[:40]!r} is not float or fixed")
    return GraphAttrs(name=name, dt=None if dt is None else float(dt), domain=Domain(a["domain"]), profile=profile,
                      properties=frozenset(props), steps=steps)


def _edges(path: Path, edges) -> list[Edge]:
    _expect(isinstance(edges, list), path, "'edges' is not a list")
    out = []
    for e in edges:
        _expect(isinstance(e, list) and len(e) == 3 and isinstance(e[0], str) and isinstance(e[1], str)
                and _is_int(e[2]) and 0 <= e[2] <= ATTR_INT_LIMIT, path,
                f"edge {str(e)[:60]} is not [source, destination, delay >= 0]")
        out.append(Edge(e[0], e[1], e[2]))
    return out


def load_graph(path: str | Path) -> Graph:
    """Read a ``.rsnn`` file; every structural problem (types, sizes against the memory budget,
    array dtypes) is one UserInputError, checked before the data it describes is allocated."""
    path = Path(path)
    with NpzReader(path, "graph file") as z:
        try:
            meta = json.loads(z.read_bytes("graph.json", MAX_META_BYTES))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise _fail(path, f"graph.json is not valid JSON ({type(exc).__name__})") from None
        _expect(isinstance(meta, dict), path, "graph.json is not a JSON object")
        if meta.get("schema") != SCHEMA:
            raise UserInputError(f"{path}: not an rsnn graph file (schema {str(meta.get('schema'))[:40]!r})")
        _expect(isinstance(meta.get("nodes"), list), path, "'nodes' is not a list")

        def read_array(member: str, what: str) -> np.ndarray:
            _expect(z.info(member) is not None, path, f"{what} is missing (no {member})")
            return z.array(member[:-4])

        nodes: dict = {}
        for entry in meta["nodes"]:
            name, op = _op(path, entry, read_array)
            _expect(name not in nodes, path, f"node {name[:60]!r} is defined twice")
            nodes[name] = op
        attrs = _attrs(path, meta.get("attrs"))
        edges = _edges(path, meta.get("edges"))
    return Graph(nodes, edges, attrs)
