"""Models and weights as users save them (frontends/checkpoints.py), through the CLI."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch

from rsnn_compiler.cli.main import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "models" / "snntorch_tutorial"
FACTORY = "models.snntorch_tutorial.model:feedforward"
CKPT = TUTORIAL / "feedforward.pt"


def _state() -> dict:
    return torch.load(CKPT, map_location="cpu", weights_only=True)["model_state_dict"]


def build(capsys, tmp_path, *args, source=FACTORY):
    out = tmp_path / "b"
    code = main(["build", source, *args, "--target", "ir", "-o", str(out), "-q"])
    cap = capsys.readouterr()
    return code, out, cap.err


def import_notes(out: pathlib.Path) -> list[str]:
    return json.loads((out / "manifest.json").read_text())["passes"][0]["notes"]


@pytest.mark.parametrize("wrap,needle", [
    (lambda sd: sd, None),
    (lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {"state": {}, "param_groups": []}, "epoch": 3},
     "under 'model_state_dict'"),
    (lambda sd: {"state_dict": sd, "epoch": 1}, "under 'state_dict'"),
    (lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}}, "prefix 'module.'"),
    (lambda sd: {"ema": sd, "step": 5}, "only state_dict in the checkpoint, under 'ema'"),
    (lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()}, "prefix '_orig_mod.'"),
])
def test_checkpoint_forms_load_and_are_reported(wrap, needle, tmp_path, capsys):
    path = tmp_path / "w.pt"
    torch.save(wrap(_state()), path)
    code, out, err = build(capsys, tmp_path, "--weights", str(path))
    assert code == 0, err
    reference = build(capsys, tmp_path / "ref", "--weights", str(CKPT))[1]
    graphs = [json.loads((o / "manifest.json").read_text())["graphs"]["float"]["hash"] for o in (out, reference)]
    assert graphs[0] == graphs[1]
    if needle:
        assert any(needle in n for n in import_notes(out))


def _bad_state(kind: str) -> dict:
    sd = dict(_state())
    if kind == "missing":
        del sd["fc1.bias"]
    elif kind == "unexpected":
        sd["fc3.weight"] = torch.zeros(2, 2)
    return sd


@pytest.mark.parametrize("make,args,needle", [
    (lambda p: torch.save(_bad_state("missing"), p), [], "missing 1: fc1.bias"),
    (lambda p: torch.save(_bad_state("unexpected"), p), [], "unexpected 1: fc3.weight"),
    (lambda p: torch.save(_state(), p), ["--factory-args", '{"hidden": 32}'], "has shape (64, 8) but the model's is (32, 8)"),
    (lambda p: torch.save({"a": _state(), "b": _state()}, p), [], "several state_dicts (a, b)"),
    (lambda p: torch.save(_state(), p), ["--factory-args", "{hidden: 3}"], "--factory-args is not valid JSON"),
    (lambda p: torch.save(_state(), p), ["--factory-args", "[64]"], "must be a JSON object"),
    (lambda p: torch.save(_state(), p), ["--factory-args", '{"width": 3}'], "check --factory-args"),
    (lambda p: torch.save([1, 2], p), [], "not a state_dict"),
    (lambda p: p.write_text("not a checkpoint"), [], "cannot read weights"),
])
def test_bad_checkpoints_exit_2_one_line_nothing_written(make, args, needle, tmp_path, capsys):
    path = tmp_path / "w.pt"
    make(path)
    code, out, err = build(capsys, tmp_path, "--weights", str(path), *args)
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_factory_without_weights_is_refused_unless_asked(tmp_path, capsys):
    code, out, err = build(capsys, tmp_path)
    assert code == 2 and "--initial-weights" in err and not out.exists()
    code, out, err = build(capsys, tmp_path, "--initial-weights")
    assert code == 0, err
    assert any("initial (untrained) weights" in n and "manual_seed(0)" in n for n in import_notes(out))
    first = (out / "graph.float.txt").read_text()
    code, out2, _ = build(capsys, tmp_path / "again", "--initial-weights")
    assert code == 0 and (out2 / "graph.float.txt").read_text() == first  # deterministic
    assert json.loads((out / "manifest.json").read_text())["options"]["initial_weights"] is True


def test_model_file_by_path_with_factory_arguments(tmp_path, capsys):
    path = tmp_path / "w.pt"
    net = __import__("models.snntorch_tutorial.model", fromlist=["x"]).recurrent(hidden=16)
    torch.save({"model_state_dict": net.state_dict()}, path)
    code, out, err = build(capsys, tmp_path, "--weights", str(path), "--factory-args", '{"hidden": 16}',
                           source=f"{TUTORIAL / 'model.py'}:recurrent")
    assert code == 0, err
    assert any("factory arguments: hidden=16" in n for n in import_notes(out))
    code, _out, err = build(capsys, tmp_path / "x", "--weights", str(path), source=f"{tmp_path / 'nope.py'}:build")
    assert code == 2 and "does not exist" in err
