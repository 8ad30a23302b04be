"""Suite-wide settings: one torch thread per test process (the suite runs under pytest-xdist;
small per-step tensors are far faster single-threaded on a busy 2-core machine)."""

import torch

torch.set_num_threads(1)


import pytest  # noqa: E402


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
