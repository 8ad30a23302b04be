"""Write train.npz: the standard mnist1d training split (4 000 signals) in the rsnnc data format
(17 steps of 8 values, like data.npz and test.npz), for fine-tuning, calibration and the
stock-neuron fine-tune (``rsnnc build --stock-neurons ... --stock-data``); with ``--full``,
train_full.npz: the model's whole training data (those 4 000 plus the 8 000 extra signals make.py
trained on, 12 000). ``OUT.npz [SAMPLES]`` writes the first SAMPLES training signals to OUT.npz.

Neither holds a test signal, so accuracy reported on test.npz is on held-out data. Not committed
(about 2 and 6 MB): ``scripts/setup.sh`` writes train.npz, and the tests that need a file write
it. Deterministic; about 10 s (20 s with --full) of CPU.

    .venv/bin/python -m models.rleaky_mnist1d.make_train_set [--full | OUT.npz [SAMPLES]]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

TRAIN_FILE = Path(__file__).resolve().parent / "train.npz"
FULL_TRAIN_FILE = Path(__file__).resolve().parent / "train_full.npz"
EXTRA_TRAIN = 8000  # as make.py


def write_train_set(path: Path = TRAIN_FILE, extra: int = 0, samples: int | None = None) -> Path:
    """Generate the split locally (never downloads) and write it atomically; ``samples`` keeps
    the first that many signals (all when None)."""
    from models._common import mnist1d
    from models.rleaky_mnist1d.model import encode

    data = mnist1d(extra_train=extra)
    n = len(data["y_train"]) if samples is None else samples
    x = np.asarray(encode(data["x_train"][:n]), dtype=np.float32)  # (17, n, 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, x=x, y=np.asarray(data["y_train"][:n], dtype=np.int64))
    tmp.replace(path)
    return path


def train_set(path: Path = TRAIN_FILE) -> Path:
    """The path of train.npz, written first if it is missing."""
    return path if path.is_file() else write_train_set(path)


def full_train_set(path: Path = FULL_TRAIN_FILE) -> Path:
    """The path of train_full.npz (12 000 signals), written first if it is missing."""
    return path if path.is_file() else write_train_set(path, EXTRA_TRAIN)


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--full" in args:
        out = full_train_set()
    elif args:
        out = write_train_set(Path(args[0]), samples=int(args[1]) if len(args) > 1 else None)
    else:
        out = write_train_set()
    print(f"wrote {out}")
