"""Write train.npz: the standard mnist1d training split (4 000 signals) in the rsnnc data format
(17 steps of 8 values, like data.npz and test.npz), for fine-tuning and calibration.

It holds no test signal, so accuracy reported on test.npz is on held-out data. Not committed
(about 2 MB): ``scripts/setup.sh`` writes it, and so do the tests that need it. Deterministic;
about 10 s of CPU.

    .venv/bin/python -m models.rleaky_mnist1d.make_train_set
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TRAIN_FILE = Path(__file__).resolve().parent / "train.npz"


def write_train_set(path: Path = TRAIN_FILE) -> Path:
    """Generate the split locally (never downloads) and write it atomically."""
    from models._common import mnist1d
    from models.rleaky_mnist1d.model import encode

    data = mnist1d()
    x = np.asarray(encode(data["x_train"]), dtype=np.float32)  # (17, 4000, 8)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, x=x, y=np.asarray(data["y_train"], dtype=np.int64))
    tmp.replace(path)
    return path


def train_set(path: Path = TRAIN_FILE) -> Path:
    """The path of train.npz, written first if it is missing."""
    return path if path.is_file() else write_train_set(path)


if __name__ == "__main__":
    out = write_train_set()
    print(f"wrote {out}")
