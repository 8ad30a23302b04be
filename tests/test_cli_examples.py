"""Every example in every `rsnnc COMMAND --help` and in the README's "Using it" block runs as
written, against the bundled models, from a folder where `models/` is the repository's.

Examples that need the Lava environment are skipped when it is missing, except in CI
(CI=true), where they must run.
"""

import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rsnn_compiler.cli.common import Example, shell_lines
from rsnn_compiler.cli.main import BUILTIN_COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# builds first: the other commands' examples use them
ORDER = ("build", "inspect", "run", "validate", "sweep", "finetune", "sensitivity", "report", "export", "plot",
         "passes", "targets")


def command_examples(name: str) -> tuple[Example, ...]:
    return importlib.import_module(BUILTIN_COMMANDS[name].partition(":")[0]).EXAMPLES


def help_examples() -> list[Example]:
    assert set(ORDER) == set(BUILTIN_COMMANDS), "a new command: add it to ORDER"
    return [e for name in ORDER for e in command_examples(name)]


def readme_commands() -> list[Example]:
    """The commands of the README's "Using it" bash block (continuations joined, comments dropped;
    a comment holding "[Lava]" marks a command that needs the Lava environment)."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Using it.*?```bash\n(.*?)```", text, re.S).group(1)
    commands, pending = [], ""
    for raw in block.splitlines():
        line = "" if raw.lstrip().startswith("#") else re.sub(r"\s+#.*$", "", raw)
        if not line.strip():
            continue
        pending += line.rstrip().rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            commands.append(Example(pending.strip(), needs_lava="[Lava]" in raw))
            pending = ""
    return commands


def lava_ready() -> bool:
    from rsnn_compiler.backends.lava.env import lava_status

    return lava_status().found


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("examples")
    (ws / "models").symlink_to(ROOT / "models")
    return ws


def run(command: str, cwd: Path, monkeypatch, capsys) -> tuple[int, str]:
    """Run ``command`` from ``cwd``: plain ``rsnnc ...`` commands (``;``-separated) in this process
    through the same ``main`` as the console script (starting Python and torch per command would
    cost more than the examples); anything else through bash. Returns (exit code, stderr tail)."""
    parts = [shlex.split(p) for p in command.split(";")]
    if all(p and p[0] == "rsnnc" and not set("|&<>$`") & set(" ".join(p)) for p in parts):
        monkeypatch.chdir(cwd)
        for argv in parts:
            code = main(argv[1:])
            err = capsys.readouterr().err
            if code != 0:
                return code, err[-2000:]
        return 0, ""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", f"set -eo pipefail; {command}"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    return done.returncode, done.stderr[-2000:]


def test_each_help_shows_its_examples_as_pasteable_lines(capsys):
    for name in ORDER:
        assert main([name, "--help"]) == 0
        shown = capsys.readouterr().out
        for example in command_examples(name):
            for line in shell_lines(example.command):
                assert line in shown, (name, line)
            # pasted into bash, the shown lines are the one command
            assert shlex.split(" ".join(line.rstrip("\\") for line in shell_lines(example.command))) == \
                shlex.split(example.command)


def test_every_example_runs(workspace, monkeypatch, capsys):
    from rsnn_compiler.ray_engine import RayOptions, ray_session

    with ray_session(RayOptions(num_cpus=2)):  # one Ray for every example that uses it (sweep, --shards)
        run_examples(workspace, monkeypatch, capsys)


def run_examples(workspace, monkeypatch, capsys):
    ran = set()
    skipped = []
    for example in help_examples() + readme_commands():
        command = example.command
        if command in ran:
            continue
        if example.needs_lava and not lava_ready() and os.environ.get("CI") != "true":
            skipped.append(command)
            continue
        code, err = run(command, workspace, monkeypatch, capsys)
        assert code == 0, f"{command}\n{err}"
        ran.add(command)
    assert len(ran) >= 20
    if skipped:
        pytest.skip(f"the Lava environment is missing; not run: {skipped}")
