"""Regenerate models/mlp_digits: train, write weights.pt, model.onnx, data.npz, meta.json.

    .venv/bin/python -m models.mlp_digits.make      (from the repository root)
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
import torch
from torch import nn

from models._common import count_params, set_determinism
from models.mlp_digits import model as M

HERE = pathlib.Path(__file__).resolve().parent
SEED = 0
EPOCHS = 100
BATCH = 64
LR = 0.05
N_DATA = 256


def main() -> None:
    t_start = time.time()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    set_determinism(SEED)
    digits = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        digits.data, digits.target, test_size=0.3, stratify=digits.target, random_state=0
    )
    x_tr, x_te = M.encode(x_tr)[0], M.encode(x_te)
    y_tr, y_te = torch.as_tensor(y_tr, dtype=torch.int64), torch.as_tensor(y_te, dtype=torch.int64)
    n = y_tr.shape[0]

    net = M.build()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)
    steps_per_epoch = (n + BATCH - 1) // BATCH
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS * steps_per_epoch)
    gen = torch.Generator().manual_seed(SEED)
    for _ep in range(EPOCHS):
        net.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, BATCH):
            idx = perm[i : i + BATCH]
            loss = nn.functional.cross_entropy(net(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    test_acc = float((M.predict(net, x_te) == y_te).float().mean()) * 100
    torch.save(net.state_dict(), HERE / "weights.pt")

    x_data = x_te[:, :N_DATA].numpy().astype(np.float32)
    y_data = y_te[:N_DATA].numpy().astype(np.int64)
    np.savez_compressed(HERE / "data.npz", x=x_data, y=y_data)
    data_acc = float((M.predict(net, torch.from_numpy(x_data)) == torch.from_numpy(y_data)).float().mean()) * 100

    # ONNX (opset 17, TorchScript-based exporter: the dynamo exporter needs onnxscript)
    import onnx

    onnx_path = HERE / "model.onnx"
    torch.onnx.export(
        net, (torch.zeros(1, M.N_IN),), str(onnx_path), opset_version=17, dynamo=False,
        input_names=["x"], output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
    )
    g = onnx.load(str(onnx_path))
    onnx.checker.check_model(g)

    n_params, n_bytes = count_params(net)
    meta = {
        "task": "sklearn digits, 70/30 stratified split (random_state=0)",
        "activation": f"clipped ReLU, fixed clip {M.CLIP}",
        "input_scale": M.INPUT_SCALE,
        "readout": "argmax of logits (summed over time; T = 1)",
        "test_accuracy": round(test_acc, 2),
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
