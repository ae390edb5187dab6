"""The paper's experiments: table6, degradation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.app import command, emit_json
from zoo.cli.options import (
    AmpOpt,
    BatchSizeOpt,
    DataOpt,
    EpochsOpt,
    JsonOpt,
    TestLimitOpt,
    TrainDeviceOpt,
    TrainLimitOpt,
    examples,
)
from zoo.cli.output import table
from zoo.errors import ZooError


@command(
    "table6",
    short_help="The paper's Table 6: CIFAR-10 errors, paper vs zoo.",
    epilog=examples("zoo table6", "zoo table6 --markdown >> README.md"),
)
def table6_cmd(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print it as a Markdown table.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The paper's Table 6 regenerated: its CIFAR-10 test errors beside the reference checkpoints' and the
    zoo's (with the zoo's top-1 accuracy)."""
    from zoo import api
    from zoo.paper import table6

    rows = api.table6()
    if as_json:
        return emit_json(rows)
    if markdown:
        return typer.echo(table6.markdown(rows), nl=False)
    table(table6.TITLE, table6.COLUMNS, table6.cells(rows))
    typer.echo(table6.FOOTNOTE)


@command(
    "degradation",
    short_help="The paper's plain-vs-residual experiment (Figure 6).",
    epilog=examples("zoo degradation --depths 20,56 --epochs 30 --out ~/zoo-runs/degradation"),
)
def degradation_cmd(
    data: DataOpt = None,
    depths: Annotated[str, typer.Option(metavar="A,B", help="Two depths, e.g. 20,56.")] = "20,56",
    recipe: Annotated[
        str, typer.Option(metavar="RECIPE", help="Recipe name or TOML file, the same for all four runs.")
    ] = "cifar_paper",
    epochs: EpochsOpt = None,
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Folder for the four runs, degradation.json and .png.")
    ] = Path("runs/degradation"),
    device: TrainDeviceOpt = "auto",
    amp: AmpOpt = "auto",
    train_limit: TrainLimitOpt = None,
    test_limit: TestLimitOpt = None,
    batch_size: BatchSizeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The paper's degradation experiment: plain vs residual nets at two depths, Figure 6's curves."""
    from zoo import api
    from zoo.paper import degradation
    from zoo.train.runs import own_command

    try:
        a, b = (int(d) for d in depths.split(","))
    except ValueError:
        raise ZooError(f"--depths {depths!r} must be two depths, e.g. 20,56.") from None
    result = api.degradation(
        (a, b),
        recipe,
        data,
        out,
        epochs=epochs,
        batch_size=batch_size,
        device=device,
        amp=amp,
        train_limit=train_limit,
        test_limit=test_limit,
        progress=not as_json,
        command=own_command(),  # as the user typed it
    )
    if as_json:
        return emit_json({k: {"test_top1": v["test_top1"]} for k, v in result["runs"].items()})
    typer.echo(degradation.table(result), nl=False)
    typer.echo(f"wrote {out / 'degradation.json'} and {out / 'degradation.png'}")
