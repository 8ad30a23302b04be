"""Progress of long steps: one process-wide reporter that frontends, passes and backends call.

    from rsnn_compiler import progress

    for epoch in progress.track(range(epochs), "ecl: fine-tune", unit="epoch"):
        ...
    progress.step("emitting c")                      # a step without a known length
    with progress.task("lava: run", total=chunks) as bar:
        ...; bar.advance()

Library calls are silent (``Silent``). The command line installs a reporter for the length of
a command (``reporting``): a live rich display with bars and ETAs when stderr is a terminal
(``Live``), one plain line per step and task otherwise (``Plain``), nothing with ``--quiet`` or
``--json``. Reporting never changes a result.
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterable, Iterator, Protocol, TypeVar

from rsnn_compiler.sanitize import terminal_text

T = TypeVar("T")


class Reporter(Protocol):
    def step(self, message: str) -> None:
        """A step starts (replaces the previous step line)."""

    def start(self, description: str, total: int | None, unit: str) -> object:
        """A task of ``total`` units starts; returns its handle."""

    def advance(self, handle: object, n: int, detail: str | None) -> None: ...

    def finish(self, handle: object) -> None: ...


class Silent:
    """Reports nothing (library use, ``--quiet``, ``--json``)."""

    def step(self, message: str) -> None:
        pass

    def start(self, description: str, total: int | None, unit: str) -> object:
        return None

    def advance(self, handle: object, n: int, detail: str | None) -> None:
        pass

    def finish(self, handle: object) -> None:
        pass


class Plain(Silent):
    """One line on the console per step and per task (stderr is not a terminal: logs, CI)."""

    def __init__(self, console):
        self.console = console

    def _line(self, text: str) -> None:
        from rich.markup import escape

        self.console.print(f"[dim]rsnnc:[/dim] {escape(terminal_text(text))}", highlight=False, markup=True, soft_wrap=True)

    def step(self, message: str) -> None:
        self._line(message)

    def start(self, description: str, total: int | None, unit: str) -> object:
        self._line(f"{description} ({total} {unit}{'s' if total != 1 else ''})" if total else description)
        return None


class Live:
    """A rich live display on a terminal: the current step with its elapsed time, and one bar
    with count, elapsed time and ETA per task."""

    def __init__(self, console):
        from rich.progress import (BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        from rich.text import Text

        class Sized(ProgressColumn):
            """Render ``column`` only for tasks of known length."""

            def __init__(self, column):
                super().__init__()
                self.column = column

            def render(self, task):
                return self.column(task) if task.total is not None else Text("")

        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}", style="progress.description", markup=False),
            Sized(BarColumn(bar_width=30)), TextColumn("{task.fields[count]}"), TimeElapsedColumn(),
            Sized(TextColumn("eta")), Sized(TimeRemainingColumn()), TextColumn("{task.fields[detail]}", style="dim", markup=False),
            console=console, transient=True,
        )
        self._step = None
        self._units: dict[object, str] = {}

    def __enter__(self) -> "Live":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def step(self, message: str) -> None:
        message = terminal_text(message)
        if self._step is None:
            self._step = self.progress.add_task(message, total=None, count="", detail="")
        else:
            self.progress.update(self._step, description=message)

    def _count(self, handle, done: float) -> str:
        task = self.progress._tasks[handle]
        return f"{int(done)}/{int(task.total)} {self._units[handle]}{'s' if task.total != 1 else ''}"

    def start(self, description: str, total: int | None, unit: str) -> object:
        handle = self.progress.add_task(terminal_text(description), total=total, count="", detail="")
        self._units[handle] = terminal_text(unit)
        if total is not None:
            self.progress.update(handle, count=self._count(handle, 0))
        return handle

    def advance(self, handle: object, n: int, detail: str | None) -> None:
        task = self.progress._tasks[handle]
        fields = {"detail": terminal_text(detail)} if detail is not None else {}
        if task.total is not None:
            fields["count"] = self._count(handle, task.completed + n)
        self.progress.update(handle, advance=n, **fields)

    def finish(self, handle: object) -> None:
        self.progress.remove_task(handle)
        self._units.pop(handle, None)


_reporter: Reporter = Silent()


@contextlib.contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Install ``reporter`` for the block (the command line does this once per command)."""
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        if isinstance(reporter, contextlib.AbstractContextManager):
            with reporter:
                yield reporter
        else:
            yield reporter
    finally:
        _reporter = previous


def for_console(console, quiet: bool) -> Reporter:
    """Silent when quiet, live bars on a terminal, plain lines otherwise."""
    if quiet:
        return Silent()
    return Live(console) if console.is_terminal else Plain(console)


def step(message: str) -> None:
    """Report that a step starts (e.g. ``"[2/4] quantize_weights"``)."""
    _reporter.step(message)


class Task:
    """A running task; ``advance`` it as units complete."""

    def __init__(self, description: str, total: int | None, unit: str):
        self.started = time.perf_counter()
        self._reporter = _reporter
        self._handle = self._reporter.start(description, total, unit)

    def advance(self, n: int = 1, detail: str | None = None) -> None:
        self._reporter.advance(self._handle, n, detail)

    def close(self) -> None:
        self._reporter.finish(self._handle)


@contextlib.contextmanager
def task(description: str, total: int | None = None, unit: str = "step") -> Iterator[Task]:
    """A task of ``total`` units (None: unknown length) for the block."""
    t = Task(description, total, unit)
    try:
        yield t
    finally:
        t.close()


def track(items: Iterable[T], description: str, total: int | None = None, unit: str = "step") -> Iterator[T]:
    """Yield ``items``, advancing a task by one per item (``total`` defaults to ``len(items)``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with task(description, total, unit) as t:
        for item in items:
            yield item
            t.advance()
