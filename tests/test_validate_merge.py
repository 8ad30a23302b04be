"""Validation in slices (what `rsnnc validate --shards N` runs as Ray tasks) merges into exactly
the report of one run on all the data: first difference with its global sample index, counts,
shapes, per-layer agreement, accuracy. No Ray here: the slices run in this process."""

import json
from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler import registry
from rsnn_compiler.cli.main import main
from rsnn_compiler.data import sample_slices
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.executors import InterpreterExecutor
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.validate import merge_shards, validate, validate_shard

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example" / "recurrent.rsnn"
DATA = ROOT / "models" / "example" / "data.npz"


class ContentBug(InterpreterExecutor):
    """The interpreter with wrong membranes in the sample whose inputs are ``marker`` (at step 2,
    neurons 3 and 4) and in the one whose inputs are ``early`` (step 5, neuron 0): a bug that
    depends on a sample's content, not on its place in the batch."""

    name = "bug"
    marker = early = None

    def run(self, build, manifest, domain, profile, x):
        r = super().run(build, manifest, domain, profile, x)
        v = r.states["v/lif"].copy()
        for s in range(x.shape[1]):
            if np.array_equal(x[:, s], self.marker):
                v[2, s, 3:5] += 1
            if np.array_equal(x[:, s], self.early):
                v[5, s, 0] -= 1
        return RunResult(out=r.out, values=r.values, spikes=r.spikes, states={**r.states, "v/lif": v})

    def node_groups(self, build, manifest):
        """Parts checked on their own (as Lava's stock and custom processes): one holds the bug."""
        return {"neurons": ["lif"], "rest": ["readout", "fc_in", "fc_out"]}


class WrongShape(InterpreterExecutor):
    name = "wrongshape"

    def run(self, build, manifest, domain, profile, x):
        r = super().run(build, manifest, domain, profile, x)
        return RunResult(out=r.out, values=r.values, spikes=r.spikes,
                         states={**r.states, "v/lif": r.states["v/lif"][..., :-1]})


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "build"
    assert main(["build", str(EXAMPLE), "--target", "gpu", "--calib", str(DATA), "-o", str(out), "-q"]) == 0
    return out


def with_double(build: Path, name: str, cls, monkeypatch) -> dict:
    manifest = json.loads((build / "manifest.json").read_text())
    manifest["targets"][name] = {"profile": "fpga", "files": [], "summary": "test double"}
    monkeypatch.setitem(registry.EXECUTORS, name, f"test_validate_merge:{cls.__name__}")
    return manifest


def in_slices(build, manifest, x, y, parts, **kw):
    tallies = [validate_shard(build, manifest, x[:, a:b], None if y is None else y[a:b], a)
               for a, b in sample_slices(x.shape[1], parts, "--shards")]
    return merge_shards(build, manifest, tallies[::-1], **kw)  # any order: merged by offset


def same(a, b) -> None:
    a, b = a.to_json(), b.to_json()
    for report in (a, b):
        for e in report["executors"]:
            e.pop("wall_time_s")
    assert a == b


def test_slices_merge_to_the_report_of_one_run(build, monkeypatch):
    with np.load(DATA) as d:
        x = d["x"][:20, :9]
    y = np.arange(9) % 4
    manifest = with_double(build, "bug", ContentBug, monkeypatch)
    monkeypatch.setattr(ContentBug, "marker", x[:, 6].copy())
    monkeypatch.setattr(ContentBug, "early", x[:, 1].copy())
    whole = validate(build, manifest, x, y, max_accuracy_drop=50.0)
    m = next(c for c in whole.executors if c.executor == "bug").mismatch
    assert (m.key, m.step, m.sample, m.neuron, m.differing_values) == ("v/lif", 2, 6, [3], 3)
    parts = {p.part: p for p in next(c for c in whole.executors if c.executor == "bug").parts}
    assert parts["neurons"].mismatch == m and parts["rest"].status == "equal" and parts["rest"].compared_values > 0
    assert whole.float_accuracy is not None and whole.layers
    for parts in (2, 3, 9):
        same(whole, in_slices(build, manifest, x, y, parts, max_accuracy_drop=50.0))
    for batch in (1, 4, 9, 100):  # rsnnc validate --batch: the same merge, in this process
        same(whole, validate(build, manifest, x, y, max_accuracy_drop=50.0, batch=batch))


def test_shape_problems_and_missing_executors_merge(build, monkeypatch):
    with np.load(DATA) as d:
        x = d["x"][:10, :5]
    manifest = with_double(build, "wrongshape", WrongShape, monkeypatch)
    whole = validate(build, manifest, x, None)
    m = next(c for c in whole.executors if c.executor == "wrongshape").mismatch
    assert m.expected == "shape (10, 5, 32)" and m.got == "shape (10, 5, 31)"
    same(whole, in_slices(build, manifest, x, None, 2))
    clean = json.loads((build / "manifest.json").read_text())
    missing = dict(clean, targets={**clean["targets"], "nowhere": {"profile": "fpga"}})
    monkeypatch.setitem(registry.EXECUTORS, "nowhere", "test_validate:MissingExecutor")
    for allow in (False, True):
        whole = validate(build, missing, x, None, allow_missing=allow)
        assert whole.ok is allow and next(c for c in whole.executors if c.executor == "nowhere").status == "unavailable"
        same(whole, in_slices(build, missing, x, None, 2, allow_missing=allow))


def test_sample_slices():
    assert sample_slices(10, 3, "--shards") == [(0, 4), (4, 7), (7, 10)]
    assert sample_slices(4, 4, "--shards") == [(0, 1), (1, 2), (2, 3), (3, 4)]
    with pytest.raises(UserInputError, match="more than the 3 samples"):
        sample_slices(3, 4, "--shards")
    with pytest.raises(UserInputError, match="at least 1"):
        sample_slices(3, 0, "--shards")


def test_batch_bounds_and_the_batch_option(build, capsys):
    from rsnn_compiler.validate import batch_bounds

    assert batch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_bounds(3, None) == batch_bounds(3, 100) == [(0, 3)]
    with pytest.raises(UserInputError, match="--batch 0 must be at least 1"):
        batch_bounds(3, 0)
    assert main(["validate", str(build), "--data", str(DATA), "--batch", "0"]) == 2
    assert "--batch 0 must be at least 1" in capsys.readouterr().err
    assert main(["validate", str(build), "--data", str(DATA), "--batch", "3", "--json"]) == 0
    batched = json.loads(capsys.readouterr().out)
    assert main(["validate", str(build), "--data", str(DATA), "--json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    for report in (batched, whole):
        for e in report["executors"]:
            e.pop("wall_time_s")
    assert batched == whole and whole["ok"]
