"""The families added through the definition (TC-LIF, GLIF, Izhikevich) end to end: trainable
modules whose forward is the IR's float semantics, exact import, quantization, and every target
(C, GPU runtime, Lava custom processes) equal to the interpreter."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from rsnn_compiler.build import BuildOptions, build
from rsnn_compiler.frontend_api import ImportOptions
from rsnn_compiler.frontends.pytorch_import import import_module
from rsnn_compiler.interpreter import run_float
from rsnn_compiler.nn import CELLS, GLIF, TCLIF, Izhikevich
from rsnn_compiler.validate import validate

STEPS, BATCH = 20, 8


def cells_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 8), TCLIF(8, theta=0.5), nn.Linear(8, 8), GLIF(8), nn.Linear(8, 5),
        Izhikevich(5, gain=20.0), nn.Linear(5, 3), TCLIF(3),
    )


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 2, (STEPS, BATCH, 6)).astype(np.float32), rng.integers(0, 3, BATCH)


@pytest.mark.parametrize("family", sorted(CELLS))
def test_cell_forward_is_the_ir_float_semantics_and_trains(family):
    cell = CELLS[family](4, **({"gain": 15.0} if family == "izhikevich" else {}))
    x = torch.from_numpy(np.random.default_rng(1).uniform(-1, 3, (STEPS, 2, 4)).astype(np.float32))
    spikes = torch.stack([cell(x[t]) for t in range(STEPS)])
    spikes.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in cell.parameters()), family
    model = nn.Sequential(nn.Identity(), CELLS[family](4, **({"gain": 15.0} if family == "izhikevich" else {})))
    graph = import_module(model, torch.zeros(1, 4)).graph
    ref = torch.stack([model(x[t]) for t in range(STEPS)]).detach().numpy()
    assert np.array_equal(run_float(graph, x.numpy()).out, ref)


def test_model_with_every_cell_imports_exactly():
    x, _ = data()
    result = import_module(cells_model(), torch.zeros(1, 6), ImportOptions(calib_x=x))
    assert result.report.fidelity["exact"], result.report.fidelity
    assert sum(layer["spikes_ir"] for layer in result.report.fidelity["layers"].values()) > 0


def _build_and_validate(tmp_path, targets: tuple[str, ...]):
    x, y = data()
    imported = import_module(cells_model(), torch.zeros(1, 6), ImportOptions(calib_x=x))
    np.savez(tmp_path / "calib.npz", x=x, y=y)
    out = build("cells", tmp_path / "b", BuildOptions(targets=targets, calib=str(tmp_path / "calib.npz")),
                imported=imported)
    kinds = {n["kind"] for n in _graph_nodes(out.outdir)}
    assert {"fixed_tclif", "fixed_glif", "fixed_izhikevich"} <= kinds, kinds
    report = validate(out.outdir, out.manifest, x, y)
    assert report.ok, report


def _graph_nodes(outdir):
    import json
    import zipfile

    profile = next(p for p in ("fpga", "loihi2") if (outdir / f"graph.{p}.rsnn").exists())
    with zipfile.ZipFile(outdir / f"graph.{profile}.rsnn") as zf:
        return json.loads(zf.read("graph.json"))["nodes"]


def test_cells_quantize_and_run_bit_exact_on_c_and_gpu(tmp_path):
    _build_and_validate(tmp_path, ("c", "gpu"))


@pytest.mark.lava
def test_cells_run_bit_exact_in_lava(tmp_path):
    from rsnn_compiler.backends.lava import env as lava_env

    status = lava_env.lava_status()
    if not status.found:
        if os.environ.get("CI"):
            pytest.fail(f"Lava environment required in CI: {status.reason}")
        pytest.skip(status.reason)
    _build_and_validate(tmp_path, ("lava", "c"))
