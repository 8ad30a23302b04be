"""The numbers of one sweep point, read from its build and validation (docs/sweep.md).

- accuracy (percent), float and fixed point, and each integer executor's result: the
  validation report (``rsnnc validate`` on the sweep's data);
- effective synaptic operations per sample (NeuroBench, ``rsnn_compiler.accounting``): a
  fixed-point interpreter run on the first ``SYNOPS_SAMPLES`` validation samples, and the
  weights kept;
- energy per sample: the ``map_loihi2`` report's Loihi 1 per-operation estimate (table
  ``ENERGY_TABLE``, Davies et al. 2018; no Loihi 2 per-op figure is published), on the build's
  calibration data: only points built for ``lava``;
- Loihi 2 cores and chips: the ``map_loihi2`` report (points built for ``lava``);
- C memory: the C target's weight arrays plus one sample's state (``c/layout.json``; points
  built for ``c``).

A number a point's targets do not give is None (shown as "-").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

SYNOPS_SAMPLES = 256
ENERGY_TABLE = "loihi1_davies2018"


@dataclass
class PointMetrics:
    samples: int  # validation samples
    steps: int  # time steps run
    float_accuracy: float | None = None  # percent
    fixed_accuracy: float | None = None
    executors: dict[str, str] = field(default_factory=dict)  # name -> equal / mismatch / unavailable
    synops_per_sample: float | None = None
    synops_samples: int = 0  # samples the synaptic operations were counted on
    weights_kept: int | None = None
    weights_total: int | None = None
    energy_low_j: float | None = None  # per sample
    energy_high_j: float | None = None
    energy_counts: str | None = None  # "measured" (calibration run) or "upper bound"
    loihi2_cores: int | None = None
    loihi2_chips: int | None = None
    loihi2_fits: bool | None = None
    c_weight_bytes: int | None = None
    c_state_bytes: int | None = None  # one sample's state

    @property
    def c_memory_bytes(self) -> int | None:
        if self.c_weight_bytes is None or self.c_state_bytes is None:
            return None
        return self.c_weight_bytes + self.c_state_bytes

    def to_json(self) -> dict:
        return {**asdict(self), "c_memory_bytes": self.c_memory_bytes}


def synops(build: Path, manifest: dict, profile: str, x: np.ndarray) -> tuple[float, int, int, int]:
    """(effective synaptic ops per sample, samples counted, weights kept, weights total) of the
    fixed-point graph on the first ``SYNOPS_SAMPLES`` samples of ``x``."""
    from rsnn_compiler.accounting import count_synops
    from rsnn_compiler.executors import load_build_graph
    from rsnn_compiler.interpreter.fixed_interp import run_fixed

    graph = load_build_graph(build, manifest, profile)
    part = np.ascontiguousarray(x[:, :SYNOPS_SAMPLES])
    account = count_synops(graph, run_fixed(graph, part, record=True))
    return account.effective_synops, int(part.shape[1]), account.weights_kept, account.weights_total


def point_metrics(build: Path, manifest: dict, report, x: np.ndarray) -> PointMetrics:
    """The metrics of a built and validated point (``report``: its ValidationReport)."""
    m = PointMetrics(samples=report.samples, steps=report.steps, float_accuracy=report.float_accuracy,
                     fixed_accuracy=report.fixed_accuracy,  # percent in the ValidationReport already
                     executors={c.executor: c.status for c in report.executors})
    m.synops_per_sample, m.synops_samples, m.weights_kept, m.weights_total = synops(build, manifest, report.profile, x)
    from rsnn_compiler.mapping_report import mapping_metrics

    mapping = mapping_metrics(manifest.get("passes", []))
    if mapping:
        m.loihi2_cores, m.loihi2_chips, m.loihi2_fits = mapping.get("cores"), mapping.get("chips"), mapping.get("fits")
        energy = mapping.get("energy", {})
        row = next((r for r in energy.get("estimates", []) if r.get("table") == ENERGY_TABLE), None)
        if row is not None:
            m.energy_low_j, m.energy_high_j = row["low_j"], row["high_j"]
            m.energy_counts = energy.get("counts", {}).get("source")
    layout = Path(build) / "c" / "layout.json"
    if "c" in manifest.get("targets", {}) and layout.is_file():
        import json

        data = json.loads(layout.read_text())
        m.c_weight_bytes = data.get("weights", {}).get("bytes")
        m.c_state_bytes = data.get("state", {}).get("bytes_per_sample")
    return m


__all__ = ["ENERGY_TABLE", "PointMetrics", "SYNOPS_SAMPLES", "point_metrics", "synops"]
