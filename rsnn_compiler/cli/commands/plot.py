"""``rsnnc plot``: pictures of a build (spike rasters, activity, accuracy curves, membrane traces,
quantization error, Loihi 2 core use) as PNG and SVG in a folder you name."""

from __future__ import annotations

from pathlib import Path

import rich_click as click

from rsnn_compiler.cli.common import Example, common_options, epilog, handler, trim_to_build_steps

EXAMPLES = (
    Example("rsnnc plot build/demo --data models/example/data.npz -o plots/demo"),
    Example("rsnnc plot build/rnn --data models/rleaky_mnist1d/data.npz --sample 3 --neurons 1:0,1:7 -o plots/rnn",
            "sample 3; neurons 0 and 7 of layer '1' (names: rsnnc inspect build/rnn)"),
)

TEXT = """Writes, as .png and .svg: raster_s<N> (spikes of every layer for sample N), activity (firing
rate and activation sparsity per layer), accuracy_vs_steps (needs labels y), accuracy_vs_sparsity
(builds with --prune), membrane_s<N> (float versus fixed-point membrane potential of --neurons,
default the three most active of the first layer), quantization (weight SQNR and spike agreement
per layer) and core_utilisation (builds with the lava target). Without --data only the figures
from the build's pass reports are drawn."""


def check_outside_build(build: Path, out_dir: Path) -> None:
    from rsnn_compiler.errors import UserInputError

    if out_dir.resolve() == build.resolve() or build.resolve() in out_dir.resolve().parents:
        raise UserInputError(f"{out_dir} is inside the build {build}; give a folder outside it (e.g. plots/)")


def write_and_list(manifest: dict, out_dir: str, runs, sample: int, neurons, out, err) -> int:
    from rsnn_compiler.plots import write_plots

    result = write_plots(manifest, Path(out_dir), runs, sample, neurons)
    for path in result.written:
        out.print(f"wrote {path}")
    for reason in result.skipped:
        err.print(f"rsnnc: plot skipped: {reason}", highlight=False, soft_wrap=True)
    return 0


@click.command("plot", help="Draw a build's spikes, activity, accuracy curves and quantization error.",
               short_help="draw pictures of a build (PNG and SVG)", epilog=epilog(EXAMPLES, TEXT))
@click.argument("build", metavar="BUILD", type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="folder for the pictures (created; never the build itself)")
@click.option("--data", type=click.Path(dir_okay=False), metavar="X.npz",
              help="inputs x (and labels y) to run the build on for the raster, activity, accuracy and membrane figures")
@click.option("--sample", type=int, default=0, show_default=True, metavar="N", help="sample of --data for the raster and membrane figures")
@click.option("--neurons", metavar="NODE:I,...", help="neurons for the membrane figure (default: the 3 most active of the first layer)")
@common_options
@handler
def command(args, out, err) -> int:
    from rsnn_compiler.artifact import read_manifest
    from rsnn_compiler.data import load_data
    from rsnn_compiler.errors import UserInputError
    from rsnn_compiler.plot_data import parse_neurons, run_build

    build = Path(args.build)
    manifest = read_manifest(build)
    check_outside_build(build, Path(args.out))
    neurons = parse_neurons(args.neurons)
    runs = None
    if args.data:
        x, y = load_data(args.data)
        x = trim_to_build_steps(manifest, x, err, args.quiet)
        if not 0 <= args.sample < x.shape[1]:
            raise UserInputError(f"--sample {args.sample} is out of range: {args.data} has {x.shape[1]} samples")
        runs = run_build(build, manifest, x, y)
    elif neurons or args.sample:
        raise UserInputError("--sample and --neurons choose from --data; give --data X.npz")
    return write_and_list(manifest, args.out, runs, args.sample, neurons, out, err)
