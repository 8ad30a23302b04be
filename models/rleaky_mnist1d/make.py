"""Regenerate models/rleaky_mnist1d: train, export NIR, write weights/data/meta.

    .venv/bin/python -m models.rleaky_mnist1d.make      (from the repository root)

Deterministic on CPU (fixed seeds, deterministic algorithms, 2 threads).
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
import torch
from torch import nn

from models._common import count_params, mnist1d, set_determinism
from models.rleaky_mnist1d import model as M

HERE = pathlib.Path(__file__).resolve().parent
SEED = 0
EXTRA_TRAIN = 8000  # extra generated training samples (other seed); test split is the standard one
EPOCHS = 8
BATCH = 64
LR = 2e-3
LOGIT_SCALE = 0.5  # cross-entropy on spike counts * LOGIT_SCALE
N_DATA = 256  # test samples shipped in data.npz


def clamp_betas(net: nn.Module) -> None:
    # snnTorch clamps beta to [0, 1] at run time but exports it unclamped: keep the stored values
    # inside [0, 1] so the weights, the NIR file and the simulation agree.
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(getattr(mod, "beta", None), torch.Tensor):
                mod.beta.clamp_(0.0, 1.0)


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    return float((M.predict(net, x) == y).float().mean()) * 100.0


def main() -> None:
    t_start = time.time()
    set_determinism(SEED)
    d = mnist1d(extra_train=EXTRA_TRAIN)
    x_tr, y_tr = M.encode(d["x_train"]), torch.from_numpy(d["y_train"])
    x_te, y_te = M.encode(d["x_test"]), torch.from_numpy(d["y_test"])
    n = y_tr.shape[0]

    set_determinism(SEED)
    net = M.build()
    # heterogeneous initial time constants for the recurrent layer
    with torch.no_grad():
        net[1].beta.copy_(0.75 + 0.2 * torch.rand(M.N_HIDDEN))
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    steps = EPOCHS * ((n + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(SEED)
    for ep in range(EPOCHS):
        net.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, BATCH):
            idx = perm[i : i + BATCH]
            counts = M.run(net, x_tr[:, idx]).sum(0)
            loss = nn.functional.cross_entropy(counts * LOGIT_SCALE, y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            clamp_betas(net)
        print(f"epoch {ep}: loss {loss.item():.3f} test {accuracy(net, x_te, y_te):.2f}%", flush=True)
    net.eval()
    test_acc = accuracy(net, x_te, y_te)

    torch.save(net.state_dict(), HERE / "weights.pt")

    # calibration / test data in the rsnnc data format: x (time, batch, features), y (batch,)
    x_data = x_te[:, :N_DATA].numpy().astype(np.float32)
    y_data = y_te[:N_DATA].numpy().astype(np.int64)
    np.savez_compressed(HERE / "data.npz", x=x_data, y=y_data)
    data_acc = accuracy(net, torch.from_numpy(x_data), torch.from_numpy(y_data))
    with torch.no_grad():
        spikes_per_sample = float(M.run(net, torch.from_numpy(x_data)).sum() / N_DATA)

    # NIR export (snnTorch exporter; needs per-neuron beta and threshold and ignore_dims=[0])
    import nir
    from snntorch import utils as snn_utils
    from snntorch.export_nir import export_to_nir

    snn_utils.reset(net)
    graph = export_to_nir(net, torch.zeros(1, M.N_IN), ignore_dims=[0])
    snn_utils.reset(net)
    nir_path = HERE / "model.nir"
    if nir_path.exists():
        nir_path.unlink()
    nir.write(str(nir_path), graph)
    nodes = sorted(graph.nodes)
    edges = sorted(graph.edges)

    n_params, n_bytes = count_params(net)
    meta = {
        "reset": M.RSNNC_RESET,
        "snntorch_reset_mechanism": M.RESET_MECHANISM,
        "snntorch_reset_delay": M.RESET_DELAY,
        "dt": M.DT,
        "comparator": "gt",
        "input": {"window": M.WINDOW, "stride": M.STRIDE, "steps": M.N_STEPS, "features": M.N_IN},
        "readout": "argmax of output spike counts summed over time (first index on ties)",
        "test_accuracy": round(test_acc, 2),
        "test_samples": int(y_te.shape[0]),
        "data_accuracy": round(data_acc, 2),
        "data_samples": N_DATA,
        "output_spikes_per_sample": round(spikes_per_sample, 3),
        "train_samples": int(n),
        "params": n_params,
        "state_dict_bytes": n_bytes,
        "nir_nodes": nodes,
        "nir_edges": [list(e) for e in edges],
        "make_runtime_s": round(time.time() - t_start, 1),
        "versions": {"torch": torch.__version__, "snntorch": __import__("snntorch").__version__,
                     "nir": nir.version if hasattr(nir, "version") else None},
    }
    (HERE / "model_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
