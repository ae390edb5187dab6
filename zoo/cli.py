"""`zoo`: the command line. The one module that knows zoo, export and serve; it imports them lazily so
that `zoo --help` and `zoo list` answer without importing torch."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from zoo.errors import ZooError

app = typer.Typer(
    help="resnet-zoo: the ResNets of He et al. 2015, exported through ONNX to TensorRT, with parity checks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document and nothing else.")]


def command(*args: Any, **kwargs: Any) -> Callable:
    """app.command, with a user's mistake (ZooError) shown as one sentence and exit code 1."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*a: Any, **k: Any) -> Any:
            try:
                return fn(*a, **k)
            except ZooError as e:
                typer.echo(f"error: {e}", err=True)
                raise typer.Exit(1) from None

        return app.command(*args, **kwargs)(run)

    return wrap


def emit_json(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2, default=str))


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        table.add_column(
            c, justify="left" if i == 0 else "right" if c in ("params", "GMACs", "top-1") else "left"
        )
    for r in rows:
        table.add_row(*r)
    Console().print(table)


@command("list")
def list_cmd(
    pattern: Annotated[str, typer.Argument(help="Shell-style pattern, e.g. 'resnet*' or '*.cifar10'.")] = "*",
    pretrained: Annotated[
        bool, typer.Option("--pretrained", "-p", help="List pretrained arch.tag names.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the architectures (or pretrained tags) with their size, cost and accuracy."""
    from zoo import registry

    names = registry.list_models(pattern, pretrained=pretrained)
    if pretrained and "." not in pattern and not names:
        names = registry.list_models(pattern + ".*", pretrained=True)
    rows = []
    for name in names:
        arch, spec = registry.resolve(name)
        a = registry.archs()[arch]
        rows.append(
            {
                "name": name,
                "family": a["family"],
                "params": a["params"],
                "gmacs": a["gmacs"],
                "dataset": spec.dataset if spec else None,
                "top1": spec.metrics.get("top1") if spec else None,
                "tag": spec.name if spec else None,
            }
        )
    if as_json:
        return emit_json(rows)
    if not rows:
        raise ZooError(f"no model matches {pattern!r}; try `zoo list` for all of them.")
    _table(
        "resnet-zoo" + (" — pretrained tags" if pretrained else ""),
        ["name", "family", "params", "GMACs", "dataset", "top-1", "default tag"],
        [
            [
                r["name"],
                r["family"],
                f"{r['params'] / 1e6:.2f}M",
                f"{r['gmacs']:.2f}",
                r["dataset"] or "-",
                f"{r['top1']:.2f}" if r["top1"] is not None else "-",
                r["tag"].split(".", 1)[1] if r["tag"] else "-",
            ]
            for r in rows
        ],
    )


@command("info")
def info_cmd(
    name: Annotated[str, typer.Argument(help="An architecture or arch.tag.")], as_json: JsonOpt = False
) -> None:
    """Describe an architecture or pretrained tag: structure, cost, weights, preprocessing, metrics."""
    from zoo import registry

    info = registry.describe(name)
    if as_json:
        return emit_json(info)
    w = info["weights"]
    lines = [
        f"[bold]{info['name']}[/bold]  {info['family']} {'ResNet' if info['residual'] else 'plain net'}, "
        f"{info['block']} blocks {info['layers']}, shortcut option {info['shortcut']}",
        f"params {info['params']:,}   multiply-adds {info['gmacs']:.3f} G at {info['input_size']}x{info['input_size']}",
        f"tags: {', '.join(info['tags']) or 'none yet'}",
    ]
    if w:
        p = w["preprocess"]
        m = w["metrics"]
        lines += [
            f"weights: {w['file'] or w['url']}  (sha256 {w['sha256'] or w['sha256_prefix'] + '…'})",
            f"dataset: {w['dataset']} ({w['num_classes']} classes)",
            f"preprocess: resize {p['resize']} → crop {p['crop']}, {p['interpolation']}"
            f"{'' if p['antialias'] else ' (no antialias)'}, mean {p['mean']}, std {p['std']}",
        ]
        if m:
            lines.append(
                f"metrics: top-1 {m.get('top1')}, top-5 {m.get('top5')} on {m.get('split')} ({m.get('source', '')})"
            )
        lines += [f"recipe: {w['recipe']}", f"command: {w['command']}"]
    from rich.console import Console

    Console().print("\n".join(lines), highlight=False)


@command("doctor")
def doctor_cmd(as_json: JsonOpt = False) -> None:
    """Versions, devices, which runtimes work here, and where data and caches are."""
    from zoo.doctor import diagnose

    report = diagnose()
    if as_json:
        return emit_json(report)
    _table(
        "versions", ["package", "version"], [[k, v or "not installed"] for k, v in report["versions"].items()]
    )
    _table(
        "backends",
        ["backend", "usable", "detail"],
        [[b["name"], "yes" if b["usable"] else "no", b["detail"]] for b in report["backends"]],
    )
    _table("places", ["what", "where"], [[k, str(v)] for k, v in report["paths"].items()])


@command("import-weights")
def import_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="A .pth/.pt state dict or .safetensors file.")],
    name: Annotated[str, typer.Argument(help="The new tag, ARCH.TAG, e.g. resnet50.mine.")],
    dataset: Annotated[
        str, typer.Option(help="What it was trained on: imagenet1k, cifar10, ...")
    ] = "imagenet1k",
    labels: Annotated[str | None, typer.Option(help="Label set (default: the dataset's).")] = None,
    preprocess: Annotated[
        str, typer.Option(help="Preprocessing preset of weights/manifest.toml.")
    ] = "imagenet_256",
    out_dir: Annotated[
        Path | None, typer.Option(help="Folder of the manifest to add it to (default: $ZOO_CACHE/weights).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a checkpoint (e.g. a torchvision .pth) as safetensors with a manifest entry."""
    from zoo.convert import import_checkpoint

    spec = import_checkpoint(
        checkpoint, name, dataset=dataset, labels=labels, preprocess=preprocess, out_dir=out_dir
    )
    if as_json:
        return emit_json(spec.to_dict())
    typer.echo(f"imported {spec.name}: {spec.file} (sha256 {spec.sha256})")


def main() -> None:
    try:
        app()
    except ZooError as e:  # raised outside a command (e.g. while parsing)
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
