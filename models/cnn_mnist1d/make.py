"""Regenerate models/cnn_mnist1d: train (with BatchNorm), fold BN, write weights.pt,
model.onnx, data.npz, meta.json.

    .venv/bin/python -m models.cnn_mnist1d.make      (from the repository root)
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
import torch
from torch import nn

from models._common import count_params, mnist1d, set_determinism
from models.cnn_mnist1d import model as M

HERE = pathlib.Path(__file__).resolve().parent
SEED = 0
EPOCHS = 40
BATCH = 64
LR = 0.05
N_DATA = 256


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    return float((M.predict(net, x) == y).float().mean()) * 100


def main() -> None:
    t_start = time.time()
    set_determinism(SEED)
    d = mnist1d()
    x_tr = M.encode(d["x_train"])[0]
    y_tr = torch.from_numpy(d["y_train"])
    x_te, y_te = M.encode(d["x_test"]), torch.from_numpy(d["y_test"])
    n = y_tr.shape[0]

    set_determinism(SEED)
    net = M.build(batchnorm=True)
    clip_params = [p for name, p in net.named_parameters() if name.endswith("alpha")]
    other = [p for name, p in net.named_parameters() if not name.endswith("alpha")]
    opt = torch.optim.SGD(
        [{"params": other, "weight_decay": 5e-4}, {"params": clip_params, "weight_decay": 1e-3}],
        lr=LR, momentum=0.9,
    )
    steps_per_epoch = (n + BATCH - 1) // BATCH
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS * steps_per_epoch)
    gen = torch.Generator().manual_seed(SEED)
    for ep in range(EPOCHS):
        net.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, BATCH):
            idx = perm[i : i + BATCH]
            loss = nn.functional.cross_entropy(net(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if ep % 10 == 9:
            print(f"epoch {ep}: loss {loss.item():.3f} test {accuracy(net, x_te, y_te):.2f}%", flush=True)
    net.eval()
    acc_bn = accuracy(net, x_te, y_te)
    folded = M.fold_batchnorm(net).eval()
    test_acc = accuracy(folded, x_te, y_te)
    torch.save(folded.state_dict(), HERE / "weights.pt")

    x_data = x_te[:, :N_DATA].numpy().astype(np.float32)
    y_data = y_te[:N_DATA].numpy().astype(np.int64)
    np.savez_compressed(HERE / "data.npz", x=x_data, y=y_data)
    data_acc = accuracy(folded, torch.from_numpy(x_data), torch.from_numpy(y_data))

    import onnx

    onnx_path = HERE / "model.onnx"
    torch.onnx.export(
        folded, (torch.zeros(1, 1, M.SIGNAL_LEN),), str(onnx_path), opset_version=17, dynamo=False,
        input_names=["x"], output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
    )
    g = onnx.load(str(onnx_path))
    onnx.checker.check_model(g)

    n_params, n_bytes = count_params(folded)
    meta = {
        "task": "mnist1d (generated locally, standard args seed 42: 4000 train / 1000 test)",
        "activation": "clipped ReLU clamp(x, 0, alpha), one learnable alpha per layer",
        "clip_values": [round(float(p.detach()), 4) for name, p in folded.named_parameters() if name.endswith("alpha")],
        "readout": "argmax of logits (summed over time; T = 1)",
        "test_accuracy": round(test_acc, 2),
        "test_accuracy_before_bn_fold": round(acc_bn, 2),
        "test_samples": int(y_te.shape[0]),
        "data_accuracy": round(data_acc, 2),
        "data_samples": N_DATA,
        "train_samples": int(n),
        "params": n_params,
        "state_dict_bytes": n_bytes,
        "onnx_opset": 17,
        "onnx_ops": [nd.op_type for nd in g.graph.node],
        "make_runtime_s": round(time.time() - t_start, 1),
    }
    (HERE / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
