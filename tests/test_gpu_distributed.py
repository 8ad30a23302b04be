"""The GPU runtime data-parallel over torch.distributed: 2 gloo processes give the single-process
result bit for bit in fixed point (every output, spike and state at every step), on a batch that
does not split evenly."""

from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler.cli.main import main
from rsnn_compiler.errors import UserInputError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example" / "recurrent.rsnn"
DATA = ROOT / "models" / "example" / "data.npz"


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("dp") / "build"
    assert main(["build", str(EXAMPLE), "--target", "gpu", "--calib", str(DATA), "-o", str(out), "-q"]) == 0
    return out


def test_two_gloo_processes_equal_one_process(build, tmp_path, capsys):
    with np.load(DATA) as d:
        x = d["x"][:, :15]
    np.savez(tmp_path / "x.npz", x=x)
    outs = {}
    for name, extra in (("one", []), ("two", ["--gpu-processes", "2"])):
        assert main(["run", str(build), "--inputs", str(tmp_path / "x.npz"), "--out", str(tmp_path / f"{name}.npz"),
                     "--executor", "gpu", "--domain", "fixed", "-q", *extra]) == 0, capsys.readouterr().err
        with np.load(tmp_path / f"{name}.npz") as d:
            outs[name] = {k: d[k] for k in d.files}
    assert list(outs["one"]) == list(outs["two"]) and len(outs["one"]) > 3  # the same keys in the same order
    for key, value in outs["one"].items():
        assert value.dtype == outs["two"][key].dtype and np.array_equal(value, outs["two"][key]), key
    # and both equal the fixed-point interpreter
    assert main(["run", str(build), "--inputs", str(tmp_path / "x.npz"), "--out", str(tmp_path / "interp.npz"),
                 "--domain", "fixed", "-q"]) == 0
    with np.load(tmp_path / "interp.npz") as d:
        assert all(np.array_equal(d[k], outs["two"][k]) for k in d.files)


def test_refusals(build, tmp_path, capsys):
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 2, 8), np.float32))
    code = main(["run", str(build), "--inputs", str(tmp_path / "x.npz"), "--out", str(tmp_path / "y.npz"),
                 "--gpu-processes", "2"])
    assert code == 2 and "add --executor gpu" in capsys.readouterr().err
    code = main(["run", str(build), "--inputs", str(tmp_path / "x.npz"), "--out", str(tmp_path / "y.npz"),
                 "--executor", "gpu", "--gpu-processes", "3"])
    assert code == 2 and "more than the 2 samples" in capsys.readouterr().err
    import json

    from rsnn_compiler.backends.gpu.distributed import run_in_group
    from rsnn_compiler.backends.gpu.runtime import GraphRuntime
    from rsnn_compiler.executors import load_build_graph

    manifest = json.loads((build / "manifest.json").read_text())
    with pytest.raises(UserInputError, match="process group"):
        run_in_group(GraphRuntime(load_build_graph(build, manifest, "fpga"), device="cpu"), np.zeros((3, 2, 8)))
