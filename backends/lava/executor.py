"""``rsnnc run --executor lava``: run the emitted Lava program, results aligned to IR steps.

The host applies the graph's input ``Quantize`` node (if any) exactly as ``run_fixed`` does and
feeds the integers through the source RingBuffer. Lava runs ``T + max_stage`` steps (zeros after
the input); population ``p`` at stage ``s`` has its IR step ``t`` in Lava row ``t + s``, so each
recording is cut to rows ``s .. s + T - 1``. The result has ``run_fixed``'s keys and shapes:
``out``, ``spikes/<node>``, ``i/<node>`` (Lava's u), ``v/<node>``, ``a/<node>``, ``c/<node>``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Mapping

import numpy as np

from rsnn_compiler import progress
from rsnn_compiler.artifact import build_file
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.executors import load_build_graph, target_program
from rsnn_compiler.interpreter.fixed_interp import quantize_input
from rsnn_compiler.interpreter.float_interp import check_inputs
from rsnn_compiler.interpreter.result import RunResult
from rsnn_compiler.ir.graph import Domain, Graph

from rsnn_compiler.backends.lava.emit import IR_STATE
from rsnn_compiler.backends.lava.env import lava_status, run_in_lava
from rsnn_compiler.backends.lava.spec import LAVA_SPEC

INT32 = np.iinfo(np.int32)


def host_inputs(graph: Graph, meta: Mapping, x: np.ndarray) -> np.ndarray:
    """The integers the source RingBuffer sends, shaped (T, batch, *source_shape)."""
    x = check_inputs(graph, x)
    q = meta.get("quantize")
    if q is not None:
        ints = quantize_input(graph.nodes[q], np.asarray(x, dtype=np.float64))
    else:
        if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_) and not np.array_equal(x, np.round(x)):
            raise UserInputError("this fixed-point graph takes integer inputs (its Input feeds integer"
                                 " ops directly); pass integers or add a Quantize node after the Input")
        ints = np.asarray(x).astype(np.int64)
    if ints.size and (ints.min() < INT32.min or ints.max() > INT32.max):
        raise UserInputError("Lava's RingBuffer sends int32; an input value is outside the int32 range")
    return ints


def _gather(results: Mapping[str, np.ndarray], what: str, prefix: str, node: str,
            pop: Mapping) -> np.ndarray:
    """The node's recording (rows, batch, n), reassembled from its parts if it was split."""
    if "parts" not in pop:
        return results[f"{what}/{prefix}{node}"]
    parts = [(results[f"{what}/{prefix}{p['lava']}"], p["index"]) for p in pop["parts"]]
    rows, batch = parts[0][0].shape[:2]
    out = np.zeros((rows, batch, int(np.prod(pop["shape"]))), np.int64)
    for arr, index in parts:
        out[:, :, index] = arr
    return out


def decode(meta: Mapping, results: Mapping[str, np.ndarray], x_src: np.ndarray,
           prefix: str = "") -> RunResult:
    """Lava recordings (raw Lava rows) -> a stage-aligned ``RunResult`` of T = len(x_src) steps."""
    steps, batch = x_src.shape[:2]
    values: dict[str, np.ndarray] = {meta["source"]: x_src}
    spikes: dict[str, np.ndarray] = {}
    states: dict[str, np.ndarray] = {}
    for node, pop in meta["populations"].items():
        s = int(pop["stage"])
        for what in pop["record"]:
            raw = _gather(results, what, prefix, node, pop)
            arr = np.ascontiguousarray(raw[s:s + steps].reshape(steps, batch, *pop["shape"]))
            if what == "spikes":
                spikes[node] = values[node] = arr
            else:
                states[f"{IR_STATE[what]}/{node}"] = arr
                if what == pop["value"]:
                    values[node] = arr
    src, delay = meta["output"]["node"], int(meta["output"]["delay"])
    val = values[src]
    out = np.zeros_like(val)
    if delay < steps:
        out[delay:] = val[:steps - delay]
    return RunResult(out=out, values=values, spikes=spikes, states=states)


def run_program(net_dir: Path, graph: Graph, x: np.ndarray, **kw) -> RunResult:
    """Run the program in ``net_dir`` (an emitted ``lava/`` folder) on ``x`` for ``graph``."""
    meta = json.loads((Path(net_dir) / LAVA_SPEC.network_file).read_text())["meta"]["rsnnc"]
    x_src = host_inputs(graph, meta, x)
    steps, batch = x_src.shape[:2]
    flat = x_src.reshape(steps, batch, -1)
    progress.step(f"lava: running {batch} sample(s) x {steps} steps in Loihi2SimCfg fixed_pt")
    results = run_in_lava(net_dir, flat, steps=steps + int(meta["max_stage"]), **kw)
    return decode(meta, results, x_src)


class LavaExecutor:
    name: ClassVar[str] = "lava"

    def node_groups(self, build: Path, manifest: dict) -> dict[str, list[str]]:
        """IR neurons on stock Lava processes and on custom ones (``rsnnc validate`` compares
        them separately)."""
        net = build_file(build, manifest, f"lava/{LAVA_SPEC.network_file}")  # hash-checked
        pops = json.loads(net.read_text())["meta"]["rsnnc"]["populations"]
        if not (isinstance(pops, dict) and all(isinstance(p, dict) and "custom" in p for p in pops.values())):
            raise UserInputError(f"{net}: meta.rsnnc.populations is malformed; rebuild with `rsnnc build`")
        return {"stock Lava processes": [n for n, p in pops.items() if not p["custom"]],
                "custom processes": [n for n, p in pops.items() if p["custom"]]}
    domains: ClassVar[tuple[str, ...]] = ("fixed",)  # rsnnc run picks fixed without --domain

    def run(self, build: Path, manifest: dict, domain: Domain, profile: str | None, x: np.ndarray) -> RunResult:
        from rsnn_compiler.validate import ExecutorUnavailable

        folder, key = target_program(build, manifest, domain, profile, "lava", "Lava", LAVA_SPEC.network_file)
        status = lava_status()
        if not status.found:
            raise ExecutorUnavailable(f"the Lava executor cannot run: {status.reason}")
        return run_program(folder, load_build_graph(build, manifest, key), x)
