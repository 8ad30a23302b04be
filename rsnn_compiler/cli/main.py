"""The ``rsnnc`` command line (docs/design.md, "Command line").

Exit codes: 0 ok, 1 a check failed, 2 bad input or usage, 3 internal error (a bug: please
report it with the output of ``--debug``). Errors are one line on stderr; ``--debug`` shows the
traceback. Commands are click commands, one module each in ``rsnn_compiler/cli/commands/``,
imported only when named (``BUILTIN_COMMANDS``, plus extensions in ``registry.COMMANDS``).
"""

from __future__ import annotations

import sys
import traceback

import rich_click as click

from rsnn_compiler import __version__, registry
from rsnn_compiler.cli.common import Session, epilog, one_line

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

# command name -> "module:attribute" of a click command, in the order ``rsnnc --help`` lists them
BUILTIN_COMMANDS: dict[str, str] = {
    "build": "rsnn_compiler.cli.commands.build:command",
    "validate": "rsnn_compiler.cli.commands.validate:command",
    "finetune": "rsnn_compiler.cli.commands.finetune:command",
    "sensitivity": "rsnn_compiler.cli.commands.sensitivity:command",
    "sweep": "rsnn_compiler.cli.commands.sweep:command",
    "run": "rsnn_compiler.cli.commands.run:command",
    "report": "rsnn_compiler.cli.commands.report:command",
    "inspect": "rsnn_compiler.cli.commands.inspect:command",
    "export": "rsnn_compiler.cli.commands.export:command",
    "plot": "rsnn_compiler.cli.commands.plot:command",
    "passes": "rsnn_compiler.cli.commands.passes:command",
    "targets": "rsnn_compiler.cli.commands.targets:command",
}


def all_commands() -> dict[str, str]:
    """Built-in commands, then the extensions registered in ``registry.COMMANDS``."""
    return {**BUILTIN_COMMANDS, **{k: v for k, v in registry.COMMANDS.items() if k not in BUILTIN_COMMANDS}}


class LazyGroup(click.RichGroup):
    """A group that imports a command's module only when that command is named or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(all_commands())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        spec = all_commands().get(name)
        return None if spec is None else registry.resolve(spec)


ROOT_TEXT = """Run `rsnnc COMMAND --help` for the options and runnable examples of each command.

Shell completion: eval "$(_RSNNC_COMPLETE=bash_source rsnnc)" in ~/.bashrc (zsh_source for zsh,
fish_source for fish).

Exit codes: 0 ok, 1 a check failed, 2 bad input or usage, 3 internal error (rerun with --debug)."""


@click.group(
    "rsnnc", cls=LazyGroup, epilog=epilog(text=ROOT_TEXT),
    help="Compile trained spiking neural networks to Loihi 2 (Lava), fixed-point C and GPU,"
    " and check that every integer executor computes the same spikes.",
)
@click.version_option(__version__, "--version", prog_name="rsnnc", message="%(prog)s %(version)s")
def cli() -> None:
    pass


def _say(text: str) -> None:
    """One line on stderr (control characters in names and messages escaped)."""
    print(one_line(text), file=sys.stderr)


def exit_code_for(exc: BaseException, session: Session) -> int:
    """The one place that turns an exception into an exit code and one line on stderr."""
    from rsnn_compiler.artifact import Terminated
    from rsnn_compiler.errors import RsnncError

    if isinstance(exc, click.UsageError):
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _say(f"rsnnc: error: {exc.format_message()}{where}")
        return EXIT_USAGE
    if isinstance(exc, click.ClickException):
        _say(f"rsnnc: error: {exc.format_message()}")
        return exc.exit_code
    if isinstance(exc, (KeyboardInterrupt, click.Abort)):
        _say("rsnnc: interrupted; nothing was written")
        return EXIT_INTERRUPTED
    if isinstance(exc, Terminated):
        _say(f"rsnnc: terminated by signal {exc.signum}; nothing was written")
        return 128 + exc.signum
    if session.debug:
        traceback.print_exception(exc)
    if isinstance(exc, RsnncError):
        _say(f"rsnnc: error: {exc}")
        for diag in getattr(exc, "diagnostics", [])[1:]:
            _say(f"rsnnc: error: {diag}")
        return exc.exit_code
    lines = str(exc).strip().splitlines()
    msg = lines[0] if lines else ""
    _say(f"rsnnc: internal error: {type(exc).__name__}: {msg} (rerun with --debug and report it)")
    return EXIT_INTERNAL


def main(argv: list[str] | None = None) -> int:
    """Run ``rsnnc`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    from rsnn_compiler.artifact import signals_unwind

    session = Session()
    try:
        with signals_unwind():  # SIGTERM/SIGHUP unwind, so temporary files are removed
            code = cli.main(args=argv, prog_name="rsnnc", standalone_mode=False, obj=session)
    except SystemExit as exc:  # rich-click exits itself for shell completion and a bare `rsnnc`
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_USAGE)
    except BaseException as exc:  # noqa: BLE001 - every failure leaves through exit_code_for
        return exit_code_for(exc, session)
    return code if isinstance(code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
