"""Pass options are typed (rsnn_compiler/pass_options.py): every pass declares the dataclasses it
reads, nothing reads a string-keyed option dictionary, bad values are refused when the options
are made, and the command-line flags reach the fields the passes read."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from rsnn_compiler import registry
from rsnn_compiler.errors import PipelineError, UserInputError
from rsnn_compiler.pass_options import (
    PassOptions, PruneSpatialOptions, PruneStructure, PruneTemporalOptions, RetargetStockOptions, StockNeurons,
)
from rsnn_compiler.passes_api import PassContext

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example" / "recurrent.rsnn"
CALIB = ROOT / "models" / "example" / "data.npz"


@pytest.mark.parametrize("name", sorted(registry.PASSES))
def test_every_pass_declares_dataclass_options(name):
    cls = type(registry.get_pass(name))
    for opt in getattr(cls, "option_types", ()):
        assert dataclasses.is_dataclass(opt) and opt.__dataclass_params__.frozen, (name, opt)


def test_no_code_reads_options_by_string_key():
    pattern = re.compile(r"ctx\.options\s*(\[|\.get\(|\.setdefault\(|\.update\()")
    offenders = [f"{p.relative_to(ROOT)}:{i}" for folder in ("rsnn_compiler", "passes", "backends", "frontends")
                 for p in (ROOT / folder).rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_context_takes_typed_objects_only():
    with pytest.raises(TypeError, match="typed objects"):
        PassContext(options={"prune_fraction": 0.5})
    with pytest.raises(TypeError, match="dataclass instances"):
        PassContext(options=[0.5])
    ctx = PassContext(options=[PruneSpatialOptions(fraction=0.5)])
    assert ctx.options.of(PruneSpatialOptions).fraction == 0.5
    assert ctx.options.of(PruneTemporalOptions) == PruneTemporalOptions()  # defaults when absent
    from rsnn_compiler.finetune_build import QatOptions

    with pytest.raises(PipelineError, match="needs QatOptions"):
        ctx.options.of(QatOptions)  # no defaults: must be given
    replaced = ctx.options.with_(PruneSpatialOptions(fraction=0.25))
    assert replaced.of(PruneSpatialOptions).fraction == 0.25 and isinstance(replaced, PassOptions)


@pytest.mark.parametrize("make,needle", [
    (lambda: PruneSpatialOptions(fraction=1.0), "fraction = 1.0 must be in [0.0, 1.0)"),
    (lambda: PruneSpatialOptions(structure="rows"), "structure 'rows' is not one of"),
    (lambda: PruneSpatialOptions(rounds=0), "rounds = 0 must be >= 1"),
    (lambda: PruneSpatialOptions(tolerance=float("nan")), "must be finite"),
    (lambda: PruneTemporalOptions(kl_tolerance=-1), "kl_tolerance = -1 must be >= 0"),
    (lambda: RetargetStockOptions(mode="loihi"), "--stock-neurons loihi: choose one of lava, netx"),
    (lambda: RetargetStockOptions(finetune_epochs="x"), "is not a valid int"),
])
def test_bad_values_are_refused_when_made(make, needle):
    with pytest.raises(UserInputError, match=re.escape(needle)):
        make()


def test_values_are_normalised_to_their_types():
    opts = PruneSpatialOptions(fraction="0.5", structure="channels", exclude=["a"], curve=[0, 0.5])
    assert opts.fraction == 0.5 and opts.structure is PruneStructure.CHANNELS
    assert opts.exclude == ("a",) and opts.curve == (0.0, 0.5)
    assert RetargetStockOptions(mode="netx").mode is StockNeurons.NETX


def test_cli_flags_reach_the_pass_fields(tmp_path, cli_run):
    out = tmp_path / "b"
    code, _, err = cli_run("build", EXAMPLE, "-o", out, "--target", "c", "--calib", CALIB, "--prune", "0.5",
                           "--prune-structure", "neurons", "--time-kl", "0.2", "--time-tolerance", "3", "-q")
    assert code == 0, err
    reports = {r["name"]: r for r in json.loads((out / "manifest.json").read_text())["passes"]}
    spatial, temporal = reports["prune_spatial"]["metrics"], reports["prune_temporal"]["metrics"]
    assert spatial["structure"] == "neurons" and spatial["fraction_requested"] == 0.5
    assert temporal["kl_tolerance"] == 0.2 and temporal["accuracy_tolerance"] == 3.0
    code, _, err = cli_run("build", EXAMPLE, "-o", tmp_path / "c", "--time-kl", "0.2")
    assert code == 2 and "pruning options need --prune" in err
