"""Helpers shared by the importers: names, arrays, discretisation constants, cycle cutting.

Discretisation (forward Euler at step ``dt``, computed in float64 and stored float32), per neuron:
    a = dt/tau,  beta = 1 - a,  gain = r*a,  bias = a*v_leak     (IF / I: gain = r*dt)
    CUBA: alpha = 1 - dt/tau_syn,  gain_i = w_in*dt/tau_syn
Gains within 1e-5 of 1 are set to exactly 1 (snnTorch's float32 export gives 0.99999995...).
"""

from __future__ import annotations

import re
import networkx as nx
import numpy as np

from rsnn_compiler.errors import UserInputError, VerificationError
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.verify import verify_or_raise

GAIN_SNAP = 1e-5
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


def to_array(value, name: str = "parameter") -> np.ndarray:
    """numpy view of a numpy array, torch tensor, list or scalar (float stays float)."""
    if value is None:
        raise UserInputError(f"{name} is missing; the model must define it")
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def sanitize_name(name: str, taken: set[str]) -> str:
    """Map a source name onto the IR's name alphabet (letters, digits, ``_ . -``), uniquely."""
    clean = _BAD_CHARS.sub("_", str(name)) or "node"
    if clean[0] == "." or clean[0] == "-":
        clean = "_" + clean
    out, k = clean, 1
    while out in taken:
        k += 1
        out = f"{clean}_{k}"
    taken.add(out)
    return out


def snap_gain(g: np.ndarray) -> np.ndarray:
    """float64 gain -> float32, with |g - 1| < 1e-5 set to exactly 1."""
    g = np.asarray(g, dtype=np.float64)
    g = np.where(np.abs(g - 1.0) < GAIN_SNAP, 1.0, g)
    return g.astype(np.float32)


def decay_from_tau(tau: np.ndarray, dt: float) -> np.ndarray:
    """beta = 1 - dt/tau as float32 (tau = inf gives 1), recovered exactly for snnTorch exports.

    snnTorch writes ``tau = fl32(fl32(dt) / fl32(1 - beta))`` for float32 parameters. For each
    neuron the naive float32 value and its neighbours within 4 ulp are tried; a candidate that
    reproduces ``tau`` through that formula is preferred (the closest to the float64 value when
    several do). float64 tau (snnTorch's RLeaky export) needs no search: 1 - dt/tau rounds to beta.
    """
    raw = np.asarray(tau)
    tau64 = raw.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = 1.0 - dt / tau64
    naive = exact.astype(np.float32)
    if raw.dtype != np.float32:
        return np.where(np.isinf(tau64) & (tau64 > 0), np.float32(1.0), naive).astype(np.float32)
    dt32 = np.float32(dt)
    ok = np.isfinite(raw) & np.isfinite(exact)
    best = naive.copy()
    best_err = np.full(raw.shape, np.inf)
    cand = naive.copy()
    for _ in range(4):
        cand = np.nextafter(cand, np.float32(-np.inf))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(9):  # naive - 4 ulp .. naive + 4 ulp
            back = (dt32 / (np.float32(1.0) - cand)).astype(np.float32)
            err = np.abs(cand.astype(np.float64) - exact)
            take = ok & (back == raw) & (err < best_err)
            best = np.where(take, cand, best)
            best_err = np.where(take, err, best_err)
            cand = np.nextafter(cand, np.float32(np.inf))
    out = np.where(np.isinf(tau64) & (tau64 > 0), np.float32(1.0), best)
    return out.astype(np.float32)


def cut_cycles(
    nodes: list[str], edges: list[tuple[str, str, int]], neurons: set[str], breakers: set[str]
) -> tuple[list[tuple[str, str, int]], list[str]]:
    """Give delay 1 to the edges that leave a neuron inside a same-step cycle (NIR notes §4).

    ``breakers`` are nodes whose output at t does not depend on input at t (Delay >= 1 step).
    Then order each node's in-edges so that feedback edges (from the node's own strongly
    connected component) come after feed-forward ones: snnTorch adds ``beta*v + input`` first and
    the recurrent term last. Returns the new edge list and a list of the cut edges as text.
    Raises UserInputError for an algebraic loop that contains no neuron.
    """
    same = nx.DiGraph()
    same.add_nodes_from(nodes)
    for s, d, k in edges:
        if k == 0 and s not in breakers:
            same.add_edge(s, d)
    comp_of: dict[str, int] = {}
    for i, comp in enumerate(nx.strongly_connected_components(same)):
        for n in comp:
            comp_of[n] = i
    out, cuts = [], []
    for s, d, k in edges:
        looped = comp_of[s] == comp_of[d] and (s != d or same.has_edge(s, s))
        if k == 0 and s not in breakers and looped and s in neurons:
            k = 1
            cuts.append(f"{s} -> {d}")
        out.append((s, d, k))
    check = nx.DiGraph()
    check.add_nodes_from(nodes)
    for s, d, k in out:
        if k == 0 and s not in breakers:
            check.add_edge(s, d)
    try:
        loop = [u for u, _v in nx.find_cycle(check)]
    except nx.NetworkXNoCycle:
        loop = None
    if loop:
        text = " -> ".join(loop + [loop[0]])
        raise UserInputError(
            f"algebraic loop {text} contains no neuron or Delay, so it has no usable delay;"
            " insert a Delay node or a neuron into the loop"
        )
    full = nx.DiGraph()
    full.add_nodes_from(nodes)
    full.add_edges_from((s, d) for s, d, _k in out)
    scc: dict[str, int] = {}
    for i, comp in enumerate(nx.strongly_connected_components(full)):
        for n in comp:
            scc[n] = i
    ordered = sorted(out, key=lambda e: scc[e[0]] == scc[e[1]])  # stable: feed-forward first
    return ordered, cuts


def finish_graph(graph: Graph) -> Graph:
    """Verify; a failing check becomes a one-line UserInputError naming the problem and fix."""
    try:
        return verify_or_raise(graph)
    except VerificationError as err:
        raise UserInputError(f"imported graph is invalid: {err}") from None

