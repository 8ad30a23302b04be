"""Sweep configurations, point keys, tables and the Pareto front, without running a point."""

import json
from pathlib import Path

import pytest

from rsnn_compiler.cli.main import main
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.sweep.config import load_config, parse_config
from rsnn_compiler.sweep.pareto import pareto_front
from rsnn_compiler.sweep.run import plan, point_key

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "models" / "example" / "recurrent.rsnn")
DATA = str(ROOT / "models" / "example" / "data.npz")

TOML = f"""
[model]
input = "{EXAMPLE}"
calib = "{DATA}"
target = "c"
factory_args = {{ hidden = 8 }}

[data]
path = "{DATA}"
samples = 4

[grid]
prune = [false, 0.5]
target = ["gpu", "c,gpu"]

[[point]]
prune_finetune = 2
prune = 0.8
convert_opt = ["a=1", "b=2"]
no_prune_time = true
"""


def config_dict() -> dict:
    return {"model": {"input": EXAMPLE, "calib": DATA, "target": "c", "factory_args": {"hidden": 8}},
            "data": {"path": DATA, "samples": 4},
            "grid": {"prune": [False, 0.5], "target": ["gpu", "c,gpu"]},
            "point": [{"prune_finetune": 2, "prune": 0.8, "convert_opt": ["a=1", "b=2"], "no_prune_time": True}]}


def test_grid_then_points_as_build_command_lines(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(TOML)
    config = load_config(path)
    assert config.axes == ("prune", "target", "prune_finetune", "convert_opt", "no_prune_time")
    assert [p.axis_values()["target"] for p in config.points] == ["gpu", "c,gpu", "gpu", "c,gpu", "c"]
    assert config.points[0].build_argv() == [EXAMPLE, "--calib", DATA, "--target", "gpu",
                                             "--factory-args", '{"hidden": 8}']
    assert config.points[3].build_argv()[-2:] == ["--prune", "0.5"]
    last = config.points[4].build_argv()
    assert last[last.index("--prune-finetune") + 1] == "2" and "--no-prune-time" in last
    assert [last[i + 1] for i, a in enumerate(last) if a == "--convert-opt"] == ["a=1", "b=2"]
    assert config.points[4].command().startswith("rsnnc build ") and config.points[4].command().endswith("-o OUT")
    # the same configuration as YAML and as JSON
    import yaml

    for name, text in (("s.yaml", yaml.safe_dump(config_dict(), sort_keys=False)), ("s.json", json.dumps(config_dict()))):
        (tmp_path / name).write_text(text)
        other = load_config(tmp_path / name)
        assert [p.options for p in other.points] == [p.options for p in config.points] and other.axes == config.axes


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("data"), "[data] is missing"),
    (lambda c: c["model"].pop("input"), "needs input"),
    (lambda c: c.update(extra={}), "unknown section(s) extra"),
    (lambda c: c["model"].update(out="x"), "chosen by the sweep"),
    (lambda c: c["grid"].update(prune=[]), "non-empty list"),
    (lambda c: c["data"].update(samples=0), "positive integer"),
    (lambda c: c["data"].update(bogus=1), "unknown key(s) bogus"),
    (lambda c: c["point"][0].update(time_steps=-3), "time_steps = -3"),
    (lambda c: c["data"].update(max_accuracy_drop="x"), "number of points"),
])
def test_refusals_name_the_problem(change, message):
    config = config_dict()
    change(config)
    with pytest.raises(UserInputError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        parse_config(config, Path("s.toml"))


def test_unreadable_files(tmp_path):
    for name, text, message in (("a.toml", "[model", "not valid TOML"), ("a.yaml", "- [", "not valid YAML"),
                                ("a.ini", "", "not '.ini'"), ("b.json", "[1]", "must be a table")):
        (tmp_path / name).write_text(text)
        with pytest.raises(UserInputError, match=message):
            load_config(tmp_path / name)


def test_plan_checks_every_point_with_the_build_parser(tmp_path):
    config = config_dict()
    config["grid"]["prune"] = [False, "lots"]
    with pytest.raises(UserInputError, match="point 3: rsnnc build .*'lots' is not a valid float"):
        plan(parse_config(config, tmp_path / "s.toml"), tmp_path)
    config["grid"]["prune"] = [False]
    config["point"][0]["bogus_flag"] = 1
    with pytest.raises(UserInputError, match="point 3: .*No such option:? '?--bogus-flag"):
        plan(parse_config(config, tmp_path / "s.toml"), tmp_path)


def test_point_keys_follow_file_contents_and_options(tmp_path):
    model = tmp_path / "m.rsnn"
    model.write_bytes(Path(EXAMPLE).read_bytes())
    config = config_dict()
    config["model"]["input"] = str(model)
    parsed = parse_config(config, tmp_path / "s.toml")
    keys = [point_key(p, parsed) for p in parsed.points]
    assert len(set(keys)) == len(keys) and keys == [point_key(p, parsed) for p in parsed.points]
    model.write_bytes(model.read_bytes() + b"\0")  # another model: other keys
    assert all(point_key(p, parsed) != k for p, k in zip(parsed.points, keys))
    moved = tmp_path / "moved.rsnn"  # the same content elsewhere: the same keys
    model.rename(moved)
    moved.write_bytes(Path(EXAMPLE).read_bytes())
    config["model"]["input"] = str(moved)
    again = parse_config(config, tmp_path / "s.toml")
    assert [point_key(p, again) for p in again.points] == keys
    config["data"]["samples"] = 5  # validation options are part of the key
    other = parse_config(config, tmp_path / "s.toml")
    assert point_key(other.points[0], other) != keys[0]


def test_module_factories_key_their_source_file(tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "net.py").write_text("def build():\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = config_dict()
    config["model"] = {"input": "mypkg.net:build", "initial_weights": True}
    parsed = parse_config(config, tmp_path / "s.toml")
    key = point_key(parsed.points[0], parsed)
    (pkg / "net.py").write_text("def build():\n    return 1\n")
    assert point_key(parsed.points[0], parsed) != key


def test_pareto_front():
    points = [(10.0, 50.0, 0), (5.0, 50.0, 1), (20.0, 70.0, 2), (20.0, 60.0, 3), (30.0, 65.0, 4), (1.0, 10.0, 5)]
    assert [p[2] for p in pareto_front(points)] == [5, 1, 2]
    assert pareto_front([]) == []


def test_sweep_command_refuses_a_bad_configuration(tmp_path, capsys):
    (tmp_path / "s.toml").write_text("[model]\ninput = 'x'\n")
    assert main(["sweep", str(tmp_path / "s.toml"), "-o", str(tmp_path / "o")]) == 2
    assert "[data] is missing" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "none.toml"), "-o", str(tmp_path / "o")]) == 2
    capsys.readouterr()
    assert main(["validate", str(tmp_path), "--data", DATA, "--num-cpus", "2"]) == 2
    assert "add --shards N" in capsys.readouterr().err


def test_a_point_keeps_its_build_warnings(tmp_path, capsys, monkeypatch):
    """A result-changing build warning (a reset taken from --nir-source's convention) is part of
    the point's result, of the table and a `rsnnc: warning:` line of the sweep command."""
    from rsnn_compiler.sweep.point import run_point
    from rsnn_compiler.sweep.table import table_markdown

    config = {"model": {"input": str(ROOT / "models" / "rleaky_mnist1d" / "model.nir"), "nir_source": "snntorch",
                        "target": "gpu"},
              "data": {"path": str(ROOT / "models" / "rleaky_mnist1d" / "test.npz"), "samples": 4}}
    parsed = parse_config(config, tmp_path / "s.toml")
    result = run_point(plan(parsed, tmp_path / "out")[0])
    reset = [w for w in result.warnings if "reset subtract_deferred is snntorch's default" in w]
    assert result.status == "ok" and len(reset) == 1
    assert all(f"- point 1: warning: {w}" in table_markdown(parsed.axes, [result]) for w in result.warnings)
    # the command: the cached point's warning is its own stderr line, also with --quiet
    (tmp_path / "s.json").write_text(json.dumps(config))
    from rsnn_compiler.sweep import run as sweep_run

    sweep_run.write_result(plan(parsed, tmp_path / "out")[0], result)
    capsys.readouterr()
    assert main(["sweep", str(tmp_path / "s.json"), "-o", str(tmp_path / "out"), "-q", "--no-plot"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert all(f"rsnnc: warning: point 1: {w}" in err for w in result.warnings), err


def test_every_build_option_reaches_the_build_options():
    """A sweep point is built from ``build_options`` of the parsed command line: every option of
    `rsnnc build` that changes the build must be read there (or a sweep would drop it silently)."""
    from rsnn_compiler.cli.commands.build import build_options, command
    from rsnn_compiler.cli.common import Session

    ctx = command.make_context("build", [EXAMPLE, "-o", "OUT"], obj=Session())
    read: set[str] = set()

    class Recording:
        def __getattr__(self, name):
            read.add(name)
            return ctx.params[name]

    build_options(Recording())
    presentation = {"input", "out", "json", "debug", "quiet"}  # the sweep sets these itself
    assert {p.name for p in command.params} - presentation - read == set()
