"""Typed options of the passes (docs/design.md, "Passes"): one frozen dataclass per pass that
has options. ``rsnnc build`` flags (and library callers) fill them; a pass reads its own with
``ctx.options.of(TheOptions)`` and gets the class defaults when none was given. There is no
string-keyed option dictionary: a misspelt field is a TypeError where it is written, and a value
of the wrong kind is refused when the dataclass is made (``__post_init__``), before any pass runs.

This module imports nothing heavy, so the CLI makes these objects without loading the passes.
Options owned by one target (the Loihi 2 board) live with that target
(``backends/lava/map_loihi2.py``); the quantization widths are ``rsnn_compiler.precision``'s
``PrecisionOptions``; ``rsnnc finetune``'s are ``rsnn_compiler.finetune_build.QatOptions``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, TypeVar

from rsnn_compiler.errors import PipelineError, UserInputError
from rsnn_compiler.neurons.enums import StrChoice

T = TypeVar("T")


class PruneStructure(StrChoice):
    """What ``prune_spatial`` removes: single weights, or whole output rows (neurons; conv
    output channels — ``channels`` is the same rule under the name conv users expect)."""

    UNSTRUCTURED = "unstructured"
    NEURONS = "neurons"
    CHANNELS = "channels"


class StockNeurons(StrChoice):
    """``--stock-neurons``: which stock Loihi 2 neuron the float LIF/IF/CUBA populations are
    retargeted to (``passes/retarget_stock.py``)."""

    LAVA = "lava"  # Lava's LIF process (du, dv, bias_mant, bias_exp, vth)
    NETX = "netx"  # lava-dl netx's CUBA neuron (shared decays per layer, bias_exp 6)


def _number(owner: str, name: str, value: Any, kind=float, low: float | None = None,
            high: float | None = None, open_high: bool = False) -> Any:
    """``value`` as ``kind`` within [low, high] (or [low, high)); one-line UserInputError if not."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UserInputError(f"{owner}.{name} must be a number, not {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{owner}.{name} = {value!r} is not a valid {kind.__name__}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise UserInputError(f"{owner}.{name} must be finite, not {value!r}")
    above = high is not None and (number >= high if open_high else number > high)
    if (low is not None and number < low) or above:
        bound = f"[{low}, {high}{')' if open_high else ']'}" if high is not None else f">= {low}"
        raise UserInputError(f"{owner}.{name} = {value!r} must be {'in ' if high is not None else ''}{bound}")
    return number


@dataclass(frozen=True)
class PruneSpatialOptions:
    """``prune_spatial`` (docs/pruning.md). ``fraction`` None: the pass records itself as skipped."""

    fraction: float | None = None  # --prune: share of all synapse weights that end up zero, [0, 1)
    structure: PruneStructure = PruneStructure.UNSTRUCTURED  # --prune-structure
    exclude: tuple[str, ...] = ()  # node names never pruned
    curve: tuple[float, ...] | None = None  # sparsities of the accuracy curve (None: the pass's default grid)
    tolerance: float | None = None  # --prune-tolerance: back off to the sparsest point within these accuracy points
    finetune_epochs: int = 0  # --prune-finetune: masked fine-tune epochs after pruning
    rounds: int = 1  # --prune-rounds: gradual pruning, s_k = s (1 - (1 - k/R)^3)
    finetune_lr: float = 5e-3  # Adam learning rate, cosine-annealed to 0
    finetune_batch: int = 64
    finetune_logit_scale: float | None = None  # loss logits = scale * out.sum(0); None: 1/T or 0.5
    finetune_data: str | None = None  # --finetune-data: labelled .npz (default: the calibration data)
    finetune_arrays: tuple[Any, Any] | None = None  # (x (T, B, ...), y (B,)) given directly (library use)
    finetune_control: bool = False  # also fine-tune the unpruned graph with the same budget
    curve_finetune: bool = False  # also fine-tune every curve point

    def __post_init__(self):
        own = "prune_spatial"
        put = object.__setattr__
        put(self, "fraction", _number(own, "fraction", self.fraction, float, 0.0, 1.0, open_high=True))
        try:
            put(self, "structure", PruneStructure(self.structure))
        except ValueError:
            raise UserInputError(f"{own}.structure '{self.structure}' is not one of:"
                                 f" {', '.join(s.value for s in PruneStructure)}") from None
        put(self, "exclude", tuple(str(n) for n in self.exclude))
        if self.curve is not None:
            put(self, "curve", tuple(_number(own, "curve", s, float, 0.0, 1.0, open_high=True) for s in self.curve))
        put(self, "tolerance", _number(own, "tolerance", self.tolerance, float, 0.0))
        put(self, "finetune_epochs", _number(own, "finetune_epochs", self.finetune_epochs, int, 0))
        put(self, "rounds", _number(own, "rounds", self.rounds, int, 1))
        put(self, "finetune_lr", _number(own, "finetune_lr", self.finetune_lr, float, 0.0))
        put(self, "finetune_batch", _number(own, "finetune_batch", self.finetune_batch, int, 1))
        put(self, "finetune_logit_scale", _number(own, "finetune_logit_scale", self.finetune_logit_scale, float, 0.0))

    @property
    def tunes_on_calib(self) -> bool:
        """The masked fine-tune trains on the calibration data (no other data was given)."""
        return (self.fraction is not None and self.finetune_epochs > 0
                and not self.finetune_data and self.finetune_arrays is None)


@dataclass(frozen=True)
class PruneTemporalOptions:
    """``prune_temporal``: the fewest time steps whose output stays within the tolerances."""

    enabled: bool = True  # --no-prune-time turns it off
    kl_tolerance: float = 0.05  # --time-kl: nats of output-distribution KL allowed
    accuracy_tolerance: float = 1.0  # --time-tolerance: accuracy points allowed
    min_steps: int = 1  # never choose fewer steps

    def __post_init__(self):
        own = "prune_temporal"
        put = object.__setattr__
        put(self, "enabled", bool(self.enabled))
        put(self, "kl_tolerance", _number(own, "kl_tolerance", self.kl_tolerance, float, 0.0))
        put(self, "accuracy_tolerance", _number(own, "accuracy_tolerance", self.accuracy_tolerance, float, 0.0))
        put(self, "min_steps", _number(own, "min_steps", self.min_steps, int, 1))


DEFAULT_STOCK_EPOCHS = 20  # retarget_stock's fine-tune epochs


@dataclass(frozen=True)
class RetargetStockOptions:
    """``retarget_stock`` (``--stock-neurons``, docs/lava-backend.md)."""

    mode: StockNeurons = StockNeurons.LAVA
    finetune_epochs: int = DEFAULT_STOCK_EPOCHS  # --stock-finetune (0: keep the retargeted weights)
    data: str | None = None  # --stock-data: labelled .npz to fine-tune on (default: --calib)

    def __post_init__(self):
        try:
            object.__setattr__(self, "mode", StockNeurons(self.mode))
        except ValueError:
            raise UserInputError(f"--stock-neurons {self.mode}: choose one of"
                                 f" {', '.join(m.value for m in StockNeurons)}") from None
        object.__setattr__(self, "finetune_epochs",
                           _number("retarget_stock", "finetune_epochs", self.finetune_epochs, int, 0))

    @property
    def tunes_on_calib(self) -> bool:
        """The retargeting trains on the calibration data (netx also picks shared decays there)."""
        return not self.data and (self.finetune_epochs > 0 or self.mode is StockNeurons.NETX)


@dataclass(frozen=True)
class QuantizeOptions:
    """What ``quantize_weights`` / ``quantize_state`` read besides the widths (``PrecisionOptions``)."""

    spec: Any = None  # a FixedSpec replacing the profile's (loihi2 for netx: integer weights, bias_exp 6)
    per_channel: bool = True  # fpga: one weight exponent per output channel (False: per layer)


class PassOptions:
    """The options of one pipeline run: at most one object per options class.

    ``PassOptions(PruneSpatialOptions(fraction=0.8), PrecisionOptions(...))``; a pass reads
    ``ctx.options.of(PruneSpatialOptions)`` (the class's defaults when absent; classes without
    defaults, such as ``QatOptions``, must be given)."""

    def __init__(self, *items: Any):
        self._items: dict[type, Any] = {}
        for item in items:
            if item is None:
                continue
            if not dataclasses.is_dataclass(item) or isinstance(item, type):
                raise TypeError(f"pass options are dataclass instances, not {type(item).__name__}"
                                " (see rsnn_compiler/pass_options.py)")
            self._items[type(item)] = item

    @classmethod
    def of_items(cls, items: "PassOptions | Iterable[Any] | None") -> "PassOptions":
        if isinstance(items, PassOptions):
            return items
        if isinstance(items, dict):
            raise TypeError("PassContext options are typed objects (rsnn_compiler/pass_options.py),"
                            " not a dict")
        return cls(*(items or ()))

    def of(self, cls: type[T]) -> T:
        item = self._items.get(cls)
        if item is not None:
            return item
        try:
            return cls()
        except TypeError:
            raise PipelineError(f"this pass needs {cls.__name__} in its PassContext options") from None

    def given(self, cls: type) -> bool:
        return cls in self._items

    def with_(self, *items: Any) -> "PassOptions":
        """A copy with ``items`` added (replacing those of the same class)."""
        return PassOptions(*self._items.values(), *items)

    def __iter__(self):
        return iter(self._items.values())

    def __repr__(self) -> str:
        return f"PassOptions({', '.join(map(repr, self._items.values()))})"
