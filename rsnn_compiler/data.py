"""Data files: ``.npz`` with inputs ``x`` shaped (time, batch, *features) and optional labels
``y`` shaped (batch,). Loaded without pickle; every problem is a one-line UserInputError."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from rsnn_compiler.artifact import atomic_write_bytes
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.npyio import NpzReader


FLOAT32_MAX = float(np.finfo(np.float32).max)
INT32 = np.iinfo(np.int32)


def require_data_file(path: str | Path, given_to: str | None = None) -> Path:
    """``path`` as a Path when it is a file; else one UserInputError naming the option it was
    ``given_to`` (the command line checks every data file this way before any work starts)."""
    path = Path(path)
    if not path.is_file():
        why = "it is a directory" if path.is_dir() else "no such file"
        where = f"; given to {given_to}); check the path" if given_to else ")"
        raise UserInputError(f"data file {path} not found ({why}{where}")
    return path


def load_data(path: str | Path, need_labels: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` (time >= 1, batch >= 1, *features, real and finite) and optional integer labels
    ``y`` (batch,), read under the memory budget (``rsnn_compiler.npyio``)."""
    path = require_data_file(path)
    with NpzReader(path, "data file") as z:
        keys = set(z.members())
        if "x" not in keys:
            raise UserInputError(
                f"{path} has no 'x' array (found: {', '.join(sorted(keys))[:200] or 'nothing'});"
                " save inputs as np.savez(file, x=inputs) with shape (time, batch, *features)"
            )
        x = z.array("x")
        y = z.array("y") if "y" in keys else None
    if x.ndim < 3:
        raise UserInputError(
            f"{path}: 'x' has shape {x.shape}; inputs must be (time, batch, *features) — add the"
            " missing axes (e.g. x[None] for a single time step)"
        )
    if x.size == 0:
        raise UserInputError(f"{path}: 'x' has shape {x.shape}, which holds no values; give at least one"
                             " time step, one sample and one feature")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise UserInputError(f"{path}: 'x' contains NaN or Inf; clean the data first")
    if np.issubdtype(x.dtype, np.floating) and np.abs(x).max() > FLOAT32_MAX:
        raise UserInputError(f"{path}: 'x' holds values beyond the float32 range the executors compute in")
    if np.issubdtype(x.dtype, np.integer) and (x.min() < INT32.min or x.max() > INT32.max):
        raise UserInputError(f"{path}: 'x' holds integers outside int32 (what the integer executors take)")
    if y is not None:
        if y.shape != (x.shape[1],):
            raise UserInputError(f"{path}: 'y' has shape {y.shape} but x has batch {x.shape[1]}; labels must be (batch,)")
        if np.issubdtype(y.dtype, np.floating):
            if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
                raise UserInputError(f"{path}: 'y' holds NaN, Inf or fractional labels; labels are class indices (integers)")
        if y.size and (y.min() < 0 or y.max() > np.iinfo(np.int32).max):
            raise UserInputError(f"{path}: 'y' holds label {int(y.min()) if y.min() < 0 else int(y.max())};"
                                 " labels are class indices 0, 1, 2, ...")
        y = y.astype(np.int64)
    elif need_labels:
        raise UserInputError(f"{path} has no labels 'y'; add y with shape (batch,)")
    return x, y


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Atomically write an uncompressed .npz (keys may contain '/')."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())


def sample_slices(samples: int, parts: int, option: str) -> list[tuple[int, int]]:
    """(first, end) of ``parts`` consecutive, non-empty slices of ``samples`` samples, as equal
    as possible (the first ``samples % parts`` hold one more); ``option`` names the flag that
    asked for them in the error."""
    if parts < 1:
        raise UserInputError(f"{option} {parts} must be at least 1")
    if samples < parts:
        raise UserInputError(f"{option} {parts} is more than the {samples} samples of the data; use at most {samples}")
    size, extra = divmod(samples, parts)
    edges = [0]
    for i in range(parts):
        edges.append(edges[-1] + size + (1 if i < extra else 0))
    return list(zip(edges[:-1], edges[1:]))
