"""What the CLI prints: its tables, the rows of `zoo export --json`, and the closing lines of a command.
Kept apart from zoo/cli.py, which declares the commands and their options and calls the work."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import typer

from zoo.utils.lazy import lazy_import

rich_console = lazy_import("rich.console")  # loaded by the first table printed: `zoo --help` needs none
rich_markup = lazy_import("rich.markup")
rich_table = lazy_import("rich.table")


def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    rows = [[rich_markup.escape(str(c)) for c in r] for r in rows]
    table = rich_table.Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        table.add_column(
            c, justify="left" if i == 0 else "right" if c in ("params", "GMACs", "top-1") else "left"
        )
    for r in rows:
        table.add_row(*r)
    rich_console.Console(width=None if sys.stdout.isatty() else 140).print(table)


def say_trained(arch: str, out: Path, summary: dict) -> None:
    """The end of `zoo train`: a DDP warning, how to continue a cut-short run, or the result."""
    if summary and summary.get("replica_max_abs_diff"):
        typer.echo(
            f"warning: the {summary['world_size']} processes ended with different weights "
            f"(max |difference| {summary['replica_max_abs_diff']:.3g}); this is not a valid DDP run.",
            err=True,
        )
    if summary and not summary["complete"]:
        typer.echo(
            f"{arch}: stopped after {summary['steps']} of {summary['total_steps']} steps; "
            f"continue with `zoo train {arch} --resume --out {out}` and the same options."
        )
    elif summary:
        typer.echo(
            f"{arch}: top-1 {summary['top1']:.2f}% top-5 {summary['top5']:.2f}% after {summary['epochs_done']} epochs, "
            f"{summary['wall_s'] / 60:.1f} min; weights in {out / 'weights.safetensors'}"
        )


PARITY_KEYS = ("top1_agreement", "top5_agreement", "top1", "reference_top1", "max_abs_logit_diff")
PARITY_KEYS += ("images", "verdict", "skipped", "failed")


def export_row(c) -> dict:
    """One artifact of `zoo export --json`: how it was made, where it is, and how its check went."""
    a = c.artifact
    return {
        "format": c.target,
        "status": c.exported.status,  # built, reused or failed
        "check": c.status,  # the status of serve.checked_export.MARKS
        "path": str(a.path) if a else None,
        "file": str(a.file) if a else None,
        "size_mb": round(a.card["size_bytes"] / 1e6, 3) if a else None,
        "parity": {k: c.parity[k] for k in PARITY_KEYS if k in c.parity},
        "message": c.exported.message,
        "ok": c.ok,
    }


def show_export(title: str, checked: list) -> None:
    from zoo.serve.checked_export import LEGEND  # the CLI loads the work's modules when a command runs

    def pct(key: str, unit: str = "") -> Callable[[dict], str]:
        return lambda p: f"{p[key]:.2f}{unit}" if key in p else "-"

    top1, agreement = pct("top1"), pct("top1_agreement", "%")
    table(
        title,
        ["format", "status", "size MB", "top-1", "agreement", ""],
        [
            [
                c.target,
                c.exported.status,
                f"{c.artifact.card['size_bytes'] / 1e6:.2f}" if c.artifact else "-",
                top1(c.parity),
                agreement(c.parity),
                c.mark,
            ]
            for c in checked
        ],
    )
    typer.echo(LEGEND)
    parity_footnote([c.parity for c in checked])
    for c in checked:
        ranges = c.artifact.card.get("ranges", "measured") if c.artifact else "measured"
        if ranges != "measured":
            typer.echo(
                f"note: {c.target}: activation ranges {ranges}; pass --calib-data DIR "
                "to keep out-of-range nodes in FP32 by measurement.",
                err=True,
            )


def exit_if_failed(checked: list, quiet: bool = False) -> None:
    """Exit 1, each failure named in one sentence, when any target failed or missed its parity bar."""
    failed = [c for c in checked if not c.ok]
    for c in [] if quiet else failed:
        typer.echo(f"error: {c.target}: {c.reason()}", err=True)
    if failed:
        raise typer.Exit(1)


def parity_footnote(results) -> None:
    """Which images and which statistics a table of verdicts rests on."""
    measured = [r for r in results if "images" in r]
    if measured:
        from zoo.serve.parity import METHOD

        typer.echo(f"parity on {measured[0]['images']} labelled images ({measured[0]['data']}); {METHOD}.")


PARITY_COLUMNS = ["artifact", "images", "top-1 agr.", "top-5 agr.", "top-5 overlap", "top-1", "original"]
PARITY_COLUMNS += ["max |Δlogit|", ""]


def parity_cells(name: str, r: dict, mark: str) -> list[str]:
    if "verdict" not in r:
        return [name, *["-"] * 7, r.get("skipped") or r.get("failed", "")]
    pct = [f"{r[k]:.2f}%" for k in ("top1_agreement", "top5_agreement", "top5_overlap")]
    return [name, r["images"], *pct, f"{r['top1']:.2f}", f"{r['reference_top1']:.2f}"] + [
        f"{r['max_abs_logit_diff']:.4f}",
        mark,
    ]
