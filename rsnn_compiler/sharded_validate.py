"""``rsnnc validate --shards N``: one validation spread over Ray tasks (docs/scale-out.md).

The samples are cut into N consecutive slices (``data.sample_slices``: the first
``samples % N`` slices hold one more). Each slice is one Ray task that runs
``validate.validate_shard`` on it (float model, fixed-point interpreter and every integer
executor of the build, Lava included) and returns counts and first differences only. The
tallies are merged by ``validate.merge_shards``, the same function a run in one process uses on
its one slice, so the report (result per executor, first difference with its global sample
index, values compared, per-layer agreement, accuracies) equals that run's; only the executors'
wall times differ (they are summed over the slices).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsnn_compiler.data import sample_slices
from rsnn_compiler.executors import check_run_budget
from rsnn_compiler.progress import Task
from rsnn_compiler.ray_engine import RayOptions, ray_session, run_tasks
from rsnn_compiler.validate import (
    ShardTally, ValidationReport, check_max_accuracy_drop, merge_shards, validate_shard,
)


def _validate_slice(build: str, manifest: dict, x: np.ndarray, y: np.ndarray | None, first: int, end: int,
                    executor_options: dict | None) -> ShardTally:
    """One Ray task: validate samples ``first .. end`` (``x`` and ``y`` are the whole data,
    shared read-only through Ray's object store)."""
    part_x = np.ascontiguousarray(x[:, first:end])
    part_y = None if y is None else np.ascontiguousarray(y[first:end])
    return validate_shard(Path(build), manifest, part_x, part_y, first, executor_options=executor_options)


def validate_sharded(
    build: Path, manifest: dict, x: np.ndarray, y: np.ndarray | None, shards: int,
    ray_options: RayOptions = RayOptions(), allow_missing: bool = False, max_accuracy_drop: float | None = None,
    executor_options: dict[str, dict] | None = None, data_label: str = "",
) -> ValidationReport:
    """``validate.validate`` with the samples split over ``shards`` Ray tasks."""
    import ray

    bounds = sample_slices(int(x.shape[1]), shards, "--shards")
    check_max_accuracy_drop(max_accuracy_drop, y is not None)
    check_run_budget(build, manifest, x[:, : max(b - a for a, b in bounds)])  # the largest slice, before Ray
    with ray_session(ray_options):
        x_ref, y_ref = ray.put(x), ray.put(y)
        bar = Task(f"validate: {shards} shards", shards, "shard")
        tallies = run_tasks(_validate_slice, [(str(Path(build).resolve()), manifest, x_ref, y_ref, a, b, executor_options) for a, b in bounds],
                            on_done=lambda i, tally: bar.advance())
        bar.close()
    return merge_shards(build, manifest, tallies, allow_missing, max_accuracy_drop, data_label)


__all__ = ["validate_sharded"]
