"""Pass manager: property checks, refused orders, per-pass reports, verification after passes."""

from dataclasses import dataclass
from typing import ClassVar

import pytest

from rsnn_compiler.errors import PipelineError
from rsnn_compiler.examples import recurrent_example
from rsnn_compiler.ir import Affine, GraphBuilder
from rsnn_compiler.pass_manager import SkippedStep, check_pipeline, run_pipeline
from rsnn_compiler.passes_api import PassContext, PassReport, Prop


@dataclass
class FakeReport(PassReport):
    touched: int = 0


def fake_pass(name, requires=(), establishes=(), forbids=(), mutate=None):
    class P:
        def run(self, graph, ctx):
            return (mutate(graph) if mutate else graph), FakeReport(name=self.name, touched=1)

    P.name = name
    P.requires = frozenset(requires)
    P.establishes = frozenset(establishes)
    P.invalidates = frozenset()
    P.forbids = frozenset(forbids)
    return P()


PRUNE = fake_pass("prune_spatial", establishes=[Prop.PRUNED], forbids=[Prop.WEIGHTS_QUANTIZED])
QUANT = fake_pass("quantize_weights", requires=[Prop.PRUNED], establishes=[Prop.WEIGHTS_QUANTIZED])


def test_quantize_before_prune_is_refused_with_a_clear_message():
    with pytest.raises(PipelineError, match="runs 'quantize_weights' before 'prune_spatial'.*reorder"):
        check_pipeline([QUANT, PRUNE], frozenset())


def test_prune_after_quantize_is_refused():
    with pytest.raises(PipelineError, match="cannot run on a graph that is already 'weights_quantized'"):
        check_pipeline([PRUNE, QUANT, PRUNE], frozenset())


def test_missing_prerequisite_is_named():
    with pytest.raises(PipelineError, match="needs the graph to be 'pruned'"):
        check_pipeline([QUANT], frozenset())


def test_skipped_step_records_and_establishes():
    g = recurrent_example()
    steps = ["canonicalize", SkippedStep("prune", "pruning is off", frozenset({Prop.PRUNED})), QUANT]
    new, reports = run_pipeline(g, steps, PassContext(verify_each=True))
    assert [r.name for r in reports] == ["canonicalize", "prune", "quantize_weights"]
    assert reports[1].skipped and reports[1].reason == "pruning is off"
    assert {Prop.CANONICAL, Prop.PRUNED, Prop.WEIGHTS_QUANTIZED} <= new.attrs.properties
    for r in reports:
        assert r.hash_before and r.hash_after and r.wall_time_s >= 0
        assert not r.changed  # nothing to rewrite in the example graph
    assert reports[2].to_json()["metrics"] == {"touched": 1}


def test_report_marks_changes():
    def rename(graph):
        return graph.with_node("fc_in", Affine(weight=graph.nodes["fc_in"].weight * 2))

    new, reports = run_pipeline(recurrent_example(), [fake_pass("double", mutate=rename)], PassContext())
    assert reports[0].changed and reports[0].hash_before != reports[0].hash_after


def test_invalid_output_of_a_pass_is_caught_when_verifying():
    def break_graph(graph):
        return graph.with_node("fc_in", Affine(weight=graph.nodes["fc_in"].weight[:, :3]))

    with pytest.raises(PipelineError, match="pass 'breaker' produced an invalid graph: edge input -> fc_in: shape mismatch"):
        run_pipeline(recurrent_example(), [fake_pass("breaker", mutate=break_graph)], PassContext(verify_each=True))


def test_passes_never_mutate_their_input():
    g = recurrent_example()
    text_before = __import__("rsnn_compiler.ir.text", fromlist=["to_text"]).to_text(g)
    run_pipeline(g, ["canonicalize"], PassContext())
    from rsnn_compiler.ir.text import to_text

    assert to_text(g) == text_before
