"""Progress reporting: silent in library use, plain lines off a terminal, live bars on one,
nothing with --quiet or --json; never a change in results."""

import io
import json
from pathlib import Path

import numpy as np
from rich.console import Console

from rsnn_compiler import progress
from rsnn_compiler.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example"


def console(terminal: bool) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=120, color_system=None), buf


def test_library_calls_are_silent_and_track_yields_everything(capsys):
    assert list(progress.track(range(5), "work", unit="epoch")) == [0, 1, 2, 3, 4]
    progress.step("a step")
    assert capsys.readouterr() == ("", "")


def test_plain_reporter_writes_one_line_per_step_and_task():
    con, buf = console(terminal=False)
    with progress.reporting(progress.for_console(con, quiet=False)) as reporter:
        assert isinstance(reporter, progress.Plain)
        progress.step("[1/2] canonicalize")
        assert sum(progress.track(range(40), "ecl: fine-tune", unit="epoch")) == sum(range(40))
        with progress.task("lava: run") as t:
            t.advance()
    assert buf.getvalue().splitlines() == [
        "rsnnc: [1/2] canonicalize", "rsnnc: ecl: fine-tune (40 epochs)", "rsnnc: lava: run"]


def test_live_reporter_draws_bars_on_a_terminal_and_restores_silence():
    con, buf = console(terminal=True)
    with progress.reporting(progress.for_console(con, quiet=False)) as reporter:
        assert isinstance(reporter, progress.Live)
        progress.step("building")
        for _ in progress.track(range(3), "fine-tune", unit="epoch"):
            reporter.progress.refresh()
            assert "fine-tune" in buf.getvalue()
    assert "building" in buf.getvalue()
    assert isinstance(progress._reporter, progress.Silent)


def test_quiet_reporter_is_silent():
    con, buf = console(terminal=True)
    assert isinstance(progress.for_console(con, quiet=True), progress.Silent)


def test_cli_progress_plain_off_a_terminal_and_silent_with_json(tmp_path, capsys):
    assert main(["build", str(EXAMPLE / "recurrent.rsnn"), "--target", "c", "-o", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "rsnnc: [1/2] quantize_weights" in err and "rsnnc: c: compiling" in err
    assert main(["build", str(EXAMPLE / "recurrent.rsnn"), "--target", "c", "-o", str(tmp_path / "b"), "--json"]) == 0
    out, err = capsys.readouterr()
    # no progress with --json; only result warnings (quant_check's, on their own lines)
    assert all(line.startswith("rsnnc: warning:") for line in err.splitlines())
    assert json.loads(out)["compiler"]["name"] == "rsnnc"
    assert main(["validate", str(tmp_path / "a"), "--data", str(EXAMPLE / "data.npz")]) == 0
    err = capsys.readouterr().err
    assert "validate: executors (3 runs)" in err and "running c" in err
    # reporting is presentation only: the two builds are the same
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()


def test_prune_finetune_reports_its_epochs(tmp_path, capsys):
    with np.load(EXAMPLE / "data.npz") as d:
        x = d["x"]
    np.savez(tmp_path / "labelled.npz", x=x, y=np.arange(x.shape[1]) % 4)
    assert main(["build", str(EXAMPLE / "recurrent.rsnn"), "-o", str(tmp_path / "p"), "--prune", "0.5",
                 "--prune-finetune", "2", "--calib", str(tmp_path / "labelled.npz")]) == 0
    err = capsys.readouterr().err
    for line in ("prune_spatial: accuracy vs sparsity (6 points)", "prune_spatial: prune + fine-tune (1 round)",
                 "fine-tune (2 epochs)"):
        assert f"rsnnc: {line}" in err.splitlines()
