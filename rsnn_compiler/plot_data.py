"""The numbers behind ``rsnnc plot``: runs of a build on data and curves from its pass reports.

Runs use the reference interpreter: float, and the build's fixed-point graph when it has one
(what every integer executor computes, bit for bit). Definitions:

- firing rate of a layer = spikes / (neurons x steps x samples);
- activation sparsity of a layer = fraction of (neuron, step, sample) entries whose output is 0;
- accuracy after t steps = accuracy of argmax of the output summed over the first t steps;
- the fixed-point membrane potential in float units = v_fixed / 2^log2_scale, with log2_scale
  the layer's state scale from the quantize_state report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsnn_compiler.errors import UserInputError


@dataclass(frozen=True)
class Neuron:
    """One neuron of a layer: ``node`` and its flat index."""

    node: str
    index: int

    def __str__(self) -> str:
        return f"{self.node}:{self.index}"


def parse_neurons(text: str | None) -> list[Neuron]:
    """``"lif:0,lif:5"`` -> neurons (empty when ``text`` is None)."""
    if not text:
        return []
    neurons = []
    for item in text.split(","):
        node, sep, index = item.strip().rpartition(":")
        if not sep or not node or not index.isdigit():
            raise UserInputError(f"--neurons '{item.strip()}' must be NODE:INDEX (e.g. lif:0)")
        neurons.append(Neuron(node, int(index)))
    return neurons


@dataclass
class Runs:
    """Float and (when the build has one) fixed-point runs of a build on the same inputs."""

    float_run: object
    fixed_run: object | None
    profile: str | None
    y: np.ndarray | None
    state_scale: dict[str, int] = field(default_factory=dict)  # node -> log2 scale of its fixed state

    @property
    def spiking_layers(self) -> list[str]:
        return list(self.float_run.spikes)

    def main_run(self):
        """The fixed-point run when there is one (what the integer executors compute), else float."""
        return self.fixed_run if self.fixed_run is not None else self.float_run


def pass_metrics(manifest: dict, name: str) -> dict | None:
    for rep in manifest.get("passes", []):
        if rep.get("name") == name and not rep.get("skipped"):
            return rep.get("metrics", {})
    return None


def run_build(build: Path, manifest: dict, x: np.ndarray, y: np.ndarray | None) -> Runs:
    from rsnn_compiler.executors import InterpreterExecutor, fixed_profiles

    interp = InterpreterExecutor()
    profiles = fixed_profiles(manifest)
    profile = profiles[0] if profiles else None
    float_run = interp.run(build, manifest, "float", None, x)
    fixed_run = interp.run(build, manifest, "fixed", profile, x) if profile else None
    scales = {layer["node"]: int(layer["log2_scale"])
              for layer in (pass_metrics(manifest, "quantize_state") or {}).get("layers", [])}
    return Runs(float_run, fixed_run, profile, y, scales)


@dataclass(frozen=True)
class LayerActivity:
    node: str
    neurons: int
    firing_rate: float  # spikes per neuron per step
    sparsity: float  # fraction of zero outputs


def layer_activity(run) -> list[LayerActivity]:
    rows = []
    for node, spikes in run.spikes.items():
        s = np.asarray(spikes)
        neurons = int(np.prod(s.shape[2:])) if s.ndim > 2 else 1
        rows.append(LayerActivity(node, neurons, float(np.abs(s).sum() / max(s.size, 1)),
                                  float(np.mean(s == 0)) if s.size else 1.0))
    return rows


def accuracy_by_steps(out: np.ndarray, y: np.ndarray) -> np.ndarray:
    """accuracy (%) after t = 1..T steps (argmax of the output summed over the first t steps)."""
    cum = np.cumsum(np.asarray(out, np.float64).reshape(out.shape[0], out.shape[1], -1), axis=0)
    return (cum.argmax(axis=-1) == np.asarray(y)[None]).mean(axis=1) * 100.0


def membrane(runs: Runs, neuron: Neuron, sample: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(float v, fixed v in float units or None) of one neuron over time for one sample."""
    key = f"v/{neuron.node}"
    if key not in runs.float_run.states:
        known = ", ".join(sorted(k[2:] for k in runs.float_run.states if k.startswith("v/")))
        raise UserInputError(f"--neurons: '{neuron.node}' has no membrane potential; layers with one: {known}")
    v = runs.float_run.states[key]
    flat = v.reshape(v.shape[0], v.shape[1], -1)
    if not 0 <= neuron.index < flat.shape[2]:
        raise UserInputError(f"--neurons: {neuron} is out of range ({neuron.node} has {flat.shape[2]} neurons)")
    fv = flat[:, sample, neuron.index]
    if runs.fixed_run is None or key not in runs.fixed_run.states or neuron.node not in runs.state_scale:
        return fv, None
    q = runs.fixed_run.states[key]
    qv = q.reshape(q.shape[0], q.shape[1], -1)[:, sample, neuron.index].astype(np.float64)
    return fv, qv / 2.0 ** runs.state_scale[neuron.node]


def default_neurons(runs: Runs, sample: int, count: int = 3) -> list[Neuron]:
    """The ``count`` most active neurons (float spikes in ``sample``) of the first spiking layer
    that has a membrane potential."""
    for node, spikes in runs.float_run.spikes.items():
        if f"v/{node}" not in runs.float_run.states:
            continue
        s = np.abs(np.asarray(spikes)).reshape(spikes.shape[0], spikes.shape[1], -1)[:, sample]
        order = np.argsort(-s.sum(axis=0), kind="stable")[:count]
        return [Neuron(node, int(i)) for i in order]
    return []
