"""``rsnnc sensitivity``: per-layer accuracy and SQNR cost of lower widths, and a proposal."""

from __future__ import annotations

import json
from pathlib import Path

import rich_click as click

from rsnn_compiler.cli.common import Example, common_options, epilog, handler, json_option

EXAMPLES = (
    Example("rsnnc build models.rleaky_mnist1d.model:build --weights models/rleaky_mnist1d/weights.pt"
            " --calib models/rleaky_mnist1d/data.npz --target c,gpu -o build/rnn"),
    Example("rsnnc sensitivity build/rnn --data models/rleaky_mnist1d/test.npz --calib models/rleaky_mnist1d/data.npz"
            " --weight-widths 4 --state-widths 8 --write-precision build/rnn-mixed.toml",
            "two widths only, quick; without them every width from 8 (weights) / 16 (states) down to 2"),
    Example("rsnnc build models.rleaky_mnist1d.model:build --weights models/rleaky_mnist1d/weights.pt"
            " --calib models/rleaky_mnist1d/data.npz --precision build/rnn-mixed.toml --target c -o build/rnn-mixed",
            "build with the proposed widths"),
)

TEXT = """Re-quantizes the build's float graph with its own widths and calibration data (which must
reproduce the build's fixed-point graph exactly), then lowers one layer at a time: weights of each
synapse layer, the membrane of each neuron layer. For every lower width it measures the accuracy
on --data (held out) and the SQNR (weights; membrane v on --data). It also measures every neuron
layer at each state width, and proposes per-layer widths whose measured accuracy stays within
--budget points of the build's. Deterministic: the same inputs give the same report."""


def _widths(text: str | None, default: tuple[int, ...], flag: str) -> tuple[int, ...]:
    from rsnn_compiler.errors import UserInputError

    if text is None:
        return default
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise UserInputError(f"{flag} '{text}' must be comma-separated integers, e.g. 6,4,3") from None
    if not widths:
        raise UserInputError(f"{flag} is empty; give widths such as 6,4,3")
    return widths


@click.command("sensitivity", help="Measure each layer's accuracy and SQNR cost of lower bit widths.",
               short_help="per-layer cost of lower bit widths, and a proposal", epilog=epilog(EXAMPLES, TEXT))
@click.argument("build", metavar="BUILD", type=click.Path(file_okay=False))
@click.option("--data", required=True, type=click.Path(dir_okay=False), metavar="HELDOUT.npz",
              help="labelled held-out data the costs are measured on")
@click.option("--calib", type=click.Path(dir_okay=False), metavar="FILE.npz",
              help="the calibration data the build used (required when it used one)")
@click.option("--budget", type=float, default=1.0, show_default=True, metavar="POINTS",
              help="accuracy the proposal may lose against the build")
@click.option("--weight-widths", metavar="W1,W2", help="weight widths to try (default 8,6,5,4,3,2; those below the build's)")
@click.option("--state-widths", metavar="W1,W2",
              help="membrane widths to try (default 16,12,10,8,6,5,4,3,2; those below the build's)")
@click.option("--profile", metavar="PROFILE", help="which fixed-point graph, when the build has several")
@click.option("--write-precision", type=click.Path(dir_okay=False), metavar="FILE.toml",
              help="write the proposal as a --precision file for `rsnnc build`")
@json_option("print the report as JSON")
@common_options
@handler
def command(args, out, err) -> int:
    from rich.table import Table

    from rsnn_compiler import progress
    from rsnn_compiler.artifact import atomic_write_bytes
    from rsnn_compiler.sensitivity import STATE_WIDTHS, WEIGHT_WIDTHS, analyse

    report = analyse(args.build, args.data, args.calib, args.budget,
                     _widths(args.weight_widths, WEIGHT_WIDTHS, "--weight-widths"),
                     _widths(args.state_widths, STATE_WIDTHS, "--state-widths"),
                     profile=args.profile, progress=progress.step)
    if args.write_precision:
        atomic_write_bytes(Path(args.write_precision), report.precision_file().encode())
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
        return 0
    out.print(f"accuracy on {report.data}: float {report.float_accuracy:.2f}%, build ({report.profile})"
              f" {report.build_accuracy:.2f}%")
    table = Table(title="Cost of a lower width, one layer at a time (accuracy change in points; SQNR in dB)",
                  title_justify="left")
    for col in ("layer", "kind", "width", "lower widths: change / SQNR"):
        table.add_column(col)
    for layer in report.layers:
        cells = "  ".join(f"{c.width}b {c.delta:+.2f} / {'-' if c.sqnr_db is None else f'{c.sqnr_db:.1f}'}"
                          for c in layer.costs) or "-"
        table.add_row(layer.node, f"{layer.kind} ({layer.sqnr_kind})", str(layer.width), cells)
    out.print(table)
    if report.state_sweep:
        out.print("every neuron layer at one membrane width: " + ", ".join(
            f"{s['state_bits']}b {s['accuracy']:.2f}%" for s in report.state_sweep))
    if report.proposal:
        widths = ", ".join(f"{n}: " + ", ".join(f"{k}={v}" for k, v in w.items()) for n, w in sorted(report.proposal.items()))
        out.print(f"proposal within {report.budget:g} points: {widths}; measured {report.proposal_accuracy:.2f}%,"
                  f" {report.proposal_bits_saved:,} bits saved")
    for note in report.notes:
        out.print(f"note: {note}")
    if args.write_precision:
        out.print(f"wrote {args.write_precision}")
    return 0
