"""Compile many graphs into few binaries (differential testing, sweeps).

Each graph is generated with its own prefix (``g0``, ``g1``, ...) so many models share one
translation unit; ``units`` translation units are compiled in parallel, each with a ``main``
that dispatches on the model index (``c_runtime.multi_main``).
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.ir.graph import Graph

from rsnn_compiler.backends.c.codegen import generate
from rsnn_compiler.backends.c.executor import decode, encode_inputs
from rsnn_compiler.backends.c.plan import RECORD_DTYPE
from rsnn_compiler.backends.c.runtime import FIXED_H, HARNESS_INCLUDES, IO_H, harness_core, multi_main
from rsnn_compiler.backends.c.spec import C_SPEC, CSpec
from rsnn_compiler.backends.c.toolchain import compile_c


@dataclass(frozen=True)
class Entry:
    """Where graph i lives: its binary, its index in that binary's dispatcher, its layout."""

    binary: Path
    index: int
    layout: dict


def build_many(graphs: list[Graph], folder: Path, units: int = 2, extra_flags: tuple[str, ...] = (),
               spec: CSpec = C_SPEC) -> list[Entry]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rsnn_fixed.h").write_text(FIXED_H)
    (folder / "rsnn_io.h").write_text(IO_H)
    layouts = []
    for i, g in enumerate(graphs):
        src = generate(g, f"g{i}", spec)
        sub = folder / f"g{i}"
        sub.mkdir(exist_ok=True)
        (sub / "model.h").write_text(src.model_h)
        (sub / "model.c").write_text(src.model_c)
        layouts.append(src.plan.layout_json())
    units = max(1, min(units, len(graphs)))
    groups = [list(range(len(graphs)))[u::units] for u in range(units)]
    jobs = []
    for u, members in enumerate(groups):
        text = HARNESS_INCLUDES
        text += '#include "rsnn_fixed.h"\n#include "rsnn_io.h"\n'
        for i in members:
            text += f'\n#include "g{i}/model.c"\n' + harness_core(f"g{i}")
        text += multi_main([f"g{i}" for i in members])
        (folder / f"unit{u}.c").write_text(text)
        jobs.append((f"unit{u}.c", f"unit{u}"))
    with ThreadPoolExecutor(max_workers=units) as pool:
        futures = [pool.submit(compile_c, [c], exe, folder, spec, ("-I.", *extra_flags)) for c, exe in jobs]
        for f in futures:
            f.result()
    entries: list[Entry] = [None] * len(graphs)  # type: ignore[list-item]
    for u, members in enumerate(groups):
        for local, i in enumerate(members):
            entries[i] = Entry(folder / f"unit{u}", local, layouts[i])
    return entries


def run_entry(entry: Entry, graph: Graph, x: np.ndarray, env: dict | None = None) -> RunResult:
    """Run one model of a multi-model binary on ``x`` (whole batch in one call)."""
    ints = encode_inputs(graph, entry.layout, x)
    steps, batch = ints.shape[:2]
    if batch > entry.layout["max_batch"]:
        raise ValueError("batch larger than the model's RSNN_MAX_BATCH")
    res = subprocess.run(
        [str(entry.binary), str(entry.index), str(steps), str(batch)],
        input=np.ascontiguousarray(ints.astype("<i4")).tobytes(), capture_output=True, env=env,
    )
    if res.returncode != 0:
        raise RuntimeError(f"model {entry.index} of {entry.binary.name} exited {res.returncode}:"
                           f" {res.stderr.decode(errors='replace')[:2000]}")
    length = entry.layout["record"]["length"]
    records = np.frombuffer(res.stdout, dtype=RECORD_DTYPE).reshape(steps, batch, length).astype(np.int64)
    return decode(graph, entry.layout, records, x)
