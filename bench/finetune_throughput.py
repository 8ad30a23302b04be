"""Fine-tune throughput of ``rsnnc finetune`` on the CPU, in sample-steps per second.

The shipped model ``models/rleaky_mnist1d`` (8 -> 128 all-to-all RLeaky -> 10 Leaky, T = 17) is
built for the fpga profile (8-bit weights, 16-bit states; and a 4-bit-weight build) and its
integer graph is trained by the ``qat_finetune`` pass exactly as ``rsnnc finetune`` does
(``backends/gpu/qat_finetune.train_fixed``): forward = the exact integer model (FixedPointModule),
backward through time with straight-through gradients, one optimiser step per batch. A sample-step
is one sample advanced one time step, forward and backward. For each batch size: one warm-up epoch
of 2 batches, then the median of 3 timed epochs of 4 batches each (the pass's own clock covers the
whole loop: forward, backward, optimiser). For reference, the exact integer forward alone (GPU
runtime, fixed point, no gradients) on the same batch. Torch threads: 1 and the machine's default.

    .venv/bin/python bench/finetune_throughput.py [--quick]

Writes bench/results/finetune_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import RESULTS, machine_info, markdown_table, write_json, write_markdown  # noqa: E402


def _build(out: Path, weight_bits: int) -> Path:
    from rsnn_compiler.build import BuildOptions, build
    from rsnn_compiler.precision import parse_precision

    model = ROOT / "models" / "rleaky_mnist1d"
    build("models.rleaky_mnist1d.model:build", out, BuildOptions(
        targets=("gpu",), weights=str(model / "weights.pt"), calib=str(model / "data.npz"),
        precision=parse_precision({"weight_bits": weight_bits}, "bench"), accept_accuracy_loss=True),
        warn=lambda msg: None)
    return out / "graph.fpga.rsnn"


def _measure(graph, x, y, batch: int, epochs: int) -> float:
    """Sample-steps per second of the fine-tune loop (median over ``epochs`` timed epochs)."""
    from rsnn_compiler.accuracy import EvalData
    from rsnn_compiler.backends.gpu.qat_finetune import train_fixed
    from rsnn_compiler.finetune_build import QatConfig, QatOptions

    n = 4 * batch
    data = EvalData(x[:, :n], y[:n], "bench")
    warm = EvalData(x[:, : 2 * batch], y[: 2 * batch], "warm-up")
    train_fixed(graph, QatOptions(train=warm, config=QatConfig(epochs=1, batch_size=batch)))
    rates = []
    for _ in range(epochs):
        _, rep = train_fixed(graph, QatOptions(train=data, config=QatConfig(epochs=1, batch_size=batch)))
        rates.append(rep.sample_steps_per_second)
    return statistics.median(rates)


def _forward(graph, x, batch: int) -> float:
    from rsnn_compiler.backends.gpu.runtime import GraphRuntime

    rt = GraphRuntime(graph, device="cpu", record=False)
    xb = x[:, :batch]
    rt.run(xb, record=False)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        rt.run(xb, record=False)
        times.append(time.perf_counter() - t0)
    return xb.shape[0] * batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 64 only, 1 timed epoch")
    args = parser.parse_args()
    from models.rleaky_mnist1d.make_train_set import train_set
    from rsnn_compiler.data import load_data

    x, y = load_data(train_set())
    batches = (64,) if args.quick else (16, 64, 256)
    epochs = 1 if args.quick else 3
    default_threads = torch.get_num_threads()
    rows, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {bits: _build(Path(tmp) / f"w{bits}", bits) for bits in (8, 4)}
        from rsnn_compiler.ir.serialize import load_graph

        graphs = {bits: load_graph(path) for bits, path in graphs.items()}
        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            for bits, graph in graphs.items():
                for batch in batches:
                    rate = _measure(graph, x, y, batch, epochs)
                    fwd = _forward(graph, x, batch)
                    rows.append((f"{bits}-bit weights", threads, batch, rate, fwd, fwd / rate))
                    records.append({"weights_bits": bits, "threads": threads, "batch": batch,
                                    "finetune_sample_steps_per_s": rate, "forward_sample_steps_per_s": fwd})
                    print(rows[-1], flush=True)
        torch.set_num_threads(default_threads)
    info = machine_info()
    header = ("model", "torch threads", "batch", "fine-tune sample-steps/s", "integer forward sample-steps/s",
              "forward / fine-tune")
    body = (f"{info['date_utc']}, {info['cpu']}, {info['cores']} cores, load {info['load_avg_1_5_15']}\n\n"
            "rleaky_mnist1d (T = 17), fpga profile, CPU. Fine-tune = forward (exact integers) + BPTT +"
            " optimiser step, as `rsnnc finetune` runs it.\n\n" + markdown_table(header, rows))
    write_markdown(RESULTS / "finetune_throughput.md", "Fine-tune throughput (CPU)", body)
    write_json(RESULTS / "finetune_throughput.json", {"machine": info, "rows": records})
    print(body)


if __name__ == "__main__":
    main()
