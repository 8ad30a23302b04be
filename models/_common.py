"""Helpers shared by the example models' make.py scripts (data, determinism, timing)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

# mnist1d uses the standard generator arguments (seed 42): 4000 train / 1000 test, 40 samples long.
MNIST1D_SEED = 42


def set_determinism(seed: int = 0) -> None:
    """Fixed seeds, deterministic kernels, 2 threads (the reference machine has 2 cores)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)


def mnist1d(extra_train: int = 0, extra_seed: int = 7) -> dict[str, np.ndarray]:
    """Generate mnist1d locally (never downloads).

    Returns float32 x (N, 40) and int64 y for the standard train/test split; with
    ``extra_train > 0`` more training samples are drawn from the same generator with another
    seed and appended to the training split (the test split stays the standard one).
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = MNIST1D_SEED
    d = make_dataset(args)
    x_tr, y_tr = d["x"], d["y"]
    if extra_train:
        a = get_dataset_args()
        a.num_samples, a.train_split, a.seed = extra_train, 1.0, extra_seed
        e = make_dataset(a)
        x_tr = np.concatenate([x_tr, e["x"]])
        y_tr = np.concatenate([y_tr, e["y"]])
    return {
        "x_train": np.asarray(x_tr, np.float32),
        "y_train": np.asarray(y_tr, np.int64),
        "x_test": np.asarray(d["x_test"], np.float32),
        "y_test": np.asarray(d["y_test"], np.int64),
    }


def count_params(module: torch.nn.Module) -> tuple[int, int]:
    """(number of trainable parameters, bytes of the whole state_dict as float32/int tensors)."""
    n = sum(p.numel() for p in module.parameters())
    nbytes = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    return n, nbytes
