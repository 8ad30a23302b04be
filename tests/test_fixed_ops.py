"""Fixed-point ops in the IR: text form, hash, save/load round trip, verifier range checks."""

from __future__ import annotations

import numpy as np
import pytest

from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.ir import (
    Domain, FixedALIF, FixedConv2d, FixedDense, FixedDualIF, FixedLI, FixedLIF, FixedMultiThreshold,
    Flatten, GraphBuilder, Input, LIF, Output, Pool, PoolMode, Quantize, ResetMode, broadcast_params,
    load_graph, save_graph, structural_hash, to_text, verify,
)
from rsnn_compiler.ir.fixed_ops import make_neuron


def fixed_graph(profile: str = "fpga"):
    b = GraphBuilder("fx")
    b.add("in", Input(shape=(2, 4, 4)))
    b.add("q", Quantize(shape=(2, 4, 4), shift=3, bits=8, signed=True))
    conv_kw = dict(acc_bits=24, acc_overflow=Overflow.WRAP) if profile == "loihi2" else {}
    b.add("conv", FixedConv2d(weight=np.arange(36).reshape(2, 2, 3, 3) - 18, weight_exp=[0, 0],
                              input_shape=(2, 4, 4), padding=1, **conv_kw))
    b.add("lif", make_neuron(FixedLIF, (2, 4, 4), vth=100, du=10, dv=20, reset=ResetMode.ZERO))
    b.add("pool", Pool(mode=PoolMode.SUM, kernel=2, stride=2, input_shape=(2, 4, 4)))
    b.add("flat", Flatten(input_shape=(2, 2, 2)))
    dense_kw = dict(acc_overflow=Overflow.WRAP) if profile == "loihi2" else {}
    b.add("fc", FixedDense(weight=np.full((3, 8), 2), weight_exp=[-1, -1, -1], **dense_kw))
    b.add("alif", make_neuron(FixedALIF, (3,), vth=5, da=100, a_inc=64, reset="subtract"))
    b.add("dual", make_neuron(FixedDualIF, (3,), vth=4, vth_neg=0, v_init=128))
    b.add("mtn", make_neuron(FixedMultiThreshold, (3,), vth=3, levels=4))
    b.add("li", make_neuron(FixedLI, (3,), du=100, dv=200))
    b.add("out", Output(shape=(3,)))
    b.chain("in", "q", "conv", "lif", "pool", "flat", "fc", "alif", "dual", "mtn", "li", "out")
    b.connect("alif", "alif", 1)
    g = b.build()
    return g.with_attrs(domain=Domain.FIXED, profile=profile)


def test_fixed_graph_verifies_and_round_trips(tmp_path):
    g = fixed_graph()
    assert verify(g) == []
    text = to_text(g)
    assert "fixed_lif" in text and "v_overflow=\"saturate_sym\"" in text and "domain=fixed" in text
    path = tmp_path / "g.rsnn"
    save_graph(g, path)
    g2 = load_graph(path)
    assert to_text(g2) == text and structural_hash(g2) == structural_hash(g)
    for name, op in g.nodes.items():
        op2 = g2.nodes[name]
        assert type(op2) is type(op) and op2.attributes() == op.attributes()
        for k, arr in op.arrays().items():
            assert arr.dtype == np.int64 and np.array_equal(op2.arrays()[k], arr)
    # saving twice gives identical bytes
    save_graph(g2, tmp_path / "g2.rsnn")
    assert (tmp_path / "g2.rsnn").read_bytes() == path.read_bytes()


def test_rsnn_stores_integer_widths_and_large_entries_undeflated(tmp_path):
    """Fixed arrays go into the .rsnn at their narrowest width (restored to int64 on load), large
    entries without deflate; a file written the old way (int64, all deflated) still loads."""
    import io
    import json
    import zipfile

    from rsnn_compiler.ir.serialize import STORE_BYTES, _EPOCH, graph_to_dict

    g = fixed_graph()
    path = tmp_path / "g.rsnn"
    save_graph(g, path)
    with zipfile.ZipFile(path) as zf:
        w = np.lib.format.read_array(io.BytesIO(zf.read("arrays/fc/weight.npy")))
        assert w.dtype.itemsize < 8 and np.array_equal(w, g.nodes["fc"].weight)
    g2 = load_graph(path)
    assert structural_hash(g2) == structural_hash(g)
    assert all(a.dtype == np.int64 for op in g2.nodes.values() for a in op.arrays().values())

    wide = {"w": np.arange(STORE_BYTES, dtype=np.int64) % 100}  # a large entry: stored, not deflated
    from rsnn_compiler.ir import serialize

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        npy = io.BytesIO()
        np.lib.format.write_array(npy, serialize.narrow_int(wide["w"]))
        serialize._write_entry(zf, "big.npy", npy.getvalue())
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        assert zf.getinfo("big.npy").compress_type == zipfile.ZIP_STORED

    old = tmp_path / "old.rsnn"  # the previous writer: int64 arrays, every entry deflated, no "widen"
    with zipfile.ZipFile(old, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("graph.json", date_time=_EPOCH), json.dumps(graph_to_dict(g)).replace('"widen"', '"_"'))
        for name, op in g.nodes.items():
            for pname, arr in op.arrays().items():
                npy = io.BytesIO()
                np.lib.format.write_array(npy, np.ascontiguousarray(arr, dtype=arr.dtype))
                zf.writestr(f"arrays/{name}/{pname}.npy", npy.getvalue(), zipfile.ZIP_DEFLATED)
    assert structural_hash(load_graph(old)) == structural_hash(g)


def test_hash_sees_fixed_attributes():
    g = fixed_graph()
    op = g.nodes["lif"]
    h = structural_hash(g)
    assert structural_hash(g.with_node("lif", op.replace(u_overflow=Overflow.SATURATE))) != h
    assert structural_hash(g.with_node("lif", op.replace(dv=op.dv + 1))) != h


def test_arrays_are_int64_and_read_only():
    op = make_neuron(FixedLIF, (2,), vth=[1.0, 2.0])
    assert op.vth.dtype == np.int64 and not op.vth.flags.writeable
    with pytest.raises(ValueError, match="integers"):
        make_neuron(FixedLIF, (2,), vth=np.array([1.5, 2.0]))


def test_domain_mixing_rejected():
    g = fixed_graph()
    assert any("fixed-point op in a float graph" in p for p in verify(g.with_attrs(domain=Domain.FLOAT)))
    lif = LIF(**broadcast_params((3,), beta=0.9, gain=1, bias=0, theta=1, v_reset=0, v_init=0))
    bad = g.with_node("li", lif)
    assert any("float op in a fixed graph" in p for p in verify(bad))
    assert any("profile" in p for p in verify(g.with_attrs(profile="tpu")))


def test_loihi2_rules():
    g = fixed_graph("loihi2")
    problems = verify(g)
    # fc: weight_exp -1 shared, weights 2 (even, exact) -> fine; fixture is loihi2-legal
    assert problems == [], problems
    fc = g.nodes["fc"]
    odd = g.with_node("fc", fc.replace(weight=np.array([[3, -2] * 4] * 3)))
    assert any("not representable on Loihi 2" in p for p in verify(odd))
    per_ch = g.with_node("fc", fc.replace(weight_exp=np.array([0, 1, 0])))
    assert any("one weight_exp per layer" in p for p in verify(per_ch))
    lif = g.nodes["lif"]
    for change, needle in [
        (dict(du=np.full(lif.shape, 4096)), "'du' = 4096"),
        (dict(vth=np.full(lif.shape, 1 << 17)), "17-bit"),
        (dict(bias_mant=np.full(lif.shape, 5000)), "13-bit"),
        (dict(bias_exp=np.full(lif.shape, 8)), "3-bit"),
        (dict(u_overflow=Overflow.SATURATE), "wraps u once"),
        (dict(input_shift=0), "a << 6"),
        (dict(du_offset=0), "du + 1"),
    ]:
        assert any(needle in p for p in verify(g.with_node("lif", lif.replace(**change)))), needle
    edges = list(g.edges) + [type(g.edges[0])("alif", "alif", 64)]
    assert any("delay 64" in p for p in verify(g.with_edges(edges)))
    with_bias = g.with_node("fc", fc.replace(bias=np.zeros(3, int)))
    assert any("no bias" in p for p in verify(with_bias))


def test_fpga_rules():
    g = fixed_graph("fpga")
    fc = g.nodes["fc"]
    wide = g.with_node("fc", fc.replace(weight=np.full((3, 8), 200)))
    assert any("8-bit mantissa" in p for p in verify(wide))
    assert verify(g.with_node("fc", fc.replace(weight=np.full((3, 8), 200), weight_bits=9))) == []
    mtn = g.nodes["mtn"]
    assert any("vth must be > 0" in p for p in verify(g.with_node("mtn", mtn.replace(vth=np.zeros(3, int)))))
    lif = g.nodes["lif"]
    assert any("v_init" in p for p in verify(g.with_node("lif", lif.replace(v_init=np.full(lif.shape, 1 << 30)))))
    assert any("average pooling" in p for p in verify(g.with_node("pool", g.nodes["pool"].replace(mode=PoolMode.AVG))))
