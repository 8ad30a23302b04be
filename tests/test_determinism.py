"""Every build is deterministic: two builds of one input with the same options are byte-identical
in every file except timings.json (wall times), for each bundled model and conversion method."""

from pathlib import Path

import pytest

from rsnn_compiler.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
M = ROOT / "models"
RLEAKY = ["models.rleaky_mnist1d.model:build", "--weights", M / "rleaky_mnist1d" / "weights.pt"]


def ann(model: str, method: str, *extra):
    return [M / model / "model.onnx", "--convert", method, "--calib", M / model / "data.npz", *extra]


CASES = {
    "example": ([M / "example" / "recurrent.rsnn", "--target", "lava,gpu"], False),
    "rleaky_nir": ([M / "rleaky_mnist1d" / "model.nir", "--reset", "subtract_deferred", "--target", "c"], False),
    "mlp_sfn": (ann("mlp_digits", "sfn", "--target", "gpu"), False),
    "mlp_maxnorm": (ann("mlp_digits", "maxnorm", "--target", "gpu"), False),
    "mlp_ecl": (ann("mlp_digits", "ecl", "--convert-opt", "epochs=2", "--target", "gpu"), False),
    "rleaky_factory": ([*RLEAKY, "--calib", M / "rleaky_mnist1d" / "data.npz", "--target", "lava,c,gpu"], True),
    "rleaky_pruned": ([*RLEAKY, "--calib", M / "rleaky_mnist1d" / "data.npz", "--prune", "0.5",
                       "--prune-finetune", "1", "--target", "c"], True),
    "cnn_sfn": (ann("cnn_mnist1d", "sfn", "--target", "c"), True),
    "cnn_maxnorm": (ann("cnn_mnist1d", "maxnorm", "--target", "c"), True),
    "cnn_ecl": (ann("cnn_mnist1d", "ecl", "--target", "c"), True),  # the full default fine-tune
    "mlp_ecl_default": (ann("mlp_digits", "ecl", "--target", "c,gpu"), True),
}


def files(build: Path) -> dict[str, bytes]:
    return {str(p.relative_to(build)): p.read_bytes() for p in sorted(build.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=[pytest.mark.slow] if slow else []) for name, (_, slow) in CASES.items()])
def test_two_builds_are_byte_identical_except_timings(name, tmp_path):
    argv, _ = CASES[name]
    for out in ("a", "b"):
        assert main(["build", *map(str, argv), "-o", str(tmp_path / out), "-q"]) == 0
    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert sorted(a) == sorted(b)
    different = [rel for rel in a if a[rel] != b[rel]]
    assert different == ["timings.json"]
