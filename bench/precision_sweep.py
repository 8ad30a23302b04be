"""Accuracy per bit width on the bundled mnist1d model, before and after ``rsnnc finetune``.

For each configuration — every neuron layer at one membrane width (16, 8, 6, 4, 3, ternary) with
8-bit weights, and 4-bit weights with 16-bit states — build ``models/rleaky_mnist1d`` for the fpga
profile (calibration: ``train.npz``; accuracy: the 1 000-signal test split ``test.npz``, held out),
then fine-tune the integer model with the ``qat_finetune`` pass exactly as ``rsnnc finetune
--distill --epochs E`` does (training data ``train.npz``), and measure again. Every number is the
exact integer model on the test split, in percent.

    .venv/bin/python bench/precision_sweep.py [--epochs 3] [--quick]

Writes bench/results/precision_sweep.{json,md}. Slow on 2 cores (about 5 minutes per row).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import RESULTS, machine_info, markdown_table, write_json, write_markdown  # noqa: E402

CONFIGS = (  # (label, precision mapping)
    ("16-bit states, 8-bit weights", {}),
    ("8-bit states", {"state_bits": 8}),
    ("6-bit states", {"state_bits": 6}),
    ("4-bit states", {"state_bits": 4}),
    ("3-bit states", {"state_bits": 3}),
    ("ternary states (2-bit, -1/0/1)", {"state_bits": "ternary"}),
    ("4-bit weights, 16-bit states", {"weight_bits": 4}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the first two rows, 1 epoch")
    args = parser.parse_args()

    from models.rleaky_mnist1d.make_train_set import train_set
    from rsnn_compiler.accuracy import EvalData, accuracy_percent
    from rsnn_compiler.build import BuildOptions, build
    from rsnn_compiler.finetune_build import FinetuneRequest, QatConfig, finetune_build
    from rsnn_compiler.ir.serialize import load_graph
    from rsnn_compiler.precision import parse_precision

    model = ROOT / "models" / "rleaky_mnist1d"
    train, test = train_set(), model / "test.npz"
    held = EvalData.load(test, "held out")
    configs = CONFIGS[:2] if args.quick else CONFIGS
    epochs = 1 if args.quick else args.epochs
    rows, records = [], []
    float_acc = None
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, widths) in enumerate(configs):
            t0 = time.perf_counter()
            out = Path(tmp) / f"b{i}"
            build("models.rleaky_mnist1d.model:build", out, BuildOptions(
                targets=("gpu",), weights=str(model / "weights.pt"), calib=str(train), holdout=str(test),
                precision=parse_precision(widths, label) if widths else None, accept_accuracy_loss=True),
                warn=lambda msg: None)
            if float_acc is None:
                float_acc = accuracy_percent(load_graph(out / "graph.float.rsnn"), held)
            before = accuracy_percent(load_graph(out / "graph.fpga.rsnn"), held)
            tuned = Path(tmp) / f"t{i}"
            finetune_build(FinetuneRequest(build=str(out), out=str(tuned), data=str(train), holdout=str(test),
                                           config=QatConfig(epochs=epochs, distill=True),
                                           accept_accuracy_loss=True))
            after = accuracy_percent(load_graph(tuned / "graph.fpga.rsnn"), held)
            minutes = (time.perf_counter() - t0) / 60
            rows.append((label, before, after, after - before, minutes))
            records.append({"config": label, "widths": widths, "accuracy_quantized": before,
                            "accuracy_finetuned": after, "minutes": minutes})
            print(rows[-1], flush=True)
    info = machine_info()
    header = ("configuration", "quantized (%)", f"fine-tuned, {epochs} epochs (%)", "gain (points)", "minutes")
    body = (f"{info['date_utc']}, {info['cpu']}, {info['cores']} cores, load {info['load_avg_1_5_15']}\n\n"
            f"models/rleaky_mnist1d, fpga profile; accuracy of the exact integer model on test.npz (1 000"
            f" held-out signals); float model {float_acc:.2f} %. Calibration and fine-tune data: train.npz"
            f" (4 000 training signals); fine-tune = `rsnnc finetune --distill --epochs {epochs}`.\n\n"
            + markdown_table(header, rows))
    write_markdown(RESULTS / "precision_sweep.md", "Accuracy per bit width, before and after fine-tuning", body)
    write_json(RESULTS / "precision_sweep.json", {"machine": info, "float_accuracy": float_acc,
                                                  "epochs": epochs, "rows": records})
    print(body)


if __name__ == "__main__":
    main()
