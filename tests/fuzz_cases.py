"""Seeded generators of malformed and adversarial ``rsnnc`` invocations, one per input kind.

``make_case(kind, seed, folder, ctx)`` writes whatever files the case needs into ``folder``
(the working directory it runs in) and returns the argv. Each generator mutates a valid input
(a JSON value replaced by a hostile one, a member swapped for a forged ``.npy``, bytes flipped or
cut, a file replaced) or draws option values from a list of bad ones, so most cases must fail
with one line (exit 2) and some must succeed; none may crash (exit 3), trace back, leave a
temporary file or write outside the folder. ``ctx`` holds the repository root and prebuilt
builds.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example" / "recurrent.rsnn"
EXAMPLE_DATA = ROOT / "models" / "example" / "data.npz"
NIR = ROOT / "models" / "rleaky_mnist1d" / "model.nir"
ONNX = ROOT / "models" / "mlp_digits" / "model.onnx"
ONNX_DATA = ROOT / "models" / "mlp_digits" / "data.npz"
FACTORY = "models.rleaky_mnist1d.model:build"
KINDS = ("rsnn", "npz", "nir", "onnx", "netx", "state_dict", "factory", "build_folder", "cli")

DEEP = "[" * 100_000 + "]" * 100_000
WEIRD = [None, True, False, 0, -1, 1, 7, 2**31, 2**63, -(2**63), 10**40, 1e308, -1e-300, 0.5, float("inf"),
         "", "x", "\u00e9*/\\\n??/", "nan", "../../../etc/passwd", "a" * 5000, [], [0], [-1, 2], [[1, 2]], [None],
         {}, {"a": 1}, {"file": "../x"}]


@dataclass
class Context:
    build: Path  # a c+gpu (or gpu) build of the example graph
    netx: tuple[Path, ...] = ()  # valid lava-dl .net files (rsnnc's netx export: dense chain, conv)
    root: Path = ROOT


def netx_files(folder: Path) -> tuple[Path, ...]:
    """Valid ``.net`` files to mutate: a recurrent dense chain with delays and a conv network,
    written by rsnnc's netx export (the format lava-dl's netx.hdf5.Network reads)."""
    from rsnn_compiler.backends.lava.netx_export import export
    from test_netx import chain_graph, conv_graph

    paths = (folder / "chain.net", folder / "delays.net", folder / "conv.net")
    export(chain_graph(5, layers=2, recurrent=True, graded=True), paths[0])
    export(chain_graph(10, layers=2, recurrent=False, delays=True), paths[1])
    export(conv_graph(1), paths[2])
    return paths


# ---------------------------------------------------------------------------------------------
# mutation helpers
# ---------------------------------------------------------------------------------------------
def weird(rng: random.Random):
    return rng.choice(WEIRD)


def json_paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from json_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:50]):
            yield from json_paths(v, path + (i,))


def mutate_json(doc, rng: random.Random, times: int = 1):
    """Replace, delete or add a value at random places of a JSON document."""
    for _ in range(times):
        paths = list(json_paths(doc))
        path = rng.choice(paths)
        if not path:
            doc = weird(rng) if rng.random() < 0.3 else doc
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        action = rng.random()
        if action < 0.7:
            parent[key] = weird(rng)
        elif action < 0.85 and isinstance(parent, dict):
            del parent[key]
        elif isinstance(parent, dict):
            parent[rng.choice(["zz", "steps", "schema", "format", "kind"])] = weird(rng)
        elif isinstance(parent, list):
            parent.append(weird(rng))
    return doc


def dump_json(doc, rng: random.Random) -> bytes:
    if rng.random() < 0.03:
        return DEEP.encode()
    try:
        return json.dumps(doc).encode()
    except (ValueError, TypeError):
        return b"{not json"


def npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()


def forged_npy(rng: random.Random) -> bytes:
    """A hostile .npy member: a header that lies, a pickle, complex, text, a truncation..."""
    choice = rng.randrange(10)
    if choice == 0:
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False,
                                                     "shape": (10**6, 10**6)})
        return head.getvalue() + bytes(16)
    if choice == 1:
        return npy_bytes(np.array([object()], dtype=object))
    if choice == 2:
        return npy_bytes(np.ones((3, 3), np.complex64))
    if choice == 3:
        return npy_bytes(np.array(["abc", "de"]))
    if choice == 4:
        return npy_bytes(np.ones((4, 4), np.float32))[: rng.randrange(10, 120)]
    if choice == 5:
        return b"\x93NUMPY\x09\x00" + os.urandom(rng.randrange(0, 64))
    if choice == 6:
        return npy_bytes(np.full((2, 3), np.nan, np.float32))
    if choice == 7:
        return npy_bytes(np.ones((5,), ">f8"))
    if choice == 8:
        return npy_bytes(np.zeros((0, 7), np.float32))
    return npy_bytes(np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)))


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    if not b:
        return bytes(b)
    mode = rng.randrange(3)
    if mode == 0:
        return bytes(b[: rng.randrange(len(b))])
    for _ in range(rng.randrange(1, 16)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def rewrite_zip(src: Path, dst: Path, rng: random.Random, edit_json=None, compress=zipfile.ZIP_DEFLATED) -> None:
    """Copy a zip, mutating its graph.json (``edit_json``) or swapping one member for a forged one."""
    zin = zipfile.ZipFile(src)
    names = zin.namelist()
    victim = rng.choice(names)
    with zipfile.ZipFile(dst, "w", compress) as zout:
        for name in names:
            data = zin.read(name)
            if name == "graph.json" and edit_json is not None:
                data = dump_json(edit_json(json.loads(data)), rng)
            elif name == victim and edit_json is None:
                data = forged_npy(rng) if name.endswith(".npy") else flip_bytes(data, rng)
            if rng.random() < 0.02:
                continue  # a missing member
            zout.writestr(name, data)
        if rng.random() < 0.05:
            zout.writestr("../../escape.npy", npy_bytes(np.ones(2)))


# ---------------------------------------------------------------------------------------------
# generators: (rng, folder, ctx) -> argv
# ---------------------------------------------------------------------------------------------
EXTREMES = [0.0, -1.0, 1e9, -1e9, 1e-30, 1.0, 1e38, 0.5, 4096.0]


def semantic_graph(rng: random.Random, path: Path) -> None:
    """A well-formed graph file with extreme but finite values: it parses and reaches the
    passes and backends (quantization limits, huge delays, steps)."""
    from rsnn_compiler.ir.graph import Edge
    from rsnn_compiler.ir.serialize import load_graph, save_graph

    g = load_graph(EXAMPLE)
    for _ in range(rng.randrange(1, 3)):
        name = rng.choice(sorted(g.nodes))
        op = g.nodes[name]
        arrays = op.arrays()
        choice = rng.random()
        if arrays and choice < 0.7:
            p = rng.choice(sorted(arrays))
            value = rng.choice(EXTREMES)
            new = np.full(arrays[p].shape, value) if rng.random() < 0.5 else arrays[p] * value
            g = g.with_node(name, op.replace(**{p: new.astype(arrays[p].dtype)}))
        elif choice < 0.85:
            k = rng.randrange(len(g.edges))
            e = g.edges[k]
            edges = list(g.edges)
            edges[k] = Edge(e.src, e.dst, rng.choice([0, 1, 7, 1000, 10**6, 2**31 - 1]))
            g = g.with_edges(edges)
        else:
            g = g.with_attrs(steps=rng.choice([1, 3, 10**6, 2**31 - 1]))
    save_graph(g, path)


def gen_rsnn(rng, folder: Path, ctx: Context) -> list[str]:
    path = folder / "g.rsnn"
    mode = rng.random()
    if mode < 0.12:
        semantic_graph(rng, path)
        argv = ["build", str(path), "--target", rng.choice(["gpu", "gpu", "gpu", "c"]), "-o", "out", "-q"]
        if rng.random() < 0.4:
            argv += ["--calib", str(EXAMPLE_DATA)]
        if rng.random() < 0.3:
            argv += ["--profile", "loihi2"]
        return argv
    if mode < 0.55:
        rewrite_zip(EXAMPLE, path, rng, edit_json=lambda doc: mutate_json(doc, rng, rng.randrange(1, 4)))
    elif mode < 0.85:
        rewrite_zip(EXAMPLE, path, rng)
    else:
        path.write_bytes(flip_bytes(EXAMPLE.read_bytes(), rng))
    if rng.random() < 0.7:
        return ["inspect", str(path)]
    return ["build", str(path), "--target", rng.choice(["ir", "gpu", "c"]), "-o", "out", "-q"]


def random_data_array(rng: random.Random):
    shape_choices = [(4, 2, 8), (1, 1, 8), (0, 2, 8), (4, 0, 8), (4, 2, 0), (4, 2), (8,), (), (4, 2, 8, 1), (4, 2, 7),
                     (3, 5, 8)]
    shape = rng.choice(shape_choices)
    dtype = rng.choice([np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_, np.float16, np.complex64, ">f8"])
    arr = np.random.default_rng(rng.randrange(1 << 30)).random(shape) * rng.choice([1, 1e6, 1e30])
    try:
        arr = arr.astype(dtype)
    except (TypeError, ValueError, OverflowError):
        arr = arr.astype(np.float32)
    if arr.size and rng.random() < 0.2 and arr.dtype.kind in "fc":
        arr.flat[rng.randrange(arr.size)] = rng.choice([np.nan, np.inf, -np.inf])
    return arr


def gen_npz(rng, folder: Path, ctx: Context) -> list[str]:
    path = folder / rng.choice(["d.npz", "d.npy", "d"])
    mode = rng.random()
    arrays = {}
    if mode < 0.8:
        x = random_data_array(rng)
        if rng.random() < 0.9:
            arrays["x"] = x
        if rng.random() < 0.5:
            n = x.shape[1] if x.ndim >= 2 else 2
            arrays["y"] = rng.choice([np.zeros(n, np.int64), np.array([np.nan] * n), np.full(n, -3), np.zeros((n, 2)),
                                      np.array([0.5] * n), np.zeros(n + 1, np.int64), np.array(["a"] * n)])
        if rng.random() < 0.1:
            arrays["extra"] = np.ones(3)
        buf = io.BytesIO()
        (np.savez_compressed if rng.random() < 0.5 else np.savez)(buf, **arrays)
        data = buf.getvalue()
        path.write_bytes(flip_bytes(data, rng) if rng.random() < 0.15 else data)
    elif mode < 0.9:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("x.npy", forged_npy(rng))
    elif mode < 0.95:
        np.save(path.with_suffix(".npy"), np.ones((4, 2, 8), np.float32))
        os.replace(path.with_suffix(".npy"), path) if path.suffix != ".npy" else None
    else:
        path.mkdir() if rng.random() < 0.5 else path.write_bytes(b"")
    cmd = rng.random()
    if cmd < 0.7:
        return ["run", str(ctx.build), "--inputs", str(path), "--out", "y.npz", "--executor",
                rng.choice(["interp", "gpu", "c", "interp"]), "-q"]
    if cmd < 0.85:
        return ["validate", str(ctx.build), "--data", str(path), "-q"]
    return ["build", str(EXAMPLE), "--target", "gpu", "--calib", str(path), "-o", "out", "-q"]


def replace_datasets(f, rng: random.Random, replace) -> None:
    """Delete one to three datasets of an open HDF5 file; ``replace(f, name)`` may put something
    else at the name."""
    import h5py

    datasets = []
    f.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
    for _ in range(rng.randrange(1, 4)):
        name = rng.choice(datasets)
        if name not in f:
            continue
        del f[name]
        replace(f, name)


def gen_nir(rng, folder: Path, ctx: Context) -> list[str]:
    import h5py

    path = folder / "m.nir"
    mode = rng.random()
    if mode < 0.2:
        path.write_bytes(flip_bytes(NIR.read_bytes(), rng))
    elif mode < 0.35:
        shutil.copyfile(NIR, path)  # a valid file: only the options are hostile
    else:
        shutil.copyfile(NIR, path)

        def replace(f, name) -> None:
            choice = rng.randrange(8)
            if choice == 0:
                return  # deleted
            value = [np.full((3,), np.nan), np.zeros((0,)), np.ones((2, 2, 2)), np.array(b"Linear"),
                     np.array(b"NoSuchNode"), np.array(-1.0), np.ones((10**4,), np.float32) * 1e30][choice - 1]
            f.create_dataset(name, data=value)

        with h5py.File(path, "r+") as f:
            replace_datasets(f, rng, replace)
    argv = ["inspect", str(path)]
    if rng.random() < 0.5:
        argv += ["--dt", rng.choice(["1e-4", "0", "-1", "nan", "inf"])]
    if rng.random() < 0.3:
        argv += ["--reset", rng.choice(["zero", "subtract_deferred", "bogus"])]
    return argv


def gen_onnx(rng, folder: Path, ctx: Context) -> list[str]:
    import onnx

    path = folder / "m.onnx"
    if rng.random() < 0.3:
        path.write_bytes(flip_bytes(ONNX.read_bytes(), rng))
    else:
        model = onnx.load(str(ONNX))
        inits = list(model.graph.initializer)
        t = rng.choice(inits)
        choice = rng.randrange(6)
        if choice == 0 and t.raw_data:
            t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data))]
        elif choice == 1:
            del t.dims[:]
            t.dims.extend([rng.choice([0, 1, 3, 10**9]) for _ in range(rng.randrange(1, 4))])
        elif choice == 2:
            t.data_type = rng.choice([0, 8, 13, 16, 99])
        elif choice == 3:
            node = rng.choice(list(model.graph.node))
            node.op_type = rng.choice(["Softmax", "LSTM", "NoSuchOp", "Relu"])
        elif choice == 4 and model.graph.node:
            node = rng.choice(list(model.graph.node))
            if node.input:
                node.input[0] = rng.choice(["missing", node.output[0] if node.output else "x"])
        else:
            dim = model.graph.input[0].type.tensor_type.shape.dim
            if dim:
                dim[-1].dim_value = rng.choice([0, 1, 10**9])
        path.write_bytes(model.SerializeToString())
    argv = ["build", str(path), "-o", "out", "-q", "--target", rng.choice(["ir", "gpu"])]
    if rng.random() < 0.7:
        argv += ["--calib", str(ONNX_DATA)]
    if rng.random() < 0.3:
        argv += ["--steps", rng.choice(["1", "0", "-2", "3"]), "--levels", rng.choice(["4", "0", "-1"])]
    return argv


NETX_NAMES = ["m.net", "m.net", "m.net", "e\u0301*\\\n?\u202e??.net", "-rf .net", ".net", "m.NET"]
NETX_VALUES = [
    lambda: np.full((3,), np.nan), lambda: np.zeros((0,)), lambda: np.ones((2, 2, 2)), lambda: np.array(b"dense"),
    lambda: np.array(b"conv"), lambda: np.array(b"pool"), lambda: np.array(b"NoSuchLayer"), lambda: np.array(-1),
    lambda: np.array([10**9, 10**9]), lambda: np.array([0]), lambda: np.array([-5, 3]), lambda: np.array(2**62),
    lambda: np.ones((10**4,), np.float32) * 1e30, lambda: np.array([1 + 2j]), lambda: np.array(["x", "yy"], dtype="S2"),
    lambda: np.arange(7) - 3,
]


def gen_netx(rng, folder: Path, ctx: Context) -> list[str]:
    """A lava-dl ``.net`` (HDF5) file: bytes flipped or cut, datasets deleted or replaced by
    hostile values (NaN, empty, huge declared shapes, strings, complex), a group where a dataset
    belongs, a compressed dataset declaring gigabytes; sometimes valid with hostile options."""
    import h5py

    base = rng.choice(ctx.netx)
    path = folder / rng.choice(NETX_NAMES)
    mode = rng.random()
    if mode < 0.15:
        path.write_bytes(flip_bytes(base.read_bytes(), rng))
    else:
        shutil.copyfile(base, path)
    if mode >= 0.35:

        def replace(f, name) -> None:
            choice = rng.randrange(len(NETX_VALUES) + 3)
            if choice == 0:
                return  # deleted
            if choice == 1:
                f.create_group(name)
            elif choice == 2:  # a zip-bomb-like dataset: 8 TB declared, a few bytes stored
                f.create_dataset(name, shape=(10**6, 10**6), dtype="f8", chunks=(1, 1024), compression="gzip")
            else:
                f.create_dataset(name, data=NETX_VALUES[choice - 3]())

        with h5py.File(path, "r+") as f:
            replace_datasets(f, rng, replace)
            if rng.random() < 0.1:
                n = len(f["layer"]) if "layer" in f and isinstance(f["layer"], h5py.Group) else 0
                f.create_dataset(f"layer/{n + rng.choice([0, 5])}/type", data=np.array(b"dense"))
    if rng.random() < 0.4:
        return ["inspect", str(path)] + (["--dt", rng.choice(["1e-3", "0", "nan"])] if rng.random() < 0.3 else [])
    argv = ["build", str(path), "--target", rng.choice(["ir", "gpu", "c", "lava", "ir,c"]), "-o", "out", "-q"]
    if rng.random() < 0.2:
        argv += ["--prune", rng.choice(["0.5", "nan", "2"])]
    if rng.random() < 0.15:
        argv += ["--profile", rng.choice(["fpga", "loihi2"])]
    return argv


def gen_state_dict(rng, folder: Path, ctx: Context) -> list[str]:
    import torch

    path = folder / "w.pt"
    choice = rng.randrange(9)
    good = torch.load(ROOT / "models" / "rleaky_mnist1d" / "weights.pt", map_location="cpu", weights_only=True)
    if choice == 0:
        path.write_bytes(b"")
    elif choice == 1:
        path.write_bytes(os.urandom(rng.randrange(1, 512)))
    elif choice == 2:
        key = rng.choice(list(good))
        good[key] = torch.zeros(3, 3)
        torch.save(good, path)
    elif choice == 3:
        key = rng.choice(list(good))
        good[key] = torch.full_like(good[key], float("nan")) if good[key].is_floating_point() else good[key]
        torch.save(good, path)
    elif choice == 4:
        torch.save([1, 2, 3], path)
    elif choice == 5:
        del good[rng.choice(list(good))]
        torch.save(good, path)
    elif choice == 6:
        import pickle

        class Evil:
            def __reduce__(self):
                return (os.system, ("touch PWNED",))

        path.write_bytes(pickle.dumps({"x": Evil()}))
    elif choice == 7:
        good["extra.weight"] = torch.ones(2)
        torch.save(good, path)
    else:
        path.write_bytes(flip_bytes((ROOT / "models" / "rleaky_mnist1d" / "weights.pt").read_bytes(), rng))
    return ["inspect", FACTORY, "--weights", str(path)] if rng.random() < 0.9 else \
        ["build", FACTORY, "--weights", str(path), "--target", "ir", "-o", "out", "-q"]


FACTORY_BODIES = [
    "raise SystemExit(0)", "raise SystemExit(1)", "raise SystemExit('bye')", "import sys; sys.exit()",
    "import os; os._exit(0)", "raise Boom('boom')", "raise ValueError('nope')", "return None", "return 5",
    "return make()", "raise MemoryError()", "raise RecursionError('deep')", "import nonexistent_module_xyz",
    "return torch.nn.Linear(3, 2)", "return torch.nn.Sequential()", "print('noise' * 100); return None",
    "exit(0)", "quit()",
    "import snntorch as snn; return torch.nn.Sequential(torch.nn.Linear(4, 3), snn.Leaky(beta=0.9, init_hidden=True))",
    "import snntorch as snn; return torch.nn.Sequential(torch.nn.Linear(4, 3), snn.Leaky(beta=1.5, init_hidden=True))",
    "import snntorch as snn; m = torch.nn.Linear(4, 3); torch.nn.init.constant_(m.weight, float('nan'));"
    " return torch.nn.Sequential(m, snn.Leaky(beta=0.9, init_hidden=True))",
]


def gen_factory(rng, folder: Path, ctx: Context) -> list[str]:
    body = rng.choice(FACTORY_BODIES)
    module = f"rsnnc_fuzz_factory_{rng.randrange(10**12)}"
    top = rng.choice(["", "", "", "", "", "raise SystemExit(0)\n", "import os\nos._exit(0)\n", "syntax error here\n",
                      "raise Boom('at import')\n"])
    src = ("import torch\nclass Boom(BaseException):\n    pass\n"
           + top.replace("raise Boom", "raise Boom") + f"def make():\n    {body}\n")
    (folder / f"{module}.py").write_text(src)
    attr = rng.choice(["make", "make", "make", "missing", "Boom", "torch"])
    argv = ["inspect", f"{module}:{attr}"]
    if rng.random() < 0.3:
        argv = ["build", f"{module}:{attr}", "--convert", "sfn", "--calib", str(ONNX_DATA), "-o", "out", "-q"]
    if rng.random() < 0.9:
        argv.append("--initial-weights")  # else refused before the factory runs
    return argv


def gen_build_folder(rng, folder: Path, ctx: Context) -> list[str]:
    b = folder / "b"
    shutil.copytree(ctx.build, b, symlinks=True)
    files = sorted(p for p in b.rglob("*") if p.is_file())
    for _ in range(rng.randrange(1, 3)):
        mode = rng.randrange(7)
        victim = rng.choice(files)
        if not victim.is_file() or victim.is_symlink():  # already mutated into something else
            continue
        if mode == 0:
            try:
                doc = json.loads((b / "manifest.json").read_text())
            except (ValueError, RecursionError, OSError):
                continue
            (b / "manifest.json").write_bytes(dump_json(mutate_json(doc, rng, rng.randrange(1, 4)), rng))
        elif mode == 1:
            victim.unlink()
        elif mode == 2:
            victim.write_bytes(flip_bytes(victim.read_bytes(), rng))
        elif mode == 3:
            victim.unlink()
            victim.symlink_to("/etc/passwd")
        elif mode == 4:
            (b / "manifest.json").write_bytes(rng.choice([b"", b"[]", b"{}", b"null", DEEP.encode()]))
        elif mode == 5:
            victim.unlink()
            victim.mkdir()
        else:
            shutil.copyfile(EXAMPLE, b / "graph.float.rsnn")
    cmd = rng.randrange(6)
    if cmd == 0:
        return ["inspect", str(b)]
    if cmd == 1:
        return ["report", str(b)] + (["--json"] if rng.random() < 0.5 else [])
    if cmd == 2:
        return ["export", str(b), "--format", rng.choice(["nir", "netx", "nope"]), "-o", "x.out", "-q"]
    if cmd == 3:
        return ["validate", str(b), "--data", str(EXAMPLE_DATA), "-q"]
    return ["run", str(b), "--inputs", str(EXAMPLE_DATA), "--out", "y.npz", "-q", "--executor",
            rng.choice(["interp", "c", "gpu", "lava", "nope"]), "--domain", rng.choice(["float", "fixed"])]


BUILD_OPTIONS = {
    "--dt": ["nan", "-1", "0", "inf", "1e308", "abc", "1e-3"],
    "--reset": ["zero", "bogus", "", "subtract"],
    "--comparator": ["gt", "ge", "lt", "\u00e9"],
    "--target": ["", ",", "ir,ir", "nope", "ir", "gpu", "c,gpu", "lava"],
    "--profile": ["fpga", "loihi2", "x", ""],
    "--prune": ["nan", "-0.1", "1", "0.5", "inf", "1e-300"],
    "--steps": ["-1", "0", "1000000000", "x"],
    "--levels": ["0", "-3", "1000000"],
    "--convert": ["sfn", "ecl", "maxnorm", "bogus"],
    "--convert-opt": ["=", "a", "seed=x", "epochs=1e9", "percentile=200", "=1"],
    "--board": ["oheo_gulch", "moon"],
    "--calib": ["missing.npz", ".", str(EXAMPLE_DATA), str(EXAMPLE)],
    "-o": ["", ".", "/", "out", "out/deep/er", "g.rsnn"],
    "--max-accuracy-drop": ["nan", "-inf", "5", "x"],
    "--min-spike-agreement": ["nan", "2", "-1", "0.5"],
    "--prune-rounds": ["0", "-1"],
    "--time-tolerance": ["nan"],
    "--bogus-option": ["1"],
}


def gen_cli(rng, folder: Path, ctx: Context) -> list[str]:
    shutil.copyfile(EXAMPLE, folder / "g.rsnn")
    command = rng.random()
    if command < 0.7:
        argv = ["build", rng.choice(["g.rsnn", str(ONNX), "nope.rsnn", "pkg:fn", "", "a:b:c", "/", "g.rsnn"]), "-q"]
        for key in rng.sample(sorted(BUILD_OPTIONS), rng.randrange(1, 5)):
            argv += [key, rng.choice(BUILD_OPTIONS[key])]
        if "-o" not in argv:
            argv += ["-o", "out"]
        return argv
    if command < 0.8:
        return ["run", str(ctx.build), "--inputs", str(EXAMPLE_DATA), "--out", rng.choice(["", ".", "y.npz", "no/y.npz"]),
                "--executor", rng.choice(["interp", "c", "x"]), "--profile", rng.choice(["fpga", "loihi2", "x"]), "-q"]
    if command < 0.9:
        return [rng.choice(["inspect", "report", "export", "validate", "passes", "targets", "nope", "--version"]),
                *rng.sample(["g.rsnn", "--json", "-q", "--dt", "1", "--format", "nir", "-o", "x", "--data"], rng.randrange(0, 4))]
    return ["validate", str(ctx.build), "--data", str(EXAMPLE_DATA), "--max-accuracy-drop", rng.choice(["nan", "inf", "-inf", "1"]), "-q"]


GENERATORS = {
    "rsnn": gen_rsnn, "npz": gen_npz, "nir": gen_nir, "onnx": gen_onnx, "netx": gen_netx, "state_dict": gen_state_dict,
    "factory": gen_factory, "build_folder": gen_build_folder, "cli": gen_cli,
}


def make_case(kind: str, seed: int, folder: Path, ctx: Context) -> list[str]:
    rng = random.Random(f"{kind}:{seed}")
    return [str(a) for a in GENERATORS[kind](rng, folder, ctx)]
