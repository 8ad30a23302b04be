"""Write lava-dl netx files with lava-dl's own API (slayer CUBA blocks + export_hdf5); run in
the Python 3.10 Lava environment by tests/test_netx_import.py.

    python slayer_export.py SEED OUT.net:KIND [OUT.net:KIND ...]      # KIND: dense | conv
"""
import sys

import h5py
import torch
from lava.lib.dl import slayer


def write(out: str, kind: str, seed: int) -> None:
    torch.manual_seed(seed)
    neuron = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03, "requires_grad": False}
    if kind == "dense":
        blocks = [
            slayer.block.cuba.Dense(neuron, 12, 20, weight_scale=2),
            slayer.block.cuba.Recurrent(neuron, 20, 16, weight_scale=2),
            slayer.block.cuba.Dense({**neuron, "current_decay": 1.0}, 16, 6, weight_scale=2, delay=True),
        ]
        x = torch.zeros(1, 12, 2)
    else:
        blocks = [  # layer 0 (the input shape) is written below
            slayer.block.cuba.Conv(neuron, 2, 4, 3, padding=1, stride=(1, 2), weight_scale=2),
            slayer.block.cuba.Flatten(),
            slayer.block.cuba.Dense(neuron, 4 * 6 * 4, 5, weight_scale=2),
        ]
        x = torch.zeros(1, 2, 6, 8, 2)  # N, C, H, W, T
    with torch.no_grad():  # one forward pass fixes every block's neuron shape
        for block in blocks:
            x = block(x)
        if kind == "dense":  # integer axonal delays 0..3 (sized by the forward pass; netx: per output neuron)
            d = blocks[2].delay.delay
            d.copy_(torch.randint(0, 4, d.shape).float())
    with h5py.File(out, "w") as f:
        layer = f.create_group("layer")
        first = 0
        if kind == "conv":  # netx needs the conv input shape; slayer's Input block would add a
            # neuron whose input port netx leaves unconnected, so write the shape-only input layer
            layer.create_dataset("0/type", (1,), "S10", [b"input"])
            layer.create_dataset("0/shape", data=(2, 6, 8))
            first = 1
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(f"{first + i}"))


if __name__ == "__main__":
    for item in sys.argv[2:]:
        path, kind = item.rsplit(":", 1)
        write(path, kind, int(sys.argv[1]))
    print("ok")
