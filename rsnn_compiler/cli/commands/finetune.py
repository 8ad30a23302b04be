"""``rsnnc finetune``: quantization-aware fine-tuning of a build's integer model into a new build."""

from __future__ import annotations

import json

import rich_click as click

from rsnn_compiler.cli.common import Example, common_options, epilog, handler, json_option, warnings_after

EXAMPLES = (
    Example("rsnnc build models.rleaky_mnist1d.model:build --weights models/rleaky_mnist1d/weights.pt --weight-bits 4"
            " --calib models/rleaky_mnist1d/data.npz --holdout models/rleaky_mnist1d/test.npz --accept-accuracy-loss"
            " --target c,gpu -o build/w4", "a 4-bit build that loses accuracy (72.4 % on the test split)"),
    Example("rsnnc finetune build/w4 --data models/rleaky_mnist1d/train.npz --holdout models/rleaky_mnist1d/test.npz"
            " --epochs 1 --accept-accuracy-loss -o build/w4-tuned",
            "one epoch, quick; the default 5 epochs recover it to 80.2 % (float 80.3 %)"),
    Example("rsnnc validate build/w4-tuned --data models/rleaky_mnist1d/data.npz"),
)

TEXT = """Trains the deployed integer model itself: the forward pass is the exact fixed-point graph of
BUILD (what C, the GPU runtime and Lava run), gradients are straight-through. Weight mantissas and
dense biases are trained; zero weights (pruned ones included) stay zero; neuron constants stay.
With --distill the float model of BUILD is the teacher. Accuracy before and after is measured on
--holdout, which must differ from --data. NEW is a complete build (every target of BUILD
re-emitted, manifest with BUILD's reports plus the fine-tune's) that `rsnnc validate` checks.
Exit 1 when the tuned accuracy is more than --accuracy-tolerance points below the float model
(unless --accept-accuracy-loss)."""


@click.command("finetune", help="Fine-tune a build's integer model (quantization-aware) into a new build.",
               short_help="fine-tune a build's integer model into a new build", epilog=epilog(EXAMPLES, TEXT))
@click.argument("build", metavar="BUILD", type=click.Path(file_okay=False))
@click.option("--data", required=True, type=click.Path(dir_okay=False), metavar="TRAIN.npz",
              help="labelled training data (x, y)")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), metavar="NEW",
              help="build directory to (re)create")
@click.option("--holdout", type=click.Path(dir_okay=False), metavar="TEST.npz",
              help="labelled held-out data: accuracy before, per epoch and after (never used for training)")
@click.option("--epochs", type=int, default=5, show_default=True, metavar="N", help="passes over --data")
@click.option("--lr", type=float, default=5e-3, show_default=True, metavar="LR",
              help="Adam step as a fraction of each layer's weight range (cosine-annealed to 0)")
@click.option("--batch-size", type=int, default=64, show_default=True, metavar="B", help="samples per update")
@click.option("--distill", is_flag=True, help="also match the float model's outputs (knowledge distillation)")
@click.option("--seed", type=int, default=0, show_default=True, help="shuffling seed (deterministic on the CPU)")
@click.option("--profile", metavar="PROFILE", help="which fixed-point graph, when BUILD has several")
@click.option("--accuracy-tolerance", type=float, default=2.0, show_default=True, metavar="POINTS",
              help="exit 1 when the tuned accuracy on --holdout is more than POINTS below the float model")
@click.option("--accept-accuracy-loss", is_flag=True, help="write the build anyway beyond the tolerance (a warning)")
@json_option("print the new manifest as JSON")
@common_options
@handler
def command(args, out, err) -> int:
    from rsnn_compiler import progress
    from rsnn_compiler.artifact import read_timings
    from rsnn_compiler.finetune_build import FinetuneRequest, QatConfig, finetune_build
    from rsnn_compiler.reports import print_build_summary

    request = FinetuneRequest(
        build=args.build, out=args.out, data=args.data, holdout=args.holdout, profile=args.profile,
        config=QatConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, distill=args.distill,
                         seed=args.seed),
        accuracy_tolerance=args.accuracy_tolerance, accept_accuracy_loss=args.accept_accuracy_loss,
    )
    with warnings_after() as warn:
        result = finetune_build(request, progress=progress.step, warn=warn)
    if args.json:
        print(json.dumps(result.manifest, indent=2, sort_keys=True))
    else:
        print_build_summary(out, result.manifest, read_timings(result.outdir), str(result.outdir))
    return 0
