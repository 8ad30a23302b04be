#!/usr/bin/env python3
"""Load lava-dl netx ``.net`` files with ``lava.lib.dl.netx.hdf5.Network`` and run them in Lava
0.10 ``fixed_pt``, recording every layer's spikes, u and v.

Standalone script for the Python 3.10 Lava environment (numpy, h5py, lava, lava-dl; never
``rsnn_compiler``); ``rsnn_compiler.backends.lava.netx_run`` calls it through a subprocess.

    python netx_runner.py JOBS.json

``JOBS.json``: ``{"jobs": [{"net": PATH, "inputs": X.npz, "out": RESULTS.npz, "steps": S,
"reset_interval": R or null, "reset_offset": O, "input_message_bits": B}, ...]}``. ``x`` in
``X.npz`` is (T, batch, n_in): integers in the torch (C, H, W) flat order of ``layer/0/shape``; the
source RingBuffer sends row t at Lava step t + 1 (zeros after T). Each sample runs from rest in a
Network that netx builds anew. Results: ``spikes/<i>``, ``u/<i>``, ``v/<i>`` for every layer netx
builds (``i`` = its index in the file), shaped (S, batch, n) in torch flat order, raw Lava steps;
``meta`` (JSON: timings, versions, netx's layer table).

The recording is done by subclasses of Lava's own bit-accurate LIF models (``PyLifModelBitAcc``,
``PyLifResetModelBitAcc``) that only append u, v and the spikes after each step.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _torch_order(arr: np.ndarray, lava_shape: tuple[int, ...]) -> np.ndarray:
    """(n_lava, S) in Lava's (x, y, c) layout -> (S, n) in torch (c, y, x) flat order."""
    steps = arr.shape[-1]
    full = arr.reshape(*lava_shape, steps)
    axes = tuple(reversed(range(len(lava_shape)))) + (len(lava_shape),)
    return full.transpose(axes).reshape(-1, steps).T


def _recording_model(proc, path: str, steps: int):
    """A model class for the netx-built neuron ``proc``: Lava's own fixed_pt LIF model that also
    keeps spikes, u and v after every step and saves them at the last step."""
    from lava.proc.lif.models import PyLifModelBitAcc, PyLifResetModelBitAcc
    from lava.proc.lif.process import LIF, LIFReset

    if type(proc) is LIFReset:
        base = PyLifResetModelBitAcc
    elif type(proc) is LIF:
        base = PyLifModelBitAcc
    else:
        raise SystemExit(f"netx_runner: layer neuron {type(proc).__name__} is not a LIF; only CUBA"
                         " layers are recorded")

    class Recording(base):
        implements_process = type(proc)

        def __init__(self, proc_params):
            super().__init__(proc_params)
            self.rs_rec = {"spikes": [], "u": [], "v": []}
            self.rs_spikes = None

        def spiking_activation(self):
            self.rs_spikes = super().spiking_activation()
            return self.rs_spikes

        def run_spk(self):
            super().run_spk()
            for key, val in (("spikes", self.rs_spikes), ("u", self.u), ("v", self.v)):
                self.rs_rec[key].append(np.array(val, dtype=np.int64).reshape(-1))
            if self.time_step == steps:
                np.savez(path, **{k: np.stack(v, axis=1) for k, v in self.rs_rec.items()})

    return Recording


def run_sample(net_path: str, x: np.ndarray, steps: int, job: dict, tmp: Path):
    """One sample ``x`` (T, n_in): {layer index: {spikes, u, v: (S, n)}} and netx's table."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer

    net = netx.hdf5.Network(net_config=net_path, reset_interval=job.get("reset_interval"),
                            reset_offset=int(job.get("reset_offset", 0)),
                            input_message_bits=int(job.get("input_message_bits", 0)))
    in_shape = tuple(net.inp.shape)  # Lava (x, y, c)
    data = np.zeros((steps, int(np.prod(in_shape))), np.int64)
    data[:min(len(x), steps)] = x[:steps]
    lava_rows = data.reshape(steps, *reversed(in_shape)).transpose(
        tuple(reversed(range(1, len(in_shape) + 1))) + (0,))  # (x, y, c, S)
    source = RingBuffer(data=np.ascontiguousarray(lava_rows.astype(np.int32)))
    source.s_out.connect(net.inp)
    model_map, files = {}, {}
    for k, layer in enumerate(net.layers):
        path = str(tmp / f"layer{k}.npz")
        model_map[layer.neuron] = _recording_model(layer.neuron, path, steps)
        files[k] = (path, tuple(layer.neuron.s_out.shape))
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=model_map)
    net.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
    net.stop()
    out = {}
    for k, (path, shape) in files.items():
        with np.load(path) as z:
            out[k] = {key: _torch_order(z[key], shape) for key in ("spikes", "u", "v")}
    return out, str(net)


def layer_indices(net_path: str) -> list[int]:
    """File indices of the layers netx builds (every layer except a neuron-less input/flatten)."""
    import h5py

    out = []
    with h5py.File(net_path, "r") as f:
        for i in range(len(f["layer"])):
            g = f[f"layer/{i}"]
            kind = g["type"][()]
            kind = (kind[0] if np.ndim(kind) else kind).decode("ascii")
            if kind == "flatten" or (kind == "input" and "neuron" not in g):
                continue
            out.append(i)
    return out


def run_job(job: dict) -> dict:
    with np.load(job["inputs"], allow_pickle=False) as z:
        x = z["x"]
    if x.ndim != 3 or x.dtype.kind not in "iub":
        raise SystemExit(f"netx_runner: inputs must be integers (T, batch, n_in), got {x.dtype} {x.shape}")
    steps = int(job["steps"])
    indices = layer_indices(job["net"])
    results: dict[str, list[np.ndarray]] = {}
    t0 = time.perf_counter()
    table = ""
    with tempfile.TemporaryDirectory(prefix="rsnnc-netx-") as tmp:
        for b in range(x.shape[1]):
            rec, table = run_sample(job["net"], x[:, b].astype(np.int64), steps, job, Path(tmp))
            for k, per in rec.items():
                for key, arr in per.items():
                    results.setdefault(f"{key}/{indices[k]}", []).append(arr)
    arrays = {k: np.stack(v, axis=1) for k, v in results.items()}
    meta = {"samples": int(x.shape[1]), "steps": steps, "run_s": time.perf_counter() - t0,
            "layers": indices, "netx_table": table, "versions": versions()}
    out = Path(job["out"])
    tmp_out = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp_out, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp_out, out)
    return meta


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("lava-nc", "lava-dl", "torch", "h5py")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[0] + "\n\n    python netx_runner.py JOBS.json", file=sys.stderr)
        return 2
    jobs = json.loads(Path(argv[0]).read_text())["jobs"]
    for job in jobs:
        run_job(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
