"""``rsnnc run BUILD --executor gpu --domain float|fixed``: the GPU runtime on a build directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from rsnn_compiler.executors import load_build_graph, resolve_profile
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.ir.graph import Domain

from rsnn_compiler.backends.gpu.runtime import GraphRuntime


@dataclass
class GpuExecutor:
    """Loads ``graph.float.rsnn`` or ``graph.<profile>.rsnn`` and runs it batched.

    ``device`` None follows the runtime's policy ($RSNNC_GPU_DEVICE, else CUDA if available,
    else CPU). ``processes`` > 1 runs the batch data-parallel in that many local processes over
    torch.distributed (``distributed.run_data_parallel``: gloo on the CPU, nccl on CUDA).
    """

    name: ClassVar[str] = "gpu"
    device: str | None = None
    processes: int = 1

    def run(self, build: Path, manifest: dict, domain: Domain, profile: str | None, x: np.ndarray) -> RunResult:
        key = resolve_profile(manifest, domain, profile)
        if self.processes > 1:
            from rsnn_compiler.backends.gpu.distributed import run_data_parallel

            return run_data_parallel(Path(build), manifest, key, x, self.processes, self.device)
        graph = load_build_graph(Path(build), manifest, key)
        return GraphRuntime(graph, device=self.device).run(x)
