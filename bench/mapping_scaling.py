"""Loihi 2 mapping scaling check: map a synthetic sparse 1M-neuron network and time it.

Network: host input (1 000) -> 10 LIF layers of 100 000 neurons; every neuron reads FAN_IN
sources drawn from a local window of the previous layer (CSR, int32 indices). Writes
bench/results/mapping_scaling.{json,md}. Run: .venv/bin/python bench/mapping_scaling.py [--neurons N]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from rsnn_compiler.backends.lava.map_loihi2 import Connection, Network, Population, map_network

OUT = Path(__file__).resolve().parent / "results"


def synthetic(neurons: int, layers: int = 10, fan_in: int = 32, window: int = 512, seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    net = Network({"in": Population("in", 1000, 0, on_core=False)})
    per = neurons // layers
    prev, n_prev = "in", 1000
    for i in range(layers):
        name = f"l{i}"
        net.populations[name] = Population(name, per)
        centre = (np.arange(per, dtype=np.int64) * n_prev) // per
        lo = np.clip(centre - window // 2, 0, max(n_prev - window, 0))
        idx = (lo[:, None] + rng.integers(0, min(window, n_prev), size=(per, fan_in))).astype(np.int32)
        idx.sort(axis=1)
        fanin = np.full(per, fan_in, dtype=np.int64)
        net.connections.append(Connection(f"{prev}->{name}", prev, name, fanin, n_prev, 8, False,
                                          np.arange(per + 1, dtype=np.int64) * fan_in, idx.reshape(-1)))
        prev, n_prev = name, per
    return net


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--neurons", type=int, default=1_000_000)
    ap.add_argument("--fan-in", type=int, default=32)
    ap.add_argument("--board", default="hala_point")
    args = ap.parse_args()
    t0 = time.perf_counter()
    net = synthetic(args.neurons, fan_in=args.fan_in)
    t1 = time.perf_counter()
    m = map_network(net, board=args.board)
    t2 = time.perf_counter()
    synapses = sum(c.synapses for c in net.connections)
    result = {
        "neurons": sum(p.size for p in net.populations.values() if p.on_core), "synapses": synapses,
        "fan_in": args.fan_in, "board": args.board, "cores": m.n_cores, "chips": m.n_chips,
        "rounds": m.rounds, "fits": m.fits, "violations": [str(v) for v in m.violations],
        "build_network_s": round(t1 - t0, 3), "map_s": round(t2 - t1, 3),
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "mapping_scaling.json").write_text(json.dumps(result, indent=1) + "\n")
    (OUT / "mapping_scaling.md").write_text(
        "# Loihi 2 mapping scaling\n\n| neurons | synapses | cores | chips | rounds | map time |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        f"| {result['neurons']:,} | {synapses:,} | {m.n_cores} | {m.n_chips} | {m.rounds} | {result['map_s']} s |\n\n"
        f"Synthetic sparse network (fan-in {args.fan_in}, local window), board {args.board}; "
        f"{result['machine']}; network construction {result['build_network_s']} s not included.\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
