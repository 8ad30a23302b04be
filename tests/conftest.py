"""Suite-wide settings: one torch thread per test process (the suite runs under pytest-xdist;
small per-step tensors are far faster single-threaded on a busy 2-core machine)."""

import torch

torch.set_num_threads(1)
