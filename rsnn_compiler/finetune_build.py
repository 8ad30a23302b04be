"""``rsnnc finetune``: quantization-aware fine-tuning of a build's integer model into a new build.

Reads BUILD (its fixed-point graph, float graph and manifest), trains the fixed-point graph with
the ``qat_finetune`` pass (forward = the exact integer model, straight-through gradients; zero
weights stay zero; optional distillation from the float graph), reruns the targets' lowering
passes, measures accuracy before and after on held-out data, and writes a complete new build
(graphs, every target re-emitted, manifest with the earlier reports plus the fine-tune's) with
``build.write_build``. The training data must differ from the held-out data (by content).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from rsnn_compiler import registry
from rsnn_compiler.accuracy import AccuracyRecord, EvalData, accuracy_percent, check_tolerance, enforce
from rsnn_compiler.accuracy import DEFAULT_TOLERANCE
from rsnn_compiler.artifact import MANIFEST, check_output_folder, output_path, read_manifest, read_timings, sha256_file
from rsnn_compiler.errors import UserInputError
from rsnn_compiler.executors import load_build_graph, resolve_profile
from rsnn_compiler.ir.graph import Domain, Graph
from rsnn_compiler.pass_manager import run_pipeline
from rsnn_compiler.passes_api import PassContext

FINETUNE_PASS = "qat_finetune"


@dataclass(frozen=True)
class QatConfig:
    """Hyper-parameters of the integer fine-tune (``backends/gpu/qat_finetune.py``)."""

    epochs: int = 5
    batch_size: int = 64
    lr: float = 5e-3  # fraction of each layer's mantissa range per Adam step (cosine-annealed to 0)
    seed: int = 0
    distill: bool = False  # add a distillation term from the float model
    temperature: float = 2.0  # tau of the distillation loss
    alpha: float = 0.5  # weight of the distillation term
    logit_scale: float | None = None  # None: 0.5 for spike counts, else from the first batch
    surrogate_slope: float = 25.0
    max_grad_norm: float = 1.0

    def check(self) -> "QatConfig":
        if self.epochs < 1 or self.batch_size < 1:
            raise UserInputError("--epochs and --batch-size must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UserInputError(f"--lr {self.lr} must be a positive number")
        if not (math.isfinite(self.temperature) and self.temperature > 0 and 0 <= self.alpha <= 1):
            raise UserInputError("distillation needs a temperature > 0 and a weight alpha in [0, 1]")
        return self


@dataclass(frozen=True)
class QatOptions:
    """What the ``qat_finetune`` pass reads (``ctx.options.of(QatOptions)``)."""

    train: EvalData
    config: QatConfig = QatConfig()
    holdout: EvalData | None = None  # accuracy per epoch and before/after; never trains or selects
    teacher: Graph | None = None  # float graph for distillation


@dataclass
class FinetuneRequest:
    """``rsnnc finetune`` arguments."""

    build: str
    out: str
    data: str  # labelled training data
    holdout: str | None = None  # labelled held-out data
    config: QatConfig = QatConfig()
    profile: str | None = None  # which fixed graph, when the build has several
    accuracy_tolerance: float = DEFAULT_TOLERANCE
    accept_accuracy_loss: bool = False


def _steps(manifest: dict, data: EvalData) -> EvalData:
    steps = manifest.get("steps")
    if steps and data.x.shape[0] > steps:  # temporal pruning chose T
        return EvalData(data.x[:steps], data.y, data.label, data.sha256)
    return data


def _board(manifest: dict) -> str | None:
    """The Loihi 2 board BUILD was mapped onto (its map_loihi2 report names it), or None."""
    for rep in manifest.get("passes", []):
        board = rep.get("metrics", {}).get("board") if rep.get("name") == "map_loihi2" else None
        if board:
            return str(board)
    return None


def finetune_build(request: FinetuneRequest, progress=lambda msg: None, warn=lambda msg: None):
    """Fine-tune BUILD's fixed-point graph; write the new build to ``request.out``."""
    from rsnn_compiler.build import BuildOptions, kept, write_build

    build = Path(request.build)
    if not (build / MANIFEST).is_file():
        raise UserInputError(f"{build} is not an rsnnc build (no {MANIFEST}); run `rsnnc build` first")
    if Path(request.out).resolve() == build.resolve():
        raise UserInputError("-o must name a new build folder, not the build being fine-tuned")
    check_output_folder(output_path(Path(request.out)), False)  # refuse before the training, not after
    config = request.config.check()
    check_tolerance(request.accuracy_tolerance)
    manifest = read_manifest(build)
    profile = resolve_profile(manifest, Domain.FIXED, request.profile)
    fixed = load_build_graph(build, manifest, profile)
    float_graph = load_build_graph(build, manifest, "float") if "float" in manifest.get("graphs", {}) else None
    if config.distill and float_graph is None:
        raise UserInputError(f"--distill needs the float model, but {build} has none (it was built from a"
                             " fixed-point graph)")
    train = _steps(manifest, EvalData.load(request.data, "training data"))
    holdout = None
    if request.holdout:
        holdout = _steps(manifest, EvalData.load(request.holdout, "held out"))
        if holdout.sha256 == train.sha256:
            raise UserInputError(f"--holdout {request.holdout} holds the same data as --data {request.data};"
                                 " accuracy must be measured on data the model is not tuned on")
    backends = [registry.get_backend(t) for t in manifest.get("targets", {})]
    target_options = [o for b in backends for o in b.configure(BuildOptions(board=_board(manifest)))]
    options = QatOptions(train=train, config=config, holdout=holdout, teacher=float_graph)
    ctx = PassContext(profile=profile, options=[options, *target_options], progress=progress)
    from rsnn_compiler.pipeline import fixed_pipeline

    lowering = fixed_pipeline(profile, backends)[2:]
    steps = [FINETUNE_PASS, *lowering]
    tuned, reports = run_pipeline(fixed, steps, ctx)
    for r in reports:
        r.notes.insert(0, f"profile {profile}")
    warnings = list(manifest.get("warnings", []))  # BUILD's, then the fine-tune's
    warn = kept(warnings, warn)
    if reports[0].changed_weights == 0:  # e.g. a silent network: no spike, no surrogate gradient
        reports[0].notes.append("no weight changed: the new build computes what BUILD computes")
        warn(f"the fine-tune changed no weight in {reports[0].updates} updates (a network without spikes"
             " has no gradient): try a larger --lr, more --epochs, or wider widths in BUILD")

    record = None
    if holdout is not None:
        qat = reports[0]
        float_acc, note = _reference_accuracy(manifest, float_graph, holdout)
        record = AccuracyRecord(data=holdout.label, float_model=float_acc, tolerance=request.accuracy_tolerance,
                                accepted_loss=request.accept_accuracy_loss, notes=[note] if note else [])
        record.add(f"fixed point before fine-tune ({profile})", qat.accuracy_before, checked=False)
        record.add(f"fine-tune ({profile}, {config.epochs} epoch(s) on {train.label})", qat.accuracy_after,
                   "train longer (--epochs), add --distill, use more training data or wider widths")
        enforce(record, warn)

    old_reports = [dict(r) for r in _merged(manifest, build)]
    pipeline = dict(manifest.get("pipeline", {}))
    pipeline[profile] = [*pipeline.get(profile, []), *steps]
    options_json = {**manifest.get("options", {}),
                    "finetune": {**asdict(config), "data": Path(request.data).name,
                                 "holdout": Path(request.holdout).name if request.holdout else None}}
    graphs = {None: float_graph, profile: tuned} if float_graph is not None else {profile: tuned}
    return write_build(
        Path(request.out), backends, graphs, profile, [*old_reports, *reports], pipeline, progress,
        dict(manifest.get("input", {})), options_json, accuracy=record,
        extra_manifest={"finetuned_from": {"build": build.name, "manifest_sha256": sha256_file(build / MANIFEST)}},
        warnings=warnings,
    )


def _reference_accuracy(manifest: dict, float_graph: Graph | None, data: EvalData) -> tuple[float | None, str]:
    """The float model's accuracy on ``data``: the model as imported, from BUILD's own accuracy
    record when it was measured on the same data; else BUILD's float graph (after its float
    passes, i.e. after pruning when it pruned), said so in a note."""
    record = manifest.get("accuracy") or {}
    if record.get("data") == data.label and record.get("float_model") is not None:
        return float(record["float_model"]), "float model: as imported, from the build's accuracy record"
    if float_graph is None:
        return None, "no float model in the build: nothing to compare against"
    note = "float model: the build's float graph" + (
        " (after pruning: the model as imported was not measured on this data)"
        if manifest.get("options", {}).get("prune") is not None else "")
    return accuracy_percent(float_graph, data), note


def _merged(manifest: dict, build: Path) -> list[dict]:
    from rsnn_compiler.reports import merged_reports

    return merged_reports(manifest, read_timings(build))


__all__ = ["FINETUNE_PASS", "FinetuneRequest", "QatConfig", "QatOptions", "finetune_build"]
