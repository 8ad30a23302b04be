"""Write out/rleaky_mnist1d/train.npz: the standard mnist1d training split (4000 samples) in the
rsnnc data format, encoded like data.npz (17 steps of 8 values), for fine-tunes such as
``rsnnc build --stock-neurons ... --stock-data out/rleaky_mnist1d/train.npz``. Deterministic; a
few seconds on a CPU; not shipped (4.4 MB).

    .venv/bin/python -m models.rleaky_mnist1d.make_train_set [OUT.npz [SAMPLES]]
"""

import sys
from pathlib import Path

import numpy as np

from models._common import mnist1d
from models.rleaky_mnist1d.model import encode

if __name__ == "__main__":
    data = mnist1d()
    n = int(sys.argv[2]) if len(sys.argv) > 2 else len(data["y_train"])  # the first n samples
    x = np.asarray(encode(data["x_train"][:n]), dtype=np.float32)  # (17, n, 8)
    root = Path(__file__).resolve().parents[2]
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "out" / "rleaky_mnist1d" / "train.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, x=x, y=np.asarray(data["y_train"][:n], dtype=np.int64))
    print(f"wrote {out}: x {x.shape}")
