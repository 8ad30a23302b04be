"""Data files: ``.npz`` with inputs ``x`` shaped (time, batch, *features) and optional labels
``y`` shaped (batch,). Loaded without pickle; every problem is a one-line UserInputError."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from rsnn_compiler.artifact import atomic_write_bytes
from rsnn_compiler.errors import UserInputError


def load_data(path: str | Path, need_labels: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"data file {path} not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            if "x" not in keys:
                raise UserInputError(
                    f"{path} has no 'x' array (found: {', '.join(sorted(keys)) or 'nothing'});"
                    " save inputs as np.savez(file, x=inputs) with shape (time, batch, *features)"
                )
            x = data["x"]
            y = data["y"] if "y" in keys else None
    except UserInputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserInputError(f"{path} is not a readable .npz file ({exc}); write it with numpy.savez") from None
    if x.ndim < 3:
        raise UserInputError(
            f"{path}: 'x' has shape {x.shape}; inputs must be (time, batch, *features) — add the"
            " missing axes (e.g. x[None] for a single time step)"
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise UserInputError(f"{path}: 'x' has dtype {x.dtype}; use a numeric array")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise UserInputError(f"{path}: 'x' contains NaN or Inf; clean the data first")
    if y is not None:
        if y.shape != (x.shape[1],):
            raise UserInputError(f"{path}: 'y' has shape {y.shape} but x has batch {x.shape[1]}; labels must be (batch,)")
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
