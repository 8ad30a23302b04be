"""``rsnnc run``: run a build on inputs and write every output, spike and state."""

from __future__ import annotations

import json
from pathlib import Path

import rich_click as click

from rsnn_compiler import registry
from rsnn_compiler.cli.common import (
    Example, common_options, epilog, executor_options_from, gpu_processes_option, handler, json_option,
    trim_to_build_steps,
)

EXAMPLES = (
    Example("rsnnc run build/demo --inputs models/example/data.npz --out out.npz"),
    Example("rsnnc run build/rnn --inputs models/rleaky_mnist1d/data.npz --out y.npz --executor c",
            "c runs the fixed-point graph"),
    Example("rsnnc run build/rnn --inputs models/rleaky_mnist1d/data.npz --out y2.npz --executor gpu"
            " --domain fixed --gpu-processes 2", "the batch split over 2 processes (torch.distributed)"),
)

TEXT = """The inputs file holds x shaped (time, batch, *features). The output holds 'out' (time, batch,
outputs), 'spikes/<node>' and the states 'v/<node>', 'i/<node>' per step."""


def default_domain(executor) -> str:
    """float, unless the executor runs only one domain (c and lava run fixed point only)."""
    domains = tuple(getattr(executor, "domains", ("float", "fixed")))
    return domains[0] if len(domains) == 1 else "float"


@click.command("run", help="Run a build on inputs.", short_help="run a build on inputs", epilog=epilog(EXAMPLES, TEXT))
@click.argument("build", metavar="BUILD", type=click.Path(file_okay=False))
@click.option("--inputs", required=True, type=click.Path(dir_okay=False), metavar="X.npz",
              help="inputs x (time, batch, *features)")
@click.option("--out", required=True, type=click.Path(dir_okay=False), metavar="Y.npz",
              help="where to write out, spikes/<node> and states per step")
@click.option("--executor", default="interp", show_default=True,
              help=f"one of: {', '.join(sorted(registry.EXECUTORS))}")
@click.option("--domain", type=click.Choice(["float", "fixed"]),
              help="float or fixed point (default: fixed for executors that run only fixed point, else float)")
@click.option("--profile", help="fixed-point profile to run when the build has several (loihi2, fpga)")
@gpu_processes_option
@json_option("print a JSON summary")
@common_options
@handler
def command(args, out, err) -> int:
    import numpy as np

    from rsnn_compiler import progress
    from rsnn_compiler.artifact import MANIFEST, TIMINGS, check_writable_file, read_manifest
    from rsnn_compiler.data import load_data, save_npz
    from rsnn_compiler.errors import UserInputError
    from rsnn_compiler.executors import check_run_budget

    manifest = read_manifest(Path(args.build))
    out_path, root = Path(args.out).resolve(), Path(args.build).resolve()
    rel = out_path.relative_to(root).as_posix() if out_path.is_relative_to(root) else None
    if rel is not None and rel in {*manifest["files"], MANIFEST, TIMINGS}:
        raise UserInputError(f"--out {args.out} would overwrite a file of the build; write the results elsewhere")
    check_writable_file(Path(args.out))  # before running, not after
    x, _y = load_data(args.inputs)
    options = executor_options_from(args)
    if options and args.executor not in options:
        raise UserInputError(f"--gpu-processes runs the gpu executor; add --executor gpu (not {args.executor})")
    executor = registry.get_executor(args.executor, **options.get(args.executor, {}))
    domain = args.domain or default_domain(executor)
    progress.step(f"running {args.executor} ({domain}) on {x.shape[1]} sample(s) x {x.shape[0]} steps")
    x = trim_to_build_steps(manifest, x, err, args.quiet)
    check_run_budget(Path(args.build), manifest, x)
    result = executor.run(Path(args.build), manifest, domain, args.profile, x)
    summary = {
        "out": args.out,
        "executor": args.executor,
        "domain": domain,
        "steps": int(x.shape[0]),
        "batch": int(x.shape[1]),
        "output_shape": list(result.out.shape),
        "prediction": np.argmax(result.out.reshape(result.out.shape[0], result.out.shape[1], -1).sum(0), axis=-1).tolist(),
        "spikes": {k: int(np.count_nonzero(v)) for k, v in result.spikes.items()},
    }
    save_npz(args.out, result.to_npz_dict())  # last: a failure before it leaves no file behind
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        out.print(f"wrote {args.out}: out {tuple(result.out.shape)}, {len(result.spikes)} spiking node(s), "
                  f"{sum(summary['spikes'].values())} spikes")
    return 0
