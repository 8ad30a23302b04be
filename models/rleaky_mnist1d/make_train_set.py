"""Write out/rleaky_mnist1d/train.npz: the standard mnist1d training split (4000 samples) in the
rsnnc data format, encoded like data.npz (17 steps of 8 values), for fine-tunes such as
``rsnnc build --stock-neurons ... --stock-data out/rleaky_mnist1d/train.npz``. Deterministic; a
few seconds on a CPU; not shipped (4.4 MB).

    .venv/bin/python -m models.rleaky_mnist1d.make_train_set [OUT.npz]
"""

import sys
from pathlib import Path

import numpy as np

from models._common import mnist1d
from models.rleaky_mnist1d.model import encode

if __name__ == "__main__":
    data = mnist1d()
    x = np.asarray(encode(data["x_train"]), dtype=np.float32)  # (17, 4000, 8)
    root = Path(__file__).resolve().parents[2]
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "out" / "rleaky_mnist1d" / "train.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, x=x, y=np.asarray(data["y_train"], dtype=np.int64))
    print(f"wrote {out}: x {x.shape}")
