"""An independent reference for the differential tests: plain Python, one scalar at a time.

Written from docs/fixed-point.md and docs/ir.md without using ``rsnn_compiler.neurons`` (the one
definition every executor derives from) or ``fixed.arith``, so that a mistake in the definition
is still caught by something written separately. Integers are Python ints (no overflow); float
neurons use numpy float32 scalars, each operation rounded to float32 as the IR specifies.

``run_fixed_graph(graph, x)`` runs a whole fixed graph (Input, Quantize, FixedDense,
FixedConv1d, Flatten, Delay, Output and every fixed neuron); ``float_neuron(op, terms)`` runs one
float population on per-step lists of per-edge input terms. Both return plain nested lists.
"""

from __future__ import annotations

import math

import numpy as np

# ---- integer rules ----------------------------------------------------------------------------


def trunc_div_pow2(x: int, n: int) -> int:
    q = abs(x) >> n
    return -q if x < 0 else q


def leak(x: int, d: int) -> int:
    return trunc_div_pow2(x * (4096 - d), 12)


def pow2_shift(x: int, e: int) -> int:
    return x * (1 << e) if e >= 0 else x // (1 << -e)


def bring_into(x: int, bits: int, mode: str) -> int:
    half = 1 << (bits - 1)
    if mode == "wrap":
        return (x + half) % (2 * half) - half
    if mode == "wrap_once":
        if x > half:
            return x - 2 * half
        if x <= -half:
            return x + 2 * half
        return x
    if mode == "saturate":
        return max(-half, min(half - 1, x))
    return max(-(half - 1), min(half - 1, x))  # saturate_sym


def above(v, theta, comparator: str) -> int:
    return int(v >= theta) if comparator == "ge" else int(v > theta)


# ---- fixed neurons ------------------------------------------------------------------------------


class FixedNeuronRef:
    """One fixed neuron (index j of its op), stepped on Python ints."""

    def __init__(self, op, j: int):
        self.kind = op.family
        self.op = op
        val = lambda name: int(np.asarray(getattr(op, name)).reshape(-1)[j])  # noqa: E731
        self.val = val
        self.u = val("w_init") if self.kind == "izhikevich" else 0
        self.v = val("v_init")
        self.a = 0
        self.c = 0
        self.s = 0
        self.exc = self.inh = 0  # snnTorch Alpha's currents
        self.vmode = op.v_overflow.value
        self.bias = pow2_shift(val("bias_mant"), val("bias_exp"))

    def _v(self, x: int) -> int:
        return bring_into(x, self.op.v_bits, self.vmode)

    def step(self, x: int) -> int:
        op, val = self.op, self.val
        if self.kind in EXTRA_FIXED:
            return EXTRA_FIXED[self.kind](self, x)
        if self.kind in ("lif", "alif", "li"):
            self.u = bring_into(leak(self.u, val("du") + op.du_offset) + x * (1 << op.input_shift),
                                op.u_bits, op.u_overflow.value)
            base = self._v(leak(self.v, val("dv")) + self.u + self.bias)
            if self.kind == "li":
                self.v = base
                return base
            theta = val("vth") * (1 << op.vth_shift)
            if self.kind == "alif":
                theta += self.a
            cmp = op.comparator.value
            mode = op.reset.value
            if mode == "zero":
                s = above(base, theta, cmp)
                v = val("v_reset") if s else base
            elif mode == "subtract":
                s = above(base, theta, cmp)
                v = self._v(base - theta * s)
            elif mode == "subtract_deferred":
                v = self._v(base - theta * self.s)
                s = above(v, theta, cmp)
            elif mode == "subtract_nodelay":
                r = above(self.v, theta, cmp)
                m = self._v(base - theta * r)
                s = above(m, theta, cmp)
                v = self._v(m - theta * (s - r))
            elif mode == "zero_hold":
                v = 0 if self.s else base
                s = above(v, theta, cmp)
            else:
                v = base
                s = above(v, theta, cmp)
            if self.kind == "alif":
                self.a = self._v(leak(self.a, val("da")) + val("a_inc") * s)
            self.v, self.s = v, s
            return s
        m = self._v(self.v + x * (1 << op.input_shift) + self.bias)
        theta = val("vth") * (1 << op.vth_shift)
        if self.kind == "dual_if":
            if above(m, theta, op.comparator.value):
                s = 1
            elif m < val("vth_neg") * (1 << op.vth_shift) and self.c > 0:
                s = -1
            else:
                s = 0
            self.v = self._v(m - s * theta)
            self.c += s
        else:  # mtn
            s = min(max(m // theta, 0), op.levels)
            self.v = val("v_init") if op.reset.value == "zero" else self._v(m - s * theta)
        self.s = s
        return s

    def state(self, name: str) -> int:
        return {"i": self.u, "v": self.v, "a": self.a, "c": self.c, "d": self.u, "w": self.u,
                "exc": self.exc, "inh": self.inh}[name]


def _frac(y: int, k: int) -> int:
    """y * k / 4096 rounded toward zero."""
    return trunc_div_pow2(y * k, 12)


def _tclif(n: FixedNeuronRef, x: int) -> int:
    op, val = n.op, n.val
    dend = n._v(n.u - _frac(n.v, val("beta_d")) + x * (1 << op.input_shift) + n.bias)
    soma = n._v(n.v + _frac(dend, val("beta_s")))
    s = above(soma, val("vth") * (1 << op.vth_shift), op.comparator.value)
    if op.reset.value == "zero":
        n.u, n.v = dend, (val("v_reset") if s else soma)
    else:
        n.u = n._v(dend - val("gamma") * s)
        n.v = n._v(soma - val("vth") * (1 << op.vth_shift) * s)
    n.s = s
    return s


def _izhikevich(n: FixedNeuronRef, x: int) -> int:
    op, val = n.op, n.val
    v, w = n.v, n.u
    square = trunc_div_pow2(v * v, op.sq_shift)
    m = _frac(square, val("p2")) + _frac(v, val("p1")) + val("p0") - w + x * (1 << op.input_shift) + n.bias
    v_next = n._v(v + _frac(m, val("dt")))
    w_next = n._v(w + _frac(_frac(v, val("b")) - w, val("a")))
    s = above(v_next, val("vth") * (1 << op.vth_shift), op.comparator.value)
    n.v = val("c") if s else v_next
    n.u = n._v(w_next + s * val("d"))
    n.s = s
    return s


def _glif(n: FixedNeuronRef, x: int) -> int:
    op, val = n.op, n.val
    kv = _frac(n.v, val("keep"))
    u = kv - val("leak") + _frac(x * (1 << op.input_shift), val("g_in")) + n.bias
    if n.s:
        u -= _frac(kv, val("gamma")) + val("subreset")
    n.v = n._v(u)
    n.s = above(n.v, val("vth") * (1 << op.vth_shift), op.comparator.value)
    return n.s


def _lif_multi(n: FixedNeuronRef, x: int) -> int:
    """Multi-spike LIF: the lif current and membrane, then as many spikes as thresholds held."""
    op, val = n.op, n.val
    n.u = bring_into(leak(n.u, val("du") + op.du_offset) + x * (1 << op.input_shift), op.u_bits, op.u_overflow.value)
    m = n._v(leak(n.v, val("dv")) + n.u + n.bias)
    theta = val("vth") * (1 << op.vth_shift)
    count = min(max(m // theta, 0), op.levels)
    if op.reset.value == "zero":
        n.v = val("v_reset") if count > 0 else m
    else:
        n.v = n._v(m - count * theta)
    n.s = count
    return count


def _alpha(n: FixedNeuronRef, x: int) -> int:
    """snnTorch Alpha in fixed point: two currents, membrane tau*(exc + inh), late resets."""
    op, val = n.op, n.val
    theta = val("vth") * (1 << op.vth_shift)
    r = above(n.v, theta, op.comparator.value)
    u = x * (1 << op.input_shift) + n.bias
    exc = n._v(leak(n.exc, val("d_exc")) + u)
    inh = n._v(leak(n.inh, val("d_inh")) - u)
    m = n._v(_frac(exc + inh, val("tau")))
    if r and op.reset.value == "subtract_deferred":
        m = n._v(m + n.inh)
        exc = n._v(exc - theta)
        inh = 0
    elif r and op.reset.value == "zero_hold":
        exc = inh = m = 0
    n.exc, n.inh, n.v = exc, inh, m
    n.s = above(m, theta, op.comparator.value)
    return n.s


#: families added through the definition: kind -> scalar step (``u`` holds d / w)
EXTRA_FIXED = {"tclif": _tclif, "izhikevich": _izhikevich, "glif": _glif, "lif_multi": _lif_multi,
               "alpha": _alpha}


# ---- stateless fixed ops ----------------------------------------------------------------------


def _synapse_out(op, acc: int, o: int) -> int:
    """shift(acc, weight_exp[o]) + bias[o], brought into the accumulator width."""
    y = pow2_shift(acc, int(op.weight_exp[o]))
    if op.bias is not None:
        y += int(op.bias[o])
    return bring_into(y, op.acc_bits, op.acc_overflow.value)


def _dense(op, x: list[int]) -> list[int]:
    return [_synapse_out(op, sum(int(op.weight[o, j]) * x[j] for j in range(len(x))), o)
            for o in range(op.weight.shape[0])]


def _conv1d(op, x: list[int]) -> list[int]:
    cin, length = op.input_shape
    cout, _, kern = op.weight.shape
    out_len = op.out_shape[1]
    per_group_in, per_group_out = cin // op.groups, cout // op.groups
    out = []
    for o in range(cout):
        g = o // per_group_out
        for p in range(out_len):
            acc = 0
            for ci in range(per_group_in):
                for k in range(kern):
                    pos = p * op.stride[0] - op.padding[0] + k * op.dilation[0]
                    if 0 <= pos < length:
                        acc += int(op.weight[o, ci, k]) * x[(g * per_group_in + ci) * length + pos]
            out.append(_synapse_out(op, acc, o))
    return out


def _quantize(op, x: list[float]) -> list[int]:
    lo, hi = op.limits
    return [min(hi, max(lo, math.floor(float(v) * 2.0 ** op.shift + 0.5))) for v in x]


def run_fixed_graph(graph, x) -> dict:
    """``{"out": [t][b][k], "spikes/<n>": ..., "<state>/<n>": ...}`` as nested int lists."""
    from rsnn_compiler.ir import topology

    kinds = {type(op).__name__ for op in graph.nodes.values()}
    order = topology.evaluation_order(graph)
    x = np.asarray(x)
    steps, batch = x.shape[0], x.shape[1]
    ins = {n: graph.in_edges(n) for n in graph.nodes}
    result: dict[str, list] = {}
    for b in range(batch):
        neurons = {n: [FixedNeuronRef(op, j) for j in range(int(np.prod(op.shape)))]
                   for n, op in graph.nodes.items() if getattr(op, "family", "")}
        values: dict[str, list[list]] = {n: [] for n in graph.nodes}
        delay_line: dict[str, list[list]] = {n: [] for n, op in graph.nodes.items()
                                             if type(op).__name__ == "Delay" and op.steps >= 1}
        per_b: dict[str, list] = {}
        for t in range(steps):
            def summed(n: str) -> list:
                size = int(np.prod(graph.nodes[n].in_shape))
                total = [0] * size
                for e in ins[n]:
                    if t - e.delay >= 0:
                        total = [a + v for a, v in zip(total, values[e.src][t - e.delay])]
                return total

            for n in order:
                op = graph.nodes[n]
                kind = type(op).__name__
                if kind == "Input":
                    y = [v.item() for v in x[t, b].reshape(-1)]
                elif n in delay_line:
                    k = t - op.steps
                    y = delay_line[n][k] if k >= 0 else [0] * int(np.prod(op.shape))
                elif n in neurons:
                    xs = summed(n)
                    y = [ref.step(int(xj)) for ref, xj in zip(neurons[n], xs)]
                    for sname in op.state_names:
                        per_b.setdefault(f"{sname}/{n}", []).append([r.state(sname) for r in neurons[n]])
                    if op.spiking:
                        per_b.setdefault(f"spikes/{n}", []).append(y)
                elif kind == "Quantize":
                    y = _quantize(op, summed(n))
                elif kind == "FixedDense":
                    y = _dense(op, summed(n))
                elif kind == "FixedConv1d":
                    y = _conv1d(op, summed(n))
                elif kind in ("Flatten", "Output", "Identity", "Delay"):
                    y = summed(n)
                else:
                    raise NotImplementedError(f"the oracle has no rule for {kind} (graph has {sorted(kinds)})")
                values[n].append(y)
            for n in delay_line:
                delay_line[n].append(summed(n))
        per_b["out"] = values[graph.output_name]
        for key, seq in per_b.items():
            result.setdefault(key, []).append(seq)
    # [b][t][k] -> [t][b][k]
    return {k: [list(step) for step in zip(*v)] for k, v in result.items()}


# ---- float neurons ------------------------------------------------------------------------------

F32 = np.float32


def float_neuron(op, terms: list[list[list[float]]]) -> dict:
    """Run float population ``op`` on ``terms[t][e][k]`` (per step, per edge, per neuron).

    Returns ``{"out": [t][k], "<state>": [t][k]}`` with float32 scalars.
    """
    size = int(np.prod(op.shape))
    p = lambda name, j: F32(np.asarray(getattr(op, name), dtype=np.float32).reshape(-1)[j])  # noqa: E731
    kind = op.family
    out: dict[str, list] = {"out": []}
    for name in op.state_names:
        out[name] = []
    state = [{"v": p("v_init", j), "i": F32(0), "a": F32(0), "c": F32(0), "s": F32(0), "d": F32(0),
              "w": p("w_init", j) if kind == "izhikevich" else F32(0), "exc": F32(0), "inh": F32(0),
              "b": p("theta", j) if kind == "norse_lsnn" else F32(0)} for j in range(size)]
    for step_terms in terms:
        ys = []
        for j, st in enumerate(state):
            xs = [F32(edge[j]) for edge in step_terms]
            ys.append(_float_step(op, kind, st, xs, lambda name: p(name, j)))
        out["out"].append(ys)
        for name in op.state_names:
            out[name].append([st[name] for st in state])
    return out


def _gained(xs, g):
    return xs if g == F32(1) else [g * x for x in xs]


def _adds(acc, terms):
    for x in terms:
        acc = F32(acc + x)
    return acc


def _float_tclif(op, st: dict, xs: list, p) -> F32:
    st["d"] = F32(_adds(F32(st["d"] - F32(p("beta_d") * st["v"])), _gained(xs, p("gain"))) + p("bias"))
    v = F32(st["v"] + F32(p("beta_s") * st["d"]))
    ge = op.comparator.value == "ge"
    s = F32(v >= p("theta")) if ge else F32(v > p("theta"))
    if op.reset.value == "zero":
        st["v"] = p("v_reset") if s else v
    else:
        st["d"] = F32(st["d"] - F32(p("gamma") * s))
        st["v"] = F32(v - F32(p("theta") * s))
    st["s"] = s
    return s


def _float_izhikevich(op, st: dict, xs: list, p) -> F32:
    v, w = st["v"], st["w"]
    quad = F32(F32(F32(p("p2") * v) * v) + F32(p("p1") * v))
    m = _adds(F32(F32(quad + p("p0")) - w), _gained(xs, p("gain")))
    v_next = F32(v + F32(p("dt") * m))
    w_next = F32(w + F32(p("a") * F32(F32(p("b") * v) - w)))
    ge = op.comparator.value == "ge"
    s = F32(v_next >= p("theta")) if ge else F32(v_next > p("theta"))
    st["v"] = p("c") if s else v_next
    st["w"] = F32(w_next + F32(p("d") * s))
    st["s"] = s
    return s


def _float_glif(op, st: dict, xs: list, p) -> F32:
    one = F32(1)
    keep = F32(one - F32(p("alpha") * F32(one - p("tau"))))
    g_in = F32(one - F32(p("beta") * F32(one - p("conduct"))))
    kv = F32(keep * st["v"])
    u = F32(_adds(F32(kv - F32(F32(one - p("alpha")) * p("leak"))), [F32(g_in * x) for x in xs]) + p("bias"))
    prev = st["s"]
    u = F32(F32(u - F32(F32(kv * p("gamma")) * prev)) - F32(F32(F32(one - p("gamma")) * p("v_subreset")) * prev))
    ge = op.comparator.value == "ge"
    s = F32(u >= p("theta")) if ge else F32(u > p("theta"))
    st["v"], st["s"] = u, s
    return s


def _total(xs: list) -> F32:
    """x_1 + x_2 + ... (libraries that add their inputs before integrating)."""
    return _adds(xs[0], xs[1:])


def _above(op, v, theta) -> F32:
    return F32(v >= theta) if op.comparator.value == "ge" else F32(v > theta)


def _float_lif_multi(op, st: dict, xs: list, p) -> F32:
    st["i"] = _adds(F32(p("alpha") * st["i"]), _gained(xs, p("gain_i")))
    drive = st["i"] if p("gain_v") == F32(1) else F32(p("gain_v") * st["i"])
    m = F32(F32(F32(p("beta") * st["v"]) + drive) + p("bias"))
    n = F32(min(max(math.floor(F32(m / p("theta"))), 0), op.levels))
    st["v"] = (p("v_reset") if n > 0 else m) if op.reset.value == "zero" else F32(m - F32(p("theta") * n))
    st["s"] = n
    return n


def _float_alpha(op, st: dict, xs: list, p) -> F32:
    x, theta = _total(xs), p("theta")
    late = bool(_above(op, st["v"], theta))  # snnTorch resets from the previous membrane
    exc = F32(F32(p("alpha") * st["exc"]) + x)
    inh = F32(F32(p("beta") * st["inh"]) - x)
    m = F32(p("tau") * F32(exc + inh))
    if late and op.reset.value == "subtract_deferred":
        m, exc, inh = F32(m + st["inh"]), F32(exc - theta), F32(0)
    elif late and op.reset.value == "zero_hold":
        m = exc = inh = F32(0)
    s = _above(op, m, theta)
    st.update(exc=exc, inh=inh, v=m, s=s)
    return s


def _float_lapicque(op, st: dict, xs: list, p) -> F32:
    drive = F32(F32(F32(_total(xs) * p("r")) * p("rc_inv")) * p("ts"))
    return _fire_reset(op, st, F32(drive + F32(p("keep") * st["v"])), p("theta"), p)


def _float_sj_lif(op, st: dict, xs: list, p) -> F32:
    x, v, k = _total(xs), st["v"], p("k")
    off = F32(v - p("v_reset"))
    h = {"tau_input": lambda: F32(v + F32(F32(x - off) / k)),
         "tau": lambda: F32(F32(v - F32(off / k)) + x),
         "rate_input": lambda: F32(v + F32(F32(x - off) * k)),
         "rate": lambda: F32(F32(v - F32(off * k)) + x)}[op.charge.value]()
    return _fire_reset(op, st, h, p("theta"), p)


def _float_norse(op, st: dict, xs: list, p) -> F32:
    theta, kind = p("theta") if op.spiking else None, op.family
    if kind == "norse_lif_box":
        v = F32(st["v"] + F32(p("k_mem") * F32(F32(_total(xs) + p("v_leak")) - st["v"])))
        return _fire_reset(op, st, v, theta, p)
    i = _adds(st["i"], xs)
    v = F32(st["v"] + F32(p("k_mem") * F32(F32(p("v_leak") - st["v"]) + i)))
    st["i"] = F32(i + F32(p("k_syn") * i))
    if kind == "norse_li":
        st["v"] = v
        return v
    if kind == "norse_lif":
        return _fire_reset(op, st, v, theta, p)
    b = F32(st["b"] + F32(p("k_adapt") * F32(theta - st["b"])))
    s = _above(op, v, b)
    st.update(v=p("v_reset") if s else v, b=F32(b + F32(s * p("b_inc"))), s=s)
    return s


def _float_sinabs(op, st: dict, xs: list, p) -> F32:
    x, theta = _total(xs), p("theta")
    st["i"] = F32(p("a_syn") * F32(st["i"] + x)) if op.synapse.value == "exp" else x
    v = F32(F32(p("beta") * st["v"]) + _gained([st["i"]], p("gain"))[0])
    if op.spikes.value == "single":
        n = F32(v >= theta)
    else:
        n = F32(math.floor(F32(v / theta))) if v > 0 else F32(0)
        n = F32(min(n, op.levels)) if op.levels else n
    if op.reset.value == "zero":
        st["v"] = F32((F32(0) if n > 0 else v) + p("v_reset"))
    else:
        st["v"] = F32(v - F32(n * theta))
    st["s"] = n
    return n


def _float_rockpool(op, st: dict, xs: list, p) -> F32:
    theta = p("theta")
    st["i"] = F32(_adds(st["i"], xs) * p("beta"))
    v = F32(F32(F32(p("alpha") * st["v"]) + st["i"]) + p("bias"))
    n = F32(min(math.floor(F32(v / theta)), op.levels)) if v >= theta else F32(0)
    st["v"], st["s"] = F32(v - F32(n * theta)), n
    return n


EXTRA_FLOAT = {"tclif": _float_tclif, "izhikevich": _float_izhikevich, "glif": _float_glif,
               "lif_multi": _float_lif_multi, "alpha": _float_alpha, "lapicque": _float_lapicque,
               "sj_lif": _float_sj_lif, "norse_lif": _float_norse, "norse_lif_box": _float_norse,
               "norse_li": _float_norse, "norse_lsnn": _float_norse, "sinabs": _float_sinabs,
               "rockpool": _float_rockpool}


def _float_step(op, kind: str, st: dict, xs: list, p) -> F32:
    one = F32(1)
    adds = _adds
    if kind in EXTRA_FLOAT:
        return EXTRA_FLOAT[kind](op, st, xs, p)

    if kind in ("dual_if", "mtn"):
        m = F32(adds(st["v"], xs) + p("bias"))
        theta = p("theta")
        if kind == "dual_if":
            ge = op.comparator.value == "ge"
            if (m >= theta) if ge else (m > theta):
                s = F32(1)
            elif m < p("theta_neg") and st["c"] > 0:
                s = F32(-1)
            else:
                s = F32(0)
            st["v"] = F32(m - F32(theta * s))
            st["c"] = F32(st["c"] + s)
        else:
            s = F32(min(max(math.floor(F32(m / theta)), 0), op.levels))
            st["v"] = p("v_init") if op.reset.value == "zero" else F32(m - F32(theta * s))
        st["s"] = s
        return s
    if kind in ("cuba_lif", "cuba_li"):
        st["i"] = adds(F32(p("alpha") * st["i"]), _gained(xs, p("gain_i")))
        gv = p("gain_v")
        drive = st["i"] if gv == one else F32(gv * st["i"])
        base = F32(F32(F32(p("beta") * st["v"]) + drive) + p("bias"))
    elif kind == "if":
        base = F32(adds(st["v"], _gained(xs, p("gain"))) + p("bias"))
    else:  # lif, alif, li
        base = F32(adds(F32(p("beta") * st["v"]), _gained(xs, p("gain"))) + p("bias"))
    if kind in ("li", "cuba_li"):
        st["v"] = base
        return base
    theta = p("theta")
    if kind == "alif":
        theta = F32(theta + F32(p("kappa") * st["a"]))
    s = _fire_reset(op, st, base, theta, p)
    if kind == "alif":
        st["a"] = F32(F32(p("rho") * st["a"]) + s)
    return s


def _fire_reset(op, st: dict, base, theta, p) -> F32:
    """The IR's fire-and-reset rules (docs/ir.md) on a scalar; sets v and s."""
    one = F32(1)
    ge = op.comparator.value == "ge"
    cmp = (lambda a: F32(a >= theta)) if ge else (lambda a: F32(a > theta))
    mode = op.reset.value
    if mode == "zero":
        s = cmp(base)
        v = p("v_reset") if s else base
    elif mode == "subtract":
        s = cmp(base)
        v = F32(base - F32(theta * s))
    elif mode == "subtract_deferred":
        v = F32(base - F32(theta * st["s"]))
        s = cmp(v)
    elif mode == "subtract_nodelay":
        r = cmp(st["v"])
        b = F32(base - F32(theta * r))
        s = cmp(b)
        v = F32(b - F32(theta * F32(s - r)))
    elif mode == "zero_hold":
        v = F32(F32(one - st["s"]) * base)
        s = cmp(v)
    else:
        v = base
        s = cmp(v)
    st["v"], st["s"] = v, s
    return s
