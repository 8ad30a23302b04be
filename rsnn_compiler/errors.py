"""Error types. Each maps to a CLI exit code: 2 for bad input or usage, 1 for a failed check."""

from __future__ import annotations


class RsnncError(Exception):
    """Base error; ``str(err)`` is a single line naming the problem and the fix."""

    exit_code = 2


class UserInputError(RsnncError):
    """The input file, option or model is invalid or unsupported (exit 2)."""


class VerificationError(UserInputError):
    """The IR breaks an invariant; ``problems`` lists every violation found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        head = self.problems[0] if self.problems else "invalid graph"
        more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
        super().__init__(head + more)


class PipelineError(UserInputError):
    """A pass pipeline is ill-formed (wrong order, missing prerequisite)."""


class CheckFailed(RsnncError):
    """A requested check failed (executors disagree, accuracy below a bound): exit 1."""

    exit_code = 1
