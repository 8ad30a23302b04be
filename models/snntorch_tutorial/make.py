"""Train the tutorial-style models briefly on mnist1d and write their checkpoints.

    .venv/bin/python -m models.snntorch_tutorial.make

Writes ``feedforward.pt`` and ``recurrent.pt`` as training-loop checkpoints
(``{"epoch", "model_state_dict", "optimizer_state_dict"}``, as the PyTorch tutorials save them)
and ``data.npz`` (256 test samples, x (17, 256, 8), y (256,)). A few hundred Adam steps only:
the point is realistic trained weights, not accuracy (recorded in meta.json).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import torch

from models._common import mnist1d, set_determinism
from models.rleaky_mnist1d.model import encode
from models.snntorch_tutorial.model import feedforward, predict, recurrent

HERE = pathlib.Path(__file__).resolve().parent
HIDDEN = 64
ITERS = 300
BATCH = 64


def train(net, x, y) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(ITERS):
        idx = torch.randint(0, x.shape[1], (BATCH,), generator=gen)
        out = net(x[:, idx])
        spk = out[0] if isinstance(out, tuple) else out
        loss = torch.nn.functional.cross_entropy(spk.sum(0), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return opt


def main() -> None:
    set_determinism(0)
    d = mnist1d()
    x_tr, y_tr = encode(d["x_train"]), torch.as_tensor(d["y_train"])
    x_te, y_te = encode(d["x_test"][:256]), torch.as_tensor(d["y_test"][:256])
    meta = {"hidden": HIDDEN, "iterations": ITERS}
    for name, factory in (("feedforward", feedforward), ("recurrent", recurrent)):
        net = factory(HIDDEN)
        opt = train(net, x_tr, y_tr)
        torch.save({"epoch": 1, "model_state_dict": net.state_dict(), "optimizer_state_dict": opt.state_dict()},
                   HERE / f"{name}.pt")
        meta[f"{name}_accuracy"] = round(float((predict(net, x_te) == y_te).float().mean()) * 100, 2)
    np.savez(HERE / "data.npz", x=x_te.numpy().astype(np.float32), y=y_te.numpy().astype(np.int64))
    (HERE / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(meta)


if __name__ == "__main__":
    main()
