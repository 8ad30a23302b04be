"""Generate ``model.h`` / ``model.c`` (C99, integers only) for a fixed-point graph.

One sample per ``<prefix>_state_t``; ``<prefix>_step`` advances it by one time step, evaluating
nodes in ``topology.evaluation_order`` exactly as ``run_fixed`` does (docs/fixed-point.md §1).
Every identifier carries the prefix, so several models can share one translation unit.
Parameters that are equal across a population become literals; others become ``static const``
arrays of the narrowest int type. Output text depends only on the graph (deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.ir.fixed_ops import (
    FixedConv1d, FixedDense, FixedNeuron, Quantize, _FixedConv,
)
from rsnn_compiler.ir.dynamics import family_of, has_family
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.ops import Delay, Flatten, Identity, Input, Output, Pool, PoolMode
from rsnn_compiler.sanitize import c_comment, safe_name

from rsnn_compiler.backends.c.check import _Synapse, value_bounds
from rsnn_compiler.backends.c.neurons import INT32_MAX, OVERFLOW_FN, lit, member, neuron_code, reads_prev_output
from rsnn_compiler.backends.c.plan import HOST_QUANTIZE, NodePlan, Plan, delay_ops, make_plan
from rsnn_compiler.backends.c.blob import WeightBlob
from rsnn_compiler.backends.c.spec import C_SPEC, CSpec
from rsnn_compiler.backends.c.storage import CSC, SynapseStorage, int_type, synapse_storage

def ovf(expr: str, bits: int, mode: Overflow) -> str:
    return f"{OVERFLOW_FN[mode]}({expr}, {bits})"


_comment = c_comment  # generated text inside /* */; every name in it goes through safe_name


@dataclass(frozen=True)
class CSources:
    """The generated text of one model and its storage plan."""

    model_h: str
    model_c: str
    plan: Plan
    state_bytes: int
    blob: WeightBlob | None = None  # the arrays placed in weights.bin (generate(blob=True))


class _Emitter:
    """Builds model.c section by section for one plan."""

    def __init__(self, graph: Graph, plan: Plan, spec: CSpec = C_SPEC, blob: WeightBlob | None = None):
        self.graph, self.plan, self.p, self.spec, self.blob = graph, plan, plan.prefix, spec, blob
        self.consts: list[str] = []
        self.funcs: list[str] = []
        self._arrays: dict[str, str] = {}
        self.acc32 = int32_accumulators(graph, spec)

    # --- buffers ---------------------------------------------------------------------
    def cur(self, n: NodePlan) -> str:
        """Expression for node n's output buffer at the current step."""
        if n.slots:
            return f"s->val_{n.cid}[s->pos_{n.cid}]"
        return f"s->val_{n.cid}"

    def past(self, src: str, delay: int) -> str:
        n = self.plan.nodes[src]
        if delay == 0:
            return self.cur(n)
        return f"s->val_{n.cid}[(s->pos_{n.cid} + {n.slots - delay}) % {n.slots}]"

    def gather(self, n: NodePlan, target: str = "s->xin") -> tuple[str, str]:
        """(C statements, pointer expression) for the summed input of node n."""
        edges = n.in_edges
        if len(edges) == 1 and target == "s->xin":
            return "", self.past(edges[0].src, edges[0].delay)
        if not edges:
            return f"    for (k = 0; k < {n.in_size}; ++k) {{\n        {target}[k] = 0;\n    }}\n", target
        terms = " + ".join(f"{self.past(e.src, e.delay)}[k]" for e in edges)
        names = ", ".join(f"{safe_name(e.src)}@{e.delay}" for e in edges)
        code = (
            f"    /* input = sum of {_comment(names)} (source@delay) */\n"
            f"    for (k = 0; k < {n.in_size}; ++k) {{\n        {target}[k] = {terms};\n    }}\n"
        )
        return code, target

    # --- constants -------------------------------------------------------------------
    def array(self, name: str, arr: np.ndarray, what: str, ctype: str | None = None) -> str:
        flat = np.asarray(arr, dtype=np.int64).reshape(-1)
        ctype = ctype or int_type(flat)
        cname = f"{self.p}_{name}"
        if self.blob is not None and flat.size >= self.spec.blob_min_values:
            self.consts.append(self.blob.add(cname, ctype, flat, _comment(what)))
            return cname
        body = _wrap_values([lit(v) for v in flat]) if flat.size else "0"
        self.consts.append(
            f"/* {_comment(what)} */\nstatic const {ctype} {cname}[{max(flat.size, 1)}] = {{\n{body}\n}};\n"
        )
        return cname

    def param(self, n: NodePlan, pname: str, arr, index: str = "k") -> str:
        """A literal when ``arr`` is uniform, else an element of a const array."""
        arr = np.asarray(arr, dtype=np.int64).reshape(-1)
        if arr.size == 0 or (arr == arr[0]).all():
            return lit(arr[0]) if arr.size else "0"
        key = f"{n.cid}_{pname}"
        if key not in self._arrays:
            self._arrays[key] = self.array(key, arr, f"{safe_name(n.name)}: {pname}")
        return f"{self._arrays[key]}[{index}]"

    def function(self, n: NodePlan, doc: str, body: str, uses_k: bool = True) -> None:
        decl = "    long k;\n" if uses_k else ""
        self.funcs.append(
            f"/* node '{safe_name(n.name)}' ({type(n.op).__name__}): {_comment(doc)} */\n"
            f"static void {self.p}_{n.cid}({self.p}_state_t *s)\n{{\n{decl}{body}}}\n"
        )

    # --- ops -------------------------------------------------------------------------
    def emit_node(self, n: NodePlan) -> None:
        op = n.op
        if isinstance(op, Input):
            return  # written by <prefix>_step from the input vector
        if isinstance(op, Quantize) and self.plan.input_mode == HOST_QUANTIZE:
            return
        if isinstance(op, Delay) and op.steps >= 1:
            return self._delay(n)
        if isinstance(op, (Output, Identity, Flatten, Delay)):
            return self._copy(n)
        if isinstance(op, Quantize):
            return self._quantize(n)
        if isinstance(op, FixedDense):
            return self._dense(n)
        if isinstance(op, _FixedConv):
            return self._conv(n)
        if isinstance(op, Pool):
            return self._pool(n)
        if has_family(op):
            return self._neuron(n)
        raise ValueError(f"the C backend cannot emit {type(op).__name__}")  # check() reports it

    def _copy(self, n: NodePlan) -> None:
        code, x = self.gather(n)
        body = code + (
            f"    for (k = 0; k < {n.out_size}; ++k) {{\n        {self.cur(n)}[k] = {x}[k];\n    }}\n"
        )
        self.function(n, "y = x", body)

    def _delay(self, n: NodePlan) -> None:
        body = (
            f"    for (k = 0; k < {n.out_size}; ++k) {{\n"
            f"        {self.cur(n)}[k] = s->dl_{n.cid}[s->dpos_{n.cid}][k];\n    }}\n"
        )
        self.function(n, f"y[t] = x[t - {n.op.steps}] (input captured at the end of each step)", body)

    def _quantize(self, n: NodePlan) -> None:
        op: Quantize = n.op
        lo, hi = op.limits
        code, x = self.gather(n)
        if op.shift >= 0:
            pre_hi, pre_lo = hi >> op.shift, -((-lo) >> op.shift)
            expr = (
                f"v > {lit(pre_hi)} ? {lit(hi)} : (v < {lit(pre_lo)} ? {lit(lo)} :"
                f" rsnn_clip(rsnn_shl(v, {op.shift}), {lit(lo)}, {lit(hi)}))"
            )
        else:
            m = -op.shift
            expr = f"rsnn_clip(rsnn_floor_shift(v + {lit(1 << (m - 1))}, {m}), {lit(lo)}, {lit(hi)})"
        body = code + (
            f"    for (k = 0; k < {n.out_size}; ++k) {{\n        const int64_t v = {x}[k];\n"
            f"        {self.cur(n)}[k] = {expr};\n    }}\n"
        )
        self.function(n, f"y = clip(floor(x * 2^{op.shift} + 1/2), {lo}, {hi}) on integers", body)

    def _synapse_tail(self, n: NodePlan, y: str, channel: str, per: int, acc: str | None = None) -> str:
        """y = ovf_acc(shift(acc, weight_exp[c] + scale_shift) + bias[c]) over all outputs
        (``acc`` defaults to ``y`` itself; weights are stored divided by 2^scale_shift)."""
        op = n.op
        channel = "k" if per == 1 else channel
        e = self.param(n, "wexp", op.weight_exp + self.plan.storage[n.name].scale_shift, channel)
        b = "" if op.bias is None or not op.bias.any() else f" + {self.param(n, 'bias', op.bias, channel)}"
        loop = f"    for (k = 0; k < {n.out_size}; ++k) {{\n"
        if per > 1 and ("[c]" in e or "[c]" in b):
            loop += f"        const long c = k / {per};\n"
        src = f"{y}[k]" if acc is None else f"(int64_t){acc}[k]"
        return loop + f"        {y}[k] = {ovf(f'rsnn_shift({src}, {e}){b}', op.acc_bits, op.acc_overflow)};\n    }}\n"

    def _binary_source(self, n: NodePlan) -> bool:
        """True when the only input is 0/1 (a spike train, a 1-bit unsigned Quantize): events add
        weights without multiplying."""
        return spike_input(self.graph, n.name)

    def _csc_arrays(self, n: NodePlan, st: SynapseStorage, what: dict[str, str]) -> dict[str, str]:
        """Emit the compressed arrays of ``st`` (none when every weight is zero); C names by key."""
        if not st.nonzeros:
            return {}
        return {key: self.array(f"{n.cid}_{key}", arr.values, f"{safe_name(n.name)}: {what[key]}", arr.ctype)
                for key, arr in st.arrays.items()}

    def _storage_doc(self, st: SynapseStorage) -> str:
        if st.format == CSC:
            return (f"storage csc: {st.nonzeros} of {st.size} weights nonzero (density {st.density:.3f} <"
                    f" {st.threshold}), {st.bytes} B (dense: {st.dense_bytes} B)")
        return f"storage dense: {st.nonzeros} of {st.size} weights nonzero (density {st.density:.3f}), {st.bytes} B"

    def _accumulator(self, n_out: int, i: str, narrow: bool) -> tuple[str, str, str]:
        """(C type, array name, declare-and-zero code) of a synapse layer's sum: an int32_t stack
        array when ``narrow`` (the bounds allow it, see int32_accumulators), else the node's
        int64_t output buffer ``y`` itself; ``i`` is the loop variable."""
        if not narrow:
            return "int64_t", "y", f"    for ({i} = 0; {i} < {n_out}; ++{i}) {{\n        y[{i}] = 0;\n    }}\n"
        head = (f"    int32_t acc[{n_out}]; /* |sum| < 2^31 (bound propagation) */\n"
                f"    for ({i} = 0; {i} < {n_out}; ++{i}) {{\n        acc[{i}] = 0;\n    }}\n")
        return "int32_t", "acc", head

    def _weight_doc(self, n: NodePlan) -> str:
        """The exponent text of a synapse's doc comment (``e`` when it varies by channel)."""
        e = n.op.weight_exp + self.plan.storage[n.name].scale_shift
        return "e" if e.size and (e != e[0]).any() else str(int(e[0]) if e.size else 0)

    def _dense(self, n: NodePlan) -> None:
        op: FixedDense = n.op
        n_out, n_in = op.weight.shape
        st = self.plan.storage[n.name]
        tail_doc = (f"y[o] = {op.acc_overflow.value}_{op.acc_bits}(shift(acc[o], {self._weight_doc(n)}) + bias[o]);"
                    f" {self._storage_doc(st)}")
        if st.format == CSC:
            return self._dense_csc(n, st, tail_doc)
        w = self.array(f"{n.cid}_w", st.weights.T, f"{safe_name(n.name)}: weight mantissas{_scaled(st)}, transposed [in {n_in}][out {n_out}]")
        code, x = self.gather(n)
        y = self.cur(n)
        narrow = n.name in self.acc32
        acc_t, acc, head = self._accumulator(n_out, "o", narrow)
        binary = self._binary_source(n)
        add = "w[o]" if binary else "xj * w[o]"
        xj = "" if binary else f"        const {acc_t} xj = ({acc_t}){x}[s->act[a]];\n"
        body = code + (
            f"    long a, o, n_act = 0;\n    int64_t *y = {y};\n{head}"
            f"    /* event list: indices of the nonzero inputs (spikes / nonzero payloads), branch-free */\n"
            f"    for (k = 0; k < {n_in}; ++k) {{\n        s->act[n_act] = (int32_t)k;\n"
            f"        n_act += {x}[k] != 0;\n    }}\n"
            f"    for (a = 0; a < n_act; ++a) {{\n{xj}"
            f"        const {int_type(st.weights)} *w = &{w}[(long)s->act[a] * {n_out}];\n"
            f"        for (o = 0; o < {n_out}; ++o) {{\n            {acc}[o] += {add};\n        }}\n    }}\n"
        )
        body += self._synapse_tail(n, "y", "k", 1, acc if narrow else None)
        doc = f"{n_out} <- {n_in}, event-driven: acc[o] = sum over nonzero x[j] of W[o,j]*x[j]; {tail_doc}"
        self.function(n, doc, body)

    def _dense_csc(self, n: NodePlan, st: SynapseStorage, tail_doc: str) -> None:
        """Compressed by input: each nonzero x[j] adds the nonzeros of column j of W."""
        op: FixedDense = n.op
        n_out, n_in = op.weight.shape
        arrs = self._csc_arrays(n, st, {
            "start": f"CSC column offsets [in {n_in} + 1]: the nonzeros of input j are start[j]..start[j+1]",
            "rows": f"CSC output index of each nonzero weight [{st.nonzeros}]",
            "vals": f"CSC nonzero weight mantissas [{st.nonzeros}]",
        })
        code, x = self.gather(n)
        y = self.cur(n)
        narrow = n.name in self.acc32 and bool(arrs)
        acc_t, acc, head = self._accumulator(n_out, "k", narrow)
        body = code + f"    int64_t *y = {y};\n{head}"
        if arrs:
            binary = self._binary_source(n)
            add = f"{arrs['vals']}[p]" if binary else f"xj * {arrs['vals']}[p]"
            body += (
                f"    /* event-driven over the compressed columns: only (nonzero input, nonzero weight) pairs */\n"
                f"    const int64_t *x = {x};\n"
                f"    for (k = 0; k < {n_in}; ++k) {{\n        const {acc_t} xj = ({acc_t})x[k];\n"
                f"        if (xj != 0) {{\n            long p;\n"
                f"            const long p_end = (long){arrs['start']}[k + 1];\n"
                f"            for (p = (long){arrs['start']}[k]; p < p_end; ++p) {{\n"
                f"                {acc}[{arrs['rows']}[p]] += {add};\n"
                f"            }}\n        }}\n    }}\n"
            )
        else:
            body += "    /* every weight is zero: no event loop */\n"
        body += self._synapse_tail(n, "y", "k", 1, acc if narrow else None)
        doc = (f"{n_out} <- {n_in}, event-driven over CSC weights: acc[o] = sum over nonzero x[j] and the"
               f" nonzero W[o,j] of column j of W[o,j]*x[j]; {tail_doc}")
        self.function(n, doc, body)

    def _conv(self, n: NodePlan) -> None:
        op: _FixedConv = n.op
        one_d = isinstance(op, FixedConv1d)
        cin, in_sp = op.input_shape[0], tuple(op.input_shape[1:])
        cout, out_sp = op.out_shape[0], tuple(op.out_shape[1:])
        kern = tuple(op.weight.shape[2:])
        if one_d:
            ih, iw, oh, ow, kh, kw = 1, in_sp[0], 1, out_sp[0], 1, kern[0]
            sh, sw, ph, pw, dh, dw = 1, op.stride[0], 0, op.padding[0], 1, op.dilation[0]
        else:
            (ih, iw), (oh, ow), (kh, kw) = in_sp, out_sp, kern
            (sh, sw), (ph, pw), (dh, dw) = op.stride, op.padding, op.dilation
        g = op.groups
        cin_g, cout_g = cin // g, cout // g
        st = self.plan.storage[n.name]
        doc = (f"conv {cin}x{in_sp} -> {cout}x{out_sp}, kernel {kern}, stride {op.stride}, padding {op.padding},"
               f" dilation {op.dilation}, groups {g}; y[c] = {op.acc_overflow.value}_{op.acc_bits}"
               f"(shift(conv(x, W)[c], e[c]) + bias[c]); {self._storage_doc(st)}")
        if st.format == CSC:
            return self._conv_csc(n, st, doc, (ih, iw, oh, ow, sh, sw, ph, pw, dh, dw))
        w = self.array(f"{n.cid}_w", st.weights, f"{safe_name(n.name)}: weights{_scaled(st)} [{cout}][{cin_g}][{kh}][{kw}]")
        code, x = self.gather(n)
        y = self.cur(n)
        grp = f"ci / {cin_g}" if cin_g > 1 else "ci"
        oc_lo, oc_hi = _mul("grp", cout_g), _mul("(grp + 1)", cout_g)
        ty, tx = _add(_add("iy", ph), f"-{_mul('ky', dh)}"), _add(_add("ix", pw), f"-{_mul('kx', dw)}")
        ydiv, xdiv = _div("ty", sh), _div("tx", sw)
        body = code + (
            f"    long ci, iy, ix, oc, ky, kx;\n    int64_t *y = {y};\n"
            f"    for (k = 0; k < {n.out_size}; ++k) {{\n        y[k] = 0;\n    }}\n"
            f"    /* event-driven scatter: each nonzero input adds W * x to the outputs it reaches */\n"
            f"    for (ci = 0; ci < {cin}; ++ci) {{\n"
            f"        const long grp = {grp}; /* group of input channel ci */\n"
            f"        for (iy = 0; iy < {ih}; ++iy) {{\n"
            f"            for (ix = 0; ix < {iw}; ++ix) {{\n"
            f"                const int64_t xv = {x}[{_idx(_idx('ci', ih, 'iy'), iw, 'ix')}];\n"
            f"                if (xv == 0) {{\n                    continue;\n                }}\n"
            f"                for (oc = {oc_lo}; oc < {oc_hi}; ++oc) {{\n"
            f"                    for (ky = 0; ky < {kh}; ++ky) {{\n"
            f"                        const long ty = {ty}; /* output row * stride */\n"
            f"                        if (ty < 0{_mod_test('ty', sh)} || {ydiv} >= {oh}) {{\n"
            f"                            continue;\n                        }}\n"
            f"                        for (kx = 0; kx < {kw}; ++kx) {{\n"
            f"                            const long tx = {tx}; /* output column * stride */\n"
            f"                            if (tx < 0{_mod_test('tx', sw)} || {xdiv} >= {ow}) {{\n"
            f"                                continue;\n                            }}\n"
            f"                            y[{_idx(_idx('oc', oh, ydiv), ow, xdiv)}] +=\n"
            f"                                xv * {w}[{_idx(_idx(_idx('oc', cin_g, _add('ci', '-' + _mul('grp', cin_g))), kh, 'ky'), kw, 'kx')}];\n"
            f"                        }}\n                    }}\n                }}\n"
            f"            }}\n        }}\n    }}\n"
        )
        body += self._synapse_tail(n, "y", "c", oh * ow)
        self.function(n, doc, body)

    def _conv_csc(self, n: NodePlan, st: SynapseStorage, doc: str, geo: tuple[int, ...]) -> None:
        """Scatter over compressed taps: each nonzero input of channel ci visits only the
        nonzero weights (oc, ky, kx) that read channel ci."""
        op: _FixedConv = n.op
        ih, iw, oh, ow, sh, sw, ph, pw, dh, dw = geo
        cin = op.input_shape[0]
        arrs = self._csc_arrays(n, st, {
            "start": f"tap-list offsets per input channel [{cin} + 1]: channel ci's taps are start[ci]..start[ci+1]",
            "oc": f"output channel of each nonzero tap [{st.nonzeros}]",
            "ky": f"kernel row of each nonzero tap [{st.nonzeros}]",
            "kx": f"kernel column of each nonzero tap [{st.nonzeros}]",
            "vals": f"nonzero weight mantissas [{st.nonzeros}]",
        })
        code, x = self.gather(n)
        body = code + (f"    int64_t *y = {self.cur(n)};\n"
                       f"    for (k = 0; k < {n.out_size}; ++k) {{\n        y[k] = 0;\n    }}\n")
        if arrs:
            ky = f"(long){arrs['ky']}[p]" if "ky" in arrs else "0"
            ty = _add(_add("iy", ph), f"-{_mul(ky, dh)}")
            kx, oc = f"(long){arrs['kx']}[p]", f"(long){arrs['oc']}[p]"
            tx = _add(_add("ix", pw), f"-{_mul(kx, dw)}")
            ydiv, xdiv = _div("ty", sh), _div("tx", sw)
            row_test = f"ty < 0{_mod_test('ty', sh)} || {ydiv} >= {oh}"
            body += (
                f"    long ci, iy, ix, p;\n"
                f"    /* event-driven scatter over the nonzero taps of each input channel (compressed) */\n"
                f"    for (ci = 0; ci < {cin}; ++ci) {{\n"
                f"        const long p0 = (long){arrs['start']}[ci], p1 = (long){arrs['start']}[ci + 1];\n"
                f"        for (iy = 0; iy < {ih}; ++iy) {{\n"
                f"            for (ix = 0; ix < {iw}; ++ix) {{\n"
                f"                const int64_t xv = {x}[{_idx(_idx('ci', ih, 'iy'), iw, 'ix')}];\n"
                f"                if (xv == 0) {{\n                    continue;\n                }}\n"
                f"                for (p = p0; p < p1; ++p) {{\n"
                f"                    const long ty = {ty}; /* output row * stride */\n"
                f"                    const long tx = {tx}; /* output column * stride */\n"
                f"                    if ({row_test} || tx < 0{_mod_test('tx', sw)} || {xdiv} >= {ow}) {{\n"
                f"                        continue;\n                    }}\n"
                f"                    y[{_idx(_idx(oc, oh, ydiv), ow, xdiv)}] += xv * {arrs['vals']}[p];\n"
                f"                }}\n"
                f"            }}\n        }}\n    }}\n"
            )
        else:
            body += "    /* every weight is zero: no event loop */\n"
        body += self._synapse_tail(n, "y", "c", oh * ow)
        self.function(n, doc, body)

    def _pool(self, n: NodePlan) -> None:
        op: Pool = n.op
        c = op.input_shape[0]
        sp_in, sp_out = tuple(op.input_shape[1:]), tuple(op.out_shape[1:])
        if len(sp_in) == 1:
            ih, iw, oh, ow = 1, sp_in[0], 1, sp_out[0]
            kh, kw, sh, sw, ph, pw = 1, op.kernel[0], 1, op.stride[0], 0, op.padding[0]
        else:
            (ih, iw), (oh, ow) = sp_in, sp_out
            (kh, kw), (sh, sw), (ph, pw) = op.kernel, op.stride, op.padding
        is_max = op.mode is PoolMode.MAX
        code, x = self.gather(n)
        init = "INT64_MIN" if is_max else "0"
        combine = "acc = v > acc ? v : acc;" if is_max else "acc += v;"
        body = code + (
            f"    long ch, oy, ox, ky, kx;\n    int64_t *y = {self.cur(n)};\n"
            f"    for (ch = 0; ch < {c}; ++ch) {{\n"
            f"        for (oy = 0; oy < {oh}; ++oy) {{\n"
            f"            for (ox = 0; ox < {ow}; ++ox) {{\n"
            f"                int64_t acc = {init};\n"
            f"                for (ky = 0; ky < {kh}; ++ky) {{\n"
            f"                    const long iy = oy * {sh} - {ph} + ky;\n"
            f"                    for (kx = 0; kx < {kw}; ++kx) {{\n"
            f"                        const long ix = ox * {sw} - {pw} + kx;\n"
            f"                        if (iy >= 0 && iy < {ih} && ix >= 0 && ix < {iw}) {{\n"
            f"                            const int64_t v = {x}[(ch * {ih} + iy) * {iw} + ix];\n"
            f"                            {combine}\n"
            f"                        }}\n                    }}\n                }}\n"
            f"                y[(ch * {oh} + oy) * {ow} + ox] = acc;\n"
            f"            }}\n        }}\n    }}\n"
        )
        doc = f"{op.mode.value} pool, kernel {op.kernel}, stride {op.stride}, padding {op.padding}"
        self.function(n, doc + (" (padding never wins)" if is_max else " (zero padding)"), body, uses_k=bool(code))

    # --- neurons ---------------------------------------------------------------------
    def _neuron(self, n: NodePlan) -> None:
        """The population's loop; its body is generated from the family's definition (states kept
        narrower than int64, ``state_types``, are read widened: the arithmetic is int64)."""
        code = neuron_code(n.op, n.cid, lambda name, arr: self.param(n, name, arr), narrow=True)
        gather, x = self.gather(n)
        body = gather + f"    const int64_t *x = {x};\n    int64_t *y = {self.cur(n)};\n"
        inner = "".join(f"        {line}\n" for line in code.body)
        body += f"    for (k = 0; k < {n.out_size}; ++k) {{\n{inner}    }}\n"
        self.function(n, code.doc, body)


def _scaled(st: SynapseStorage) -> str:
    return f" / 2^{st.scale_shift}" if st.scale_shift else ""


def _mul(a: str, k: int) -> str:
    return a if k == 1 else ("0" if k == 0 else f"{a} * {k}")


def _add(a: str, b) -> str:
    """a + b, where b is an int or a string that may start with '-' (a subtraction)."""
    b = str(b)
    if b in ("0", "-0"):
        return a
    return f"{a} - {b[1:]}" if b.startswith("-") else f"{a} + {b}"


def _div(a: str, k: int) -> str:
    return a if k == 1 else f"{a} / {k}"


def _mod_test(a: str, k: int) -> str:
    return "" if k == 1 else f" || {a} % {k} != 0"


def _idx(outer: str, size: int, inner: str) -> str:
    """Row-major index (outer * size + inner), simplified for size 1."""
    if size == 1:
        return inner if outer == "0" else _add(outer, inner)
    o = outer if " " not in outer else f"({outer})"
    return f"{o} * {size} + {inner}"


def _needs_prev_spike(op) -> bool:
    return isinstance(op, FixedNeuron) and reads_prev_output(op)


_C_SIZES = {"int8_t": 1, "int16_t": 2, "int32_t": 4, "int64_t": 8}


def state_types(op) -> dict[str, str]:
    """C type of each state-struct member of a fixed population (by member name: the states, and
    ``sp`` for the previous output where the step reads it): the narrowest type holding every
    value the state takes over a run, as the family's definition proves it
    (``neuron_code(..., narrow=True)``: initial values and stored values), else int64_t. A model
    of 24-bit Loihi membranes keeps them in int32_t and its spikes in int8_t."""
    narrow = neuron_code(op, "b", lambda name, arr: name, narrow=True).state_ctypes
    names = list(op.state_names) + (["s"] if _needs_prev_spike(op) else [])
    return {member(name): narrow.get(name, "int64_t") for name in names}


def _wrap_values(values: list[str], width: int = 96) -> str:
    lines, line = [], "    "
    for v in values:
        piece = v + ", "
        if len(line) + len(piece) > width and line.strip():
            lines.append(line.rstrip())
            line = "    "
        line += piece
    lines.append(line.rstrip().rstrip(","))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# state struct, reset, step, record
# ------------------------------------------------------------------------------------------
def _state_members(graph: Graph, plan: Plan) -> tuple[list[str], int]:
    """Struct member declarations and the struct's approximate size in bytes."""
    lines: list[str] = []
    nbytes = 0
    max_in, max_act = 1, 1
    for name, n in plan.nodes.items():
        op = n.op
        members: list[tuple[str, str]] = []
        if n.has_buffer:
            if n.slots:
                members.append((f"int64_t val_{n.cid}[{n.slots}][{n.out_size}]", "output ring"))
                members.append((f"int32_t pos_{n.cid}", "ring slot of the current step"))
                nbytes += 8 * n.slots * n.out_size + 4
            else:
                members.append((f"int64_t val_{n.cid}[{n.out_size}]", "output"))
                nbytes += 8 * n.out_size
        if isinstance(op, FixedNeuron):
            for m, ctype in state_types(op).items():
                what = "previous spikes" if m == "sp" else f"state {m}"
                members.append((f"{ctype} {m}_{n.cid}[{n.out_size}]", what))
                nbytes += _C_SIZES[ctype] * n.out_size
        if isinstance(op, Delay) and op.steps >= 1:
            members.append((f"int64_t dl_{n.cid}[{op.steps}][{n.in_size}]", f"inputs of the last {op.steps} steps"))
            members.append((f"int32_t dpos_{n.cid}", "delay line slot"))
            nbytes += 8 * op.steps * n.in_size + 4
        if len(n.in_edges) != 1:  # summed (or zero) input goes through the work area
            max_in = max(max_in, n.in_size)
        if isinstance(op, FixedDense):
            max_act = max(max_act, n.in_size)
        if members:
            lines.append(f"    /* node '{safe_name(name)}' ({type(op).__name__}) */")
            lines += [f"    {decl}; /* {what} */" for decl, what in members]
    lines.append("    /* work area */")
    lines.append(f"    int64_t xin[{max_in}]; /* summed input of a node with several (or no) in-edges */")
    lines.append(f"    int32_t act[{max_act}]; /* event list: indices of nonzero synapse inputs */")
    nbytes += 8 * max_in + 4 * max_act
    return lines, nbytes


def state_size(graph: Graph, plan: Plan) -> int:
    """Bytes of one sample's state (approximate: without padding)."""
    return _state_members(graph, plan)[1]


def _reset_body(em: _Emitter) -> str:
    p = em.p
    body = "    memset(s, 0, sizeof *s);\n"
    for n in em.plan.nodes.values():
        op = n.op
        if not isinstance(op, FixedNeuron):
            continue
        types = state_types(op)
        for state, pname in family_of(op).initial.items():
            value = getattr(op, pname)
            if np.asarray(value).any():
                vi = em.param(n, pname, value)
                ctype = types.get(member(state), "int64_t")
                vi = vi if ctype == "int64_t" else f"({ctype})({vi})"  # in range: the bound includes it
                body += (f"    for (k = 0; k < {n.out_size}; ++k) {{\n"
                         f"        s->{state}_{n.cid}[k] = {vi}; /* '{safe_name(n.name)}' {pname} */\n    }}\n")
    return f"void {p}_reset({p}_state_t *s)\n{{\n    long k;\n{body}    (void)k;\n}}\n"


def _step_body(em: _Emitter) -> str:
    p, plan = em.p, em.plan
    lines = [f"void {p}_step({p}_state_t *s, const int32_t *input, int64_t *output)", "{", "    long k;"]
    offset = 0
    rings = [n for n in plan.nodes.values() if n.slots]
    if rings:
        lines.append("    /* new step: advance the output rings of nodes read with a delay */")
    for n in rings:
        lines.append(f"    s->pos_{n.cid} = s->pos_{n.cid} + 1 == {n.slots} ? 0 : s->pos_{n.cid} + 1;")
    for name in plan.order:
        n = plan.nodes[name]
        op = n.op
        if isinstance(op, Input) and n.has_buffer:
            lines.append(f"    /* '{safe_name(name)}' (Input): the input vector */")
            lines.append(f"    for (k = 0; k < {n.out_size}; ++k) {{\n        {em.cur(n)}[k] = input[k];\n    }}")
        elif isinstance(op, Input):
            continue
        elif name in plan.quantize_nodes:
            lines.append(f"    /* '{safe_name(name)}' (Quantize): quantized by the host, input[{offset}..{offset + n.out_size}) */")
            lo, hi = n.op.limits  # the input contract (input_ok): clamped, so no input can overflow
            lines.append(f"    for (k = 0; k < {n.out_size}; ++k) {{\n"
                         f"        {em.cur(n)}[k] = rsnn_clip(input[{offset} + k], {lit(lo)}, {lit(hi)});\n    }}")
            offset += n.out_size
        else:
            lines.append(f"    {p}_{n.cid}(s);")
    for n in delay_ops(plan):
        code, _ = em.gather(n, target=f"s->dl_{n.cid}[s->dpos_{n.cid}]")
        lines.append(f"    /* '{safe_name(n.name)}' (Delay {n.op.steps}): capture this step's input */")
        lines.append(code.rstrip("\n"))
        lines.append(f"    s->dpos_{n.cid} = s->dpos_{n.cid} + 1 == {n.op.steps} ? 0 : s->dpos_{n.cid} + 1;")
    out = plan.nodes[plan.output_name]
    lines.append("    if (output != 0) {")
    lines.append(f"        for (k = 0; k < {out.out_size}; ++k) {{\n            output[k] = {em.cur(out)}[k];\n        }}\n    }}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _input_ok_body(em: _Emitter) -> str:
    """``<prefix>_input_ok``: 1 when every input lies in the range the overflow proof assumed."""
    p = em.p
    lines = [f"int {p}_input_ok(const int32_t *input)", "{"]
    checks = [(o, n, lo, hi) for o, n, lo, hi in em.plan.input_ranges() if (lo, hi) != (-(1 << 31), (1 << 31) - 1)]
    if not checks:
        lines += ["    (void)input; /* every int32 input is within the proven range */", "    return 1;", "}"]
        return "\n".join(lines) + "\n"
    lines.append("    long k;")
    for o, n, lo, hi in checks:
        lines.append(f"    for (k = {o}; k < {o + n}; ++k) {{\n"
                     f"        if (input[k] < {lit(lo)} || input[k] > {lit(hi)}) {{\n            return 0;\n        }}\n    }}")
    lines += ["    return 1;", "}"]
    return "\n".join(lines) + "\n"


def _contract_doc(plan: Plan, m: str) -> str:
    ranges = plan.input_ranges()
    parts = "; ".join(f"input[{o}..{o + n}) in [{lo}, {hi}]" for o, n, lo, hi in ranges)
    return (f"/* Input contract (the range the overflow proof assumed): {parts}.\n"
            f" * {plan.prefix}_step clamps values outside it; {plan.prefix}_input_ok(input) returns 1 when\n"
            f" * all {m}_N_IN inputs meet it (the harness refuses inputs that do not). */\n")


def _record_body(em: _Emitter) -> str:
    """``<p>_record`` (int64 values) and ``<p>_record32`` (the same values narrowed to int32 with
    one range flag: the harness' ``-r 4`` records written straight into its output buffer)."""
    return _record_fn(em, narrow=False) + "\n" + _record_fn(em, narrow=True)


def _record_fn(em: _Emitter, narrow: bool) -> str:
    p, plan = em.p, em.plan
    if narrow:
        lines = [f"int {p}_record32(const {p}_state_t *s, int32_t *rec)", "{", "    long k;", "    int bad = 0;"]
    else:
        lines = [f"void {p}_record(const {p}_state_t *s, int64_t *rec)", "{", "    long k;"]
    for f in plan.fields:
        kind, name = f.key.split("/", 1)
        n = plan.nodes[name]
        src = em.cur(n) if kind == "values" else f"s->{kind}_{n.cid}"
        if narrow:
            store = (f"const int64_t v = {src}[k];\n        bad |= (v < INT32_MIN) | (v > INT32_MAX);\n"
                     f"        rec[{f.offset} + k] = (int32_t)v;")
        else:
            store = f"rec[{f.offset} + k] = {src}[k];"
        lines.append(f"    for (k = 0; k < {f.size}; ++k) {{ /* {_comment(f.key.split('/', 1)[0] + '/' + safe_name(f.key.split('/', 1)[1]))} */\n"
                     f"        {store}\n    }}")
    if narrow:
        lines.append("    return bad;")
    lines.append("}")
    return "\n".join(lines) + "\n"


def int32_accumulators(graph: Graph, spec: CSpec = C_SPEC) -> set[str]:
    """FixedDense nodes (at most ``spec.acc32_max_outputs`` outputs) whose summed input and every
    partial sum of W x provably stay inside int32 (the bounds ``check`` proves int64 with)."""
    syn = {n: _Synapse(op) for n, op in graph.nodes.items() if isinstance(op, (FixedDense, _FixedConv))}
    _, in_b = value_bounds(graph, syn)
    return {n for n, op in graph.nodes.items()
            if isinstance(op, FixedDense) and op.weight.shape[0] <= spec.acc32_max_outputs
            and in_b[n] is not None and max(in_b[n], syn[n].acc(in_b[n])) <= INT32_MAX}


def spike_input(graph: Graph, name: str) -> bool:
    """True when node ``name``'s only input is 0/1: a binary family's spikes, or the codes of a
    1-bit unsigned Quantize (binary input spikes)."""
    edges = graph.in_edges(name)
    src = graph.nodes[edges[0].src] if len(edges) == 1 else None
    if isinstance(src, Quantize):
        return src.limits == (0, 1)
    return isinstance(src, FixedNeuron) and family_of(src).binary


def generate(graph: Graph, prefix: str = "rsnn", spec: CSpec = C_SPEC, blob: bool = False) -> CSources:
    """model.h and model.c text for ``graph`` (already accepted by ``check``); with ``blob``,
    arrays of at least ``spec.blob_min_values`` values go to weights.bin (``blob.py``) and the
    model gets its ``<prefix>_load_weights``."""
    plan = make_plan(graph, prefix)
    for name, op in graph.nodes.items():
        if isinstance(op, (FixedDense, _FixedConv)):
            plan.storage[name] = synapse_storage(name, op, spec, spikes=spike_input(graph, name))
    weights = WeightBlob(prefix) if blob else None
    em = _Emitter(graph, plan, spec, weights)
    for name in plan.order:
        em.emit_node(plan.nodes[name])
    members, nbytes = _state_members(graph, plan)
    plan.state_bytes = nbytes
    plan.max_batch = int(max(1, min(spec.max_batch, spec.harness_state_bytes // max(nbytes, 1))))
    reset, step, record, input_ok = _reset_body(em), _step_body(em), _record_body(em), _input_ok_body(em)
    m = prefix.upper()
    out = plan.field(f"values/{plan.output_name}")
    title = safe_name(graph.attrs.name)
    header = (
        f"/* model.h -- '{title}' compiled by rsnnc for the C target (profile {safe_name(graph.attrs.profile)}).\n"
        f" * C99, integers only, no dynamic memory. One {prefix}_state_t holds one sample. */\n"
        f"#ifndef {m}_MODEL_H\n#define {m}_MODEL_H\n\n#include <stdint.h>\n\n"
        f"#define {m}_N_IN {plan.n_in} /* int32 inputs per step ({plan.input_mode}) */\n"
        f"#define {m}_N_OUT {out.size} /* values of the output node '{safe_name(plan.output_name)}' */\n"
        f"#define {m}_RECORD_LEN {plan.record_len} /* int64 values written by {prefix}_record */\n"
        f"#define {m}_OUT_OFFSET {out.offset} /* where the output node's values start in a record */\n"
        f"#ifndef {m}_MAX_BATCH\n#define {m}_MAX_BATCH {plan.max_batch} /* samples per harness run */\n#endif\n\n"
        f"typedef struct {{\n" + "\n".join(members) + f"\n}} {prefix}_state_t;\n\n"
        f"/* Set every state to its initial value (v = v_init, everything else 0). */\n"
        f"void {prefix}_reset({prefix}_state_t *s);\n"
        f"/* Advance one time step on {m}_N_IN integer inputs; if output is not NULL, write the\n"
        f" * output node's {m}_N_OUT values there. */\n"
        f"void {prefix}_step({prefix}_state_t *s, const int32_t *input, int64_t *output);\n"
        + _contract_doc(plan, m)
        + f"int {prefix}_input_ok(const int32_t *input);\n"
        f"/* Copy every node's current value and every neuron state into rec[{m}_RECORD_LEN]\n"
        f" * (offsets in layout.json). */\n"
        f"void {prefix}_record(const {prefix}_state_t *s, int64_t *rec);\n"
        f"/* The same values as int32 into rec[{m}_RECORD_LEN]; returns nonzero when one does not fit\n"
        f" * (rec then holds truncated values). */\n"
        f"int {prefix}_record32(const {prefix}_state_t *s, int32_t *rec);\n"
        + ("" if weights is None else weights.header_text()) + "\n#endif\n"
    )
    source = (
        f"/* model.c -- '{title}' ({len(graph.nodes)} nodes, {len(graph.edges)} edges), generated by rsnnc.\n"
        f" * Semantics: docs/fixed-point.md; per step, nodes run in evaluation order and a node's\n"
        f" * input is the sum over its in-edges of the source's value `delay` steps ago. */\n"
        f'#include <stdint.h>\n#include <string.h>\n\n#include "rsnn_fixed.h"\n#include "model.h"\n\n'
        + "\n".join(em.consts) + ("\n" if em.consts else "")
        + "\n".join(em.funcs) + "\n" + reset + "\n" + step + "\n" + input_ok + "\n" + record
        + ("" if weights is None else "\n" + weights.loader_text())
    )
    return CSources(model_h=header, model_c=source, plan=plan, state_bytes=nbytes, blob=weights)
