"""Write test.npz: the full standard mnist1d test split (1000 samples) in the rsnnc data format,
encoded like data.npz (17 steps of 8 values). Deterministic; a few seconds on a CPU.

    .venv/bin/python -m models.rleaky_mnist1d.make_test_set
"""

from pathlib import Path

import numpy as np

from models._common import mnist1d
from models.rleaky_mnist1d.model import encode

if __name__ == "__main__":
    data = mnist1d()
    x = np.asarray(encode(data["x_test"]), dtype=np.float32)  # (17, 1000, 8)
    out = Path(__file__).resolve().parent / "test.npz"
    np.savez_compressed(out, x=x, y=np.asarray(data["y_test"], dtype=np.int64))
    print(f"wrote {out}: x {x.shape}")
