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
        figures = i > 0 and _numeric(c)
        table.add_column(c, justify="right" if figures else "left", no_wrap=figures or i == 0)
    for r in rows:
        table.add_row(*r)
    rich_console.Console(width=None if sys.stdout.isatty() else 160).print(table)


def _numeric(column: str) -> bool:
    """Columns of figures: right-aligned so that their digits line up, and never wrapped."""
    words = ("params", "GMACs", "top-", "error", "img/s", "ms", "MB", "images", "paper", "reference", "zoo")
    words += ("original", "CI", "Δ", "agreement")
    return any(w in column for w in words) and "tag" not in column


def say_trained(arch: str, out: Path, summary: dict) -> None:
    """The end of `zoo train`: a DDP warning, how to continue a cut-short run, or the result."""
    if summary and summary.get("replica_max_abs_diff"):
        typer.echo(
            f"warning: the {summary['world_size']} processes ended with different weights "
            f"(max |difference| {summary['replica_max_abs_diff']:.3g}); this is not a valid DDP run.",
            err=True,
        )
    if summary and not summary["complete"]:
        from zoo.train.runs import state

        go_on = state(out)["continue_with"]
        how = f"`{go_on}`" if go_on else f"`zoo train {arch} --resume --out {out}` and the same options"
        unpublished = " (not published: a tag is made of a finished run)" if "published" in summary else ""
        typer.echo(
            f"{arch}: stopped after {summary['steps']} of {summary['total_steps']} steps{unpublished}; "
            f"continue with {how}."
        )
    elif summary:
        epochs = summary["epochs_done"]
        typer.echo(
            f"{arch}: top-1 {summary['top1']:.2f}% top-5 {summary['top5']:.2f}% after {epochs} "
            f"epoch{'s' if epochs != 1 else ''}, {summary['wall_s'] / 60:.1f} min; weights in "
            f"{out / 'weights.safetensors'}"
            + (f"; published as {summary['published']}" if summary.get("published") else "")
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
    """One row a format: how its artifact came to be (built, reused from an earlier export, or failed), its
    size, its accuracy and agreement with the original, and its verdict in a mark and words."""

    def pct(key: str, unit: str = "") -> Callable[[dict], str]:
        return lambda p: f"{p[key]:.2f}{unit}" if key in p else "-"

    top1, agreement = pct("top1"), pct("top1_agreement", "%")
    table(
        title,
        ["format", "export", "size MB", "top-1", "top-1 agreement", "verdict"],
        [
            [
                c.target,
                c.exported.status,
                f"{c.artifact.card['size_bytes'] / 1e6:.2f}" if c.artifact else "-",
                top1(c.parity),
                agreement(c.parity),
                c.verdict,
            ]
            for c in checked
        ],
    )
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


PARITY_COLUMNS = ["artifact", "images", "top-1 agr.", "95% CI", "top-5 agr.", "top-1", "original"]
PARITY_COLUMNS += ["Δ top-1", "95% CI", "max |Δlogit|", "verdict"]


def parity_cells(name: str, r: dict) -> list[str]:
    """A row of PARITY_COLUMNS: agreement with its Wilson interval, accuracy beside the original's, and the
    accuracy change with its paired interval (the statistics the verdict rests on)."""
    from zoo.serve.checked_export import MARKS, VERDICTS, status_of

    status = status_of(r)
    if "verdict" not in r:
        return [name, *["-"] * 9, f"{MARKS[status]} {r.get('skipped') or r.get('failed', '')}"]

    def interval(ci: list[float] | None, sign: str = "") -> str:
        return f"[{ci[0]:{sign}.2f}, {ci[1]:{sign}.2f}]" if ci else "-"

    change = r.get("top1_change") or {"change": r["top1"] - r["reference_top1"]}
    return [
        name,
        r["images"],
        f"{r['top1_agreement']:.2f}%",
        interval(r.get("top1_agreement_ci")),
        f"{r['top5_agreement']:.2f}%",
        f"{r['top1']:.2f}",
        f"{r['reference_top1']:.2f}",
        f"{change['change']:+.2f}",
        interval(change.get("ci"), "+"),
        f"{r['max_abs_logit_diff']:.4f}",
        f"{MARKS[status]} {VERDICTS[status]}",
    ]
