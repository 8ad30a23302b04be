"""IR container, verifier messages, golden text form, structural hash and safe save/load."""

from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler.errors import UserInputError, VerificationError
from rsnn_compiler.examples import recurrent_example
from rsnn_compiler.ir import (
    LIF, Affine, Conv1d, Edge, Flatten, GraphBuilder, Identity, Input, Output, Pool, PoolMode,
    broadcast_params, load_graph, save_graph, structural_hash, to_text, verify, verify_or_raise,
)

GOLDEN = Path(__file__).parent / "golden"


def lif(n, **kw):
    p = dict(beta=0.9, gain=1.0, bias=0.0, theta=1.0, v_reset=0.0, v_init=0.0)
    p.update(kw)
    return LIF(**broadcast_params((n,), **p))


def small(edges=None, **ops):
    b = GraphBuilder("g")
    b.add("in", Input(shape=(3,)))
    b.add("fc", ops.get("fc", Affine(weight=np.ones((2, 3)))))
    b.add("lif", ops.get("lif", lif(2)))
    b.add("out", Output(shape=(2,)))
    for e in edges or [("in", "fc", 0), ("fc", "lif", 0), ("lif", "out", 0)]:
        b.connect(*e)
    return b.build()


def test_params_are_read_only_and_typed():
    op = Affine(weight=np.ones((2, 3), np.float64), bias=[1, 2])
    assert op.weight.dtype == np.float32 and not op.weight.flags.writeable
    with pytest.raises(ValueError):
        op.weight[0, 0] = 5
    with pytest.raises(AttributeError):
        op.weight = np.zeros((2, 3))


def test_valid_graph_has_no_problems():
    assert verify(small()) == []
    assert verify(recurrent_example()) == []


@pytest.mark.parametrize(
    "graph_fn,message",
    [
        (lambda: small(fc=Affine(weight=np.ones((2, 4)))), r"edge in -> fc: shape mismatch, 'in' produces \(3,\) but 'fc' expects \(4,\)"),
        (lambda: small(fc=Affine(weight=np.full((2, 3), np.nan))), r"node 'fc' \(Affine\): parameter 'weight' contains NaN at index \(0, 0\)"),
        (lambda: small(fc=Affine(weight=np.full((2, 3), np.inf))), r"parameter 'weight' contains Inf"),
        (lambda: small(lif=lif(2, beta=1.5)), r"node 'lif' \(LIF\): parameter 'beta' = 1.5 at index \(0,\) is outside \[0, 1\]"),
        (lambda: small(edges=[("in", "fc", 0), ("fc", "lif", 0), ("lif", "out", 0), ("lif", "fc2", 0)]), r"edge lif -> fc2: unknown node 'fc2'"),
        (lambda: small(edges=[("in", "fc", 0), ("fc", "lif", 0), ("lif", "out", 0), ("lif", "fc", -1)]), r"delay -1 is negative"),
        (lambda: small(edges=[("in", "fc", 0), ("fc", "lif", 0)]), r"node 'out' \(Output\) has no input edge"),
    ],
)
def test_verifier_rejections_name_problem_and_place(graph_fn, message):
    problems = verify(graph_fn())
    assert any(__import__("re").search(message, p) for p in problems), problems


def test_cycle_without_delay_is_named():
    b = GraphBuilder("loop")
    b.add("in", Input(shape=(2,)))
    b.add("lif", lif(2))
    b.add("rec", Affine(weight=np.eye(2)))
    b.add("out", Output(shape=(2,)))
    b.chain("in", "lif", "rec", "lif")
    b.connect("lif", "out")
    problems = verify(b.build())
    assert any("cycle lif -> rec -> lif has no delayed edge" in p for p in problems), problems
    with pytest.raises(VerificationError, match="cycle lif -> rec -> lif"):
        verify_or_raise(b.build())


def test_delay_node_breaks_a_cycle():
    from rsnn_compiler.ir import Delay

    b = GraphBuilder("loop")
    b.add("in", Input(shape=(2,)))
    b.add("lif", lif(2))
    b.add("d", Delay(shape=(2,), steps=1))
    b.add("out", Output(shape=(2,)))
    b.chain("in", "lif", "d", "lif")
    b.connect("lif", "out")
    assert verify(b.build()) == []


def test_more_structural_rejections():
    bad_name = small().with_node("bad/name", Identity(shape=(2,)))
    assert any("node name 'bad/name' is invalid" in p for p in verify(bad_name))
    two_inputs = small().with_node("in2", Input(shape=(3,)))
    assert any("graph has 2 Input nodes" in p for p in verify(two_inputs))
    pool = Pool(mode=PoolMode.SUM, kernel=5, stride=1, input_shape=(1, 3))
    assert any("larger than the input" in p for p in verify(small().with_node("p", pool)))
    flat = Flatten(input_shape=(2, 3), start_dim=1, end_dim=0)
    assert any("start_dim 1 is after end_dim 0" in p for p in verify(small().with_node("f", flat)))


@pytest.mark.parametrize("make,message", [
    (lambda: Affine(weight=np.ones((2, 3)), bias=[1, 2, 3]), r"Affine: bias shape \(3,\) does not match weight rows 2"),
    (lambda: Conv1d(weight=np.ones((4, 2, 3)), input_shape=(3, 10)), "input has 3 channels"),
    (lambda: LIF(**{**broadcast_params((2,), beta=0.9, gain=1, bias=0, theta=1, v_reset=0), "v_init": np.zeros(3)}),
     r"parameter 'v_init' has shape \(3,\) but the population is \(2,\)"),
])
def test_parameter_shapes_are_checked_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_golden_text_form():
    """The text form is a reviewed contract: regenerate deliberately with RSNNC_UPDATE_GOLDEN=1."""
    import os

    text = to_text(recurrent_example())
    golden = GOLDEN / "example_recurrent.txt"
    if os.environ.get("RSNNC_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


def test_text_and_hash_are_deterministic_and_sensitive():
    a, b = recurrent_example(seed=0), recurrent_example(seed=0)
    assert to_text(a) == to_text(b)
    assert structural_hash(a) == structural_hash(b)
    assert structural_hash(recurrent_example(seed=1)) != structural_hash(a)
    swapped = a.with_edges([Edge(e.src, e.dst, e.delay + (1 if e.src == "fc_in" else 0)) for e in a.edges])
    assert structural_hash(swapped) != structural_hash(a)
    # one ulp in one weight changes the hash
    w = a.nodes["fc_in"].weight.copy()
    w[0, 0] = np.nextafter(w[0, 0], np.float32(np.inf))
    assert structural_hash(a.with_node("fc_in", a.nodes["fc_in"].replace(weight=w))) != structural_hash(a)
    # pass bookkeeping does not
    assert structural_hash(a.with_attrs(properties=frozenset({"canonical"}))) == structural_hash(a)


def test_save_load_round_trip_is_exact_and_deterministic(tmp_path):
    g = recurrent_example()
    save_graph(g, tmp_path / "a.rsnn")
    save_graph(g, tmp_path / "b.rsnn")
    assert (tmp_path / "a.rsnn").read_bytes() == (tmp_path / "b.rsnn").read_bytes()
    back = load_graph(tmp_path / "a.rsnn")
    assert to_text(back) == to_text(g)
    assert structural_hash(back) == structural_hash(g)
    for name, op in g.nodes.items():
        for p, arr in op.arrays().items():
            np.testing.assert_array_equal(back.nodes[name].arrays()[p], arr)


def test_load_rejects_garbage_and_truncation(tmp_path):
    g = recurrent_example()
    save_graph(g, tmp_path / "a.rsnn")
    data = (tmp_path / "a.rsnn").read_bytes()
    (tmp_path / "trunc.rsnn").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.rsnn").write_bytes(b"not a zip at all")
    for name in ("trunc.rsnn", "junk.rsnn"):
        with pytest.raises(UserInputError, match="malformed or truncated"):
            load_graph(tmp_path / name)
    with pytest.raises(UserInputError, match="not found"):
        load_graph(tmp_path / "missing.rsnn")


def test_load_never_unpickles(tmp_path):
    """An object array (which would need pickle) inside the file is refused."""
    import io
    import zipfile

    g = recurrent_example()
    save_graph(g, tmp_path / "a.rsnn")
    src = zipfile.ZipFile(tmp_path / "a.rsnn")
    with zipfile.ZipFile(tmp_path / "evil.rsnn", "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "arrays/fc_in/weight.npy":
                buf = io.BytesIO()
                np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
                data = buf.getvalue()
            dst.writestr(item, data)
    with pytest.raises(UserInputError, match="dtype object"):
        load_graph(tmp_path / "evil.rsnn")


def test_batchnorm_shift_named_beta_is_not_a_decay():
    from rsnn_compiler.ir import BatchNorm

    bn = BatchNorm(mean=[0.0, 0.0], var=[1.0, 1.0], gamma=[1.0, 1.0], beta=[-3.0, 2.0], shape=(2,))
    b = GraphBuilder("bn")
    b.add("in", Input(shape=(2,)))
    b.add("bn", bn)
    b.add("out", Output(shape=(2,)))
    b.chain("in", "bn", "out")
    assert verify(b.build()) == []
