"""Running the user's code (a ``pkg.module:factory``, its module, a trusted pickle) without
giving up the exit-code contract.

Inside ``guard(what)`` every way user code can leave other than returning becomes one
``UserInputError`` line (exit 2): ``sys.exit``/``SystemExit`` (even with status 0), any other
``BaseException`` subclass, and ``os._exit`` (replaced for the duration by a function that
raises instead of ending the process). ``KeyboardInterrupt`` and ``artifact.Terminated`` (Ctrl-C,
SIGTERM) pass through unchanged, as do rsnnc's own errors. With ``exceptions=True`` ordinary
exceptions are converted too (for the import and factory call themselves; elsewhere they are
the frontend's to report).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from rsnn_compiler.artifact import Terminated
from rsnn_compiler.errors import RsnncError, UserInputError


class _ExitCalled(BaseException):
    """Raised by the stand-in for ``os._exit`` inside ``guard``."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


def first_line(exc: BaseException, limit: int = 160) -> str:
    """``exc``'s message as one short line (empty messages give '')."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else ""


@contextlib.contextmanager
def guard(what: str, exceptions: bool = False) -> Iterator[None]:
    """Run user code; see the module docstring. ``what`` names it in the message (e.g.
    ``"model factory mypkg.nets:make"``)."""
    real_exit = os._exit

    def stand_in(status=0):
        raise _ExitCalled(status)

    os._exit = stand_in
    try:
        yield
    except (RsnncError, KeyboardInterrupt, Terminated):
        raise
    except _ExitCalled as exc:
        raise UserInputError(f"{what} called os._exit({exc.status}) instead of returning; a model factory must"
                             " return a torch.nn.Module") from None
    except SystemExit as exc:
        raise UserInputError(f"{what} called sys.exit({exc.code!r}) instead of returning; a model factory must"
                             " return a torch.nn.Module") from None
    except Exception as exc:
        if not exceptions:
            raise
        raise UserInputError(f"{what} failed ({type(exc).__name__}: {first_line(exc)})") from None
    except BaseException as exc:  # a user-defined BaseException subclass
        raise UserInputError(f"{what} raised {type(exc).__name__}: {first_line(exc)}") from None
    finally:
        os._exit = real_exit
