"""What an executor returns: the output node's value plus every node's spikes and states."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RunResult:
    """Arrays are shaped (time, batch, *features).

    ``values`` holds every node's output per step; ``spikes`` the outputs of spiking neurons;
    ``states`` the neuron states after each step keyed ``"v/<node>"``, ``"i/<node>"``,
    ``"a/<node>"``.
    """

    out: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    states: dict[str, np.ndarray] = field(default_factory=dict)

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        """Flat mapping for ``np.savez``: ``out``, ``spikes/<node>``, ``v/<node>``, ..."""
        data = {"out": self.out}
        data.update({f"spikes/{k}": v for k, v in self.spikes.items()})
        data.update(self.states)
        return data
