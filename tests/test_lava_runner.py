"""Lava runner vs an independent numpy int64 model of Lava 0.10 ``fixed_pt`` arithmetic.

The reference below is written from docs (shared notes on Lava's fixed-point semantics), not from
Lava's code. Tests marked ``lava`` need the Python 3.10 environment (``scripts/setup_lava.sh``):
without it they skip, or fail when the ``CI`` environment variable is set.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from rsnn_compiler.backends.lava import env as lava_env
from rsnn_compiler.backends.lava.env import result_meta, run_in_lava, write_network_dir

# --------------------------------------------------------------------------------------------
# Independent reference model
# --------------------------------------------------------------------------------------------

MAX_UV = 1 << 23


def trunc0(x: np.ndarray) -> np.ndarray:
    """x / 4096 rounded toward zero."""
    return np.sign(x) * (np.abs(x) >> 12)


def wrap32(x: np.ndarray) -> np.ndarray:
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) % (1 << 32)) - (1 << 31)


def shift(x: np.ndarray, e: int) -> np.ndarray:
    return x << e if e > 0 else x >> -e


def quantize_weights(w: np.ndarray, sign_mode: str, num_weight_bits: int) -> np.ndarray:
    """Lava's first-step weight clip + LSB floor, per sign mode."""
    w = np.asarray(w, dtype=np.int64)
    if sign_mode == "auto":
        sign_mode = ("excitatory" if w.min() >= 0 else
                     "inhibitory" if w.max() <= 0 else "mixed")
    if sign_mode == "mixed":
        k = 8 - num_weight_bits + 1
        return (np.clip(w, -256, 255) >> k) << k
    k = 8 - num_weight_bits
    if sign_mode == "excitatory":
        return (np.clip(w, 0, 255) >> k) << k
    return -((-np.clip(w, -255, 0) >> k) << k)


@dataclass
class RefPop:
    name: str
    size: int
    du: int = 0
    dv: int = 0
    vth: int = 10
    bias_mant: np.ndarray | int = 0
    bias_exp: np.ndarray | int = 0
    u0: np.ndarray | int = 0
    v0: np.ndarray | int = 0
    record: tuple[str, ...] = ("spikes",)


@dataclass
class RefConn:
    name: str
    src: str
    dst: str
    weights: np.ndarray | None = None
    kind: str = "dense"  # dense | sparse | delay_dense | delay_sparse | direct
    delays: np.ndarray | int | None = None
    weight_exp: int = 0
    num_weight_bits: int = 8
    sign_mode: str = "auto"
    num_message_bits: int = 0


@dataclass
class RefNet:
    n_in: int
    pops: list[RefPop]
    conns: list[RefConn]
    input_name: str = "in"
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def to_doc(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The runner's network.json document and arrays."""
        arrays: dict[str, np.ndarray] = {}

        def val(v, key):
            if isinstance(v, np.ndarray):
                arrays[key] = v
                return {"array": key}
            return int(v)

        pops = [{"name": p.name, "neuron": "lif", "size": p.size, "record": list(p.record),
                 "params": {"du": p.du, "dv": p.dv, "vth": p.vth,
                            "bias_mant": val(p.bias_mant, f"{p.name}.bias_mant"),
                            "bias_exp": val(p.bias_exp, f"{p.name}.bias_exp"),
                            "u": val(p.u0, f"{p.name}.u"), "v": val(p.v0, f"{p.name}.v")}}
                for p in self.pops]
        conns = []
        for c in self.conns:
            d = {"name": c.name, "kind": c.kind, "src": c.src, "dst": c.dst}
            if c.kind.endswith("sparse"):  # CSR reference, as the compiler's emitter writes it
                m = sp.csr_matrix(c.weights)
                m.eliminate_zeros()
                for part in ("data", "indices", "indptr"):
                    arrays[f"{c.name}.w.{part}"] = getattr(m, part).astype(np.int64)
                d.update(weights={"csr": f"{c.name}.w", "shape": list(m.shape)}, weight_exp=c.weight_exp,
                         num_weight_bits=c.num_weight_bits, sign_mode=c.sign_mode,
                         num_message_bits=c.num_message_bits)
            elif c.kind != "direct":
                d.update(weights=val(c.weights, f"{c.name}.w"), weight_exp=c.weight_exp,
                         num_weight_bits=c.num_weight_bits, sign_mode=c.sign_mode,
                         num_message_bits=c.num_message_bits)
            if c.delays is not None:
                d["delays"] = val(c.delays, f"{c.name}.d")
            conns.append(d)
        return {"input": {"name": self.input_name, "size": self.n_in}, "populations": pops,
                "connections": conns}, arrays


def simulate(net: RefNet, x: np.ndarray) -> dict[str, np.ndarray]:
    """Reference run of one sample ``x`` (T, n_in): (1) connections emit last step's buffer,
    (2) neurons update, (3) connections accumulate this step's spikes."""
    T = x.shape[0]
    u = {p.name: np.broadcast_to(np.int64(p.u0), (p.size,)).astype(np.int64) for p in net.pops}
    v = {p.name: np.broadcast_to(np.int64(p.v0), (p.size,)).astype(np.int64) for p in net.pops}
    s = {p.name: np.zeros(p.size, np.int64) for p in net.pops}
    size = {p.name: p.size for p in net.pops}
    wq, dl, buf = {}, {}, {}
    for c in net.conns:
        if c.kind == "direct":
            continue
        wq[c.name] = quantize_weights(c.weights, c.sign_mode, c.num_weight_bits)
        dl[c.name] = np.zeros(c.weights.shape, np.int64) if c.delays is None else np.broadcast_to(c.delays, c.weights.shape)
        buf[c.name] = np.zeros((size[c.dst], int(dl[c.name].max()) + 1), np.int64)
    rec = {f"{r}/{p.name}": np.zeros((T, p.size), np.int64) for p in net.pops for r in p.record}
    for t in range(T):
        a = {p.name: np.zeros(p.size, np.int64) for p in net.pops}
        for c in net.conns:  # (1) emit
            if c.kind == "direct":
                a[c.dst] += x[t]
            else:
                a[c.dst] += wrap32(buf[c.name][:, 0])
                buf[c.name] = np.roll(buf[c.name], -1, axis=1)
                buf[c.name][:, -1] = 0
        for p in net.pops:  # (2) LIF
            bm, be = np.int64(p.bias_mant), np.int64(p.bias_exp)
            bias = np.where(be >= 0, bm << np.maximum(be, 0), bm >> np.maximum(-be, 0))
            uu = trunc0(u[p.name] * (4096 - (p.du + 1))) + wrap32(a[p.name] << 6)
            uu = np.where(uu > MAX_UV, uu - 2 * MAX_UV, np.where(uu <= -MAX_UV, uu + 2 * MAX_UV, uu))
            vv = trunc0(v[p.name] * (4096 - p.dv)) + uu + bias
            vv = np.clip(vv, -(MAX_UV - 1), MAX_UV - 1)
            spk = vv > (p.vth << 6)
            vv[spk] = 0
            u[p.name], v[p.name], s[p.name] = uu, vv, spk.astype(np.int64)
            for r, st in (("spikes", s[p.name]), ("v", vv), ("u", uu)):
                if r in p.record:
                    rec[f"{r}/{p.name}"][t] = st
        for c in net.conns:  # (3) accumulate
            if c.kind == "direct":
                continue
            pre = x[t] if c.src == net.input_name else s[c.src]
            pre = pre if c.num_message_bits > 0 else (pre != 0).astype(np.int64)
            for k in range(buf[c.name].shape[1]):
                wk = np.where(dl[c.name] == k, wq[c.name], 0)
                buf[c.name][:, k] += shift(wk @ pre, c.weight_exp)
    return rec


def simulate_batch(net: RefNet, x: np.ndarray) -> dict[str, np.ndarray]:
    """``x`` (T, batch, n_in) -> recordings (T, batch, n)."""
    runs = [simulate(net, x[:, b]) for b in range(x.shape[1])]
    return {k: np.stack([r[k] for r in runs], axis=1) for k in runs[0]}


# --------------------------------------------------------------------------------------------
# Random networks
# --------------------------------------------------------------------------------------------


def rand_weights(rng, shape, sign: str, lo: int = 1, hi: int = 256, density: float = 0.6):
    mag = rng.integers(lo, hi, shape) * (rng.random(shape) < density)
    if sign == "pos":
        return mag
    if sign == "neg":
        return -mag
    return mag * rng.choice([-1, 1], shape)


@dataclass
class Case:
    """Knobs for one random recurrent network (input -> Dense -> LIF, recurrent Dense)."""

    seed: int
    n_in: int = 6
    n: int = 12
    T: int = 40
    batch: int = 2
    sign_in: str = "mixed"
    sign_rec: str = "mixed"
    weight_exp: tuple[int, int] = (0, 0)
    num_weight_bits: tuple[int, int] = (8, 8)
    sign_mode: tuple[str, str] = ("auto", "auto")
    du: int = 200
    dv: int = 300
    vth: int = 200
    bias: tuple[int, int] = (0, 0)  # (max |bias_mant|, bias_exp)
    delays: int = 0  # max DelayDense delay on the recurrent (and input, if > 8) connection
    rec_kind: str = "dense"
    input_rate: float = 0.3
    graded_input: bool = False
    second_layer: bool = False
    direct_input: bool = False
    probe: bool = True
    w_range: tuple[int, int] = (1, 256)
    u0: int = 0
    v0: int = 0


def make_case(c: Case) -> tuple[RefNet, np.ndarray]:
    rng = np.random.default_rng(c.seed)
    rec = ("spikes", "v", "u") if c.probe else ("spikes",)
    bm = rng.integers(-c.bias[0], c.bias[0] + 1, c.n) if c.bias[0] else 0
    pops = [RefPop("h", c.n, c.du, c.dv, c.vth, bm, c.bias[1], record=rec,
                   u0=rng.integers(-c.u0, c.u0 + 1, c.n) if c.u0 else 0,
                   v0=rng.integers(-c.v0, c.v0 + 1, c.n) if c.v0 else 0)]
    w_in = rand_weights(rng, (c.n, c.n_in), c.sign_in, *c.w_range)
    w_rec = rand_weights(rng, (c.n, c.n), c.sign_rec, *c.w_range, density=0.4)
    d_rec = rng.integers(0, c.delays + 1, (c.n, c.n)) if c.delays else None
    d_in = rng.integers(0, c.delays + 1, (c.n, c.n_in)) if c.delays > 8 else None
    conns = [
        RefConn("in_h", "in", "h", w_in, "delay_dense" if d_in is not None else "dense", d_in,
                c.weight_exp[0], c.num_weight_bits[0], c.sign_mode[0],
                num_message_bits=8 if c.graded_input else 0),
        RefConn("h_h", "h", "h", w_rec, c.rec_kind if d_rec is None else f"delay_{c.rec_kind}",
                d_rec, c.weight_exp[1], c.num_weight_bits[1], c.sign_mode[1]),
    ]
    if c.direct_input:
        conns.append(RefConn("in_h_direct", "in", "h", kind="direct"))
    if c.second_layer:
        pops.append(RefPop("o", 4, du=4095, dv=0, vth=50, record=rec))
        conns.append(RefConn("h_o", "h", "o", rand_weights(rng, (4, c.n), "mixed"), "sparse"))
    if c.graded_input:
        x = rng.integers(-3, 4, (c.T, c.batch, c.n_in)) * (rng.random((c.T, c.batch, c.n_in)) < c.input_rate)
    elif c.direct_input:
        x = rng.integers(-2000, 2000, (c.T, c.batch, c.n_in))
    else:
        x = (rng.random((c.T, c.batch, c.n_in)) < c.input_rate).astype(np.int64)
    return RefNet(c.n_in, pops, conns), x


CASES = {
    "mixed_basic": Case(1),
    "pos_only_exp_pos": Case(2, sign_in="pos", sign_rec="pos", weight_exp=(1, -2), vth=2000),
    "neg_rec_bias": Case(3, sign_in="pos", sign_rec="neg", bias=(300, 3), weight_exp=(2, 0)),
    "du0_dv0": Case(4, du=0, dv=0, vth=1000, weight_exp=(-1, -3)),
    "du4095_dv4095": Case(5, du=4095, dv=4095, vth=30, bias=(40, 1)),
    "neg_bias_exp": Case(6, bias=(4000, -3), num_weight_bits=(5, 3), dv=4095, vth=100),
    "weight_bits_signmodes": Case(7, num_weight_bits=(6, 2), sign_mode=("mixed", "inhibitory"),
                                  sign_rec="mixed", weight_exp=(3, 1), vth=3000),
    "delays_rec": Case(8, delays=7, n=10, T=50),
    "delays_63": Case(9, delays=63, n=6, n_in=4, T=90, batch=1, input_rate=0.5),
    "current_wrap": Case(10, w_range=(200, 256), weight_exp=(7, 7), sign_in="pos", sign_rec="mixed",
                         du=10, dv=100, vth=131071, input_rate=0.8),
    "voltage_saturation": Case(11, bias=(4095, 7), dv=0, du=0, vth=131071, sign_rec="neg",
                               weight_exp=(6, 6), u0=3_000_000, v0=8_000_000),
    "sparse_two_layers": Case(12, rec_kind="sparse", second_layer=True, batch=3),
    "delay_sparse_rec": Case(15, rec_kind="sparse", delays=9, n=12, T=45, batch=3, sign_rec="neg",
                             weight_exp=(1, 2)),
    "graded_and_direct": Case(13, n_in=12, graded_input=True, direct_input=True, weight_exp=(1, 0)),
    "no_probe_batch": Case(14, probe=False, batch=5, T=60),
}


# --------------------------------------------------------------------------------------------
# Tests that do not need Lava
# --------------------------------------------------------------------------------------------


def test_reference_quantization_matches_notes():
    assert list(quantize_weights(np.array([3, -3, 255, -256, 300]), "auto", 8)) == [2, -4, 254, -256, 254]
    assert list(quantize_weights(np.array([3, 255, 300]), "auto", 8)) == [3, 255, 255]
    assert list(quantize_weights(np.array([-3, -256]), "auto", 8)) == [-3, -255]
    assert list(quantize_weights(np.array([-7, 0]), "inhibitory", 6)) == [-4, 0]


def test_reference_wrap_points():
    """One-shot wrap of u into (-2^23, 2^23] (values from the notes)."""
    net = RefNet(1, [RefPop("h", 1, du=4095, dv=4095, vth=131071, record=("u",))],
                 [RefConn("d", "in", "h", kind="direct")])
    for a, want in [(131072, 8388608), (131073, -8388544), (-131072, 8388608), (200000, -3977216)]:
        assert simulate(net, np.array([[a]]))["u/h"][0, 0] == want


def test_locator_env_vars(tmp_path, monkeypatch):
    fake = tmp_path / "env" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("RSNNC_LAVA_ENV", str(tmp_path / "env"))
    monkeypatch.delenv("RSNNC_LAVA_PYTHON", raising=False)
    assert lava_env.find_lava_python() == fake
    status = lava_env.lava_status()
    assert not status.found and "import lava" in status.reason and "setup_lava.sh" in status.reason
    monkeypatch.setenv("RSNNC_LAVA_PYTHON", str(tmp_path / "missing"))
    assert lava_env.find_lava_python() is None  # explicit interpreter: nothing else is tried
    status = lava_env.lava_status()
    assert not status.found and "RSNNC_LAVA_PYTHON" in status.reason
    with pytest.raises(lava_env.LavaError, match="setup_lava.sh"):
        run_in_lava(tmp_path, np.zeros((2, 1), np.int64))


def test_repo_root_from_module_path():
    root = lava_env.repo_root()
    assert root is not None and (root / "backends" / "lava" / "lava_runner.py").exists()
    assert lava_env.RUNNER.exists()


# --------------------------------------------------------------------------------------------
# Tests against Lava
# --------------------------------------------------------------------------------------------


def run_case(net: RefNet, x: np.ndarray, tmp_path: Path, python: Path, **kw) -> dict:
    doc, arrays = net.to_doc()
    net_dir = write_network_dir(tmp_path / "net", doc, arrays)
    return run_in_lava(net_dir, x, python=python, timeout=300, **kw)


def assert_same(got: dict, want: dict) -> None:
    for key, ref in want.items():
        assert key in got, f"runner did not return {key}"
        assert got[key].shape == ref.shape, (key, got[key].shape, ref.shape)
        bad = np.argwhere(got[key] != ref)
        assert bad.size == 0, (f"{key}: {len(bad)} mismatches, first at {tuple(bad[0])}: "
                               f"lava {got[key][tuple(bad[0])]} vs ref {ref[tuple(bad[0])]}")


@pytest.mark.lava
@pytest.mark.parametrize("name", sorted(CASES))
def test_random_network_matches_reference(name, tmp_path, lava_python):
    net, x = make_case(CASES[name])
    want = simulate_batch(net, x)
    got = run_case(net, x, tmp_path, lava_python)
    assert_same(got, want)
    assert sum(int(v.sum()) for k, v in want.items() if k.startswith("spikes/")) > 0, "no spikes"


def test_overflow_cases_really_overflow():
    """Guard: the wrap / saturation cases do reach the 24-bit limits."""
    net, x = make_case(CASES["current_wrap"])
    u = simulate_batch(net, x)["u/h"]
    pre = np.abs(u).max()
    assert pre > MAX_UV // 2
    net, x = make_case(CASES["voltage_saturation"])
    v = simulate_batch(net, x)["v/h"]
    assert (np.abs(v) == MAX_UV - 1).sum() > 10


@pytest.mark.lava
def test_batch_modes_and_readouts_agree(tmp_path, lava_python):
    """Replicated batch (one Lava run; dense copied as Sparse or as Dense) == one run per sample;
    file sink == sink.data.get(); uneven chunks."""
    net, x = make_case(Case(21, batch=3, delays=3, T=30, second_layer=True))
    net.conns[0].delays = None  # in_h: plain dense, h_h: delay_dense, h_o: sparse
    net.conns[0].kind = "dense"
    want = simulate_batch(net, x)
    runs = {
        "rep_sparse": run_case(net, x, tmp_path, lava_python),
        "rep_dense": run_case(net, x, tmp_path, lava_python, replicate_dense_as="dense"),
        "chunks": run_case(net, x, tmp_path, lava_python, replicas=2),
        "loop_get": run_case(net, x, tmp_path, lava_python, replicas=1, readout="get"),
    }
    assert [len(result_meta(r)["runs"]) for r in runs.values()] == [1, 1, 2, 3]
    for got in runs.values():
        assert_same(got, want)


@pytest.mark.lava
def test_two_dimensional_input_and_extra_steps(tmp_path, lava_python):
    """(T, n_in) input gives (T, n) outputs; steps beyond the input are fed zeros."""
    net, x = make_case(Case(22, batch=1, T=20, bias=(500, 2)))
    x2 = x[:, 0]
    got = run_case(net, x2, tmp_path, lava_python, steps=30)
    xpad = np.concatenate([x, np.zeros((10,) + x.shape[1:], np.int64)])
    want = {k: v[:, 0] for k, v in simulate_batch(net, xpad).items()}
    assert got["spikes/h"].shape == (30, net.pops[0].size)
    assert_same(got, want)


@pytest.mark.lava
def test_population_not_reachable_from_input(tmp_path, lava_python):
    """A bias-driven recurrent population with no path from the input still runs."""
    rng = np.random.default_rng(24)
    net = RefNet(3, [RefPop("a", 5, du=50, dv=20, vth=300, bias_mant=rng.integers(100, 900, 5),
                            bias_exp=3, record=("spikes", "v")),
                     RefPop("b", 4, vth=100, record=("spikes",))],
                 [RefConn("a_a", "a", "a", rand_weights(rng, (5, 5), "neg"), weight_exp=4),
                  RefConn("in_b", "in", "b", rand_weights(rng, (4, 3), "pos"))])
    x = (rng.random((25, 2, 3)) < 0.5).astype(np.int64)
    want = simulate_batch(net, x)
    assert want["spikes/a"].sum() > 0
    assert_same(run_case(net, x, tmp_path, lava_python), want)


@pytest.mark.lava
def test_runner_rejects_bad_network(tmp_path, lava_python):
    net, x = make_case(Case(23))
    net.conns[1].delays = np.full((net.pops[0].size,) * 2, 64)
    net.conns[1].kind = "delay_dense"
    with pytest.raises(lava_env.LavaError, match="delays must lie in"):
        run_case(net, x, tmp_path, lava_python)


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 124))
def test_random_sweep(seed, tmp_path, lava_python):
    rng = np.random.default_rng(seed)
    case = Case(seed, n=int(rng.integers(5, 40)), n_in=int(rng.integers(2, 12)),
                T=int(rng.integers(20, 120)), batch=int(rng.integers(1, 4)),
                sign_in=str(rng.choice(["pos", "neg", "mixed"])),
                sign_rec=str(rng.choice(["pos", "neg", "mixed"])),
                weight_exp=tuple(int(e) for e in rng.integers(-4, 5, 2)),
                num_weight_bits=tuple(int(b) for b in rng.integers(1, 9, 2)),
                du=int(rng.choice([0, 1, 100, 2048, 4095])), dv=int(rng.choice([0, 5, 700, 4095])),
                vth=int(rng.integers(1, 3000)), bias=(int(rng.integers(0, 4096)), int(rng.integers(-4, 8))),
                delays=int(rng.choice([0, 0, 5, 20])), rec_kind=str(rng.choice(["dense", "sparse"])),
                second_layer=bool(rng.integers(2)))
    net, x = make_case(case)
    assert_same(run_case(net, x, tmp_path, lava_python), simulate_batch(net, x))


@pytest.mark.lava
def test_delay_sparse_with_one_scalar_delay(tmp_path, lava_python):
    """The emitter's form: DelaySparse with one integer delay for every synapse."""
    net, x = make_case(Case(25, rec_kind="sparse", T=30, batch=2))
    net.conns[1].kind, net.conns[1].delays = "delay_sparse", 4
    want = simulate_batch(net, x)
    assert_same(run_case(net, x, tmp_path, lava_python), want)


def test_csr_reference_is_validated(tmp_path):
    """A malformed CSR reference is refused with its name (runner parsing, no Lava needed)."""
    from rsnn_compiler.backends.lava import lava_runner as lava_runner

    net, _ = make_case(Case(26, rec_kind="sparse"))
    doc, arrays = net.to_doc()
    arrays["h_h.w.indptr"] = arrays["h_h.w.indptr"][::-1].copy()
    net_dir = write_network_dir(tmp_path / "net", doc, arrays)
    with pytest.raises(lava_runner.SpecError, match="h_h.w is not a valid CSR matrix"):
        lava_runner.load_network(net_dir)
    good_dir = write_network_dir(tmp_path / "good", *net.to_doc())
    loaded = lava_runner.load_network(good_dir)
    h_h = next(c for c in loaded.connections if c.name == "h_h")
    assert sp.issparse(h_h.weights) and np.array_equal(h_h.weights.toarray(), net.conns[1].weights)
