"""Names from inputs never reach generated code unsanitized (issue 15, defect 1).

``rsnn_compiler.sanitize`` is the one function every emitter uses. The property test gives the
C generator graphs whose graph and node names are arbitrary Unicode and checks that the
generated C is plain ASCII, contains none of the unsafe names' bytes outside string literals,
computes exactly what the same graph with neutral names computes (the code outside comments is
identical up to the name part of identifiers) and compiles with ``-Wall -Wextra -Werror
-pedantic``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsnn_compiler.ir.graph import Edge, Graph
from rsnn_compiler.sanitize import SAFE_CHARS, c_comment, c_identifier, safe_name, unique_safe_names
from rsnn_compiler.testing.random_graphs import random_fixed_graph

from rsnn_compiler.backends.c.backend import source_files
from rsnn_compiler.backends.c.spec import C_SPEC

HAVE_CC = shutil.which(os.environ.get("CC", "cc").split()[0]) is not None
STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
PLACEHOLDER = re.compile(r"zqx(\d+)q")
BASE = random_fixed_graph(3, "fpga", quantize_input=True, recurrent=True, delays=True)


def renamed(graph: Graph, names: dict[str, str], title: str) -> Graph:
    nodes = {names[n]: op for n, op in graph.nodes.items()}
    edges = [Edge(names[e.src], names[e.dst], e.delay) for e in graph.edges]
    return Graph(nodes, edges, graph.attrs).with_attrs(name=title)


def expected_text(neutral_text: str, names: list[str], title: str) -> str:
    """The C of the neutral graph (node i named ``zqx<i>q``, graph ``zqxtitleq``) with every
    name replaced by what the generator must write for the real name: ``c_identifier`` inside
    identifiers ``n<i>_zqx<i>q``, ``safe_name`` everywhere else."""
    text = neutral_text.replace("zqxtitleq", safe_name(title))
    text = re.sub(r"n(\d+)_zqx(\d+)q", lambda m: c_identifier(names[int(m.group(2))], int(m.group(1))), text)
    return PLACEHOLDER.sub(lambda m: safe_name(names[int(m.group(1))]), text)


def test_safe_name_alphabet():
    for text in ["", ".", "..", "-x", "a/b", "*\\\n/", "??/", "é", "x" * 500, "\x00", 'a"b', "ok_name-1.2"]:
        out = safe_name(text)
        assert out and not SAFE_CHARS.search(out) and out[0] not in ".-" and len(out) <= 64
    assert safe_name("ok_name-1.2") == "ok_name-1.2"
    assert c_identifier("a.b-c", 7) == "n7_a_b_c"
    assert unique_safe_names(["a/b", "a_b", "a*b"]) == {"a/b": "a_b", "a_b": "a_b_2", "a*b": "a_b_3"}
    for text in ["x */ y", "/*/", "a ??/ b", "back\\slash", "line\nbreak", "é*/"]:
        out = c_comment(text)
        assert "*/" not in out and "/*" not in out and "??" not in out and "\\" not in out
        assert all(" " <= c <= "~" for c in out)


names_strategy = st.lists(st.text(max_size=30), min_size=len(BASE.nodes), max_size=len(BASE.nodes), unique=True)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=names_strategy, title=st.text(max_size=60))
def test_generated_c_never_contains_input_names(names, title, tmp_path_factory):
    mapping = dict(zip(BASE.nodes, names))
    graph = renamed(BASE, mapping, title)
    neutral = renamed(BASE, {n: f"zqx{i}q" for i, n in enumerate(BASE.nodes)}, "zqxtitleq")
    files, _ = source_files(graph)
    ref, _ = source_files(neutral)
    for fname in ("model.h", "model.c", "layout.json"):
        text = files[fname]
        assert all(c == "\n" or " " <= c <= "~" for c in text), fname
    for fname in ("model.h", "model.c"):
        # every byte that depends on a name is its sanitized form: the rest is the neutral text
        assert files[fname] == expected_text(ref[fname], names, title), fname
        outside = STRING.sub('""', files[fname])
        for name in [title, *names]:
            if any(ord(c) > 126 or (ord(c) < 32 and c != "\n") or c == "\\" for c in name):  # never in our C
                assert name not in outside, (fname, name)
    if HAVE_CC:
        folder = tmp_path_factory.mktemp("c")
        for fname, text in files.items():
            (folder / fname).write_text(text)
        res = subprocess.run([os.environ.get("CC", "cc"), *C_SPEC.cflags, "-c", "model.c"], cwd=folder,
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[:500]


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_graph_name_cannot_inject_c(tmp_path, cli_run):
    """Defect 1: a .rsnn graph name with ``*`` backslash-newline ``/`` closed the C comment after
    line splicing and its rest compiled as C, which ``rsnnc validate`` then ran."""
    evil = "x *\\\n/ int evil(void); int evil(void) { return 42; } /* "
    src = zipfile.ZipFile("models/example/recurrent.rsnn")
    path = tmp_path / "evil.rsnn"
    with zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "graph.json":
                meta = json.loads(data)
                meta["attrs"]["name"] = evil
                data = json.dumps(meta).encode()
            dst.writestr(info, data)
    code, _, err = cli_run("build", str(path), "--target", "c", "-o", str(tmp_path / "b"), "-q")
    assert code == 0, err
    for fname in ("model.h", "model.c"):
        text = (tmp_path / "b" / "c" / fname).read_text()
        assert "evil(void)" not in text and "\\" not in STRING.sub('""', text)
    code, _, err = cli_run("validate", str(tmp_path / "b"), "--data", "models/example/data.npz", "-q")
    assert code == 0, err
