"""``rsnnc build``: compile a model into a build directory."""

from __future__ import annotations

import json

import rich_click as click

from rsnn_compiler.cli.common import Example, common_options, epilog, handler, import_options, json_option, warnings_after
from rsnn_compiler.errors import UserInputError

EXAMPLES = (
    Example("rsnnc build models/example/recurrent.rsnn -o build/demo"),
    Example("rsnnc build models/rleaky_mnist1d/model.nir --reset subtract_deferred --target c,gpu -o build/nir",
            "NIR: dt is inferred, the reset is an option"),
    Example("rsnnc build models.rleaky_mnist1d.model:build --weights models/rleaky_mnist1d/weights.pt"
            " --calib models/rleaky_mnist1d/data.npz --target c,gpu -o build/rnn"),
    Example("rsnnc build models.snntorch_tutorial.model:recurrent --weights models/snntorch_tutorial/recurrent.pt"
            " --calib models/snntorch_tutorial/data.npz --accept-accuracy-loss --target c -o build/tutorial",
            "an snnTorch class looping over time; weights from a training checkpoint (it loses 5 points"
            " in fixed point)"),
    Example("rsnnc build models/snntorch_tutorial/model.py:feedforward --factory-args '{\"hidden\": 64}'"
            " --weights models/snntorch_tutorial/feedforward.pt -o build/ff",
            "a model file by path, with factory arguments as JSON"),
    Example("rsnnc build models/mlp_digits/model.onnx --convert sfn --calib models/mlp_digits/data.npz"
            " --target c,gpu -o build/ann", "ReLU ANN -> SNN"),
    Example("rsnnc build models.rleaky_mnist1d.model:build --weights models/rleaky_mnist1d/weights.pt"
            " --calib models/rleaky_mnist1d/data.npz --stock-neurons netx --stock-finetune 1"
            " --stock-data models/rleaky_mnist1d/train.npz --holdout models/rleaky_mnist1d/test.npz"
            " --accept-accuracy-loss --target lava -o build/stock",
            "zero-reset LIFs with shared decays, fine-tuned: stock Lava processes only, exports to netx"
            " (the accuracy it costs is accepted explicitly)"),
)

TEXT = """INPUT is a .nir file, an .onnx ANN, an .rsnn graph, or pkg.module:factory (or
path/to/model.py:factory) with --weights (a state_dict or a training checkpoint).
The build directory holds manifest.json (version, input hash, pipeline, pass reports, file
hashes), the float graph (graph.float.rsnn/.txt), one fixed-point graph per profile a target
needs, and one folder per target. It is written atomically."""


def convert_options(args) -> dict | None:
    """``--convert/--steps/--levels/--convert-opt`` as BuildOptions.convert (None: no conversion)."""
    opts = {}
    for item in args.convert_opt:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserInputError(f"--convert-opt '{item}' must be KEY=VALUE")
        opts[key.strip()] = value.strip()
    if not args.convert and (args.steps or args.levels or opts):
        if not str(args.input).endswith(".onnx"):
            raise UserInputError("--steps, --levels and --convert-opt need --convert (ANN inputs only)")
    if not (args.convert or args.steps or args.levels or opts):
        return None
    return {"method": args.convert or "sfn", "steps": args.steps, "levels": args.levels, "opts": opts}


def stock_options(args):
    """``--stock-neurons`` / ``--stock-finetune`` / ``--stock-data`` as RetargetStockOptions."""
    from rsnn_compiler.pass_options import RetargetStockOptions

    if args.stock_neurons is None:
        if args.stock_finetune is not None or args.stock_data:
            raise UserInputError("--stock-finetune and --stock-data need --stock-neurons (lava or netx)")
        return None
    if args.stock_finetune is not None and args.stock_finetune < 0:
        raise UserInputError("--stock-finetune EPOCHS must be >= 0")
    given = {"finetune_epochs": args.stock_finetune, "data": args.stock_data or None}
    return RetargetStockOptions(mode=args.stock_neurons, **{k: v for k, v in given.items() if v is not None})


def prune_options(args):
    """Pruning flags as (PruneSpatialOptions, PruneTemporalOptions); the fraction is --prune."""
    from rsnn_compiler.pass_options import PruneSpatialOptions, PruneTemporalOptions

    spatial = {"structure": args.prune_structure, "finetune_epochs": args.prune_finetune,
               "rounds": args.prune_rounds, "tolerance": args.prune_tolerance, "finetune_data": args.finetune_data}
    temporal = {"enabled": False if args.no_prune_time else None, "accuracy_tolerance": args.time_tolerance,
                "kl_tolerance": args.time_kl}
    spatial = {k: v for k, v in spatial.items() if v is not None}
    temporal = {k: v for k, v in temporal.items() if v is not None}
    if (spatial or temporal) and args.prune is None:
        raise UserInputError("pruning options need --prune FRACTION (e.g. --prune 0.8)")
    return PruneSpatialOptions(**spatial), PruneTemporalOptions(**temporal)


#: data-file options of ``rsnnc build``, checked before the (slow) import
DATA_FILE_OPTIONS = ("calib", "holdout", "stock_data", "finetune_data")


def check_data_files(args) -> None:
    """Every data file named on the command line exists, before any work starts (the passes that
    read some of them run minutes into a build)."""
    from rsnn_compiler.data import require_data_file

    for name in DATA_FILE_OPTIONS:
        path = getattr(args, name, None)
        if path:
            require_data_file(path, given_to="--" + name.replace("_", "-"))


def _calib_samples(args) -> int:
    from rsnn_compiler.build import CALIB_SAMPLES

    value = getattr(args, "calib_samples", None)
    return CALIB_SAMPLES if value is None else value


def build_options(args):
    """The BuildOptions of parsed ``rsnnc build`` options (``args``: the options by name); also
    what ``rsnnc sweep`` builds each point with."""
    from rsnn_compiler.build import BuildOptions

    targets = tuple(t.strip() for t in args.target.split(",") if t.strip())
    if not targets:
        raise UserInputError("--target is empty; give at least one target (see `rsnnc targets`)")
    check_data_files(args)
    pruning, time_pruning = prune_options(args)
    return BuildOptions(
        targets=targets, dt=args.dt, reset=args.reset, comparator=args.comparator, nir_source=args.nir_source,
        weights=args.weights, factory_args=args.factory_args, initial_weights=args.initial_weights,
        trust_checkpoint=args.trust_checkpoint, calib=args.calib, prune=args.prune, profile=args.profile,
        calib_samples=_calib_samples(args),
        board=args.board, convert=convert_options(args), pruning=pruning, time_pruning=time_pruning,
        stock=stock_options(args), force=args.force,
        precision=precision_from_args(args), holdout=args.holdout,
        accuracy_tolerance=args.accuracy_tolerance, accept_accuracy_loss=args.accept_accuracy_loss,
        max_accuracy_drop=args.max_accuracy_drop, min_spike_agreement=args.min_spike_agreement,
    )


PRUNING = "pruning (with --prune; measured on --calib data)"
PRECISION = "precision (fpga profile; docs/precision.md)"
ACCURACY = "accuracy"


def precision_from_args(args):
    """``--precision FILE`` and the width flags as PrecisionOptions (None when none is given);
    a flag overrides the file's top-level value, the file's [layers] entries override both."""
    from rsnn_compiler.precision import load_precision_file, parse_precision

    overrides = {
        "weight_bits": args.weight_bits, "state_bits": args.state_bits, "current_bits": args.current_bits,
        "acc_bits": args.acc_bits, "input_bits": args.input_bits, "state_overflow": args.state_overflow,
        "state_scale": args.state_scale,
    }
    if args.precision:
        return load_precision_file(args.precision, overrides)
    if any(v is not None for v in overrides.values()):
        return parse_precision({}, "command line", overrides)
    return None


def precision_options(fn):
    """The width flags of ``rsnnc build`` (rsnn_compiler/precision.py)."""
    decorators = [
        click.option("--weight-bits", type=int, metavar="BITS",
                     help=f"{PRECISION}: signed weight mantissa width, 2..16 (default 8); loihi2: 1..8"),
        click.option("--state-bits", metavar="BITS",
                     help=f"{PRECISION}: membrane (and adaptation) width, 2..48 (default 16), or 'ternary'"
                     " (2 bits, values -1, 0, 1)"),
        click.option("--current-bits", type=int, metavar="BITS",
                     help=f"{PRECISION}: synaptic current width, 2..48 (default: --state-bits)"),
        click.option("--acc-bits", type=int, metavar="BITS", help=f"{PRECISION}: accumulator width, 8..48 (default 32)"),
        click.option("--input-bits", type=int, metavar="BITS", help=f"{PRECISION}: analog input width, 1..24 (default 8)"),
        click.option("--state-overflow", type=click.Choice(["saturate", "saturate_sym", "wrap"]),
                     help=f"{PRECISION}: what a state does beyond its width (default saturate)"),
        click.option("--state-scale", type=click.Choice(["auto", "threshold", "calibrate"]),
                     help=f"{PRECISION}: membrane scale per layer: threshold rule, or calibrated on --calib data"
                     " (default auto: calibrated for states of at most 8 bits)"),
        click.option("--precision", "precision", type=click.Path(dir_okay=False), metavar="FILE.toml",
                     help=f"{PRECISION}: per-layer widths from a TOML or JSON file (`rsnnc sensitivity` writes"
                     " one; docs/precision.md)"),
    ]
    for decorate in reversed(decorators):
        fn = decorate(fn)
    return fn


def accuracy_options(fn):
    decorators = [
        click.option("--holdout", type=click.Path(dir_okay=False), metavar="TEST.npz",
                     help=f"{ACCURACY}: labelled held-out data the build's accuracy is measured and checked on"
                     " (default: --calib when it has labels)"),
        click.option("--accuracy-tolerance", type=float, default=2.0, show_default=True, metavar="POINTS",
                     help=f"{ACCURACY}: stop the build (exit 1) when pruning or quantization takes accuracy more"
                     " than POINTS below the float model"),
        click.option("--accept-accuracy-loss", is_flag=True,
                     help=f"{ACCURACY}: build anyway beyond the tolerance (a warning and a manifest entry)"),
    ]
    for decorate in reversed(decorators):
        fn = decorate(fn)
    return fn


@click.command("build", help="Compile a model into a build directory.", short_help="compile a model into a build directory",
               epilog=epilog(EXAMPLES, TEXT))
@click.argument("input", metavar="INPUT")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), metavar="OUT",
              help="build directory to (re)create")
@click.option("--target", default="ir", show_default=True, metavar="T1,T2",
              help="comma-separated targets (see `rsnnc targets`)")
@import_options
@click.option("--calib", type=click.Path(dir_okay=False), metavar="FILE.npz",
              help="calibration data (x, optional y) for quantization, pruning and fidelity reports")
@click.option("--calib-samples", type=int, metavar="N",
              help="quantization calibrates on the first N samples of --calib (default 1024; 0: every sample);"
              " its time and memory grow with N, its ranges rarely move after a thousand samples. Pruning"
              " and the accuracy check use every sample")
@click.option("--profile", metavar="PROFILE",
              help="fixed-point profile for every integer target: loihi2 or fpga (default: loihi2 when building for lava, else fpga)")
@click.option("--board", type=click.Choice(["oheo_gulch", "kapoho_point", "hala_point"]),
              help="Loihi 2 board the lava target's mapping must fit (default kapoho_point, 8 chips)")
@click.option("--convert", type=click.Choice(["maxnorm", "ecl", "sfn"]),
              help="ANN-to-SNN conversion for .onnx and pkg.module:factory ANNs (default for .onnx: sfn); see docs/conversion.md")
@click.option("--steps", type=int, metavar="T", help="time steps the converted SNN runs (default: sfn 1, ecl 2, maxnorm 8)")
@click.option("--levels", type=int, metavar="N", help="sfn: graded-spike levels per step (default: the QCFS L, else 8)")
@click.option("--convert-opt", multiple=True, metavar="KEY=VALUE",
              help="conversion knob, repeatable: percentile, v_init, theta_neg, finetune, epochs, lr, ft_forward,"
              " temperature, ce, search, compensate, readout, report_samples, seed (docs/conversion.md)")
@click.option("--stock-neurons", type=click.Choice(["lava", "netx"]),
              help="retarget spiking neurons to what Loihi 2 runs without custom microcode (zero reset,"
              " one decay per population), fine-tune on --calib and report the accuracy cost (checked like"
              " pruning against --accuracy-tolerance); netx: also"
              " weights and biases a lava-dl netx file holds (see docs/lava-backend.md)")
@click.option("--stock-finetune", type=int, metavar="EPOCHS",
              help="fine-tune epochs after --stock-neurons (default 20; 0: none)")
@click.option("--stock-data", type=click.Path(dir_okay=False), metavar="FILE.npz",
              help="labelled training data for the --stock-neurons fine-tune (default: 3/4 of --calib;"
              " the accuracy cost is then measured on --calib)")
@click.option("--prune", type=float, metavar="FRACTION", help="fraction of weights to prune (off by default)")
@click.option("--prune-structure", type=click.Choice(["unstructured", "neurons", "channels"]),
              help=f"{PRUNING}: remove single weights (default) or whole neurons/channels")
@click.option("--prune-finetune", type=int, metavar="EPOCHS", help=f"{PRUNING}: masked fine-tune epochs after pruning (default 0)")
@click.option("--prune-rounds", type=int, metavar="N", help=f"{PRUNING}: gradual pruning, N rounds of prune then fine-tune")
@click.option("--prune-tolerance", type=float, metavar="POINTS", help=f"{PRUNING}: back off to the sparsest level within POINTS of accuracy")
@click.option("--finetune-data", type=click.Path(dir_okay=False), metavar="FILE.npz", help=f"{PRUNING}: training data for the fine-tune (default: --calib)")
@click.option("--no-prune-time", is_flag=True, help=f"{PRUNING}: keep every time step (no temporal pruning)")
@click.option("--time-tolerance", type=float, metavar="POINTS", help=f"{PRUNING}: accuracy drop allowed when shortening T (default 1.0)")
@click.option("--time-kl", type=float, metavar="NATS", help=f"{PRUNING}: KL divergence of outputs allowed when shortening T (default 0.05)")
@precision_options
@accuracy_options
@click.option("--max-accuracy-drop", type=float, metavar="POINTS",
              help="fail (exit 1) when quantization costs more than POINTS of accuracy on --calib (needs labels y)")
@click.option("--min-spike-agreement", type=float, metavar="FRACTION",
              help="fail (exit 1) when float and fixed-point spikes agree on less than FRACTION of the values"
              " (on --calib, else on random inputs)")
@click.option("--force", is_flag=True,
              help="replace OUT even when it is a folder that is not an rsnnc build (its content is lost)")
@json_option("print the manifest as JSON instead of a summary")
@common_options
@handler
def command(args, out, err) -> int:
    from rsnn_compiler import progress
    from rsnn_compiler.artifact import read_timings
    from rsnn_compiler.build import build
    from rsnn_compiler.reports import print_build_summary

    with warnings_after() as warn:  # their own lines, even with --quiet/--json, also when a gate fails
        result = build(args.input, args.out, build_options(args), progress=progress.step, warn=warn)
    if args.json:
        print(json.dumps(result.manifest, indent=2, sort_keys=True))
    else:
        print_build_summary(out, result.manifest, read_timings(result.outdir), str(result.outdir))
    return 0
