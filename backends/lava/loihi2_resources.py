"""Loihi 2 resource model: every figure the mapper uses, with its source and confidence.

Intel has not published Loihi 2's per-core packing rules (lava-loihi's constraint database is
closed, lava-optimization#163). Each ``Figure`` therefore says where its number comes from and
whether it is an estimate; docs/loihi2-mapping.md §1 is the same table in prose. Change a figure
by building a new ``Loihi2Resources`` (e.g. ``dataclasses.replace``), never inline.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    """One number of the model with its provenance."""

    value: int
    unit: str
    source: str
    estimate: bool  # True: not a published Loihi 2 figure (derived, Loihi 1, or secondary)


@dataclass(frozen=True)
class Board:
    name: str
    chips: int
    source: str


BOARDS: dict[str, Board] = {
    "oheo_gulch": Board("oheo_gulch", 1, "Intel Oheo Gulch single-chip board (heise, open-neuromorphic.org)"),
    "kapoho_point": Board("kapoho_point", 8, "Intel Kapoho Point, 8 chips (heise, fbhtechinfo)"),
    "hala_point": Board("hala_point", 1152, "Intel Hala Point, 1152 chips (eenewseurope, Intel 2024)"),
}

DEFAULT_BOARD = "kapoho_point"

# per-neuron state bits by IR neuron kind (Lava: u, v 24-bit; a adaptive threshold 24; c count 24)
STATE_BITS: dict[str, int] = {
    "fixed_lif": 48, "fixed_alif": 72, "fixed_li": 48, "fixed_dual_if": 48, "fixed_mtn": 24,
}


def _fig(value: int, unit: str, source: str, estimate: bool) -> Figure:
    return Figure(value, unit, source, estimate)


@dataclass(frozen=True)
class Loihi2Resources:
    """Per-core and per-chip limits used by ``backends/lava/map_loihi2.py``."""

    neurons_per_core: Figure = _fig(
        8192, "neurons", "1 M neurons/chip / 128 cores (Intel brief via open-neuromorphic.org); "
        "real limit set by per-core memory", True)
    core_memory_bits: Figure = _fig(
        128 * 1024 * 8, "bits", "128 KB SRAM per core 'flexibly partitioned' between synapses and "
        "neuron state (heise, fbhtechinfo; primary table not found; 192 KB also quoted)", True)
    in_axons_per_core: Figure = _fig(
        4096, "axons", "Loihi 1 value (nengo-loihi block.py: 4096 input axons/core); Loihi 2 unpublished", True)
    out_axons_per_core: Figure = _fig(
        4096, "axons", "Loihi 1 value (nengo-loihi block.py: 4096 output axons/core); Loihi 2 unpublished", True)
    cores_per_chip: Figure = _fig(
        120, "cores", "128 physical; Lava's mapper allocates 120 per chip (magma constants.py "
        "NUM_VIRTUAL_CORES_L3 = 120; Hala Point 140 544 cores / 1152 chips ~ 122)", False)
    neurons_per_chip: Figure = _fig(1_000_000, "neurons", "Intel Loihi 2 brief: up to 1 M neurons/chip", False)
    synapses_per_chip: Figure = _fig(120_000_000, "synapses", "Intel Loihi 2 brief: up to 120 M synapses/chip", False)
    sparse_index_bits: Figure = _fig(
        12, "bits", "per-synapse index of a sparse row (log2 of 4096 axons); rsnnc assumption modelled on "
        "Loihi 1's sparse synapse encoding", True)
    delay_bits: Figure = _fig(6, "bits", "6-bit synaptic delay (Lava DelayDense 0..63)", False)
    dense_density: float = 0.5  # rows at least this dense are stored densely (one slot per input)
    state_bits: dict[str, int] = field(default_factory=lambda: dict(STATE_BITS))
    default_state_bits: int = 48

    def figures(self) -> dict[str, Figure]:
        return {k: v for k, v in vars(self).items() if isinstance(v, Figure)}

    def table(self) -> list[dict]:
        """The model as rows (name, value, unit, source, estimate) for reports."""
        return [{"name": k, "value": f.value, "unit": f.unit, "estimate": f.estimate, "source": f.source}
                for k, f in self.figures().items()]


LOIHI2_RESOURCES = Loihi2Resources()


def get_board(name: str) -> Board:
    from rsnn_compiler.errors import UserInputError

    if name not in BOARDS:
        raise UserInputError(f"unknown Loihi 2 board '{name}'; choose one of {', '.join(BOARDS)}")
    return BOARDS[name]


@dataclass(frozen=True)
class Loihi2MapOptions:
    """``map_loihi2``'s options (``--board``): the board whose chips the mapping must fit."""

    board: str = DEFAULT_BOARD

    def __post_init__(self):
        get_board(self.board)  # an unknown board is a one-line error here, before any pass runs
