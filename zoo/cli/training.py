"""The training commands: train, publish, runs, teacher-table, bench-train."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.app import command, emit_json, log_for, split_list
from zoo.cli.options import (
    AmpOpt,
    BatchSizeOpt,
    DataOpt,
    EpochsOpt,
    JsonOpt,
    RecipeOpt,
    TestLimitOpt,
    TrainDeviceOpt,
    TrainLimitOpt,
    WeightsDirOpt,
    examples,
)
from zoo.cli.output import say_trained, table
from zoo.errors import ZooError


@command(
    "train",
    short_help="Train an architecture with a recipe (resumable).",
    epilog=examples(
        "zoo train resnet20 --recipe cifar_budget --out ~/zoo-runs/resnet20",
        "zoo train resnet20 --out ~/zoo-runs/resnet20 --resume        # continue it",
        "zoo train resnet20 --epochs 1 --train-limit 512 --test-limit 256   # a smoke run",
    ),
)
def train_cmd(
    arch: Annotated[str, typer.Argument(metavar="ARCH", help="Architecture to train, e.g. resnet20.")],
    data: DataOpt = None,
    recipe: RecipeOpt = "cifar_budget",
    epochs: EpochsOpt = None,
    batch_size: BatchSizeOpt = None,
    lr: Annotated[
        float | None, typer.Option(metavar="LR", help="Override the recipe's peak learning rate.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Run folder (default: runs/ARCH-RECIPE).")
    ] = None,
    device: TrainDeviceOpt = "auto",
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the run in --out from its last checkpoint (without it, a folder that holds a run is refused)."
        ),
    ] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    amp: AmpOpt = "auto",
    train_limit: TrainLimitOpt = None,
    test_limit: TestLimitOpt = None,
    max_steps: Annotated[
        int | None, typer.Option(metavar="N", help="Stop after N steps (resume later).")
    ] = None,
    save_every: Annotated[
        float,
        typer.Option(
            metavar="MINUTES",
            help="Also checkpoint inside an epoch this often (a kill loses minutes; SIGTERM or Ctrl-C saves at once).",
        ),
    ] = 10.0,
    publish: Annotated[
        str | None,
        typer.Option(
            metavar="TAG", help="Add the result as this ARCH.TAG to a manifest, once the run is finished."
        ),
    ] = None,
    weights_dir: WeightsDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train an architecture with a recipe; checkpoints every epoch and inside long ones, metrics in JSON
    Lines."""
    from zoo import api
    from zoo.train.recipe import load_recipe
    from zoo.train.runs import own_command

    summary = api.train(
        arch,
        recipe,
        data,
        out,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        device=device,
        resume=resume,
        compile=compile,
        amp=amp,
        train_limit=train_limit,
        test_limit=test_limit,
        max_steps=max_steps,
        save_every=save_every,
        publish=publish,
        weights_dir=weights_dir,
        progress=not as_json,
        command=own_command(),  # as the user typed it
    )
    if as_json:
        return emit_json({k: v for k, v in summary.items() if k != "recipe_doc"})
    out = out or Path("runs") / f"{arch}-{load_recipe(recipe).for_arch(arch).name}"
    say_trained(arch, out, summary)


@command(
    "publish",
    short_help="Ship a finished run as a pretrained tag.",
    epilog=examples(
        "zoo publish ~/zoo-runs/resnet20 resnet20.mine --weights-dir weights",
        "zoo publish ~/zoo-runs/resnet20-cifar_distill resnet20.cifar10 --weights-dir weights --replace",
    ),
)
def publish_cmd(
    run: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A finished `zoo train` run folder.")],
    name: Annotated[str, typer.Argument(metavar="TAG", help="The ARCH.TAG to publish it as.")],
    weights_dir: WeightsDirOpt = None,
    data: DataOpt = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="TAG exists in the weights folder: take its place if the run scores a higher top-1 on the "
            "same test images (measured now, both), else leave it as it is.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ship a finished run as a pretrained tag: metrics measured by `zoo eval` (single crop and flip)."""
    from zoo import api

    spec = api.publish(run, name, weights_dir, data, replace)
    if as_json:
        return emit_json(spec.to_dict())
    m = spec.metrics
    typer.echo(
        f"published {spec.name}: top-1 {m['top1']:.2f}% (flip {m.get('top1_flip', float('nan')):.2f}%) -> {spec.file}"
        + (f", replacing top-1 {was['top1']:.2f}%" if (was := spec.extra.get("replaced")) else "")
    )


@command(
    "runs",
    short_help="Training runs under a folder: epochs, last top-1, resume.",
    epilog=examples(
        "zoo runs ~/zoo-runs",
        "zoo runs ~/zoo-runs --carry weights/runs   # what continues each run, to commit",
        "zoo runs weights/runs --carry ~/zoo-runs   # and back, on the next machine",
    ),
)
def runs_cmd(
    root: Annotated[
        Path, typer.Argument(metavar="ROOT", help="Folder holding run folders (searched recursively).")
    ] = Path("runs"),
    carry: Annotated[
        Path | None,
        typer.Option(
            metavar="DEST",
            help="Copy the files that continue each run (checkpoint, log, record; a finished run's summary) "
            "into DEST/<run>, the runs left training; a copy further along is kept.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every training run under ROOT: what it trains, epochs done of planned, its last test top-1, and the
    command that continues it; and every teacher table in the zoo's cache, how far it got and how to
    continue it."""
    from zoo import api
    from zoo.train.runs import markdown

    found = api.runs(root, carry)
    damaged = [r["folder"] for r in found["runs"] if r.get("damaged")]
    if as_json:
        emit_json(found)
    elif not found["runs"] and not found["teacher_tables"]:
        raise ZooError(f"no training runs under {root}.")
    else:
        typer.echo(markdown(found["runs"], found["teacher_tables"]), nl=False)
        for c in found.get("carried", []):
            if c["copied"]:
                typer.echo(f"{c['folder']} ({c['steps']} steps) copied to {c['to']}")
            else:
                typer.echo(f"{c['folder']} ({c['steps']} steps) not copied: {c['to']} is further along")
        if damaged:  # listed like `ls` lists what it can read: the rest shown, the exit status says it
            n = len(damaged)
            typer.echo(
                f"error: {n} run folder{'s' if n != 1 else ''} could not be read (named above): "
                f"{', '.join(damaged)}.",
                err=True,
            )
    if damaged:
        raise typer.Exit(1)


@command(
    "curves",
    short_help="Several training runs side by side: curves and end points.",
    epilog=examples(
        "zoo curves ~/zoo-runs/pilot-resnet20-* --out weights/pilots/resnet20-30ep   # curves.json + .png"
    ),
)
def curves_cmd(
    runs: Annotated[
        list[Path], typer.Argument(metavar="RUN_DIR", help="`zoo train` run folders, the first the baseline.")
    ],
    out: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Write DIR/curves.json and DIR/curves.png.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Training runs side by side (pilots before a budget): training and test curves on one figure, and a
    table of each run's epochs, training and test top-1 (final only at its last planned epoch), and the
    training settings in which its recipe differs from the first run's."""
    from zoo import api
    from zoo.train.curves import markdown

    result = api.curves(runs, out)
    if as_json:
        return emit_json(result)
    typer.echo(markdown(result), nl=False)
    for path in result["written"]:
        typer.echo(f"wrote {path}")


@command(
    "teacher-table",
    short_help="Precompute a distillation teacher's logits (resumable).",
    epilog=examples("zoo teacher-table --recipe cifar_distill --stop-after 5000"),
)
def teacher_table_cmd(
    recipe: Annotated[
        str,
        typer.Option(metavar="RECIPE", help="The recipe whose [distill] teacher and augmentation it serves."),
    ],
    arch: Annotated[
        str, typer.Option(metavar="ARCH", help="The student (the recipe's per-architecture sections).")
    ] = "resnet20",
    data: DataOpt = None,
    train_limit: Annotated[
        int | None,
        typer.Option(metavar="N", help="Only the first N training images (as `zoo train --train-limit`)."),
    ] = None,
    stop_after: Annotated[
        int | None,
        typer.Option(metavar="N", help="Stop after N images (continue later by running it again)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute the teacher's logits for every augmented view of every training image, once, for every
    student of the recipe: resumable, checked against the teacher's weights, the augmentation and the split."""
    from zoo import api
    from zoo.train.runs import own_command

    meta = api.teacher_table(recipe, arch, data, train_limit, stop_after, log_for(as_json), own_command())
    if as_json:
        return emit_json(meta)
    state = "complete" if meta.get("complete") else f"{meta['done']} of {meta['key']['images']} images"
    typer.echo(
        f"teacher table {meta['folder']}: {state}"
        + (f", sha256 {meta['sha256']}" if meta.get("sha256") else "")
    )


@command(
    "bench-train",
    short_help="Training throughput here, and where an epoch goes.",
    epilog=examples("zoo bench-train --archs resnet20 --seconds 5"),
)
def bench_train_cmd(
    archs: Annotated[
        str, typer.Option(metavar="ARCHS", help="Comma-separated CIFAR architectures.")
    ] = "resnet20,resnet56",
    settings: Annotated[
        str | None,
        typer.Option(
            metavar="SETTINGS", help="Comma-separated settings (default: all of zoo.train.bench.SETTINGS)."
        ),
    ] = None,
    seconds: Annotated[float, typer.Option(metavar="SECONDS", help="Timed seconds per setting.")] = 15.0,
    data: DataOpt = None,
    out: Annotated[Path, typer.Option(metavar="DIR", help="Where bench-train.json goes.")] = Path("bench"),
    as_json: JsonOpt = False,
) -> None:
    """Training throughput here: img/s per architecture and setting, and where an epoch's time goes."""
    from zoo import api

    report = api.bench_train(
        split_list(archs), split_list(settings) if settings else None, seconds, data, out
    )
    if as_json:
        return emit_json(report)
    table(
        "zoo bench-train",
        ["arch", "setting", "img/s", "step ms (median)"],
        [
            [
                r["arch"],
                r["setting"],
                f"{r['images_per_s']:.0f}",
                f"{r['step_ms_median']:.1f}" if "step_ms_median" in r else f"epoch {r['epoch_s']:.1f} s",
            ]
            for r in report["rows"]
        ],
    )
    typer.echo(f"wrote {out / 'bench-train.json'}")
