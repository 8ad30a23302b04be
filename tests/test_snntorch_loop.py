"""snnTorch models as people write them: forward loops over time with explicit state.

Differential: the model's own ``forward`` against ``run_float`` of the imported graph, spike for
spike over >= 100 steps; the tutorial-style classes in models/snntorch_tutorial (briefly trained)
also build for c, gpu (and lava where its environment exists) and validate from the CLI.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import zlib

import numpy as np
import pytest
import torch
from torch import nn

import snntorch as snn
from snntorch import utils as snn_utils

from rsnn_compiler.cli.main import main
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.frontend_api import ImportOptions
from rsnn_compiler.frontends.pytorch_import import import_module
from rsnn_compiler.interpreter.float_interp import run_float

from models.snntorch_tutorial import model as tutorial

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "models" / "snntorch_tutorial"
STEPS = 120


def spikes_in(steps, batch, n, p=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, batch, n, generator=gen) < p).float()


def assert_exact(net: nn.Module, x: torch.Tensor):
    """Import with x as calibration data (the fidelity check runs net(x)), then compare outputs."""
    result = import_module(net, options=ImportOptions(calib_x=x.numpy()))
    fid = result.report.fidelity
    assert fid["exact"] and fid["total_mismatches"] == 0 and fid["steps"] == x.shape[0]
    with torch.no_grad():
        out = net(x)
    out = out[0] if isinstance(out, tuple) else out
    got = run_float(result.graph, x.numpy()).out
    assert np.array_equal(out.numpy(), got), f"{int((out.numpy() != got).sum())} output mismatches"
    assert out.sum() > 0, "the network never spikes"
    return result


def load_tutorial(name: str) -> nn.Module:
    net = getattr(tutorial, name)(hidden=64)
    ckpt = torch.load(TUTORIAL / f"{name}.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(ckpt["model_state_dict"])
    return net.eval()


# ------------------------------------------------------------------------------------------
# Differential tests
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["feedforward", "recurrent"])
def test_trained_tutorial_models_are_spike_exact(name):
    net = load_tutorial(name)
    with np.load(TUTORIAL / "data.npz") as d:
        x = torch.from_numpy(np.tile(d["x"][:, :8], (7, 1, 1)))  # 119 steps of real inputs
    result = assert_exact(net, x)
    assert any("time loop" in n for n in result.report.notes)
    assert assert_exact(net, spikes_in(STEPS, 4, 8, seed=3)) is not None


class Loop(nn.Module):
    """One hidden cell of any kind between two Linears, stepped by hand with explicit state."""

    def __init__(self, kind, mech, delay, n_in=12, hidden=24, n_out=6):
        super().__init__()
        gen = torch.Generator().manual_seed(zlib.crc32(f"{kind}{mech}{delay}".encode()))
        beta = torch.rand(hidden, generator=gen) * 0.5 + 0.5
        kw = dict(beta=beta, threshold=torch.rand(hidden, generator=gen) * 0.5 + 0.5,
                  reset_mechanism=mech, reset_delay=delay)
        self.kind = kind
        self.fc1 = nn.Linear(n_in, hidden)
        if kind == "Leaky":
            self.cell = snn.Leaky(**kw)
        elif kind == "Synaptic":
            self.cell = snn.Synaptic(alpha=torch.rand(hidden, generator=gen) * 0.5 + 0.4, **kw)
        elif kind == "RLeaky":
            self.cell = snn.RLeaky(linear_features=hidden, **kw)
        else:
            self.cell = snn.RSynaptic(alpha=torch.rand(hidden, generator=gen) * 0.5 + 0.4, linear_features=hidden, **kw)
        self.fc2 = nn.Linear(hidden, n_out)
        self.out = snn.Leaky(beta=0.9, reset_mechanism=mech, reset_delay=delay)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.rand(self.fc1.weight.shape, generator=gen) - 0.3)
            self.fc2.weight.copy_(torch.rand(self.fc2.weight.shape, generator=gen) - 0.3)

    def forward(self, x):
        mem_o = self.out.init_leaky()
        z = torch.zeros(x.shape[1], self.fc1.out_features)
        state = {"Leaky": (z,), "Synaptic": (z, z), "RLeaky": (z, z), "RSynaptic": (z, z, z)}[self.kind]
        rec = []
        for x_t in x:  # iterating over the input also works
            out = self.cell(self.fc1(x_t), *state)
            spk = out[0]
            state = tuple(out) if self.kind in ("RLeaky", "RSynaptic") else tuple(out[1:])
            spk_o, mem_o = self.out(self.fc2(spk), mem_o)
            rec.append(spk_o)
        return torch.stack(rec)


@pytest.mark.parametrize("kind,mech,delay", list(itertools.product(
    ["Leaky", "Synaptic", "RLeaky", "RSynaptic"], ["subtract", "zero"], [True, False])))
def test_every_cell_in_a_loop_matches_its_forward(kind, mech, delay):
    assert_exact(Loop(kind, mech, delay), spikes_in(STEPS, 3, 12, seed=1))


class HiddenStateConv(nn.Module):
    """init_hidden cells, reset in forward, a conv front end and a view() flatten."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, padding=1)
        self.lif1 = snn.Leaky(beta=0.8, init_hidden=True)
        self.fc = nn.Linear(4 * 10, 5)
        self.lif2 = snn.Leaky(beta=0.7, init_hidden=True, output=True)

    def forward(self, x):
        snn_utils.reset(self)
        rec = []
        for step in range(x.shape[0]):
            h = self.lif1(self.conv(x[step]))
            spk, _mem = self.lif2(self.fc(h.view(h.shape[0], -1)))
            rec.append(spk)
        return torch.stack(rec, dim=0)


class ResetMemLoop(nn.Module):
    """Neurons keep their own state between calls; forward starts with reset_mem()."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 20)
        self.lif1 = snn.Leaky(beta=0.9)
        self.fc2 = nn.Linear(20, 5)
        self.syn2 = snn.Synaptic(alpha=0.5, beta=0.9)

    def forward(self, x):
        self.lif1.reset_mem()
        self.syn2.reset_mem()
        out = []
        for t in range(x.shape[0]):
            spk1, _mem1 = self.lif1(self.fc1(x[t]))
            spk2, _syn2, _mem2 = self.syn2(self.fc2(spk1))
            out.append(spk2)
        return torch.stack(out)


def test_reset_mem_loop_with_internal_state():
    torch.manual_seed(0)
    net = ResetMemLoop()
    with torch.no_grad():
        net.fc1.weight.mul_(3.0)
        net.fc2.weight.mul_(3.0)
    assert_exact(net, spikes_in(STEPS, 3, 12, seed=5))


def test_init_hidden_conv_loop_with_view_flatten():
    torch.manual_seed(0)
    x = (torch.rand(STEPS, 3, 2, 10) < 0.4).float()
    net = HiddenStateConv()
    with torch.no_grad():
        net.conv.weight.mul_(3.0)
        net.fc.weight.mul_(4.0)
        net.fc.bias.add_(0.3)
    res = assert_exact(net, x)
    assert [type(op).__name__ for op in res.graph.nodes.values()].count("Flatten") == 1


class StaticInput(nn.Module):
    """snnTorch tutorial 5: the same x (batch, features) is fed to every step of a fixed loop."""

    NUM_STEPS = 100

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 20)
        self.lif1 = snn.Leaky(beta=0.95)
        self.fc2 = nn.Linear(20, 5)
        self.lif2 = snn.Leaky(beta=0.95)

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec, mem2_rec = [], []
        for _step in range(self.NUM_STEPS):
            cur1 = self.fc1(x)
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)


def test_static_input_loop_reads_x_every_step():
    torch.manual_seed(0)
    net = StaticInput()
    with torch.no_grad():
        net.fc1.weight.mul_(2.0)
        net.fc2.weight.mul_(3.0)
    result = import_module(net)
    assert any("static input" in n for n in result.report.notes)
    fid = result.report.fidelity
    assert fid["exact"] and fid["steps"] == 100 and all(v["spikes_source"] > 0 for v in fid["layers"].values())
    x = torch.rand(4, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = net(x)[0].numpy()
    got = run_float(result.graph, np.repeat(x.numpy()[None], 100, axis=0)).out
    assert np.array_equal(got, ref)


# ------------------------------------------------------------------------------------------
# What cannot be compiled: one line naming the construct and the line of the user's code
# ------------------------------------------------------------------------------------------
class Bad(nn.Module):
    def __init__(self, variant):
        super().__init__()
        self.variant = variant
        self.fc1 = nn.Linear(4, 6)
        self.lif1 = snn.Leaky(beta=0.9)
        self.fc2 = nn.Linear(6, 3)
        self.lif2 = snn.Leaky(beta=0.9)

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        rec = []
        for step in range(x.shape[0]):
            cur1 = self.fc1(x[step])
            if self.variant == "mul":
                cur1 = cur1 * 2.0  # BAD-MUL
            spk1, mem1 = self.lif1(cur1, mem1)
            if self.variant == "state":
                mem1 = self.lif1.init_leaky()  # state thrown away every step
            feed = mem1 if self.variant == "membrane" else spk1
            spk2, mem2 = self.lif2(self.fc2(feed), mem2)
            rec.append(mem2 if self.variant == "return_mem" else spk2)
        if self.variant == "last":
            return spk2
        return torch.stack(rec)


@pytest.mark.parametrize("variant,needle", [
    ("mul", "'mul' between layers cannot be compiled"),
    ("state", "is not its own output of the previous step"),
    ("membrane", "fed the membrane (or current) of 'lif1'"),
    ("return_mem", "holds the membrane of 'lif2'"),
    ("last", "not a per-step output stacked over time"),
])
def test_untraceable_forward_is_refused_with_its_line(variant, needle):
    with pytest.raises(UserInputError) as err:
        import_module(Bad(variant), options=ImportOptions(extra={"skip_fidelity": True}))
    msg = str(err.value)
    assert needle in msg and "\n" not in msg
    assert msg.startswith("test_snntorch_loop.py:") and "in forward" in msg
    if variant == "mul":
        line = next(i for i, l in enumerate(pathlib.Path(__file__).read_text().splitlines(), 1) if "BAD-MUL" in l)
        assert msg.startswith(f"test_snntorch_loop.py:{line} ")


# ------------------------------------------------------------------------------------------
# README commands: build for c, gpu (and lava) and validate
# ------------------------------------------------------------------------------------------
def _targets() -> str:
    from rsnn_compiler.backends.lava import env as lava_env

    status = lava_env.lava_status()
    if not status.found and os.environ.get("CI"):
        pytest.fail(f"Lava environment required in CI: {status.reason}")
    return "lava,c,gpu" if status.found else "c,gpu"


@pytest.mark.parametrize("name", ["feedforward", "recurrent"])
def test_tutorial_models_build_and_validate_from_the_cli(name, tmp_path, capsys):
    targets = _targets() if name == "recurrent" else "c,gpu"  # one Lava run is enough
    out = tmp_path / name
    code = main(["build", f"models.snntorch_tutorial.model:{name}", "--weights", str(TUTORIAL / f"{name}.pt"),
                 "--calib", str(TUTORIAL / "data.npz"), "--target", targets, "-o", str(out), "-q",
                 "--accept-accuracy-loss"])  # recurrent: 60.55 % float, 55.47 % (fpga) / 49.61 % (loihi2)
    assert code == 0, capsys.readouterr().err
    assert main(["validate", str(out), "--data", str(TUTORIAL / "data.npz"), "-q"]) == 0
    report = json.loads((out / "validate.json").read_text())
    assert {c["executor"] for c in report["executors"]} == set(targets.split(","))
    assert all(c["status"] == "equal" for c in report["executors"])
