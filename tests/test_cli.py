"""End-to-end CLI behaviour: build/run/report/inspect/passes/targets, errors and determinism."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler.cli.main import main
from rsnn_compiler.examples import example_inputs, recurrent_example
from rsnn_compiler.ir import Affine, load_graph, save_graph

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example" / "recurrent.rsnn"


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, needle: str):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines, "expected an error message"
    errors = [line for line in lines if line.startswith("rsnnc: error:")]
    assert len(errors) == 1, err
    assert needle in errors[0], err
    assert "Traceback" not in err


@pytest.fixture
def built(tmp_path, capsys):
    out = tmp_path / "build"
    code, stdout, err = cli(capsys, "build", EXAMPLE, "-o", out, "-q")
    assert code == 0, err
    return out


def test_build_writes_manifest_graph_and_summary(tmp_path, capsys):
    out = tmp_path / "b"
    code, stdout, err = cli(capsys, "build", EXAMPLE, "-o", out)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["compiler"]["name"] == "rsnnc"
    assert manifest["pipeline"]["float"] == ["import", "canonicalize", "prune"]
    assert [p["name"] for p in manifest["passes"]] == ["import", "canonicalize", "prune"]
    assert set(manifest["files"]) == {"graph.float.rsnn", "graph.float.txt"}
    assert "rsnnc build" in stdout and "canonicalize" in stdout
    assert "canonicalize" in err  # progress on stderr
    # the written graph is the example (canonical already) and loads back
    assert len(load_graph(out / "graph.float.rsnn")) == len(recurrent_example())


def test_report_json_lists_passes_in_order(built, capsys):
    code, stdout, err = cli(capsys, "report", built, "--json")
    assert code == 0
    data = json.loads(stdout)
    assert [p["name"] for p in data["passes"]] == ["import", "canonicalize", "prune"]
    assert all("wall_time_s" in p and "hash_before" in p for p in data["passes"])
    assert data["passes"][2]["skipped"] is True
    code, stdout, _ = cli(capsys, "report", built)
    assert code == 0 and "pipeline [float]: import -> canonicalize -> prune" in stdout


def test_run_writes_contract_npz_matching_the_interpreter(built, tmp_path, capsys):
    x = example_inputs(steps=20, batch=3)
    np.savez(tmp_path / "x.npz", x=x)
    code, stdout, err = cli(capsys, "run", built, "--inputs", tmp_path / "x.npz", "--out", tmp_path / "y.npz", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["output_shape"] == [20, 3, 4] and len(summary["prediction"]) == 3
    with np.load(tmp_path / "y.npz") as y:
        assert set(y.files) == {"out", "spikes/lif", "v/lif", "v/readout"}
        from rsnn_compiler.interpreter import run_float

        ref = run_float(recurrent_example(), x)
        np.testing.assert_array_equal(y["out"], ref.out)
        np.testing.assert_array_equal(y["spikes/lif"], ref.spikes["lif"])


def test_inspect_model_and_build(built, capsys):
    code, stdout, _ = cli(capsys, "inspect", EXAMPLE)
    assert code == 0 and stdout.startswith("rsnn-ir 1") and "edge lif -> w_rec delay=1" in stdout
    code, stdout, _ = cli(capsys, "inspect", built, "--json")
    data = json.loads(stdout)
    assert code == 0 and data["nodes"]["lif"]["kind"] == "lif" and ["lif", "w_rec", 1] in data["edges"]


def test_passes_and_targets(capsys):
    code, stdout, _ = cli(capsys, "passes", "--json")
    data = json.loads(stdout)
    assert code == 0 and "canonicalize" in [p["name"] for p in data["passes"]]
    assert data["pipeline"]["float"][:2] == ["import", "canonicalize"]
    code, stdout, _ = cli(capsys, "targets", "--json")
    assert code == 0 and "ir" in [t["name"] for t in json.loads(stdout)["targets"]]


@pytest.mark.parametrize("command", ["build", "run", "report", "inspect", "passes", "targets", "export"])
def test_every_help_shows_an_example(command, capsys):
    assert main([command, "--help"]) == 0
    assert "Examples:" in capsys.readouterr().out


def test_determinism_two_builds_identical(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli(capsys, "build", EXAMPLE, "-o", a, "-q")[0] == 0
    assert cli(capsys, "build", EXAMPLE, "-o", b, "-q")[0] == 0
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
    manifest = json.loads((a / "manifest.json").read_text())
    for rel, digest in manifest["files"].items():
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


# ------------------------------------------------------------------ bad input
def nan_model(tmp_path):
    g = recurrent_example()
    w = g.nodes["fc_in"].weight.copy()
    w[2, 3] = np.nan
    path = tmp_path / "nan.rsnn"
    save_graph(g.with_node("fc_in", Affine(weight=w)), path)
    return path


def junk_file(tmp_path, name, data=b"\x00garbage"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make_input,extra,needle",
    [
        (lambda t: t / "missing.rsnn", [], "not found"),
        (lambda t: junk_file(t, "junk.rsnn"), [], "malformed or truncated"),
        (lambda t: junk_file(t, "trunc.rsnn", EXAMPLE.read_bytes()[:300]), [], "malformed or truncated"),
        (lambda t: junk_file(t, "model.xyz"), [], "no importer for '.xyz' files"),
        (nan_model, [], "parameter 'weight' contains NaN at index (2, 3)"),
        (lambda t: EXAMPLE, ["--target", "nope"], "unknown target 'nope'"),
        (lambda t: EXAMPLE, ["--reset", "sideways"], "--reset 'sideways' is not one of"),
        (lambda t: EXAMPLE, ["--prune", "1.5"], "--prune 1.5 must be a fraction"),
        (lambda t: EXAMPLE, ["--calib", "nowhere.npz"], "data file nowhere.npz not found"),
    ],
)
def test_build_bad_input_exit_2_one_line_nothing_written(tmp_path, capsys, make_input, extra, needle):
    out = tmp_path / "out" / "build"
    code, stdout, err = cli(capsys, "build", make_input(tmp_path), "-o", out, "-q", *extra)
    assert code == 2
    assert_one_line_error(err, needle)
    assert not out.exists()
    parent = out.parent
    assert not parent.exists() or not any(parent.iterdir()), "temporary files left behind"


def test_failed_build_keeps_the_previous_build(built, tmp_path, capsys):
    before = (built / "manifest.json").read_bytes()
    code, _, err = cli(capsys, "build", nan_model(tmp_path), "-o", built, "-q")
    assert code == 2
    assert (built / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in built.parent.iterdir()) == ["build", "nan.rsnn"]


def test_run_bad_inputs(built, tmp_path, capsys):
    np.savez(tmp_path / "wrong.npz", x=np.zeros((5, 2, 7), np.float32))
    np.savez(tmp_path / "nox.npz", y=np.zeros(2))
    np.savez(tmp_path / "nan.npz", x=np.full((5, 2, 8), np.nan, np.float32))
    np.savez(tmp_path / "flat.npz", x=np.zeros((5, 8), np.float32))
    cases = [
        ("wrong.npz", "inputs have shape (5, 2, 7) but the graph expects (time, batch, 8)"),
        ("nox.npz", "has no 'x' array"),
        ("nan.npz", "contains NaN or Inf"),
        ("flat.npz", "inputs must be (time, batch, *features)"),
        ("missing.npz", "not found"),
    ]
    for name, needle in cases:
        y = tmp_path / f"y-{name}"
        code, _, err = cli(capsys, "run", built, "--inputs", tmp_path / name, "--out", y, "-q")
        assert code == 2, (name, err)
        assert_one_line_error(err, needle)
        assert not y.exists()
    code, _, err = cli(capsys, "run", built, "--inputs", tmp_path / "wrong.npz", "--out", tmp_path / "y.npz", "--domain", "fixed")
    assert code == 2 and "no fixed-point graph" in err


def test_report_and_export_on_non_builds(tmp_path, capsys):
    code, _, err = cli(capsys, "report", tmp_path)
    assert code == 2
    assert_one_line_error(err, "has no manifest.json")
    (tmp_path / "manifest.json").write_text("{broken")
    code, _, err = cli(capsys, "report", tmp_path)
    assert code == 2
    assert_one_line_error(err, "is corrupt")


def test_debug_shows_traceback(tmp_path, capsys):
    code, _, err = cli(capsys, "build", junk_file(tmp_path, "junk.rsnn"), "-o", tmp_path / "o", "--debug", "-q")
    assert code == 2 and "Traceback" in err


def test_console_script_is_installed(tmp_path):
    """The `rsnnc` entry point works as a separate process (exit codes propagate)."""
    exe = Path(sys.executable).with_name("rsnnc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "rsnn_compiler.cli.main"]
    ok = subprocess.run([*cmd, "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and "rsnnc" in ok.stdout
    bad = subprocess.run([*cmd, "build", str(tmp_path / "none.nir"), "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and not (tmp_path / "o").exists()


def test_pruning_flags_need_prune(tmp_path, capsys):
    code, _, err = cli(capsys, "build", EXAMPLE, "-o", tmp_path / "o", "--prune-finetune", "2", "-q")
    assert code == 2
    assert_one_line_error(err, "pruning options need --prune FRACTION")


def test_pruned_build_records_steps_and_run_uses_them(tmp_path, capsys):
    data = ROOT / "models" / "example" / "data.npz"
    out = tmp_path / "p"
    code, _, err = cli(capsys, "build", EXAMPLE, "-o", out, "--prune", "0.5", "--calib", data,
                       "--time-kl", "10", "--time-tolerance", "100", "-q")
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["name"] for p in manifest["passes"]][:4] == ["import", "canonicalize", "prune_spatial", "prune_temporal"]
    steps = manifest["steps"]
    assert steps is not None and steps < 50  # a huge tolerance lets temporal pruning shorten T
    code, stdout, err = cli(capsys, "run", out, "--inputs", data, "--out", tmp_path / "y.npz", "--json")
    assert code == 0 and json.loads(stdout)["steps"] == steps
    assert f"runs {steps} of the 50 input steps" in err


# ------------------------------------------------------------------ the click layer
@pytest.mark.parametrize("argv,needle", [
    (["build"], "Missing argument 'INPUT'"),
    (["build", "x.rsnn"], "Missing option '-o' / '--out'"),
    (["bild"], "No such command 'bild'"),
    (["run", "b", "--inputs", "x", "--out", "y", "--domain", "int"], "'int' is not one of 'float', 'fixed'"),
    (["build", "x.rsnn", "-o", "o", "--prune", "lots"], "'lots' is not a valid float"),
    (["targets", "--nope"], "No such option '--nope'"),
])
def test_usage_errors_exit_2_with_one_line(argv, needle, capsys):
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    assert_one_line_error(err, needle)
    assert "--help" in err  # names the help to read


def test_no_command_prints_help_and_exits_2(capsys):
    code, out, err = cli(capsys)
    assert code == 2 and "Commands" in out and "build" in out


def test_version(capsys):
    assert cli(capsys, "--version")[:2] == (0, "rsnnc 0.1.0\n")


def test_registered_command_is_loaded_lazily(monkeypatch, capsys):
    """registry.COMMANDS names a click command by "module:attribute"; it shows in --help and runs
    with the common options and the one error contract."""
    import types

    import rich_click as click

    from rsnn_compiler import registry
    from rsnn_compiler.cli.common import common_options, handler
    from rsnn_compiler.errors import UserInputError

    @click.command("hello", short_help="say hello")
    @click.option("--name", required=True)
    @common_options
    @handler
    def hello(args, out, err):
        if args.name == "bad":
            raise UserInputError("--name 'bad' is bad; use another")
        out.print(f"hello {args.name}")
        return 0

    monkeypatch.setitem(sys.modules, "rsnnc_test_ext", types.SimpleNamespace(hello=hello))
    monkeypatch.setitem(registry.COMMANDS, "hello", "rsnnc_test_ext:hello")
    assert "say hello" in cli(capsys, "--help")[1]
    assert cli(capsys, "hello", "--name", "you")[:2] == (0, "hello you\n")
    code, _, err = cli(capsys, "hello", "--name", "bad")
    assert code == 2
    assert_one_line_error(err, "--name 'bad' is bad")


def test_internal_error_is_one_line_and_exit_3(monkeypatch, tmp_path, capsys):
    import rsnn_compiler.build as build_module

    def broken(*a, **k):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(build_module, "build", broken)
    code, _, err = cli(capsys, "build", EXAMPLE, "-o", tmp_path / "o", "-q")
    assert code == 3 and err.strip().splitlines() == [
        "rsnnc: internal error: ZeroDivisionError: boom (rerun with --debug and report it)"]
    code, _, err = cli(capsys, "build", EXAMPLE, "-o", tmp_path / "o", "-q", "--debug")
    assert code == 3 and "Traceback" in err


def test_shell_completion_names_commands_and_options(tmp_path):
    exe = Path(sys.executable).with_name("rsnnc")
    env = {**os.environ, "_RSNNC_COMPLETE": "bash_complete", "COMP_WORDS": "rsnnc bu", "COMP_CWORD": "1"}
    done = subprocess.run([str(exe)], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "plain,build" in done.stdout.split()
    env.update(COMP_WORDS="rsnnc build --calib", COMP_CWORD="2")
    done = subprocess.run([str(exe)], env=env, capture_output=True, text=True)
    assert "plain,--calib" in done.stdout.split()
    env = {**os.environ, "_RSNNC_COMPLETE": "bash_source"}
    assert "complete -o nosort -F _rsnnc_completion rsnnc" in subprocess.run(
        [str(exe)], env=env, capture_output=True, text=True).stdout


def test_catalog_reads_what_the_classes_hold():
    """`rsnnc passes/targets` read facts from source without importing; they equal the classes'."""
    from rsnn_compiler import catalog, registry

    for info in catalog.passes():
        cls = registry.resolve(registry.PASSES[info.name])
        for fact in catalog.PASS_FACTS:
            assert getattr(info, fact) == tuple(sorted(getattr(cls, fact, ()))), (info.name, fact)
        assert info.doc == sys.modules[cls.__module__].__doc__.strip().splitlines()[0]
    for info in catalog.targets():
        cls = registry.resolve(registry.BACKENDS[info.name])
        assert (info.description, info.uses_fixed, info.requires_profile) == (
            cls.description, cls.uses_fixed, cls.requires_profile), info.name
        assert info.checks_environment == hasattr(cls, "status")


def test_catalog_falls_back_to_importing_computed_values(tmp_path, monkeypatch):
    (tmp_path / "rsnnc_computed_ext.py").write_text(
        '"""ext: a computed description."""\nclass B:\n    description = "a" + "b"\n    uses_fixed = True\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    from rsnn_compiler.catalog import class_facts

    facts = class_facts("rsnnc_computed_ext:B", ("description", "uses_fixed"))
    assert facts.attrs == {"description": "ab", "uses_fixed": True} and facts.summary == "ext: a computed description."


def test_targets_check_runs_the_environment_probe(capsys, monkeypatch):
    from rsnn_compiler.cli.commands import targets

    monkeypatch.setattr(targets, "environment_status", lambda name: f"probed {name}")
    code, out, _ = cli(capsys, "targets", "--json")
    lava = {t["name"]: t for t in json.loads(out)["targets"]}["lava"]
    assert code == 0 and lava["status"] == targets.UNCHECKED
    code, out, _ = cli(capsys, "targets", "--json", "--check")
    doc = json.loads(out)
    lava = {t["name"]: t for t in doc["targets"]}["lava"]
    assert lava["status"] == "probed lava"
    from rsnn_compiler.float_repro import row_independent

    # and this process's float32 products (oneMKL mode: rsnn_compiler requested a strict one)
    want = {True: "independent of the rows per call", False: "may depend on the rows per call",
            None: "no oneMKL"}[row_independent()]
    assert doc["float_products"].startswith("float32 products: " + want), doc["float_products"]


def test_written_files_respect_the_umask(built, tmp_path, capsys):
    """run --out and validate.json get 0666 less the umask, like any file the user creates."""
    np.savez(tmp_path / "x.npz", x=example_inputs(steps=5, batch=2))
    old = os.umask(0o022)
    try:
        assert cli(capsys, "run", built, "--inputs", tmp_path / "x.npz", "--out", tmp_path / "y.npz", "-q")[0] == 0
        assert (tmp_path / "y.npz").stat().st_mode & 0o777 == 0o644
        os.umask(0o002)
        assert cli(capsys, "run", built, "--inputs", tmp_path / "x.npz", "--out", tmp_path / "z.npz", "-q")[0] == 0
        assert (tmp_path / "z.npz").stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)


def test_a_result_warning_is_its_own_stderr_line(tmp_path, capsys):
    """A reset taken from the exporter's convention (not from the file) changes results: the
    warning is one `rsnnc: warning:` line on stderr, even with --quiet and --json."""
    nir = ROOT / "models" / "rleaky_mnist1d" / "model.nir"
    code, out, err = cli(capsys, "build", nir, "--nir-source", "snntorch", "-o", tmp_path / "n", "-q", "--json")
    assert code == 0 and json.loads(out)
    warnings = [line for line in err.splitlines() if line.startswith("rsnnc: warning: ")]
    assert len(warnings) == 1 and "reset subtract_deferred is snntorch's default" in warnings[0], err
    assert err.strip() == warnings[0]
    code, out, err = cli(capsys, "build", nir, "--reset", "subtract_deferred", "-o", tmp_path / "r", "-q")
    assert code == 0 and "warning" not in err


def test_run_with_the_c_executor_picks_fixed_point(tmp_path, capsys):
    out = tmp_path / "c"
    assert cli(capsys, "build", EXAMPLE, "--target", "c", "-o", out, "-q")[0] == 0
    np.savez(tmp_path / "x.npz", x=example_inputs(steps=5, batch=2))
    code, stdout, err = cli(capsys, "run", out, "--inputs", tmp_path / "x.npz", "--out", tmp_path / "y.npz",
                            "--executor", "c", "--json")
    assert code == 0, err
    assert json.loads(stdout)["domain"] == "fixed"
    code, _, err = cli(capsys, "run", out, "--inputs", tmp_path / "x.npz", "--out", tmp_path / "y.npz",
                       "--executor", "c", "--domain", "float", "-q")
    assert code == 2 and "runs the fixed-point graph" in err
