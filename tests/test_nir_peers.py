"""NIR files written by each library's own exporter with its default settings, imported as a new
user would (auto-detected source, and with --nir-source): exact where the IR computes the
library's arithmetic, else refused (exit 2, one line, nothing written). Never a silent mismatch.

Sinabs and Rockpool pin nir <= 1.0.4: their files are written in .venv-peers
(scripts/setup_peers.sh) by tests/peers/export_old_nir.py and read here with nir 1.0.8.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import warnings

import nir
import numpy as np
import pytest
import torch
from torch import nn

from rsnn_compiler.cli.main import main
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontend_api import ImportOptions
from rsnn_compiler.frontends.nir_import import import_graph, load
from rsnn_compiler.interpreter.float_interp import run_float

warnings.filterwarnings("ignore")
ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 120


def cli_build(capsys, path, out, *args) -> tuple[int, str]:
    code = main(["build", str(path), "-o", str(out), "-q", *args])
    return code, capsys.readouterr().err


def assert_refused(capsys, path, tmp_path, needle, *args):
    out = tmp_path / "refused"
    code, err = cli_build(capsys, path, out, *args)
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


# ------------------------------------------------------------------------------------------
# SpikingJelly (nir 1.0.8, main environment)
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sj():
    pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    from spikingjelly.activation_based import functional, layer, neuron, nir_exchange

    return functional, layer, neuron, nir_exchange


def test_spikingjelly_ifnode_file_is_detected_and_exact(sj, tmp_path, capsys):
    functional, layer, neuron, nir_exchange = sj
    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(6, 12), neuron.IFNode(), layer.Linear(12, 4), neuron.IFNode(v_reset=-0.3))
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[2].weight.mul_(2.5)
    path = tmp_path / "sj_if.nir"
    nir.write(str(path), nir_exchange.export_to_nir(net, torch.zeros(1, 6)))  # default settings
    x = (torch.rand(STEPS, 3, 6, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    functional.reset_net(net)
    with torch.no_grad():
        ref = torch.stack([net(x_t) for x_t in x]).numpy()
    assert ref.sum() > 0
    for opts in (ImportOptions(), ImportOptions(nir_source="spikingjelly")):
        result = load(str(path), opts)
        rep = result.report
        assert rep.source_library == "spikingjelly" and rep.dt == pytest.approx(1e-4)
        assert any(c.startswith("comparator ge") for c in rep.conventions)
        assert not any("WARNING" in n or "snnTorch" in n or "snntorch" in n for n in rep.notes)
        got = run_float(result.graph, x.numpy()).out
        assert np.array_equal(got, ref), f"{int((got != ref).sum())} spike mismatches"
    out = tmp_path / "b"
    code, err = cli_build(capsys, path, out)
    assert code == 0 and "warning" not in err, err
    conv = json.loads((out / "manifest.json").read_text())["passes"][0]["metrics"]["conventions"]
    assert conv[0].startswith("source spikingjelly (detected: torch.fx node names")


def test_spikingjelly_lif_file_is_refused(sj, tmp_path, capsys):
    _functional, layer, neuron, nir_exchange = sj
    net = nn.Sequential(layer.Linear(6, 4), neuron.LIFNode(tau=2.0))
    path = tmp_path / "sj_lif.nir"
    nir.write(str(path), nir_exchange.export_to_nir(net, torch.zeros(1, 6)))
    assert_refused(capsys, path, tmp_path, "LIFNode computes v + (v_reset - v + x)/tau")


# ------------------------------------------------------------------------------------------
# Norse (nir 1.0.8, main environment)
# ------------------------------------------------------------------------------------------
def test_norse_files_are_refused():
    nt = pytest.importorskip("norse.torch")
    for cell in (nt.LIFBoxCell(), nt.LIFCell()):
        graph = nt.to_nir(nt.SequentialState(nn.Linear(4, 3), cell), torch.zeros(1, 4))
        for opts in (ImportOptions(), ImportOptions(nir_source="norse")):
            with pytest.raises(UserInputError, match="Norse integrates with forward Euler.*norse#411") as err:
                import_graph(graph, opts)
            assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------
# Sinabs and Rockpool (nir 1.0.4, .venv-peers)
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def old_nir_files(tmp_path_factory) -> pathlib.Path:
    python = pathlib.Path(os.environ.get("RSNNC_PEERS_ENV", ROOT / ".venv-peers")) / "bin" / "python"
    if not python.exists():
        if os.environ.get("CI"):
            pytest.fail(f".venv-peers required in CI ({python} missing): run scripts/setup_peers.sh")
        pytest.skip(f"{python} missing: run scripts/setup_peers.sh")
    out = tmp_path_factory.mktemp("old_nir")
    run = subprocess.run([str(python), str(ROOT / "tests" / "peers" / "export_old_nir.py"), str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    return out


@pytest.mark.parametrize("case,needle", [
    ("sinabs_iaf", "dt is not determined by this NIR file: every neuron has r = 1"),
    ("sinabs_lif", "dt is not determined by this NIR file"),
    ("rockpool_lif", "pass --nir-source rockpool to apply rockpool's defaults (bias 0, no recurrent weights"),
])
def test_old_nir_exports_need_their_source(old_nir_files, case, needle, tmp_path, capsys):
    """Without --nir-source the file alone does not say what the library computed: refused."""
    assert_refused(capsys, old_nir_files / f"{case}.nir", tmp_path, needle)


@pytest.mark.parametrize("case,source,family", [
    ("sinabs_iaf", "sinabs", "sinabs"), ("sinabs_lif", "sinabs", "sinabs"), ("rockpool_lif", "rockpool", "rockpool"),
])
def test_old_nir_exports_reproduce_the_library(old_nir_files, case, source, family, tmp_path, capsys):
    """Under --nir-source, the library's own update form (multi-spike, exact decays) reproduces
    the library's forward on the model the file was written from, spike count for spike count,
    and the build runs bit-exact; the defaults the file does not record are a WARNING line."""
    path = old_nir_files / f"{case}.nir"
    with np.load(old_nir_files / f"{case}.npz") as d:
        x, ref = d["x"], d["spikes"]
    assert x.shape[0] >= 100 and ref.max() > 1  # several spikes in one step occur
    result = load(str(path), ImportOptions(nir_source=source))
    assert {op.family for op in result.graph.nodes.values() if getattr(op, "family", "")} == {family}
    assert any(n.startswith("WARNING:") for n in result.report.notes)
    got = run_float(result.graph, x).out
    assert np.array_equal(got, ref), f"{int((got != ref).sum())} of {ref.size} differ"
    np.savez(tmp_path / "calib.npz", x=x, y=np.zeros(x.shape[1], np.int64))
    out = tmp_path / "b"
    code, err = cli_build(capsys, path, out, "--nir-source", source, "--target", "c,gpu",
                          "--calib", str(tmp_path / "calib.npz"))
    assert code == 0, err
    assert "rsnnc: warning: " + ("spike_fn MultiSpike" if source == "sinabs" else "bias 0") in err, err
    assert main(["validate", str(out), "--data", str(tmp_path / "calib.npz"), "-q"]) == 0


def _one_neuron_graph(neuron) -> nir.NIRGraph:
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([3])}),
               "fc": nir.Affine(weight=np.ones((4, 3), np.float32), bias=np.zeros(4, np.float32)),
               "n": neuron, "output": nir.Output(output_type={"output": np.array([4])})},
        edges=[("input", "fc"), ("fc", "n"), ("n", "output")])


def _f(value) -> np.ndarray:
    return np.full(4, value, np.float32)


ROCKPOOL_R = 0.02 * np.exp(-0.001 / 0.02) / 0.001  # what Rockpool's exporter writes for tau_mem 20 ms, dt 1 ms


@pytest.mark.parametrize("source,neuron,needle", [
    ("sinabs", lambda: nir.IF(r=_f(1), v_threshold=_f(0), v_reset=_f(0)), "need a threshold > 0"),
    ("sinabs", lambda: nir.IF(r=_f(2), v_threshold=_f(1), v_reset=_f(0)), "r != 1, which sinabs.to_nir never writes"),
    ("sinabs", lambda: nir.LIF(tau=_f(0), r=_f(1), v_leak=_f(0), v_threshold=_f(1), v_reset=_f(0)),
     "every tau must be positive"),
    ("rockpool", lambda: nir.CubaLIF(tau_syn=_f(0.01), tau_mem=_f(0.02), r=_f(1), v_leak=_f(0), v_threshold=_f(1),
                                     w_in=_f(1), v_reset=_f(0)), "pass --dt with the model's own dt"),
    ("rockpool", lambda: nir.CubaLIF(tau_syn=_f(np.inf), tau_mem=_f(0.02), r=_f(ROCKPOOL_R), v_leak=_f(0),
                                     v_threshold=_f(1), w_in=_f(1), v_reset=_f(0)), "every tau_syn must be positive"),
    ("rockpool", lambda: nir.CubaLIF(tau_syn=_f(0.01), tau_mem=_f(0.02), r=_f(ROCKPOOL_R), v_leak=_f(0),
                                     v_threshold=_f(1), w_in=_f(2), v_reset=_f(0)), "w_in != 1"),
])
def test_peer_forms_refuse_what_their_exporters_never_write(source, neuron, needle):
    with pytest.raises(UserInputError) as err:
        import_graph(_one_neuron_graph(neuron()), ImportOptions(nir_source=source))
    assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_rockpool_file_at_its_dt_imports():
    neuron = nir.CubaLIF(tau_syn=_f(0.01), tau_mem=_f(0.02), r=_f(ROCKPOOL_R), v_leak=_f(0), v_threshold=_f(1),
                         w_in=_f(1), v_reset=_f(0))
    graph = import_graph(_one_neuron_graph(neuron), ImportOptions(nir_source="rockpool")).graph
    assert graph.nodes["n"].family == "rockpool"
