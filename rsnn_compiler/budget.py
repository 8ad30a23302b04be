"""The memory budget: how many bytes one array (or one run) an input may make rsnnc allocate.

Every reader checks the size an input declares (an ``.npy`` header, a zip member's size, a graph's
shapes) against the budget *before* allocating, so a small file cannot make rsnnc allocate
gigabytes. The budget is ``RSNNC_MEMORY_BUDGET`` (bytes, or with a K/M/G/T suffix, powers of
1024) when set, else a quarter of the machine's physical memory (at least 1 GiB).

A compressed member is also refused when it would inflate more than ``MAX_INFLATION`` times
beyond ``INFLATION_FLOOR`` bytes: real data does not compress 100:1, zip bombs do.
"""

from __future__ import annotations

import math
import os
import re

from rsnn_compiler.errors import UserInputError

ENV = "RSNNC_MEMORY_BUDGET"
MIN_DEFAULT = 1 << 30
MAX_INFLATION = 100
INFLATION_FLOOR = 64 << 20
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``'512M'`` -> 536870912; plain integers are bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not m:
        raise UserInputError(f"{ENV}={text!r} is not a size; write e.g. 4G, 512M or a number of bytes")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 * MIN_DEFAULT


def memory_budget() -> int:
    """Bytes one input may make rsnnc allocate (see the module docstring)."""
    text = os.environ.get(ENV)
    if text:
        return parse_size(text)
    return max(MIN_DEFAULT, physical_memory() // 4)


def human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"  # pragma: no cover


def require_within_budget(nbytes: int, what: str) -> None:
    """Refuse (exit 2) before allocating ``nbytes`` for ``what`` when that exceeds the budget."""
    budget = memory_budget()
    if nbytes > budget:
        raise UserInputError(
            f"{what} needs {human(nbytes)}, more than the memory budget of {human(budget)};"
            f" use smaller inputs or raise the budget with {ENV}=SIZE (e.g. {ENV}=32G)"
        )


def require_plausible_inflation(uncompressed: int, compressed: int, what: str) -> None:
    """Refuse a compressed member that inflates like a zip bomb (see the module docstring)."""
    if uncompressed > INFLATION_FLOOR and uncompressed > MAX_INFLATION * max(compressed, 1):
        raise UserInputError(
            f"{what} inflates {human(compressed)} to {human(uncompressed)}"
            f" ({uncompressed // max(compressed, 1)}x), which real data does not; refusing a likely"
            " zip bomb (store real data uncompressed, e.g. with numpy.savez)"
        )


def run_bytes(graph, steps: int, batch: int) -> int:
    """Bytes a recorded run of ``graph`` holds: every node's value and up to four states per
    step and sample, 8 bytes each (the interpreters record all of them)."""
    per_step = sum(5 * math.prod(int(d) for d in op.out_shape) for op in graph.nodes.values())
    return 8 * int(steps) * int(batch) * per_step


def require_run_within_budget(graph, steps: int, batch: int, what: str = "running the model") -> None:
    """Refuse a run (exit 2) whose recorded values would exceed the budget, before it starts."""
    require_within_budget(run_bytes(graph, steps, batch), f"{what} on {batch} sample(s) x {steps} steps")


def require_hdf5_within_budget(path, what: str = "HDF5 file") -> None:
    """Sum the sizes the datasets of an HDF5 file declare (shape x item size, read from their
    headers) and refuse the file when they exceed the budget or inflate like a zip bomb (a
    chunked, compressed dataset declaring far more than its storage)."""
    import h5py

    items: list[tuple[str, int, int]] = []  # name, declared bytes, stored bytes

    def visit(name, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            size = int(math.prod(int(d) for d in obj.shape)) * int(obj.dtype.itemsize) if obj.shape else int(obj.dtype.itemsize)
            items.append((name, size, int(obj.id.get_storage_size())))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    for name, size, storage in items:
        require_plausible_inflation(size, storage, f"{what} {path}: dataset '{name[:80]}'")
    require_within_budget(sum(size for _, size, _ in items), f"{what} {path}")
