"""Benchmark: rsnnc ANN-to-SNN conversion (maxnorm / ecl / sfn) vs SpikingJelly's ann2snn.

Same ANN, same calibration data (training split), accuracy on the test split at T = 1, 2, 4, 8.
ANNs: ReLU MLP on sklearn digits and ReLU 1-D CNN (avg-pool) on mnist1d, trained here with the
recipe of tests/ann_fixtures.py (SpikingJelly only converts ``nn.ReLU`` modules); the shipped
models in models/mlp_digits and models/cnn_mnist1d (clip activations) are converted by rsnnc
only, when their weights are present.

SpikingJelly is optional (install it for the benchmark only, keeping torch pinned):
    pip install --no-deps spikingjelly tqdm loguru
Without it the SpikingJelly columns are skipped.

    python bench/conversion_vs_spikingjelly.py [--quick] [--out bench/results]

Prints a table, writes conversion_vs_spikingjelly.json (and .png when matplotlib is present).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
STEPS = (1, 2, 4, 8)


def _fixtures():
    spec = importlib.util.spec_from_file_location("ann_fixtures", ROOT / "tests" / "ann_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rsnnc_rows(model, xtr, ytr, xte, yte, input_shape, calib_n: int) -> dict:
    from rsnn_compiler.frontend_api import ImportOptions
    from rsnn_compiler.frontends.conversion_report import snn_predict
    from rsnn_compiler.frontends.torch_ann_import import load

    rows = {}
    plans = [("rsnnc maxnorm (max, v0=0)", "maxnorm", None, {}),
             ("rsnnc maxnorm (p99.9, v0=theta/2)", "maxnorm", None, {"percentile": 99.9, "v_init": "half"}),
             ("rsnnc ecl (built for T=2)", "ecl", 2, {}),
             ("rsnnc ecl (T=2, +search +compensate)", "ecl", 2, {"search": 1, "compensate": 1}),
             ("rsnnc sfn (T=1, graded)", "sfn", 1, {})]
    for label, method, steps, opts in plans:
        t0 = time.perf_counter()
        options = ImportOptions(calib_x=xtr[None, :calib_n], calib_y=ytr[:calib_n],
                                extra={"convert": {"method": method, "steps": steps, "opts": opts},
                                       "input_shape": input_shape})
        res = load(model, options)
        ts = (1,) if method == "sfn" else STEPS
        rows[label] = {
            "accuracy": {str(t): round(100.0 * float((snn_predict(res.graph, xte, t) == yte).mean()), 2) for t in ts},
            "messages_per_sample": res.report.messages_per_sample,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    return rows


def spikingjelly_rows(model, xtr, ytr, xte, yte, calib_n: int) -> dict:
    try:
        from spikingjelly.activation_based import ann2snn, functional
    except Exception as err:  # noqa: BLE001 - optional dependency
        return {"_skipped": f"spikingjelly not available ({type(err).__name__}: {err})"}
    import copy

    rows = {}
    loader = [(torch.as_tensor(xtr[i:i + 100]), torch.as_tensor(ytr[i:i + 100])) for i in range(0, calib_n, 100)]
    for label, mode in (("SpikingJelly ann2snn (max)", "max"), ("SpikingJelly ann2snn (99.9%)", "99.9%")):
        t0 = time.perf_counter()
        try:
            snn = ann2snn.Converter(recipe=ann2snn.RateCodingRecipe(dataloader=loader, mode=mode)).convert(
                copy.deepcopy(model).eval())
        except Exception as err:  # noqa: BLE001
            rows[label] = {"error": f"{type(err).__name__}: {str(err)[:200]}"}
            continue
        acc = {}
        x = torch.as_tensor(xte)
        with torch.no_grad():
            for t in STEPS:
                functional.reset_net(snn)
                out = sum(snn(x) for _ in range(t))
                acc[str(t)] = round(100.0 * float((out.argmax(1).numpy() == yte).mean()), 2)
        rows[label] = {"accuracy": acc, "seconds": round(time.perf_counter() - t0, 1)}
    return rows


def shipped_rows(fx, calib_n: int) -> dict:
    """rsnnc on models/*/model.onnx (clip-activation ANNs) when they exist: calibration on the
    training split they were trained on, accuracy on its test split."""
    from rsnn_compiler.frontend_api import ImportOptions
    from rsnn_compiler.frontends.ann_graph import forward
    from rsnn_compiler.frontends.conversion_report import snn_predict
    from rsnn_compiler.frontends.onnx_import import load, read_onnx

    def mnist1d():
        sys.path.insert(0, str(ROOT))
        from models._common import mnist1d as make

        d = make()
        return d["x_train"][:, None], d["x_test"][:, None], d["y_train"], d["y_test"]

    out = {}
    for name, data in (("mlp_digits", fx.digits_data), ("cnn_mnist1d", mnist1d)):
        onnx_path = ROOT / "models" / name / "model.onnx"
        if not onnx_path.is_file():
            continue
        xtr, xte, ytr, yte = data()
        with torch.no_grad():
            rows = {"ANN": round(100.0 * float((forward(read_onnx(onnx_path), xte).argmax(1).numpy() == yte).mean()), 2)}
        for label, method, steps in (("rsnnc maxnorm", "maxnorm", None), ("rsnnc ecl (T=2)", "ecl", 2), ("rsnnc sfn", "sfn", 1)):
            res = load(str(onnx_path), ImportOptions(calib_x=xtr[None, :calib_n], calib_y=ytr[:calib_n],
                                                     extra={"convert": {"method": method, "steps": steps}}))
            ts = (1,) if method == "sfn" else STEPS
            rows[label] = {str(t): round(100.0 * float((snn_predict(res.graph, xte, t) == yte).mean()), 2) for t in ts}
        out[name] = rows
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="digits MLP only")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    fx = _fixtures()
    results = {"host": platform.platform(), "torch": torch.__version__, "steps": list(STEPS), "models": {}}
    cases = [("digits MLP (ReLU)", lambda: fx.DigitsMLP("relu"), fx.digits_data, (64,), 40, 1257)]
    if not args.quick:
        cases.append(("mnist1d CNN (ReLU, avg-pool)", lambda: fx.Mnist1dCNN("relu", "avg"),
                      lambda: (lambda a: (a[0], a[1], a[2], a[3]))(fx.mnist1d_data()), (1, 40), 30, 2000))
    for label, make, data, shape, epochs, calib_n in cases:
        xtr, xte, ytr, yte = data()
        torch.manual_seed(0)
        t0 = time.perf_counter()
        model = fx.train(make(), xtr, ytr, epochs=epochs)
        entry = {"ann": round(fx.accuracy(model, xte, yte), 2), "train_seconds": round(time.perf_counter() - t0, 1)}
        entry.update(rsnnc_rows(model, xtr, ytr, xte, yte, shape, calib_n))
        entry.update(spikingjelly_rows(model, xtr, ytr, xte, yte, calib_n))
        results["models"][label] = entry
        print(f"\n{label}: ANN {entry['ann']:.2f}%   (test accuracy %, T = {', '.join(map(str, STEPS))})")
        for name, row in entry.items():
            if isinstance(row, dict) and "accuracy" in row:
                cells = "  ".join(f"{row['accuracy'].get(str(t), '-'):>6}" for t in STEPS)
                msg = f"  msgs/sample {row['messages_per_sample']:.0f}" if "messages_per_sample" in row else ""
                print(f"  {name:<36} {cells}{msg}")
            elif isinstance(row, dict) and "error" in row:
                print(f"  {name:<36} error: {row['error']}")
        if "_skipped" in entry:
            print(f"  SpikingJelly skipped: {entry['_skipped']}")
    results["shipped_models"] = shipped_rows(fx, 2000)
    for name, rows in results["shipped_models"].items():
        print(f"\nshipped {name}: {rows}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "conversion_vs_spikingjelly.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    _plot(results, out / "conversion_vs_spikingjelly.png")
    print(f"\nwrote {out / 'conversion_vs_spikingjelly.json'}")
    return 0


def _plot(results: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    models = results["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for ax, (label, entry) in zip(axes[0], models.items()):
        for name, row in entry.items():
            if isinstance(row, dict) and "accuracy" in row:
                ts = [int(t) for t in row["accuracy"]]
                ax.plot(ts, list(row["accuracy"].values()), marker="o", label=name)
        ax.axhline(entry["ann"], color="k", ls="--", lw=0.8, label="ANN")
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(STEPS), [str(t) for t in STEPS])
        ax.set_xlabel("time steps T")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(label)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
