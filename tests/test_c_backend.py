"""The C backend: generated C99 runs fixed-point graphs bit-exactly (every value and state at
every step equals ``run_fixed``), compiles warning-free, is sanitizer-clean and deterministic,
and ``check`` lists what C cannot represent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rsnn_compiler.artifact import file_hashes
from rsnn_compiler.fixed import arith as A
from rsnn_compiler.fixed.arith import Overflow
from rsnn_compiler.interpreter import run_fixed
from rsnn_compiler.ir import (
    Delay, Domain, Edge, FixedALIF, FixedConv2d, FixedDense, FixedDualIF, FixedLI, FixedLIF,
    FixedMultiThreshold, Flatten, GraphBuilder, Identity, Input, Output, Pool, PoolMode, Quantize,
    ResetMode, save_graph, verify,
)
from rsnn_compiler.ir.fixed_ops import make_neuron
from rsnn_compiler.ir.graph import Graph
from rsnn_compiler.ir.ops import LIF, broadcast_params
from rsnn_compiler.target_api import TargetCheckError
from rsnn_compiler.testing.random_graphs import random_fixed_graph, random_input

from rsnn_compiler.backends.c.backend import SOURCES, CBackend
from rsnn_compiler.backends.c.batch import build_many, run_entry
from rsnn_compiler.backends.c.executor import CExecutor, run_c
from rsnn_compiler.backends.c.runtime import FIXED_H
from rsnn_compiler.backends.c.spec import C_SPEC
from rsnn_compiler.backends.c.toolchain import CCompileError, compile_c

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc").split()[0]) is None,
                                reason="no C compiler")


# ------------------------------------------------------------------------------------------
# graphs
# ------------------------------------------------------------------------------------------
def _knobs(i: int) -> tuple[str, dict]:
    """Profile and generator knobs for fuzz case i: cycles through the hard cases."""
    profile = ("loihi2", "fpga")[i % 2]
    variants = [
        {},
        {"recurrent": False, "delays": False},  # feed-forward, zero delay
        {"recurrent": True, "delays": True, "max_delay": 6},
        {"cuba": True, "graded": True},
        {"overflow": True},
        {"overflow": True, "recurrent": True, "graded": True},
        {"conv": True},
        {"quantize_input": True, "graded": True},
        {"quantize_input": True},
        {"readout": "li", "cuba": True},
        {"layers": 3, "skip": True, "delays": True},
        {"graded": True, "payload_bits": 8, "overflow": True},
    ]
    return profile, variants[(i // 2) % len(variants)]


def fuzz_graphs(n: int, seed0: int = 0) -> list[Graph]:
    return [random_fixed_graph(seed0 + i, _knobs(i)[0], **_knobs(i)[1]) for i in range(n)]


def _lif(n, **kw):
    return make_neuron(FixedLIF, (n,), **kw)


def structural_graph(seed: int) -> Graph:
    """fpga graph exercising what random_fixed_graph does not: Conv2d (stride, dilation, groups,
    padding, bias, per-channel exponents), sum/max Pool with padding, Flatten, Delay ops,
    Identity, a Quantize evaluated in C (direct integer input), several summed in-edges,
    ALIF/DualIF/MTN/LI with per-neuron parameters, all reset modes."""
    r = np.random.default_rng(seed)
    c_in, h, w = 2, 5, 6
    b = GraphBuilder(f"structural_{seed}")
    b.add("in", Input(shape=(c_in, h, w)))
    shift = int(r.integers(-3, 3))
    b.add("q", Quantize(shape=(c_in, h, w), shift=shift, bits=int(r.integers(4, 12)), signed=bool(r.random() < 0.7)))
    b.add("id", Identity(shape=(c_in, h, w)))
    b.connect("in", "q")
    b.connect("in", "id", int(r.integers(0, 3)))
    groups = int(r.choice([1, 2]))
    c_out = 4
    conv = FixedConv2d(
        weight=r.integers(-60, 61, (c_out, c_in // groups, 3, 2)), weight_exp=r.integers(-2, 2, c_out),
        bias=r.integers(-20, 21, c_out) if r.random() < 0.5 else None, weight_bits=8,
        acc_bits=int(r.integers(12, 33)), acc_overflow=Overflow(r.choice(["wrap", "saturate"])),
        input_shape=(c_in, h, w), stride=(int(r.integers(1, 3)), 1), padding=(1, int(r.integers(0, 2))),
        dilation=(1, int(r.integers(1, 3))), groups=groups,
    )
    b.add("conv", conv)
    b.connect("q", "conv")
    b.connect("id", "conv", int(r.integers(0, 2)))
    oc, oh, ow = conv.out_shape
    mode = PoolMode(r.choice(["sum", "max"]))
    pool = Pool(mode=mode, kernel=(2, 2), stride=(1, 2), padding=(1, 1), input_shape=(oc, oh, ow))
    b.add("pool", pool)
    b.connect("conv", "pool")
    flat_n = int(np.prod(pool.out_shape))
    b.add("flat", Flatten(input_shape=pool.out_shape))
    b.connect("pool", "flat")
    b.add("dl", Delay(shape=(flat_n,), steps=int(r.integers(1, 4))))
    b.connect("flat", "dl", int(r.integers(0, 2)))
    n = 6
    resets = list(ResetMode)
    v_bits = int(r.integers(10, 30))
    vo = Overflow(r.choice(["wrap", "saturate", "saturate_sym"]))
    common = dict(input_shift=int(r.integers(0, 4)), v_bits=v_bits, v_overflow=vo,
                  bias_mant=r.integers(-100, 100, n), bias_exp=r.integers(-3, 4, n))
    lo, hi = A.signed_range(v_bits, vo)
    kinds = [
        lambda: make_neuron(FixedALIF if r.random() < 0.5 else FixedLIF, (n,), du=r.choice([0, 100, 4095], n),
                            dv=r.choice([0, 1, 2048, 4095], n), vth=r.integers(1, 200, n), vth_shift=int(r.integers(0, 5)),
                            v_reset=r.integers(-5, 5, n), v_init=r.integers(-50, 50, n), u_bits=int(r.integers(10, 30)),
                            u_overflow=Overflow(r.choice(["wrap", "saturate", "saturate_sym", "wrap_once"])),
                            du_offset=int(r.integers(0, 2)), comparator=r.choice(["gt", "ge"]),
                            reset=resets[int(r.integers(len(resets)))],
                            **common),
        lambda: make_neuron(FixedDualIF, (n,), vth=r.integers(1, 100, n), vth_neg=r.integers(-20, 1, n),
                            vth_shift=int(r.integers(0, 4)), v_init=r.integers(-10, 10, n),
                            comparator=r.choice(["gt", "ge"]), **common),
        lambda: make_neuron(FixedMultiThreshold, (n,), vth=r.integers(1, 100, n), vth_shift=int(r.integers(0, 4)),
                            levels=int(r.integers(1, 6)), reset=r.choice(["subtract", "zero"]),
                            v_init=r.integers(-10, 10, n), **common),
    ]
    fc = FixedDense(weight=r.integers(-100, 101, (n, flat_n)), weight_exp=r.integers(-4, 1, n), weight_bits=8,
                    acc_bits=int(r.integers(16, 33)), acc_overflow=Overflow(r.choice(["wrap", "saturate"])),
                    bias=r.integers(-50, 50, n))
    b.add("fc", fc)
    b.connect("dl", "fc")
    b.connect("flat", "fc", int(r.integers(0, 3)))
    neuron = kinds[int(r.integers(len(kinds)))]()
    neuron = neuron.replace(v_init=np.clip(neuron.v_init, lo, hi)) if hasattr(neuron, "v_init") else neuron
    if hasattr(neuron, "v_reset"):
        neuron = neuron.replace(v_reset=np.clip(neuron.v_reset, lo, hi))
    if isinstance(neuron, FixedALIF):
        neuron = neuron.replace(da=r.choice([0, 500, 4095], n), a_inc=r.integers(0, 100, n))
    b.add("h", neuron)
    b.connect("fc", "h")
    rec = FixedDense(weight=r.integers(-50, 51, (n, n)), weight_exp=np.full(n, 2), weight_bits=8, acc_bits=32,
                     acc_overflow=Overflow.SATURATE)
    b.add("rec", rec)
    b.connect("h", "rec", int(r.integers(1, 4)))
    b.connect("rec", "h")
    b.add("ro_fc", FixedDense(weight=r.integers(-30, 31, (3, n)), weight_exp=np.zeros(3), weight_bits=8, acc_bits=24,
                              acc_overflow=Overflow.SATURATE))
    b.connect("h", "ro_fc")
    b.add("ro", make_neuron(FixedLI, (3,), du=r.choice([0, 4095], 3), dv=r.integers(0, 4096, 3),
                            bias_mant=r.integers(-5, 5, 3), input_shift=2, v_bits=20, v_overflow=Overflow.SATURATE,
                            u_bits=20, u_overflow=Overflow.WRAP, v_init=np.array([3, -3, 0])))
    b.connect("ro_fc", "ro")
    b.add("out", Output(shape=(3,)))
    b.connect("ro", "out")
    b.connect("ro", "out", 1)
    g = b.build().with_attrs(domain=Domain.FIXED, profile="fpga")
    assert verify(g) == [], verify(g)
    return g


def structural_input(g: Graph, steps: int, batch: int, seed: int) -> np.ndarray:
    r = np.random.default_rng(seed)
    shape = (steps, batch, *g.nodes[g.input_name].in_shape)
    return (r.integers(-40, 41, shape) * (r.random(shape) < 0.4)).astype(np.int64)


def inputs_for(g: Graph, steps: int, batch: int, seed: int) -> np.ndarray:
    if g.attrs.name.startswith("structural"):
        return structural_input(g, steps, batch, seed)
    return random_input(g, steps, batch, seed, density=0.4)


def assert_same(ref, got, label: str = "") -> None:
    """Every value, spike and state at every step is equal (and the keys and dtypes match)."""
    assert set(ref.values) == set(got.values), label
    assert set(ref.spikes) == set(got.spikes), label
    assert set(ref.states) == set(got.states), label
    assert ref.out.dtype == got.out.dtype and np.array_equal(ref.out, got.out), label
    for group in ("values", "spikes", "states"):
        for key, want in getattr(ref, group).items():
            have = getattr(got, group)[key]
            assert want.dtype == have.dtype, f"{label} {group}/{key}: dtype {have.dtype} != {want.dtype}"
            if not np.array_equal(want, have):
                t, *idx = np.argwhere(want != have)[0]
                raise AssertionError(f"{label} {group}/{key} first differs at step {t}, index {idx}:"
                                     f" C {have[(t, *idx)]} != reference {want[(t, *idx)]}")


def differential(graphs: list[Graph], folder: Path, steps: int, batch: int, flags=("-O0",), env=None) -> int:
    accepted = []
    for g in graphs:
        problems = CBackend().check(g)
        assert problems == [], f"{g.attrs.name}: {problems[:3]}"
        accepted.append(g)
    entries = build_many(accepted, folder, units=2, extra_flags=tuple(flags))
    for i, (g, entry) in enumerate(zip(accepted, entries)):
        x = inputs_for(g, steps, batch, seed=1000 + i)
        assert_same(run_fixed(g, x), run_entry(entry, g, x, env=env), g.attrs.name)
    return len(accepted)


# ------------------------------------------------------------------------------------------
# differential fuzzing
# ------------------------------------------------------------------------------------------
N_FUZZ = 216
N_STRUCTURAL = 24


def test_fuzz_random_graphs_match_reference(tmp_path):
    graphs = fuzz_graphs(N_FUZZ) + [structural_graph(s) for s in range(N_STRUCTURAL)]
    kinds = {type(op).__name__ for g in graphs for op in g.nodes.values()}
    assert {"FixedLIF", "FixedALIF", "FixedDualIF", "FixedMultiThreshold", "FixedLI", "FixedConv1d",
            "FixedConv2d", "Pool", "Delay", "Quantize", "Identity"} <= kinds
    assert {g.attrs.profile for g in graphs} == {"loihi2", "fpga"}
    assert differential(graphs, tmp_path, steps=16, batch=3) == N_FUZZ + N_STRUCTURAL


def test_fuzz_with_the_simulator_flags(tmp_path):
    """The flags ``rsnn_run`` is built with (-O2 plus the host's vector unit and gcc's cheap
    vectorizer cost model where accepted) give the reference values: vectorized integer code."""
    from rsnn_compiler.backends.c.toolchain import simulator_flags

    graphs = fuzz_graphs(40, seed0=50_000) + [structural_graph(900 + s) for s in range(8)]
    assert differential(graphs, tmp_path, steps=24, batch=5, flags=("-O2", *simulator_flags())) == 48


def test_simulator_flags_are_detected_not_assumed(monkeypatch):
    """Each flag group is probed with -Werror (a compiler that only warns about a flag would fail
    the -Werror build); RSNNC_C_NATIVE=0 drops them all."""
    from rsnn_compiler.backends.c import toolchain

    cmd = tuple(toolchain.compiler())
    assert not toolchain._accepts(cmd, ("-fno-such-flag-rsnnc",))
    flags = toolchain.simulator_flags()
    assert all(toolchain._accepts(cmd, (f,)) for f in flags)
    assert set(flags) <= set(toolchain.HOST_VECTOR_FLAGS + toolchain.HOST_VECTORIZE_FLAGS)
    monkeypatch.setenv(toolchain.NATIVE_ENV, "0")
    assert toolchain.simulator_flags() == ()


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(4))
def test_fuzz_sweep_slow(tmp_path, chunk):
    graphs = fuzz_graphs(300, seed0=10_000 + 300 * chunk) + [structural_graph(500 + 50 * chunk + s) for s in range(50)]
    differential(graphs, tmp_path, steps=40, batch=4, flags=("-O2",))


def _sanitizer_flags() -> tuple[str, ...] | None:
    return ("-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")


def _sanitizer_available(tmp_path: Path) -> bool:
    (tmp_path / "probe.c").write_text("#include <stdio.h>\nint main(void) { puts(\"ok\"); return 0; }\n")
    try:
        compile_c(["probe.c"], "probe", tmp_path, extra_flags=_sanitizer_flags())
        return subprocess.run([str(tmp_path / "probe")], capture_output=True).returncode == 0
    except (CCompileError, OSError):
        return False


def test_sanitizers_clean(tmp_path):
    if not _sanitizer_available(tmp_path):
        pytest.skip("the C compiler has no AddressSanitizer/UBSan runtime (libasan/libubsan)")
    graphs = [random_fixed_graph(s, p, overflow=True, recurrent=True, graded=g)
              for s, (p, g) in enumerate([("loihi2", False), ("loihi2", True), ("fpga", False), ("fpga", True)])]
    graphs += [random_fixed_graph(7, "fpga", conv=True, overflow=True),
               random_fixed_graph(8, "fpga", quantize_input=True, graded=True)]
    graphs += [structural_graph(s) for s in range(4)]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    assert differential(graphs, tmp_path / "san", steps=24, batch=2, flags=_sanitizer_flags(), env=env) == 10


# ------------------------------------------------------------------------------------------
# primitives: hand-computed cases and a randomized cross-check against arith.py
# ------------------------------------------------------------------------------------------
PRIMS = """
#include <stdio.h>
#include <stdlib.h>
#include "rsnn_fixed.h"
int main(void)
{
    long long x, n;
    while (scanf("%lld %lld", &x, &n) == 2) {
        printf("%lld %lld %lld %lld %lld %lld %lld %lld %lld\\n",
               (long long)rsnn_floor_shift(x, (int)n), (long long)rsnn_trunc_shift(x, (int)n),
               (long long)rsnn_shift(x, (int)(n - 12)), (long long)rsnn_decay(x, n * 100 % 4097),
               (long long)rsnn_wrap(x, (int)n + 1), (long long)rsnn_wrap_once(x, (int)n + 1),
               (long long)rsnn_saturate(x, (int)n + 1), (long long)rsnn_saturate_sym(x, (int)n + 1),
               (long long)rsnn_floor_div(x, n + 1));
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def prims(tmp_path_factory):
    d = tmp_path_factory.mktemp("prims")
    (d / "rsnn_fixed.h").write_text(FIXED_H)
    (d / "prims.c").write_text(PRIMS)
    compile_c(["prims.c"], "prims", d)

    def run(pairs):
        text = "".join(f"{x} {n}\n" for x, n in pairs)
        out = subprocess.run([str(d / "prims")], input=text, capture_output=True, text=True, check=True).stdout
        return [tuple(int(v) for v in line.split()) for line in out.splitlines()]

    return run


def test_primitives_hand_computed(prims):
    # (x, n) -> floor_shift, trunc_shift, shift(x, n-12), decay(x, n*100 % 4097), wrap(x, n+1),
    # wrap_once(x, n+1), saturate(x, n+1), saturate_sym(x, n+1), floor_div(x, n+1)
    (r1,) = prims([(-5, 1)])
    assert r1[0] == -3 and r1[1] == -2  # floor(-2.5) = -3, trunc0(-2.5) = -2
    assert r1[3] == -4  # decay(-5, 100) = trunc0(-5 * 3996 / 4096) = trunc0(-4.88) = -4
    assert r1[8] == -3  # floor(-5 / 2)
    (r2,) = prims([(-7, 12)])
    assert r2[0] == -1 and r2[1] == 0  # floor(-7 / 4096) = -1, trunc0 = 0
    assert r2[2] == -7 and r2[3] == -4  # shift(x, 0); decay(-7, 1200) = trunc0(-7 * 2896 / 4096 = -4.95)
    # wrap_once boundaries at 24 bits (n = 23): Lava's u
    got = prims([(1 << 23, 23), ((1 << 23) + 1, 23), (-(1 << 23), 23), (-(1 << 23) + 1, 23), (200000 << 6, 23)])
    assert [g[5] for g in got] == [1 << 23, -(1 << 23) + 1, 1 << 23, -(1 << 23) + 1, -3977216]
    # two's-complement wrap and the two saturations at 24 bits
    assert [g[4] for g in got[:3]] == [-(1 << 23), -(1 << 23) + 1, -(1 << 23)]
    assert [g[6] for g in got[:3]] == [(1 << 23) - 1, (1 << 23) - 1, -(1 << 23)]
    assert [g[7] for g in got[:3]] == [(1 << 23) - 1, (1 << 23) - 1, -(1 << 23) + 1]


def test_primitives_match_arith_randomized(prims):
    r = np.random.default_rng(0)
    n = r.integers(0, 40, 3000)
    mag = r.integers(0, 1 << 40, 3000) >> r.integers(0, 40, 3000)
    x = np.where(r.random(3000) < 0.5, -mag, mag)
    edges = [(v, k) for k in (7, 11, 23, 31) for v in (1 << k, (1 << k) + 1, -(1 << k), -(1 << k) - 1, 3 << k, -(3 << k) + 1)]
    pairs = [(int(a), int(b)) for a, b in zip(x, n)] + edges
    got = np.array(prims(pairs), dtype=np.int64)
    xs = np.array([p[0] for p in pairs], dtype=np.int64)
    ns = np.array([p[1] for p in pairs], dtype=np.int64)
    want_cols = [
        A.floor_shift(xs, ns), A.trunc_shift(xs, ns),
        np.array([int(A.shift(a, b - 12)) for a, b in zip(xs, ns)]),
        A.decay(xs, ns * 100 % 4097),
        np.array([int(A.wrap(a, int(b) + 1)) for a, b in zip(xs, ns)]),
        np.array([int(A.wrap_once(a, int(b) + 1)) for a, b in zip(xs, ns)]),
        np.array([int(A.saturate(a, int(b) + 1)) for a, b in zip(xs, ns)]),
        np.array([int(A.saturate_sym(a, int(b) + 1)) for a, b in zip(xs, ns)]),
        A.floor_div(xs, ns + 1),
    ]
    for col, want in enumerate(want_cols):
        assert np.array_equal(got[:, col], want), f"primitive column {col}"


# ------------------------------------------------------------------------------------------
# emit, determinism, standalone harness, executor
# ------------------------------------------------------------------------------------------
def test_emit_files_compile_and_are_deterministic(tmp_path):
    g = random_fixed_graph(3, "fpga", recurrent=True, delays=True)
    a = CBackend().emit(g, tmp_path / "a")
    b = CBackend().emit(g, tmp_path / "b")
    assert a.files == b.files and "c/model.c" in a.files and "c/rsnn_run" in a.files
    for rel in a.files:
        name = rel.split("/", 1)[1]
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    text = (tmp_path / "a" / "model.c").read_text() + (tmp_path / "a" / "model.h").read_text()
    for banned in ("malloc", "float", "double", "while (1)", "goto"):
        assert banned not in text, banned
    assert "void rsnn_step(rsnn_state_t *s, const int32_t *input, int64_t *output)" in text
    layout = json.loads((tmp_path / "a" / "layout.json").read_text())
    assert layout["record"]["length"] == sum(int(np.prod(f["shape"] or [1])) for f in layout["record"]["fields"])


def test_strict_warnings_with_extra_flags(tmp_path):
    """-Wall -Wextra -Werror -pedantic plus a few more warnings stay clean on tricky graphs."""
    graphs = [structural_graph(11), random_fixed_graph(5, "fpga", conv=True, readout="li")]
    extra = ("-Wshadow", "-Wconversion", "-Wno-sign-conversion", "-Wstrict-prototypes", "-Wundef")
    build_many(graphs, tmp_path, units=1, extra_flags=extra)


def test_standalone_harness_int64_and_int32_files(tmp_path):
    g = structural_graph(5)
    CBackend().emit(g, tmp_path)
    x = structural_input(g, 7, 2, seed=3)
    ref = run_fixed(g, x)
    layout = json.loads((tmp_path / "layout.json").read_text())
    (tmp_path / "x64.bin").write_bytes(x.astype("<i8").tobytes())
    (tmp_path / "x32.bin").write_bytes(x.astype("<i4").tobytes())
    binary = str(tmp_path / "rsnn_run")
    subprocess.run([binary, "-w", "8", "7", "2", str(tmp_path / "x64.bin"), str(tmp_path / "y64.bin")], check=True)
    y32 = subprocess.run([binary, "-w", "4", "7", "2"], input=(tmp_path / "x32.bin").read_bytes(),
                         capture_output=True, check=True).stdout
    assert (tmp_path / "y64.bin").read_bytes() == y32
    rec = np.frombuffer(y32, "<i8").reshape(7, 2, layout["record"]["length"])
    out = layout["output"]
    assert np.array_equal(rec[:, :, out["offset"]:out["offset"] + out["size"]], ref.out)
    q = subprocess.run([binary, "-q", "-w", "4", "7", "2"], input=(tmp_path / "x32.bin").read_bytes(),
                       capture_output=True, check=True).stdout
    assert np.array_equal(np.frombuffer(q, "<i8").reshape(ref.out.shape), ref.out)
    # an int64 value outside int32 is refused (exit 4); short input exits 3; bad batch exits 2
    big = x.astype("<i8").copy()
    big.flat[0] = 1 << 40
    assert subprocess.run([binary, "7", "2"], input=big.tobytes(), capture_output=True).returncode == 4
    assert subprocess.run([binary, "8", "2"], input=x.astype("<i8").tobytes(), capture_output=True).returncode == 3
    assert subprocess.run([binary, "1", str(layout["max_batch"] + 1)], input=b"", capture_output=True).returncode == 2


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_builds_standalone(tmp_path):
    CBackend().emit(random_fixed_graph(2, "loihi2"), tmp_path)
    (tmp_path / "rsnn_run").unlink()
    subprocess.run(["make", "-s"], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "rsnn_run").is_file()


def _build_dir(tmp_path: Path, g: Graph) -> tuple[Path, dict]:
    build = tmp_path / "build"
    (build / "c").mkdir(parents=True)
    save_graph(g, build / "graph.fpga.rsnn")
    art = CBackend().emit(g, build / "c")
    manifest = {"graphs": {"fpga": {"file": "graph.fpga.rsnn"}},
                "targets": {"c": {"profile": "fpga", "files": art.files}},
                "files": file_hashes(build)}  # executors check these before running anything
    return build, manifest


def test_executor_runs_build_and_batches_in_chunks(tmp_path, monkeypatch):
    g = random_fixed_graph(4, "fpga", quantize_input=True, graded=True, recurrent=True)
    build, manifest = _build_dir(tmp_path, g)
    layout = json.loads((build / "c" / "layout.json").read_text())
    assert layout["input"]["mode"] == "host_quantize"
    x = random_input(g, 9, 5, seed=2)
    assert x.dtype == np.float64
    ref = run_fixed(g, x)
    assert_same(ref, CExecutor().run(build, manifest, "fixed", None, x), "executor")
    layout["max_batch"] = 2  # three chunks
    assert_same(ref, run_c(build / "c" / "rsnn_run", layout, g, x), "chunked")


@pytest.mark.parametrize("inprocess", ["0", "1"])
def test_executor_rebuilds_a_stale_binary_outside_the_build(tmp_path, monkeypatch, inprocess):
    """The executor runs a binary (RSNNC_C_INPROCESS=0) or shared library (default) built in the
    cache from the build's sources, never the build's own stale binary, and writes nothing there."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RSNNC_C_INPROCESS", inprocess)
    g = random_fixed_graph(6, "loihi2", recurrent=True)
    build, manifest = _build_dir(tmp_path, g)
    (build / "c" / "rsnn_run").write_bytes(b"not a binary")  # e.g. built on another machine
    (build / "c" / "rsnn_run.stamp").write_text("other toolchain\n")
    manifest["files"] = file_hashes(build)  # ... whose manifest lists that binary
    x = random_input(g, 6, 2, seed=1)
    assert_same(run_fixed(g, x), CExecutor().run(build, manifest, "fixed", None, x), "rebuilt")
    product = "librsnn_run.so" if inprocess == "1" else "rsnn_run"
    assert [p.name for p in (tmp_path / "cache" / "rsnnc" / "c").glob("*/*") if p.name in ("rsnn_run", "librsnn_run.so")] == [product]
    assert (build / "c" / "rsnn_run").read_bytes() == b"not a binary"  # the build is untouched
    assert all((build / "c" / s).is_file() for s in SOURCES)


def test_executor_refuses_float_domain_and_missing_target(tmp_path):
    from rsnn_compiler.errors import UserInputError

    g = random_fixed_graph(1, "fpga")
    build, manifest = _build_dir(tmp_path, g)
    with pytest.raises(UserInputError, match="domain fixed"):
        CExecutor().run(build, manifest, "float", None, np.zeros((1, 1, 2)))
    with pytest.raises(UserInputError, match="no C target"):
        CExecutor().run(build, {"graphs": manifest["graphs"], "targets": {}}, "fixed", None, np.zeros((1, 1, 2)))


# ------------------------------------------------------------------------------------------
# check(): everything C cannot represent, each with where/problem/fix
# ------------------------------------------------------------------------------------------
def test_check_lists_every_unrepresentable_item():
    b = GraphBuilder("bad")
    b.add("in", Input(shape=(4,)))
    b.add("fc", FixedDense(weight=np.full((3, 4), 100), weight_exp=np.full(3, 70), weight_bits=8, acc_bits=60,
                           acc_overflow=Overflow.SATURATE))
    b.add("n", _lif(3, vth=10, v_bits=56, u_bits=24, input_shift=0))
    b.add("avg", Pool(mode=PoolMode.AVG, kernel=(1,), stride=(1,), input_shape=(1, 3)))
    b.add("out", Output(shape=(3,)))
    b.chain("in", "fc", "n", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="fpga")
    g = g.with_edges([*g.edges, Edge("n", "fc", 5000)])
    diags = CBackend().check(g)
    assert all(d.where and d.problem and d.fix for d in diags)
    text = "\n".join(map(str, diags))
    assert "op kind 'pool'" in text and "delay 5000" in text
    # structural problems are reported first; fix them and the numeric ones appear
    g2 = g.without_nodes(["avg"]).with_edges([e for e in g.edges if e.delay < 100 and "avg" not in (e.src, e.dst)])
    text2 = "\n".join(map(str, CBackend().check(g2)))
    assert "acc_bits = 60" in text2 and "v_bits = 56" in text2 and "weight_exp 70" in text2
    with pytest.raises(TargetCheckError):
        CBackend().emit(g2, Path("/nonexistent/never-written"))


def test_check_flags_int64_overflow_and_float_ops():
    b = GraphBuilder("wide")
    b.add("in", Input(shape=(8,)))
    b.add("fc", FixedDense(weight=np.full((2, 8), 30000), weight_exp=np.full(2, 24), weight_bits=16, acc_bits=48,
                           acc_overflow=Overflow.SATURATE))
    b.add("n", _lif(2, vth=10, v_bits=48, u_bits=48, input_shift=16))
    b.add("float_lif", LIF(**broadcast_params((2,), beta=0.9, gain=1.0, bias=0.0, theta=1.0, v_reset=0.0, v_init=0.0)))
    b.add("out", Output(shape=(2,)))
    b.chain("in", "fc", "n", "out")
    b.connect("n", "float_lif")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="fpga")
    text = "\n".join(map(str, CBackend().check(g)))
    assert "float_lif" in text and "not supported" in text
    g2 = g.without_nodes(["float_lif"])
    text2 = "\n".join(map(str, CBackend().check(g2)))
    assert "beyond int64" in text2  # 2^31 * 8 * 30000 << 24 overflows the int64 accumulator
    assert "x << 16" in text2  # a 48-bit drive shifted by 16
    assert CBackend().check(g2.with_attrs(domain=Domain.FLOAT))[0].where == "graph"


def test_random_graphs_pass_check():
    for i in range(60):
        profile, knobs = _knobs(i)
        assert CBackend().check(random_fixed_graph(i, profile, **knobs)) == []


def test_check_refuses_float_inputs_it_cannot_quantize_on_the_host():
    b = GraphBuilder("late_quantize")
    b.add("in", Input(shape=(3,)))
    b.add("q", Quantize(shape=(3,), shift=2, bits=8))
    b.add("out", Output(shape=(3,)))
    b.connect("in", "q", 2)
    b.connect("q", "out")
    g = b.build().with_attrs(domain=Domain.FIXED, profile="fpga")
    (diag,) = CBackend().check(g)
    assert diag.where == "edge in -> q" and "host" in diag.problem
    ok = g.with_edges([Edge("in", "q", 0), Edge("q", "out", 2)])
    assert CBackend().check(ok) == []


def test_cli_build_run_validate_with_c_target(tmp_path, capsys):
    pytest.importorskip("rsnn_compiler.passes.quantize_weights")
    from rsnn_compiler.cli.main import main
    from rsnn_compiler.examples import example_inputs, recurrent_example

    src = tmp_path / "model.rsnn"
    save_graph(recurrent_example(), src)
    np.savez(tmp_path / "x.npz", x=example_inputs(steps=20, batch=4))
    assert main(["build", str(src), "-o", str(tmp_path / "b"), "--target", "c", "-q"]) == 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert "c/model.c" in manifest["files"] and manifest["targets"]["c"]["profile"] == "fpga"
    for executor in ("c", "interp"):
        assert main(["run", str(tmp_path / "b"), "--inputs", str(tmp_path / "x.npz"), "--out",
                     str(tmp_path / f"{executor}.npz"), "--executor", executor, "--domain", "fixed", "-q"]) == 0
    a, b = np.load(tmp_path / "c.npz"), np.load(tmp_path / "interp.npz")
    assert sorted(a.files) == sorted(b.files)
    assert all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a.files)
    assert main(["validate", str(tmp_path / "b"), "--data", str(tmp_path / "x.npz"), "-q"]) == 0
    capsys.readouterr()


def test_neuron_states_are_stored_at_their_proven_width(tmp_path):
    """model.c keeps a state in the narrowest type its proven range allows (codegen.state_types):
    saturating membranes of random graphs in int32_t/int16_t, the kept spike of a deferred reset in
    int8_t, read back widened and stored with an explicit cast; a state the definition cannot
    bound stays int64_t; and the C runs still equal run_fixed state for state."""
    from rsnn_compiler.backends.c.codegen import generate, state_types
    from rsnn_compiler.ir.fixed_ops import FixedNeuron

    graphs = [random_fixed_graph(seed, "fpga", recurrent=True) for seed in range(6)]
    graphs += [random_fixed_graph(seed, "loihi2", recurrent=True) for seed in range(2)]
    seen = {t for g in graphs for op in g.nodes.values() if isinstance(op, FixedNeuron)
            for t in state_types(op).values()}
    assert {"int8_t", "int32_t"} <= seen and len(seen) >= 3, seen
    src = generate(graphs[-1])
    assert "int32_t v_" in src.model_h and "int64_t i_" in src.model_h, src.model_h
    assert "((int64_t)s->v_" in src.model_c and "= (int32_t)(" in src.model_c
    entries = build_many(graphs, tmp_path, units=2)
    for g, entry in zip(graphs, entries):
        x = random_input(g, 12, 2, seed=1, density=0.5)
        ref, got = run_fixed(g, x), run_entry(entry, g, x)
        for key, want in ref.states.items():
            assert np.array_equal(want, got.states[key]), (g.attrs.name, key)
