"""Data-parallel GPU runtime over torch.distributed (docs/scale-out.md).

The batch is cut into one consecutive slice per process (``data.sample_slices``). Each process
runs ``GraphRuntime`` on its slice; the results are gathered with ``all_gather`` (slices padded
to the largest, the padding cut off again) and concatenated in rank order, so every process
holds the whole batch's result. The fixed-point runtime computes each sample exactly, whatever
the batch around it (docs/gpu-runtime.md), so the gathered result equals one process's run bit
for bit; float graphs are float32 runs whose sums may be blocked differently for other batch
sizes (equal to float32 accuracy, not necessarily bit for bit).

Two ways in:
- ``run_in_group(runtime, x)`` inside a process group the caller made (``torchrun``, several
  machines, your own training script);
- ``run_data_parallel(build, manifest, key, x, processes)`` starts ``processes`` local
  processes with ``torch.multiprocessing.spawn`` and a ``file://`` rendezvous (``gloo`` on the
  CPU, ``nccl`` with one CUDA device per process), and returns the gathered result here.

``spawned_group`` (start-up, rendezvous, group) is shared with the data-parallel fine-tune
(``qat_finetune``, ``rsnnc finetune --gpu-processes``).
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist

from rsnn_compiler.data import sample_slices, save_npz
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.interpreter.result import RunResult

from rsnn_compiler.backends.gpu.runtime import GraphRuntime, Trace, resolve_device

RESULT_FILE = "rank0.npz"


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def gather_batch(tensor: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Every rank's ``tensor`` (time, sizes[rank], ...) concatenated along the batch axis."""
    largest = max(sizes)
    padded = torch.zeros((tensor.shape[0], largest, *tensor.shape[2:]), dtype=tensor.dtype, device=tensor.device)
    padded[:, : tensor.shape[1]] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:, :n] for p, n in zip(parts, sizes)], dim=1)


def run_in_group(runtime: GraphRuntime, x: np.ndarray, record: bool | None = None) -> RunResult:
    """Run ``x`` (the whole batch, on every rank) data-parallel in the current process group:
    this rank runs its slice; every rank gets the whole result."""
    if not dist.is_initialized():
        raise UserInputError("run_in_group needs a torch.distributed process group (torchrun, or run_data_parallel)")
    rank, world = dist.get_rank(), dist.get_world_size()
    bounds = sample_slices(int(x.shape[1]), world, "processes")
    sizes = [b - a for a, b in bounds]
    first, end = bounds[rank]
    trace = runtime.run_tensors(np.ascontiguousarray(x[:, first:end]), record)
    gathered = Trace(out=gather_batch(trace.out, sizes))
    for name in ("values", "spikes", "states"):
        mine = getattr(trace, name)
        # every rank gathers in one (sorted) order; the result keeps the runtime's own order
        parts = {k: gather_batch(mine[k], sizes) for k in sorted(mine)}
        setattr(gathered, name, {k: parts[k] for k in mine})
    return gathered.to_result()


def _member(rank: int, world: int, rendezvous: str, device: str | None, threads: int, work, args: tuple) -> None:
    """One spawned process: pin its device and thread count, join the group, run ``work(rank,
    device, *args)``, leave the group."""
    torch.set_num_threads(threads)  # the parent's: CPU sums block alike in every process
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    dist.init_process_group(backend_for(dev), init_method=rendezvous, rank=rank, world_size=world)
    try:
        work(rank, dev, *args)
    finally:
        dist.destroy_process_group()


@contextmanager
def spawned_group(work, args: tuple, processes: int, device: str | None = None) -> Iterator[Path]:
    """Run ``work(rank, device, *args, out_dir)`` in ``processes`` local processes joined in one
    group (``torch.multiprocessing.spawn``, a ``file://`` rendezvous; ``gloo`` on the CPU,
    ``nccl`` with one CUDA device each); yields ``out_dir``, a temporary folder the processes
    write their results to. ``work`` must be a module-level function (it is pickled)."""
    import torch.multiprocessing as mp

    dev = resolve_device(device)
    if dev.type == "cuda" and processes > torch.cuda.device_count():
        raise UserInputError(f"--gpu-processes {processes} needs {processes} CUDA devices; this machine has"
                             f" {torch.cuda.device_count()} (use at most that, or RSNNC_GPU_DEVICE=cpu for gloo)")
    with tempfile.TemporaryDirectory(prefix="rsnnc-dp-") as tmp:
        rendezvous = f"file://{Path(tmp) / 'rendezvous'}"
        mp.spawn(_member, args=(processes, rendezvous, None if device is None else str(device),
                                torch.get_num_threads(), work, (*args, tmp)), nprocs=processes, join=True)
        yield Path(tmp)


def _run_work(rank: int, dev: torch.device, build: str, manifest: dict, key: str, x: np.ndarray,
              out_dir: str) -> None:
    """One process of ``run_data_parallel``: run its slice; rank 0 writes the whole result."""
    from rsnn_compiler.executors import load_build_graph

    runtime = GraphRuntime(load_build_graph(Path(build), manifest, key), device=dev)
    result = run_in_group(runtime, x)
    if rank == 0:
        save_npz(Path(out_dir) / RESULT_FILE, {"out": result.out,
                                               **{f"values/{k}": v for k, v in result.values.items()},
                                               **{f"spikes/{k}": v for k, v in result.spikes.items()},
                                               **{f"states/{k}": v for k, v in result.states.items()}})


def _read_result(path: Path) -> RunResult:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    result = RunResult(out=arrays.pop("out"))
    for name, value in arrays.items():
        group, _, key = name.partition("/")
        getattr(result, group)[key] = value
    return result


def run_data_parallel(build: Path, manifest: dict, key: str, x: np.ndarray, processes: int,
                      device: str | None = None) -> RunResult:
    """Run graph ``key`` of a build on ``x`` in ``processes`` local processes (one CUDA device
    each when running on CUDA) and return the gathered result."""
    sample_slices(int(x.shape[1]), processes, "--gpu-processes")  # refuse before starting anything
    with spawned_group(_run_work, (str(Path(build).resolve()), manifest, key, x), processes, device) as tmp:
        return _read_result(tmp / RESULT_FILE)

__all__ = ["backend_for", "gather_batch", "run_data_parallel", "run_in_group", "spawned_group"]
