"""netx import: ``rsnnc build model.net`` reproduces lava-dl netx's Lava fixed_pt run bit for bit.

The ``lava`` tests write ``.net`` files with lava-dl's own API (slayer CUBA Dense / Recurrent /
Conv / Flatten / Input blocks and ``export_hdf5``, tests/lava_env/slayer_export.py, run in the
Python 3.10 Lava environment), import them, validate the build (Lava == interpreter) and
compare the imported graph's interpreter run with the real ``netx.hdf5.Network`` run on every
layer's spikes, u and v.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontend_api import ImportOptions
from rsnn_compiler.interpreter.fixed_interp import run_fixed
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.backends.lava import env as lava_env
from rsnn_compiler.backends.lava.netx_export import export, plan_netx
from rsnn_compiler.frontends.netx_import import load, netx_offsets

from test_netx import chain_graph, conv_graph, inputs

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("make", [lambda: chain_graph(5, layers=3, recurrent=True, graded=True),  # = cases()
                                  lambda: chain_graph(10, layers=3, recurrent=False, delays=True),
                                  lambda: conv_graph(1)])
def test_exported_file_imports_to_the_same_integer_network(make, tmp_path):
    g = make()
    export(g, tmp_path / "m.net")
    res = load(str(tmp_path / "m.net"), ImportOptions())
    fixed = res.fixed["loihi2"]
    x = inputs(g, 3)
    q = next(n for n, op in g.nodes.items() if type(op).__name__ == "Quantize") if any(
        type(op).__name__ == "Quantize" for op in g.nodes.values()) else None
    from rsnn_compiler.backends.lava.executor import host_inputs

    x_int = host_inputs(g, {"quantize": q}, x).reshape(x.shape[0], x.shape[1], *fixed.nodes["input"].shape)
    want = run_fixed(g, x).to_npz_dict()
    got = run_fixed(fixed, x_int).to_npz_dict()
    plan = plan_netx(g)
    offsets = netx_offsets(res.report)  # netx row of each imported layer's IR step 0
    for layer, index in zip(plan.layers, plan.file_indices()):
        shift = layer.stage - offsets[f"layer{index}"]  # one netx row: imported t = original t + shift
        for key in ("spikes", "i", "v"):
            a = want[f"{key}/{layer.node}"].reshape(x.shape[0], x.shape[1], -1)
            b = got[f"{key}/layer{index}"].reshape(a.shape)
            if shift >= 0:
                a, b = a[:len(a) - shift], b[shift:]
            else:  # the original starts earlier: at rest until the imported step 0
                assert not a[:-shift].any() or key != "spikes"
                a, b = a[-shift:], b[:len(b) + shift]
            assert np.array_equal(a, b), (layer.node, key, shift)
    run_float(res.graph, x_int.astype(np.float64))  # the float counterpart runs


def test_what_netx_cannot_run_is_refused(tmp_path):
    import h5py

    path = tmp_path / "pool.net"
    with h5py.File(path, "w") as f:
        f.create_dataset("layer/0/type", data=np.array([b"input"], dtype="S10"))
        f.create_dataset("layer/0/shape", data=np.array([2, 4, 4]))
        f.create_dataset("layer/1/type", data=np.array([b"pool"], dtype="S10"))
    with pytest.raises(UserInputError, match="pool layer, which lava-dl 0.6's netx cannot build"):
        load(str(path), ImportOptions())
    g = chain_graph(2, layers=1, recurrent=False)
    export(g, tmp_path / "sdnn.net")
    with h5py.File(tmp_path / "sdnn.net", "r+") as f:
        del f["layer/1/neuron/type"]
        f.create_dataset("layer/1/neuron/type", data=b"SDNN")
    with pytest.raises(UserInputError, match="neuron type 'SDNN' is not CUBA"):
        load(str(tmp_path / "sdnn.net"), ImportOptions())


def slayer_files(python: Path, folder: Path, kinds: tuple[str, ...], seed: int) -> dict[str, Path]:
    paths = {kind: folder / f"{kind}.net" for kind in kinds}
    proc = subprocess.run([str(python), str(HERE / "lava_env" / "slayer_export.py"), str(seed),
                           *(f"{p}:{k}" for k, p in paths.items())],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return paths


@pytest.mark.lava
def test_lava_dl_files_build_validate_and_equal_netx(tmp_path, netx_python):
    """A dense file (Dense -> Recurrent -> Dense with axonal delays) and a conv file (input shape ->
    Conv -> Flatten -> Dense), written by slayer: each builds for lava and validates, and
    the imported graph's interpreter run equals the real netx run on every layer."""
    from rsnn_compiler.build import BuildOptions, build
    from rsnn_compiler.validate import validate

    files = slayer_files(netx_python, tmp_path, ("dense", "conv"), seed=3)
    steps, batch = 24, 2
    cases, jobs = [], []
    for kind, net in files.items():
        imported = load(str(net), ImportOptions())
        shape = imported.graph.nodes["input"].shape
        x = (np.random.default_rng(0).random((steps, batch, *shape)) < 0.3).astype(np.int64)
        result = build(str(net), tmp_path / f"build_{kind}", BuildOptions(targets=("lava",)))
        assert result.manifest["pipeline"]["loihi2"][0] == "imported"
        report = validate(tmp_path / f"build_{kind}", result.manifest, x, None)
        assert report.ok, (kind, report.problems)
        offsets = netx_offsets(imported.report)
        cases.append((kind, imported, x, offsets))
        jobs.append(lava_env.NetxJob(net, x.reshape(steps, batch, -1), steps + max(offsets.values())))
    results = lava_env.run_netx(jobs, python=netx_python, timeout=900)
    for (kind, imported, x, offsets), got in zip(cases, results):
        want = run_fixed(imported.fixed["loihi2"], x).to_npz_dict()
        spikes = 0
        for node, off in offsets.items():
            index = node.removeprefix("layer")
            for key, ref_key in (("spikes", "spikes"), ("u", "i"), ("v", "v")):
                ref = want[f"{ref_key}/{node}"].reshape(steps, batch, -1)
                have = got[f"{key}/{index}"][off:off + steps]
                bad = np.argwhere(have != ref)
                assert bad.size == 0, f"{kind} {node} {key}: {len(bad)} differences, first {tuple(bad[0])}"
            spikes += int(want[f"spikes/{node}"].sum())
        assert spikes > 20, kind
