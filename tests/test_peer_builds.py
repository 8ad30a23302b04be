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
import torch

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


FACTORY = '''
import torch
from torch import nn
import {lib}


def build():
    return nn.Sequential(nn.Linear(10, 16), {cell})
'''


def _cli_build(tmp_path, capsys, lib: str, cell: str):
    """``rsnnc build model.py:build --weights w.pt`` of a one-layer factory with ``cell``."""
    from rsnn_compiler.cli.main import main

    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "model.py"
    path.write_text(FACTORY.format(lib=lib, cell=cell))
    ns: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), ns)  # noqa: S102 - the test's own factory
    torch.save(ns["build"]().state_dict(), tmp_path / "w.pt")
    code = main(["build", f"{path}:build", "--weights", str(tmp_path / "w.pt"), "--target", "ir",
                 "-o", str(tmp_path / "b"), "-q"])
    return code, capsys.readouterr().err


def test_cli_builds_a_peer_factory_and_refuses_what_it_cannot_express(tmp_path, capsys):
    pytest.importorskip("norse.torch")
    code, err = _cli_build(tmp_path / "ok", capsys, "norse.torch", "norse.torch.LSNNCell()")
    assert code == 0, err
    assert "node 1 : norse_lsnn " in (tmp_path / "ok" / "b" / "graph.float.txt").read_text()
    code, err = _cli_build(tmp_path / "no", capsys, "sinabs.layers", "sinabs.layers.ALIF(tau_mem=5.0, tau_adapt=9.0)")
    assert code == 2 and "adapts its threshold" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "no" / "b").exists()


SQUEEZE_FACTORY = '''
from torch import nn
import sinabs.layers as sl
from sinabs.activation import SingleSpike


def build():
    return nn.Sequential(nn.Linear(10, 16), sl.IAFSqueeze(batch_size=3), nn.Linear(16, 4),
                         sl.LIFSqueeze(tau_mem=4.0, batch_size=3, spike_fn=SingleSpike))
'''


def test_cli_builds_a_sinabs_squeeze_model_and_validates_it_bit_exact_on_c_and_gpu(tmp_path, capsys):
    """docs/frontends.md's command: the user's folded (batch*T, ...) data X becomes rsnnc's
    x (T, batch, ...) = X.reshape(batch, T, ...).swapaxes(0, 1)."""
    from rsnn_compiler.cli.main import main

    (tmp_path / "squeezed.py").write_text(SQUEEZE_FACTORY)
    ns: dict = {}
    exec(compile(SQUEEZE_FACTORY, "squeezed.py", "exec"), ns)  # noqa: S102 - the test's own factory
    torch.manual_seed(0)
    net = ns["build"]()
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(3.0)
        net[2].bias.add_(0.5)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    steps, batch = peers.STEPS, 3
    folded = peers.spikes_in(9).transpose(0, 1).reshape(batch * steps, peers.N_IN).numpy()  # what the user has
    x = folded.reshape(batch, steps, peers.N_IN).swapaxes(0, 1)
    np.savez(tmp_path / "data.npz", x=x, y=np.arange(batch) % 4)
    code = main(["build", f"{tmp_path / 'squeezed.py'}:build", "--weights", str(tmp_path / "w.pt"), "--calib",
                 str(tmp_path / "data.npz"), "--target", "c,gpu", "-o", str(tmp_path / "b"), "-q"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count("input layout:") == 1 and "X.reshape(3, T, ...).swapaxes(0, 1)" in err, err
    imported = json.loads((tmp_path / "b" / "manifest.json").read_text())["passes"][0]["metrics"]
    assert imported["fidelity"]["exact"] and imported["fidelity"]["batch"] == batch, imported["fidelity"]
    assert any("batch-major" in c for c in imported["conventions"]), imported["conventions"]
    assert main(["validate", str(tmp_path / "b"), "--data", str(tmp_path / "data.npz"), "-q"]) == 0, \
        capsys.readouterr().err
    statuses = {c["executor"]: c["status"] for c in json.loads((tmp_path / "b" / "validate.json").read_text())["executors"]}
    assert {"c", "gpu"} <= set(statuses) and set(statuses.values()) == {"equal"}, statuses
