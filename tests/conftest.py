"""Suite-wide settings: one torch thread per test process (the suite runs under pytest-xdist;
small per-step tensors are far faster single-threaded on a busy 2-core machine), and the Lava
environment fixtures: tests that need it skip locally and fail under ``CI`` when it is missing."""

import os
from pathlib import Path

import pytest
import rsnn_compiler  # noqa: F401  (first: requests oneMKL strict mode before any torch product, float_repro.py)
import torch

torch.set_num_threads(1)


def _python(status) -> Path:
    if not status.found:
        if os.environ.get("CI"):
            pytest.fail(f"the Lava environment is required in CI: {status.reason}")
        pytest.skip(status.reason)
    assert status.python is not None
    return status.python


@pytest.fixture(scope="session")
def lava_python() -> Path:
    """The Python 3.10 interpreter with Lava (scripts/setup_lava.sh)."""
    from rsnn_compiler.backends.lava.env import lava_status

    return _python(lava_status())


@pytest.fixture(scope="session")
def netx_python() -> Path:
    """The same interpreter, checked to import lava-dl's netx as well."""
    from rsnn_compiler.backends.lava.env import netx_status

    return _python(netx_status())


@pytest.fixture
def cli_run(capsys):
    """``cli_run(*argv) -> (exit code, stdout, stderr)`` of ``rsnnc`` run in-process."""
    from rsnn_compiler.cli.main import main

    def run(*argv):
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
