"""rsnnc plot / report --plots: every figure is written as PNG and SVG into the named folder,
with the right content where that is cheap to check, deterministically, never into the build."""

import json
from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler.cli.main import main
from rsnn_compiler.plot_data import Neuron, accuracy_by_steps, layer_activity, parse_neurons

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example"
FIGURES = ("raster_s2", "activity", "membrane_s2", "accuracy_vs_steps", "accuracy_vs_sparsity",
           "quantization", "core_utilisation")


@pytest.fixture(scope="module")
def pruned_build(tmp_path_factory):
    """The example graph pruned (so there is a sparsity curve), for c and lava (a core mapping)."""
    tmp = tmp_path_factory.mktemp("plots")
    with np.load(EXAMPLE / "data.npz") as d:
        x = d["x"]
    np.savez(tmp / "data.npz", x=x, y=np.arange(x.shape[1]) % 4)
    assert main(["build", str(EXAMPLE / "recurrent.rsnn"), "--target", "c,lava", "--prune", "0.5",
                 "--no-prune-time", "--calib", str(tmp / "data.npz"), "-o", str(tmp / "b"), "-q"]) == 0
    return tmp


def test_plot_writes_every_figure_as_png_and_svg(pruned_build, capsys):
    out = pruned_build / "plots"
    assert main(["plot", str(pruned_build / "b"), "--data", str(pruned_build / "data.npz"), "--sample", "2",
                 "--neurons", "lif:0,lif:3", "-o", str(out)]) == 0
    stdout, err = capsys.readouterr()
    assert "plot skipped" not in err
    for stem in FIGURES:
        png, svg = out / f"{stem}.png", out / f"{stem}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, stem
        assert svg.read_text().lstrip().startswith("<?xml") and f"wrote {svg}" in stdout, stem
    assert not list((pruned_build / "b").rglob("*.png")) and not list((pruned_build / "b").rglob("*.svg"))
    # content: titles, the spike count of the raster, the chosen neurons
    from rsnn_compiler.executors import InterpreterExecutor

    manifest = json.loads((pruned_build / "b" / "manifest.json").read_text())
    with np.load(pruned_build / "data.npz") as d:
        fixed = InterpreterExecutor().run(pruned_build / "b", manifest, "fixed", None, d["x"])
    spikes = int(np.count_nonzero(fixed.spikes["lif"][:, 2]))
    raster = (out / "raster_s2.svg").read_text()
    assert "Spike raster, sample 2, fixed point (loihi2)" in raster and f"lif: {spikes} spikes, 32 neurons" in raster
    membrane = (out / "membrane_s2.svg").read_text()
    assert "v  lif:0" in membrane and "v  lif:3" in membrane
    assert "Accuracy versus sparsity (prune_spatial)" in (out / "accuracy_vs_sparsity.svg").read_text()
    assert "Loihi 2 per-core utilisation" in (out / "core_utilisation.svg").read_text()


def test_plots_are_deterministic(pruned_build, tmp_path):
    for name in ("a", "b"):
        assert main(["plot", str(pruned_build / "b"), "--data", str(pruned_build / "data.npz"),
                     "-o", str(tmp_path / name), "-q"]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == 2 * len(FIGURES)
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_report_plots_only_what_the_reports_hold(pruned_build, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["report", str(pruned_build / "b"), "--plots", str(out)]) == 0
    written = sorted(p.stem for p in out.glob("*.png"))
    assert written == ["accuracy_vs_sparsity", "core_utilisation", "quantization"]
    assert "raster" not in capsys.readouterr().out


def test_plot_refuses_a_folder_inside_the_build_and_bad_neurons(pruned_build, capsys):
    build = pruned_build / "b"
    code = main(["plot", str(build), "-o", str(build / "plots"), "-q"])
    assert code == 2 and "inside the build" in capsys.readouterr().err
    code = main(["plot", str(build), "--data", str(pruned_build / "data.npz"), "--neurons", "lif:999",
                 "-o", str(pruned_build / "x"), "-q"])
    assert code == 2 and "lif:999 is out of range (lif has 32 neurons)" in capsys.readouterr().err
    code = main(["plot", str(build), "--sample", "3", "-o", str(pruned_build / "x"), "-q"])
    assert code == 2 and "give --data" in capsys.readouterr().err


def test_plot_numbers():
    assert parse_neurons("lif:0, out.v:12") == [Neuron("lif", 0), Neuron("out.v", 12)]
    out = np.zeros((3, 2, 2))
    out[0, 0, 1] = 1  # sample 0 says 1 at t=0
    out[1:, 0, 0] = 1  # then 0 twice: 0 wins from t=3 on (ties go to the first index)
    out[:, 1, 1] = 1
    np.testing.assert_array_equal(accuracy_by_steps(out, np.array([0, 1])), [50.0, 100.0, 100.0])

    class Run:
        spikes = {"a": np.array([[[1, 0], [0, 0]], [[1, 1], [0, 0]]])}

    (row,) = layer_activity(Run())
    assert (row.neurons, row.firing_rate, row.sparsity) == (2, 3 / 8, 5 / 8)
