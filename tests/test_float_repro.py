"""Float32 products independent of batch layout (rsnn_compiler/float_repro.py): importing
rsnn_compiler puts oneMKL in strict reproducibility mode before torch runs a product, a user's own
MKL_CBWR wins, and an import whose fidelity check fails in a process where the mode could not take
effect stops with exit-2 advice instead of blaming the model."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from rsnn_compiler.errors import CheckFailed, UserInputError
from rsnn_compiler.float_repro import ENV, STRICT_SETTING, strict_mode

PROBE = """
import sys
{before}
import rsnn_compiler, torch, torch.nn.functional as F
from rsnn_compiler.float_repro import row_independent, strict_mode
torch.set_num_threads({threads})
g = torch.Generator().manual_seed(0)
w, b = torch.randn(5, 64, generator=g), torch.randn(5, generator=g)
x = (torch.rand(200, 64, generator=g) < 0.4).float() * torch.rand(200, 64, generator=g)
full = F.linear(x, w, b)
per_step = torch.cat([F.linear(x[i:i + 2], w, b) for i in range(0, 200, 2)])
one = torch.cat([F.linear(x[i:i + 1], w, b) for i in range(200)])
print(strict_mode(), int((full != per_step).sum()), int((full != one).sum()), row_independent())
"""


def _probe(before: str = "", threads: int = 1, env_value: str | None = None) -> tuple[str, int, int, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if env_value is not None:
        env[ENV] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE.format(before=before, threads=threads)], env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    return out[0], int(out[1]), int(out[2]), out[3]


def test_the_import_requests_strict_mode_without_overriding_the_user():
    assert os.environ.get(ENV)  # conftest imported rsnn_compiler: set for this process and its children
    mode, *_ = _probe(env_value="COMPATIBLE")
    if strict_mode() is None:
        pytest.skip("this torch has no oneMKL")
    assert mode == "False"  # the user's non-strict choice is kept


@pytest.mark.parametrize("threads", [1, 2])
def test_products_do_not_depend_on_rows_per_call_or_threads(threads):
    """The same rows through one (200, 64) call, 100 calls of 2 rows and 200 of 1 give the same bits."""
    mode, per_step, one, independent = _probe(threads=threads)
    if mode == "None":
        pytest.skip("this torch has no oneMKL")
    assert (mode, per_step, one, independent) == ("True", 0, 0, "True")


def test_an_sse_branch_is_not_taken_as_row_independent():
    """COMPATIBLE,STRICT is strict but its products still depend on the rows per call (measured):
    row_independent says False, so the float runtime steps and fidelity failures name the fix."""
    mode, _per_step, _one, independent = _probe(env_value="COMPATIBLE,STRICT")
    if mode == "None":
        pytest.skip("this torch has no oneMKL")
    assert (mode, independent) == ("True", "False")


def test_a_product_before_the_import_is_reported():
    mode, *_ = _probe(before="import torch; torch.ones(300, 64) @ torch.ones(64, 5)")
    if mode == "None":
        pytest.skip("this torch has no oneMKL")
    assert mode == "False"  # oneMKL initialised before MKL_CBWR was set: the setting cannot apply


def _mismatching(monkeypatch, hint: str):
    import rsnn_compiler.frontends.pytorch_import as imp

    def compare(src, graph, neurons, x, origin):
        return {"input": origin, "steps": 1, "batch": 1, "total_mismatches": 3, "exact": False,
                "layers": {n: {"mismatches": 3} for n in neurons.values()}}

    monkeypatch.setattr(imp, "layout_hint", lambda: hint)
    monkeypatch.setattr(imp, "compare_spikes", compare)
    monkeypatch.setattr(imp, "measure_fidelity", lambda layers, graph, neurons, x, origin:
                        compare(None, graph, neurons, x, origin))
    import snntorch as snn

    net = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.9, init_hidden=True))
    return lambda: imp.import_module(net, example_input=np.zeros((1, 4), np.float32))


def test_fidelity_failure_names_the_environment_fix(monkeypatch):
    run = _mismatching(monkeypatch, f"; set {ENV}={STRICT_SETTING}")
    with pytest.raises(UserInputError, match=f"differs from Sequential's own forward in 3 .*{ENV}={STRICT_SETTING}"):
        run()


def test_fidelity_failure_in_strict_mode_is_a_bug_report(monkeypatch):
    run = _mismatching(monkeypatch, "")
    with pytest.raises(CheckFailed, match="please report this model"):
        run()
