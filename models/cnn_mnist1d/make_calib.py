"""Write the mnist1d training split (calibration / fine-tune data) and the test split as rsnnc
data files for running the converted CNN at T steps (the same signal every step).

    .venv/bin/python -m models.cnn_mnist1d.make_calib [--steps 2] [--out out/cnn_mnist1d]

Writes OUT/calib_train.npz (x (T, 4000, 1, 40) float32, y (4000,) int64: the split the ANN
was trained on) and OUT/test.npz (x (T, 1000, 1, 40), y (1000,)). Deterministic: the data is
generated locally with the standard mnist1d arguments (seed 42), never downloaded. The files are
not shipped (1.3 MB and 0.3 MB at T = 2); `out/` is ignored by git.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

from models._common import mnist1d

ROOT = pathlib.Path(__file__).resolve().parents[2]


def write(out: pathlib.Path, steps: int = 2) -> tuple[pathlib.Path, pathlib.Path]:
    d = mnist1d()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for split in ("train", "test"):
        x = np.repeat(d[f"x_{split}"][None, :, None, :].astype(np.float32), steps, axis=0)
        path = out / ("calib_train.npz" if split == "train" else "test.npz")
        np.savez(path, x=x, y=d[f"y_{split}"].astype(np.int64))
        paths.append(path)
    return paths[0], paths[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2, help="time steps T (the signal is repeated T times)")
    ap.add_argument("--out", default=str(ROOT / "out" / "cnn_mnist1d"), help="output folder")
    args = ap.parse_args()
    for p in write(pathlib.Path(args.out), args.steps):
        print(p)


if __name__ == "__main__":
    main()
