"""Lava-target constants (the fixed-point ones live in ``rsnn_compiler.fixed.profiles.Loihi2Spec``)."""
from __future__ import annotations

from dataclasses import dataclass

from rsnn_compiler.fixed.profiles import LOIHI2


@dataclass(frozen=True)
class LavaSpec:
    """What the emitted Lava program can express (Lava 0.10 processes)."""

    profile: str = "loihi2"
    synapse_delay: int = 1  # Dense delivers one step later
    max_extra_delay: int = LOIHI2.max_edge_delay  # DelayDense: 0..63 more
    graded_message_bits: int = LOIHI2.message_bits_max  # num_message_bits of graded connections
    lif_scalar_params: tuple[str, ...] = ("du", "dv", "vth")  # Lava LIF takes these per process
    # A connection whose weight matrix has at most this fraction of nonzeros becomes Lava
    # ``Sparse`` / ``DelaySparse`` (CSR: work and memory follow the nonzeros) instead of Dense.
    sparse_max_density: float = 0.5
    max_lif_split: int = 4  # split a LIF population into at most this many Lava LIFs, else custom
    lif_bias_mant_range: tuple[int, int] = (-(1 << 15), (1 << 15) - 1)  # int16 Var
    runner_files: tuple[str, ...] = ("lava_runner.py", "lava_custom_neurons.py")
    definition_dir: str = "rsnn_neurons"  # copy of rsnn_compiler/neurons (the neuron definition)
    network_file: str = "network.json"
    arrays_file: str = "arrays.npz"
    stages_file: str = "stages.json"


LAVA_SPEC = LavaSpec()
