"""Peer-library models after import: quantized through their update form's rule (a rewrite into
LIF / CubaLIF / CubaLI / multi-spike LIF, whose fixed families are
FixedLIF / FixedLI / FixedLIFMulti, or their own fixed family: Norse LSNN -> ALIF,
snnTorch Alpha -> fixed Alpha) and run bit-exact on every target against the fixed interpreter
(``validate``: C, GPU runtime, Lava custom processes)."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from rsnn_compiler.build import BuildOptions, build
from rsnn_compiler.frontend_api import ImportOptions
from rsnn_compiler.frontends.pytorch_import import import_module
from rsnn_compiler.validate import validate

peers = pytest.importorskip("peer_models")  # skips without SpikingJelly and Sinabs

#: case -> fixed families its quantized graph must hold (every quantization route once)
ROUTES = {
    "norse LIFCell + LICell": {"fixed_lif", "fixed_li"},  # CubaLIF / CubaLI -> the fixed (current-based) LIF / LI
    "norse LSNNCell + LSNNRecurrentCell": {"fixed_alif"},
    "sinabs LIF tau_syn MaxSpike(2) + IAF MembraneReset(0.5)": {"fixed_lif_multi", "fixed_lif"},
    "snntorch Alpha none + Lapicque zero": {"fixed_alpha", "fixed_lif"},
    "spikingjelly ParametricLIFNode + LIFNode (m)": {"fixed_lif"},
}


def _kinds(outdir) -> set[str]:
    profile = next(p for p in ("fpga", "loihi2") if (outdir / f"graph.{p}.rsnn").exists())
    with zipfile.ZipFile(outdir / f"graph.{profile}.rsnn") as zf:
        return {n["kind"] for n in json.loads(zf.read("graph.json"))["nodes"]}


def build_and_validate(name: str, targets: tuple[str, ...], tmp_path) -> None:
    if name not in peers.CASES:
        pytest.skip(f"{name}: library not installed")
    make, _run = peers.CASES[name]
    x = peers.spikes_in(7).numpy()
    y = np.random.default_rng(0).integers(0, 4, x.shape[1])
    imported = import_module(make(), options=ImportOptions(calib_x=x))
    np.savez(tmp_path / "calib.npz", x=x, y=y)
    out = build("peer", tmp_path / "b", BuildOptions(targets=targets, calib=str(tmp_path / "calib.npz")),
                imported=imported)
    assert ROUTES[name] <= _kinds(out.outdir), _kinds(out.outdir)
    report = validate(out.outdir, out.manifest, x, y)
    assert report.ok, report.problems
    statuses = {c.executor: c.status for c in report.executors}
    assert len(statuses) >= len(targets) and set(statuses.values()) == {"equal"}, statuses


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_peer_models_quantize_and_run_bit_exact_on_c_and_gpu(name, tmp_path):
    build_and_validate(name, ("c", "gpu"), tmp_path)


@pytest.mark.lava
@pytest.mark.parametrize("name", ["sinabs LIF tau_syn MaxSpike(2) + IAF MembraneReset(0.5)",
                                  "snntorch Alpha none + Lapicque zero"])
def test_peer_models_run_bit_exact_in_lava(name, tmp_path):
    from rsnn_compiler.backends.lava import env as lava_env

    status = lava_env.lava_status()
    if not status.found:
        if os.environ.get("CI"):
            pytest.fail(f"Lava environment required in CI: {status.reason}")
        pytest.skip(status.reason)
    build_and_validate(name, ("lava",), tmp_path)
