"""What every ``rsnnc`` command shares: consoles, common options, examples in ``--help``.

A command is one module in ``rsnn_compiler/cli/commands/`` holding one click command. Its
options are the decorators above its handler; the handler is ``fn(args, out, err) -> exit
code`` (``args`` holds the options by name, ``out``/``err`` are rich consoles on stdout/stderr).
Command modules import only click at the top: heavy modules (numpy, torch, the IR) are imported
inside the handler, so every ``--help`` and usage error answers at once.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Iterator

import rich_click as click

# no metavar column (a wider help column); the metavar follows the help text
click.rich_click.OPTIONS_TABLE_COLUMN_TYPES = ["required", "opt_long", "opt_short", "help"]
click.rich_click.OPTIONS_TABLE_HELP_SECTIONS = ["help", "metavar", "default", "required"]
click.rich_click.MAX_WIDTH = 110
click.rich_click.STYLE_EPILOG_TEXT = ""


@dataclass
class Session:
    """Per-invocation state the error handler needs after the command has failed."""

    debug: bool = False


@dataclass(frozen=True)
class Example:
    """One runnable example of a command's ``--help`` (``tests/test_cli_examples.py`` runs it
    from a folder where ``models/`` is the repository's)."""

    command: str
    note: str = ""
    needs_lava: bool = False


EPILOG_WIDTH = 78  # fits an 80-column terminal with rich-click's padding, so nothing is re-wrapped


def shell_lines(command: str, width: int = EPILOG_WIDTH - 4) -> list[str]:
    """``command`` as shell lines of about ``width`` characters, broken before an option (an
    option stays with its value) with a trailing backslash: pasted into a shell, the lines are
    the one command."""
    groups: list[str] = []
    for word in command.split(" "):
        if groups and not word.startswith("-") and groups[-1].startswith("-") and " " not in groups[-1]:
            groups[-1] += " " + word  # an option's value
        else:
            groups.append(word)
    lines, line = [], ""
    for group in groups:
        if line.strip() and group.startswith("-") and len(line) + 1 + len(group) + 2 > width:
            lines.append(line + " \\")
            line = "    " + group
        else:
            line = f"{line} {group}" if line else group
    return [*lines, line]


def epilog(examples: tuple[Example, ...] = (), text: str = ""):
    """The ``--help`` epilog as rich text: the examples (a note goes on the line above each;
    long commands continue with backslashes), then ``text`` (paragraphs separated by blank
    lines), all pre-wrapped to ``EPILOG_WIDTH`` columns."""
    import textwrap

    from rich.text import Text

    epi = Text()
    if examples:
        epi.append("Examples:", style="bold")
        for e in examples:
            if e.note:
                epi.append(f"\n  # {e.note}", style="dim")
            for line in shell_lines(e.command):
                epi.append(f"\n  {line}", style="cyan")
    for paragraph in text.split("\n\n") if text else ():
        epi.append(("\n\n" if epi.plain else "") + textwrap.fill(" ".join(paragraph.split()), EPILOG_WIDTH))
    return epi


def _safe_console_class():
    from rich.console import Console

    from rsnn_compiler.sanitize import terminal_text

    class SafeConsole(Console):
        """A Console for text that may come from files: markup is off unless a call asks for it
        (a name holding ``[/]`` would raise MarkupError, ``[link=...]`` would restyle), and every
        string it renders, table cells included, goes through ``terminal_text``."""

        def render_str(self, text: str, **kwargs):
            return super().render_str(terminal_text(text), **kwargs)

    return SafeConsole


def consoles():
    """(stdout console, stderr console); a fixed width when stdout is not a terminal. Both are
    safe for text from files (``_safe_console_class``); literal markup needs ``markup=True`` and
    ``rich.markup.escape`` around the data in it."""
    console = _safe_console_class()
    out = console(highlight=False, soft_wrap=False, markup=False)
    if not out.is_terminal:
        out = console(highlight=False, soft_wrap=False, width=120, markup=False)
    return out, console(stderr=True, highlight=False, markup=False)


def _set_debug(ctx: click.Context, _param, value: bool) -> bool:
    if value and isinstance(ctx.obj, Session):
        ctx.obj.debug = True
    return value


def common_options(fn: Callable) -> Callable:
    """``--debug`` (tracebacks on errors) and ``-q/--quiet`` (no progress on stderr)."""
    fn = click.option("--quiet", "-q", is_flag=True, help="no progress messages on stderr")(fn)
    return click.option("--debug", is_flag=True, is_eager=True, callback=_set_debug,
                        help="show tracebacks on errors")(fn)


def json_option(help: str = "print JSON instead of tables") -> Callable:
    return click.option("--json", "json", is_flag=True, help=help)


def import_options(fn: Callable) -> Callable:
    """How to read a model file: what NIR files and factories leave open."""
    decorators = [
        click.option("--dt", type=float,
                     help="seconds per time step (NIR files do not record it; inferred where possible)"),
        click.option("--reset", metavar="MODE",
                     help="reset mode for imported neurons: zero, subtract, subtract_deferred (snnTorch"
                     " default), subtract_nodelay, zero_hold, none (NIR files do not record it)"),
        click.option("--comparator", metavar="CMP",
                     help="spike comparator: gt (v > theta, default) or ge (v >= theta)"),
        click.option("--nir-source", metavar="LIB",
                     help="library that wrote the NIR file: snntorch, norse, sinabs, spikingjelly, rockpool, lava-dl;"
                     " applies its conventions (dt, reset, comparator, Input dims). Default: detected where the"
                     " exporter leaves a trace (docs/frontends.md)"),
        click.option("--weights", type=click.Path(dir_okay=False), metavar="FILE.pt",
                     help="state_dict or training checkpoint (.pt) for a factory input (loaded with weights_only)"),
        click.option("--factory-args", metavar="JSON",
                     help='keyword arguments of the factory as a JSON object, e.g. \'{"hidden": 128}\''),
        click.option("--initial-weights", is_flag=True,
                     help="compile a factory's initial (untrained, seeded) weights on purpose, without --weights"),
        click.option("--trust-checkpoint", is_flag=True,
                     help="allow loading a whole pickled module (unpickling runs code: only for files you trust)"),
    ]
    for decorate in reversed(decorators):
        fn = decorate(fn)
    return fn


def ray_options(fn: Callable) -> Callable:
    """``--address`` and ``--num-cpus``: where Ray runs the tasks (rsnn_compiler/ray_engine.py)."""
    fn = click.option("--num-cpus", type=int, metavar="N",
                      help="CPUs of the local Ray started for this command (default: those this process may use)")(fn)
    return click.option("--address", metavar="HOST:PORT",
                        help="run the tasks on this Ray cluster (`ray start --head` prints it; 'auto' finds a"
                        " local one) instead of a local Ray started for this command; paths must be"
                        " valid on every node (a shared file system)")(fn)


def gpu_processes_option(fn: Callable) -> Callable:
    return click.option("--gpu-processes", type=int, metavar="N",
                        help="run the gpu executor data-parallel in N local processes over torch.distributed"
                        " (gloo on the CPU, nccl with one CUDA device each); the same result as one process")(fn)


def executor_options_from(args) -> dict[str, dict]:
    """``--gpu-processes`` as executor fields ({} when not given)."""
    n = getattr(args, "gpu_processes", None)
    if n is None:
        return {}
    if n < 1:
        from rsnn_compiler.errors import UserInputError

        raise UserInputError(f"--gpu-processes {n} must be at least 1")
    return {"gpu": {"processes": n}}


def ray_options_from(args):
    from rsnn_compiler.ray_engine import RayOptions

    return RayOptions(address=args.address, num_cpus=args.num_cpus)


def handler(fn: Callable) -> Callable:
    """Turn ``fn(args, out, err) -> int`` into a click callback (options become ``args.<name>``).
    Progress (``rsnn_compiler.progress``) goes to stderr while it runs: live bars on a terminal,
    plain lines otherwise, nothing with ``--quiet`` or ``--json``."""

    @functools.wraps(fn)
    def callback(**options) -> int:
        from rsnn_compiler import progress

        out, err = consoles()
        args = SimpleNamespace(**options)
        quiet = bool(getattr(args, "quiet", False) or getattr(args, "json", False))
        with progress.reporting(progress.for_console(err, quiet)):
            return fn(args, out, err)

    return callback


def one_line(text: object) -> str:
    """``text`` as one line: every control character (newlines from names or messages too) escaped."""
    from rsnn_compiler.sanitize import terminal_text

    return terminal_text(text, keep="")


def warning(message: str) -> None:
    """A result-changing warning: always shown (also with --quiet), one line of its own."""
    print(f"rsnnc: warning: {one_line(message)}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def warnings_after() -> Iterator[Callable[[str], None]]:
    """A ``warn`` for a long command (build, finetune): its warnings are printed with
    ``warning`` after it, after the progress display and also when a check stops it."""
    shown: list[str] = []
    try:
        yield shown.append
    finally:
        for message in shown:
            warning(message)


def trim_to_build_steps(manifest: dict, x, err, quiet: bool):
    """A build whose temporal pruning chose T runs only the first T steps of the data."""
    steps = manifest.get("steps")
    if steps and x.shape[0] > steps:
        if not quiet:
            err.print(f"[dim]rsnnc:[/dim] the build runs {steps} of the {x.shape[0]} input steps (temporal pruning)",
                      highlight=False, markup=True)
        return x[:steps]
    return x
