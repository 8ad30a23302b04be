"""Accuracy of a build, measured on named data, and the check that stops a lossy build.

Every number here is a percentage (top-1 of ``argmax(out.sum(0))``) and carries the name of the
data it was measured on (``EvalData.label``: file, sample count and role: held out, calibration,
training). A step of the build (pruning, quantization, fine-tuning) whose accuracy falls more
than ``tolerance`` points below the float model as imported stops the build with exit 1 and the
fix, unless the loss is accepted explicitly (then it is a warning line and a manifest entry).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rsnn_compiler.artifact import sha256_file
from rsnn_compiler.data import load_data
from rsnn_compiler.errors import CheckFailed, UserInputError
from rsnn_compiler.interpreter.fixed_interp import run_fixed
from rsnn_compiler.interpreter.float_interp import run_float
from rsnn_compiler.ir.graph import Domain, Graph

DEFAULT_TOLERANCE = 2.0  # points below the float model before a build stops
BATCH = 512  # samples per interpreter run (bounds memory on large held-out sets)


@dataclass(frozen=True)
class EvalData:
    """Labelled data accuracy is measured on, with the name reports give it."""

    x: np.ndarray
    y: np.ndarray
    label: str  # e.g. "test.npz (1000 samples, held out)"
    sha256: str = ""

    @classmethod
    def load(cls, path: str | Path, role: str) -> "EvalData":
        x, y = load_data(path, need_labels=True)
        path = Path(path)
        return cls(x, y, f"{path.name} ({x.shape[1]} samples, {role})", sha256_file(path))


def predictions(out: np.ndarray) -> np.ndarray:
    """``argmax(out.sum(0))`` per sample, ``out`` shaped (T, B, *outputs); ties: lowest index."""
    total = np.asarray(out, np.float64).reshape(out.shape[0], out.shape[1], -1).sum(axis=0)
    return total.argmax(axis=-1)


def accuracy_percent(graph: Graph, data: EvalData) -> float:
    """Accuracy (%) of a float or fixed graph on ``data`` with the reference interpreter,
    on the first ``graph.attrs.steps`` steps when temporal pruning chose them."""
    x = data.x if graph.attrs.steps is None else data.x[: graph.attrs.steps]
    run = run_fixed if graph.attrs.domain is Domain.FIXED else run_float
    preds = [predictions(run(graph, x[:, i:i + BATCH], record=False).out) for i in range(0, x.shape[1], BATCH)]
    return float(np.mean(np.concatenate(preds) == data.y) * 100.0)


@dataclass
class AccuracyStep:
    step: str  # "pruning", "quantization (fpga: ...)", "fine-tune (fpga)"
    accuracy: float  # percent
    drop: float | None  # points below the float model (None: no float model to compare with)
    within_tolerance: bool
    fix: str = ""
    checked: bool = True  # False: shown for reference, never stops anything


@dataclass
class AccuracyRecord:
    """The ``accuracy`` block of a manifest."""

    data: str
    float_model: float | None  # percent, the model as imported (None: a fixed-point input)
    steps: list[AccuracyStep] = field(default_factory=list)
    tolerance: float = DEFAULT_TOLERANCE
    accepted_loss: bool = False
    unit: str = "percent"
    notes: list[str] = field(default_factory=list)

    def add(self, step: str, accuracy: float, fix: str = "", checked: bool = True) -> AccuracyStep:
        if self.float_model is None:
            entry = AccuracyStep(step, round(accuracy, 4), None, True, fix, checked)
        else:
            drop = self.float_model - accuracy
            ok = drop <= self.tolerance + 1e-9 or not checked
            entry = AccuracyStep(step, round(accuracy, 4), round(drop, 4), ok, fix, checked)
        self.steps.append(entry)
        return entry

    def failures(self) -> list[AccuracyStep]:
        return [s for s in self.steps if not s.within_tolerance]

    def to_json(self) -> dict:
        data = asdict(self)
        data["float_model"] = None if self.float_model is None else round(self.float_model, 4)
        return data


def check_tolerance(tolerance: float) -> float:
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
        raise UserInputError(f"--accuracy-tolerance {tolerance} must be a number of points >= 0")
    return float(tolerance)


def enforce(record: AccuracyRecord, warn) -> None:
    """Raise CheckFailed (exit 1) for the first step beyond tolerance, or warn when accepted."""
    for step in record.failures():
        text = (f"on {record.data}, {step.step} takes accuracy from {record.float_model:.2f}% (float model)"
                f" to {step.accuracy:.2f}%, {step.drop:.2f} points down (tolerance {record.tolerance:g})")
        if record.accepted_loss:
            record.notes.append(f"accepted: {text}")
            warn(f"accuracy loss accepted (--accept-accuracy-loss): {text}")
            continue
        raise CheckFailed(f"accuracy check failed: {text}; {step.fix}, allow more with"
                          " --accuracy-tolerance POINTS, or accept the loss with --accept-accuracy-loss")


__all__ = ["AccuracyRecord", "AccuracyStep", "DEFAULT_TOLERANCE", "EvalData", "accuracy_percent",
           "check_tolerance", "enforce", "predictions"]
