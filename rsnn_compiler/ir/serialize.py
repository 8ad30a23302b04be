"""Save and load graphs as a ``.rsnn`` file: a zip of ``graph.json`` plus one ``.npy`` per array.

No pickle anywhere (arrays are read with ``allow_pickle=False``) and fixed zip timestamps, so
saving the same graph twice gives identical bytes.

Integer arrays are stored at the narrowest signed width holding their values (a node's
``"widen"`` entry names the arrays to restore to their dtype on load; files without it load as
before), and entries of at least ``STORE_BYTES`` are stored without deflate (compressing
megabytes of weights cost seconds for little gain).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.ir.graph import Domain, Edge, Graph, GraphAttrs
from rsnn_compiler.ir.catalogue import op_from_parts

SCHEMA = "rsnn-graph"
SCHEMA_VERSION = 1
_EPOCH = (1980, 1, 1, 0, 0, 0)
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


def load_graph(path: str | Path) -> Graph:
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("graph.json"))
            if meta.get("schema") != SCHEMA:
                raise UserInputError(f"{path}: not an rsnn graph file (schema {meta.get('schema')!r})")
            nodes = {}
            for entry in meta["nodes"]:
                arrays = {
                    p: np.lib.format.read_array(
                        io.BytesIO(zf.read(f"arrays/{entry['name']}/{p}.npy")), allow_pickle=False
                    )
                    for p in entry["arrays"]
                }
                for p, dtype in entry.get("widen", {}).items():
                    if np.dtype(dtype).kind not in "iu":
                        raise ValueError(f"array {p} widened to non-integer dtype {dtype!r}")
                    arrays[p] = arrays[p].astype(np.dtype(dtype))
                nodes[entry["name"]] = op_from_parts(entry["kind"], entry["attributes"], arrays)
            a = meta["attrs"]
            attrs = GraphAttrs(
                name=a["name"],
                dt=a["dt"],
                domain=Domain(a["domain"]),
                profile=a["profile"],
                properties=frozenset(a["properties"]),
                steps=None if a.get("steps") is None else int(a["steps"]),
            )
            edges = [Edge(s, d, int(k)) for s, d, k in meta["edges"]]
    except UserInputError:
        raise
    except FileNotFoundError:
        raise UserInputError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise UserInputError(
            f"{path}: malformed or truncated rsnn graph file ({type(exc).__name__}: {exc});"
            " re-export it with rsnn_compiler.ir.save_graph"
        ) from None
    return Graph(nodes, edges, attrs)
