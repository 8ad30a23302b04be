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


def _graph_weights(build_dir: Path) -> dict[str, np.ndarray]:
    import json

    from rsnn_compiler.executors import load_build_graph

    graph = load_build_graph(build_dir, json.loads((build_dir / "manifest.json").read_text()), "fpga")
    return {k: op.weight for k, op in graph.nodes.items() if hasattr(op, "weight")}


def test_finetune_in_two_gloo_processes_equals_one_process(build, tmp_path, capsys):
    """Data-parallel QAT: 2 processes computing the gradient shards of each batch give the
    weights, report and validate results of one process with the same shard count (3 shards: the
    ranks hold 2 and 1, and the last batch of 10 samples in batches of 4 is split 1/1/0)."""
    import json

    with np.load(DATA) as d:
        x = d["x"][:12, :10]
    labels = np.random.default_rng(0).integers(0, 4, 20)
    np.savez(tmp_path / "train.npz", x=x, y=labels[:10])
    np.savez(tmp_path / "test.npz", x=x[:, ::-1] * 0.9, y=labels[10:])
    base = ["finetune", str(build), "--data", str(tmp_path / "train.npz"), "--holdout", str(tmp_path / "test.npz"),
            "--epochs", "2", "--batch-size", "4", "--lr", "0.05", "--grad-shards", "3", "--accept-accuracy-loss", "-q"]
    reports = {}
    for name, extra in (("one", []), ("two", ["--gpu-processes", "2"])):
        assert main([*base, "-o", str(tmp_path / name), *extra]) == 0, capsys.readouterr().err
        assert main(["validate", str(tmp_path / name), "--data", str(tmp_path / "test.npz"), "-q"]) == 0
        reports[name] = json.loads((tmp_path / name / "validate.json").read_text())
    before, one, two = (_graph_weights(p) for p in (build, tmp_path / "one", tmp_path / "two"))
    assert sum(int(np.count_nonzero(one[k] != before[k])) for k in one) > 100  # it trained
    assert all(one[k].dtype == two[k].dtype and np.array_equal(one[k], two[k]) for k in one)
    qat = {name: next(p for p in json.loads((tmp_path / name / "manifest.json").read_text())["passes"]
                      if p["name"] == "qat_finetune")["metrics"] for name in ("one", "two")}
    for key in ("parameters_sha256", "loss_per_epoch", "accuracy_per_epoch", "changed_weights", "updates"):
        assert qat["one"][key] == qat["two"][key], key

    def without_times(value):
        if isinstance(value, dict):
            return {k: without_times(v) for k, v in value.items()
                    if k != "build" and "time" not in k and "second" not in k}
        return [without_times(v) for v in value] if isinstance(value, list) else value

    assert without_times(reports["one"]) == without_times(reports["two"])
    assert reports["two"]["ok"] and reports["two"]["fixed_accuracy"] == qat["two"]["accuracy_per_epoch"][-1]


@pytest.mark.parametrize(("extra", "message"), [
    (["--gpu-processes", "0"], "--gpu-processes 0 must be between 1 and --batch-size 4"),
    (["--gpu-processes", "5"], "--gpu-processes 5 must be between 1 and --batch-size 4"),
    (["--gpu-processes", "3", "--grad-shards", "2"], "needs at least as many --grad-shards"),
    (["--grad-shards", "5"], "--grad-shards 5 must be between 1 and --batch-size 4"),
])
def test_finetune_process_refusals(build, tmp_path, capsys, extra, message):
    np.savez(tmp_path / "train.npz", x=np.zeros((3, 2, 8), np.float32), y=np.zeros(2, np.int64))
    code = main(["finetune", str(build), "--data", str(tmp_path / "train.npz"), "--batch-size", "4",
                 "-o", str(tmp_path / "new"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
