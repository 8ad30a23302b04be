"""Graphs that put every neuron family through every choice, for the differential tests.

``fixed_family_graph(family, seed)``: Input -> one branch per combination of reset mode x
comparator x overflow rules (where the family has them) -> Output; each branch is a FixedDense
into a population of ``family`` with a recurrent FixedDense (delay 1), narrow state widths and
large weights so that saturation and wrapping happen. ``float_family_graph(family, seed)``: Input
-> one population per reset x comparator, each fed twice (edge delays 0 and 1) so the per-edge
accumulation order matters. Inputs: ``case_input``.
"""

from __future__ import annotations

import itertools

import numpy as np

from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.ir import verify
from rsnn_compiler.ir.catalogue import neuron_op_class
from rsnn_compiler.ir.fixed_ops import FixedDense
from rsnn_compiler.ir.graph import Domain, Graph, GraphBuilder
from rsnn_compiler.ir.ops import Input, Output
from rsnn_compiler.neurons import FIXED_FAMILIES, FLOAT_FAMILIES, Comparator, Domain as NDomain, ResetMode

FPGA_OVERFLOWS = (Overflow.WRAP, Overflow.SATURATE, Overflow.SATURATE_SYM)
WIDTH = 3
MAX_COMBOS = 24  # branches per family graph (the test time of the C compile grows with it)


def choices(family, domain: NDomain) -> list[dict]:
    """Combinations of the family's choice parameters (overflow rules: fpga ones) covering every
    supported value of every choice, at most ``MAX_COMBOS`` of them."""
    axes = []
    for q in family.params:
        if q.choices is Overflow:
            axes.append([(q.name, o) for o in FPGA_OVERFLOWS])
        elif q.choices is not None:
            axes.append([(q.name, m) for m in q.options()])
    combos = [dict(c) for c in itertools.product(*axes)] if axes else [{}]
    if len(combos) <= MAX_COMBOS:
        return combos
    order = np.random.default_rng(len(combos)).permutation(len(combos))
    missing = {(k, v) for axis in axes for k, v in axis}
    keep = []
    for i in order:  # first every (choice, value) pair, then random fill
        pairs = set(combos[i].items())
        if pairs & missing or len(keep) < MAX_COMBOS - len(missing):
            keep.append(int(i))
            missing -= pairs
        if len(keep) >= MAX_COMBOS and not missing:
            break
    return [combos[i] for i in sorted(keep)]


def _fixed_params(family, rng, n: int, choice: dict) -> dict:
    kw = dict(choice)
    v_bits = int(rng.integers(8, 13))
    kw.update(v_bits=v_bits, input_shift=int(rng.integers(0, 3)))
    extra = FIXED_RANGES.get(family.name, {})
    if family.name == "izhikevich":  # state scale 4: v around -65 * 4, peak 30 * 4
        kw.update(sq_shift=2, v_bits=int(rng.integers(10, 13)), vth_shift=0,
                  vth=np.full(n, 120), input_shift=int(rng.integers(2, 5)))
    for q in family.params:
        if q.name in kw or q.choices is not None:
            continue
        if q.name in extra:
            kw[q.name] = fixed_extra_param(family.name, q.name, rng, n)
        elif q.name == "u_bits":
            kw[q.name] = int(rng.integers(8, 14))
        elif q.name == "du_offset":
            kw[q.name] = int(rng.integers(0, 2))
        elif q.name in ("vth_shift",):
            kw[q.name] = int(rng.integers(0, 4))
        elif q.name == "levels":
            kw[q.name] = int(rng.integers(1, 6))
        elif q.name in ("du", "dv", "da"):
            kw[q.name] = rng.choice([0, 1, 300, 2048, 4000, 4095], n)
        elif q.name == "vth":
            kw[q.name] = rng.integers(1, 1 << (v_bits - 4), n)
        elif q.name == "vth_neg":
            kw[q.name] = -rng.integers(0, 8, n)
        elif q.name == "a_inc":
            kw[q.name] = rng.integers(0, 40, n)
        elif q.name in ("v_reset", "v_init"):
            kw[q.name] = rng.integers(-5, 6, n)
        elif q.name == "bias_mant":
            kw[q.name] = rng.integers(-20, 21, n)
        elif q.name == "bias_exp":
            kw[q.name] = rng.integers(-2, 3, n)
        elif q.per_neuron:
            kw[q.name] = fixed_extra_param(family.name, q.name, rng, n)
    return kw


FRACTION = (0, 4097)  # 12-bit fractions k/4096
#: ranges (lo, hi) of the parameters of the families added through the definition
FIXED_RANGES: dict[str, dict[str, tuple[int, int]]] = {
    "tclif": {"beta_d": FRACTION, "beta_s": FRACTION, "gamma": (0, 60)},
    "glif": {"keep": (2000, 4097), "g_in": (1000, 4097), "gamma": FRACTION, "leak": (0, 12),
             "subreset": (0, 60)},
    "izhikevich": {"p2": (120, 200), "p1": (16000, 24000), "p0": (300, 600), "dt": (1024, 4097),
                   "a": (40, 200), "b": (600, 1000), "c": (-300, -200), "d": (10, 40),
                   "w_init": (-60, -40), "v_init": (-280, -240)},
    "alpha": {"d_exc": (0, 1500), "d_inh": (1000, 4097), "tau": (4096, 12000)},
}
FLOAT_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "tclif": {"beta_d": (0.0, 1.0), "beta_s": (0.0, 1.0), "gamma": (0.0, 1.0), "gain": (0.5, 2.0)},
    "glif": {"tau": (0.0, 1.0), "conduct": (0.0, 1.0), "gamma": (0.0, 1.0), "leak": (0.0, 0.1),
             "v_subreset": (0.0, 1.0)},
    "izhikevich": {"p2": (0.03, 0.05), "p1": (4.5, 5.5), "p0": (130.0, 150.0), "dt": (0.25, 1.0),
                   "a": (0.01, 0.1), "b": (0.15, 0.25), "c": (-70.0, -50.0), "d": (2.0, 8.0),
                   "gain": (5.0, 20.0), "theta": (30.0, 30.0), "v_init": (-70.0, -60.0),
                   "w_init": (-15.0, -12.0)},
    "alpha": {"tau": (1.0, 3.0)},
    "lapicque": {"r": (0.5, 2.0), "rc_inv": (0.1, 1.0), "ts": (0.5, 2.0), "keep": (0.5, 1.0)},
    "sj_lif": {"k": (1.2, 4.0)},
    **{name: {"k_mem": (0.05, 0.5), "k_syn": (-0.5, -0.05), "k_adapt": (0.01, 0.3), "b_inc": (0.0, 0.5)}
       for name in ("norse_lif", "norse_lif_box", "norse_li", "norse_lsnn")},
    "sinabs": {"a_syn": (0.5, 1.0)},
}


def fixed_extra_param(family: str, name: str, rng, n: int):
    """Values for a parameter of a family added through the definition (``FIXED_RANGES``)."""
    lo, hi = FIXED_RANGES.get(family, {}).get(name, (0, 64))
    return rng.integers(lo, hi, n)


def population_op(cls, family, params: dict):
    """``cls`` with ``params``, defaults for the rest, per-neuron values broadcast to WIDTH."""
    values = {q.name: params.get(q.name, q.default) for q in family.params}
    per_neuron = {q.name for q in family.params if q.per_neuron}
    return cls(**{k: np.broadcast_to(v, (WIDTH,)).copy() if k in per_neuron else v for k, v in values.items()})


def fixed_family_graph(name: str, seed: int = 0) -> Graph:
    family = FIXED_FAMILIES[name]
    rng = np.random.default_rng(seed)
    cls = neuron_op_class(NDomain.FIXED, name)
    b = GraphBuilder(f"family_{name}_s{seed}")
    b.add("in", Input(shape=(WIDTH,)))
    b.add("out", Output(shape=(WIDTH,)))
    for k, choice in enumerate(choices(family, NDomain.FIXED)):
        fan = dict(weight_bits=8, acc_bits=int(rng.integers(16, 33)),
                   acc_overflow=Overflow(rng.choice(["wrap", "saturate"])))
        b.add(f"fc{k}", FixedDense(weight=rng.integers(-127, 128, (WIDTH, WIDTH)),
                                   weight_exp=rng.integers(-1, 3, WIDTH), bias=rng.integers(-9, 10, WIDTH), **fan))
        params = _fixed_params(family, rng, WIDTH, choice)
        b.add(f"n{k}", population_op(cls, family, params))
        b.add(f"rec{k}", FixedDense(weight=rng.integers(-64, 65, (WIDTH, WIDTH)),
                                    weight_exp=np.zeros(WIDTH, np.int64), **fan))
        b.connect("in", f"fc{k}")
        b.connect(f"fc{k}", f"n{k}")
        b.connect(f"n{k}", f"rec{k}", 1)
        b.connect(f"rec{k}", f"n{k}")
        b.connect(f"n{k}", "out")
    graph = b.build().with_attrs(domain=Domain.FIXED, profile="fpga")
    problems = verify(graph)
    if problems:  # pragma: no cover - a generator bug
        raise AssertionError(f"fixed_family_graph({name}) is invalid: {problems[:3]}")
    return graph


def float_family_graph(name: str, seed: int = 0) -> Graph:
    family = FLOAT_FAMILIES[name]
    rng = np.random.default_rng(seed)
    cls = neuron_op_class(NDomain.FLOAT, name)
    b = GraphBuilder(f"float_family_{name}_s{seed}")
    b.add("in", Input(shape=(WIDTH,)))
    b.add("out", Output(shape=(WIDTH,)))
    for k, choice in enumerate(choices(family, NDomain.FLOAT)):
        kw = dict(choice)
        extra = FLOAT_RANGES.get(name, {})
        for q in family.params:
            if q.name in kw or q.choices is not None:
                continue
            if q.name in extra:
                kw[q.name] = rng.uniform(*extra[q.name], WIDTH).astype(np.float32)
            elif not q.per_neuron:
                kw[q.name] = q.default if q.name != "levels" else int(rng.integers(1, 5))
            elif q.name in ("beta", "alpha", "rho"):
                kw[q.name] = rng.uniform(0.5, 1.0, WIDTH).astype(np.float32)
            elif q.name.startswith("gain"):
                kw[q.name] = (np.ones(WIDTH) if k % 2 else rng.uniform(0.5, 1.5, WIDTH)).astype(np.float32)
            elif q.name == "theta":
                kw[q.name] = rng.uniform(0.3, 1.2, WIDTH).astype(np.float32)
            elif q.name == "kappa":
                kw[q.name] = rng.uniform(0.0, 0.3, WIDTH).astype(np.float32)
            elif q.name == "theta_neg":
                kw[q.name] = -rng.uniform(0.0, 0.3, WIDTH).astype(np.float32)
            else:
                kw[q.name] = (rng.uniform(-0.2, 0.2, WIDTH)).astype(np.float32)
        b.add(f"n{k}", population_op(cls, family, kw))
        b.connect("in", f"n{k}")
        b.connect("in", f"n{k}", 1)
        b.connect(f"n{k}", "out")
    graph = b.build()
    problems = verify(graph)
    if problems:  # pragma: no cover - a generator bug
        raise AssertionError(f"float_family_graph({name}) is invalid: {problems[:3]}")
    return graph


def case_input(graph: Graph, steps: int, batch: int, seed: int) -> np.ndarray:
    """Graded signed integers (fixed graphs) or floats in [-1, 1.5) (float graphs)."""
    rng = np.random.default_rng(seed)
    shape = (steps, batch, WIDTH)
    if graph.attrs.domain is Domain.FIXED:
        return rng.integers(-8, 9, shape) * (rng.random(shape) < 0.6)
    return rng.uniform(-1.0, 1.5, shape).astype(np.float32)
