"""The commands about models and this machine: list, info, eval, import-weights, doctor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.app import command, emit_json
from zoo.cli.options import DataOpt, JsonOpt, examples
from zoo.cli.output import rich_console, table
from zoo.errors import ZooError


@command(
    "list",
    short_help="Architectures or pretrained tags: size, cost, accuracy.",
    epilog=examples("zoo list", "zoo list --pretrained '*.cifar10'"),
)
def list_cmd(
    pattern: Annotated[
        str, typer.Argument(metavar="PATTERN", help="Shell-style pattern, e.g. 'resnet*' or '*.cifar10'.")
    ] = "*",
    pretrained: Annotated[
        bool, typer.Option("--pretrained", "-p", help="List pretrained arch.tag names.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the architectures (or pretrained tags) with their size, cost and accuracy."""
    from zoo import api

    rows = api.catalog(pattern, pretrained)
    if as_json:
        return emit_json(rows)
    if not rows:
        raise ZooError(f"no model matches {pattern!r}; try `zoo list` for all of them.")
    table(
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
                r["default_tag"].split(".", 1)[1] if r["default_tag"] else "-",
            ]
            for r in rows
        ],
    )


@command(
    "info",
    short_help="One architecture or tag: structure, weights, metrics.",
    epilog=examples(
        "zoo info resnet50",
        "zoo info resnet20.cifar10 --json",
        "zoo info artifacts/resnet20.cifar10/onnx-int8-cpu   # an artifact: its card and verdict here",
    ),
)
def info_cmd(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="An architecture, ARCH.TAG, or an artifact folder.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Describe an architecture or pretrained tag (structure, cost, weights, preprocessing, metrics), or an
    artifact folder (format, source, calibration, and its parity verdict on this machine)."""
    from zoo import api

    info = api.describe(name)
    if as_json:
        return emit_json(info)
    if "card" in info:
        return rich_console.Console().print("\n".join(_artifact(info)), highlight=False, soft_wrap=True)
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
            f"here: {_where(api.weights(name))}",
            f"dataset: {w['dataset']} ({w['num_classes']} classes)",
            f"preprocess: resize {p['resize']} → crop {p['crop']}, {p['interpolation']}"
            f"{'' if p['antialias'] else ' (no antialias)'}, mean {p['mean']}, std {p['std']}",
        ]
        if m:
            flip = f" ({m['top1_flip']} with flip averaging)" if "top1_flip" in m else ""
            source = str(m.get("source", "")).replace("top1_flip: ", "")
            top5 = f", top-5 {m['top5']}" if m.get("top5") is not None else ""  # unpublished for some
            lines.append(f"metrics: top-1 {m.get('top1')}{flip}{top5} on {m.get('split')} ({source})")
        lines += [f"recipe: {w['recipe']}", f"command: {w['command']}"]
        if d := w.get("distillation"):
            lines.append(f"teacher: {_teacher(d)}")
    # soft_wrap: a long line (a URL, a path) stays one line, to copy or grep, wherever it is printed
    rich_console.Console().print("\n".join(lines), highlight=False, soft_wrap=True)


def _artifact(info: dict) -> list[str]:
    """An artifact folder in a few lines: what it is, what it came from, and its verdict here."""
    from zoo.serve.verdicts import MARKS, card_key

    c = info["card"]
    batch, shape = c.get("batch") or {}, (c.get("input") or {}).get("shape")
    lines = [
        f"[bold]{info['artifact']}[/bold]  {c['format']} ({c['precision']}), {c['file']} "
        f"{c.get('size_bytes', 0) / 1e6:.2f} MB (sha256 {c['sha256'][:8]}…), exported {c.get('created', '?')}",
        f"from: {c['source']} (weights sha256 {str(c.get('weights_sha256'))[:8]}…), {c.get('dataset')}"
        + (f", input {shape}" if shape else "")
        + (f", batch {batch['min']}:{batch['opt']}:{batch['max']}" if batch else "")
        + (f", opset {c['opset']}" if c.get("opset") else ""),
    ]
    if arithmetic := (c.get("int8") or {}).get("arithmetic"):
        lines.append(f"arithmetic: {arithmetic}")
    if cal := c.get("calibration"):
        lines.append(
            f"calibration: {cal.get('images', cal.get('size'))} images of {cal.get('source')}, {cal.get('method')}"
        )

    def kind(where: dict) -> str:  # the CPU class an int8 or bf16 verdict holds on
        cls = where.get(f"{c['precision']}_class")
        return f" ({cls})" if c["precision"] in ("int8", "bf16") and cls else ""

    for backend, s in info["standing"].items():
        r = c.get(card_key(None if backend == "own" else backend)) or {}
        on = "" if backend == "own" else f" with {backend}"
        line = f"parity{on}: {MARKS[s['status']]} {s['status']}" + (f": {s['reason']}" if s["reason"] else "")
        if "top1_agreement" in r:
            where = r.get("measured_on") or {}
            line += (
                f"; top-1 agreement {r['top1_agreement']:.2f}% on {r.get('images', 0):,} images of {r.get('data')}, "
                f"top-1 {r.get('top1', 0):.2f} (original {r.get('reference_top1', 0):.2f}), measured on "
                f"{where.get('cpu', '?')}{kind(where)}, {where.get('runtime', '?')} "
                f"{where.get('runtime_version', '')}".rstrip()
            )
        lines += [line] + ([f"note: {s['host_note']}"] if s["host_note"] else [])
    versions = ", ".join(f"{k} {v}" for k, v in (c.get("versions") or {}).items() if v)
    return lines + ([f"versions: {versions}"] if versions else [])


def _teacher(d: dict) -> str:
    """A distilled tag's teacher, its soft targets, and where they came from (a table, or online)."""
    soft = f"{' + '.join(d['teacher'])} (T {d['temperature']}, weight {d['weight']})"
    if not d.get("table"):
        return f"{soft}, run on each batch"
    return f"{soft}, logits from the table {d['table']} (sha256 {d['table_sha256']})"


def _where(spec) -> str:
    """Whether a tag's weights are on this machine: a file of a manifest, or a download already cached."""
    from zoo.utils.paths import cache_dir

    if spec.file is not None:
        return f"{spec.file} ({'present' if spec.file.is_file() else 'missing'})"
    cached = cache_dir() / "downloads" / spec.url.rsplit("/", 1)[-1]
    if cached.is_file():
        return f"downloaded to {cached}"
    return f"not downloaded yet: the first use fetches it into {cached.parent} and checks its hash"


@command(
    "eval",
    short_help="Top-1/top-5 accuracy on a labelled dataset.",
    epilog=examples(
        "zoo eval resnet20.cifar10 --protocol flip",
        "zoo eval resnet20.cifar10 resnet32.cifar10 resnet44.cifar10   # an ensemble",
        "zoo eval ~/zoo-runs/resnet20-cifar_budget --limit 1000",
    ),
)
def eval_cmd(
    models: Annotated[
        list[str],
        typer.Argument(metavar="MODELS", help="Tags, run folders or checkpoints; several = an ensemble."),
    ],
    data: DataOpt = None,
    split: Annotated[str, typer.Option(metavar="SPLIT", help="test, train, val ...")] = "test",
    protocol: Annotated[
        str, typer.Option(metavar="PROTOCOL", help="single, flip, 10crop or multiscale.")
    ] = "single",
    limit: Annotated[int | None, typer.Option(metavar="N", help="Only the first N images.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Top-1/top-5 accuracy on a labelled dataset, with the paper's test protocols and ensembles."""
    from zoo import api

    result = api.evaluate(models, data, split, protocol, limit)
    if as_json:
        return emit_json(result)
    typer.echo(
        f"{' + '.join(result['models'])} [{protocol}] on {result['n']} {split} images: "
        f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%"
    )


@command(
    "import-weights",
    short_help="Import a checkpoint (.pth, .safetensors) as a tag.",
    epilog=examples(
        "zoo import-weights resnet50-0676ba61.pth resnet50.mine",
        "zoo import-weights ckpt.th resnet20.theirs --dataset cifar10 --preprocess cifar_32",
    ),
)
def import_cmd(
    checkpoint: Annotated[
        Path, typer.Argument(metavar="CHECKPOINT", help="A .pth/.pt state dict or .safetensors file.")
    ],
    name: Annotated[str, typer.Argument(metavar="NAME", help="The new tag, ARCH.TAG, e.g. resnet50.mine.")],
    dataset: Annotated[
        str, typer.Option(metavar="DATASET", help="What it was trained on: imagenet1k, cifar10, ...")
    ] = "imagenet1k",
    labels: Annotated[
        str | None, typer.Option(metavar="LABELS", help="Label set (default: the dataset's).")
    ] = None,
    preprocess: Annotated[
        str, typer.Option(metavar="PRESET", help="Preprocessing preset of weights/manifest.toml.")
    ] = "imagenet_256",
    out_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR", help="Folder of the manifest to add it to (default: $ZOO_CACHE/weights)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a checkpoint, such as a torchvision .pth, as safetensors with a manifest entry."""
    from zoo import api

    spec = api.import_weights(checkpoint, name, dataset, labels, preprocess, out_dir)
    if as_json:
        return emit_json(spec.to_dict())
    typer.echo(f"imported {spec.name}: {spec.file} (sha256 {spec.sha256})")


@command(
    "doctor",
    short_help="This machine: versions, CPU class, working runtimes.",
    epilog=examples("zoo doctor", "zoo doctor --json > doctor.json"),
)
def doctor_cmd(as_json: JsonOpt = False) -> None:
    """Versions, devices, which runtimes work here, and where data and caches are."""
    from zoo import api

    report = api.doctor()
    if as_json:
        return emit_json(report)
    n = report["cpu_numerics"]
    int8 = {
        "vnni": "exact int32 dot products (VNNI): onnx-int8-cpu gets 8-bit weights",
        "no-vnni": "u8s8 pairs that saturate (no VNNI): onnx-int8-cpu gets 7-bit weights; onnx-int8 in a "
        "plain ONNX Runtime session may lose points (zoo parity TAG -f onnx-int8 --backend onnxruntime-fused)",
    }
    table(
        "machine",
        ["what", "here"],
        [
            ["CPU", f"{report['cpu']} ({report['cpu_count']} cores)"],
            ["features that change numerics", ", ".join(n["features"]) or "none of them"],
            ["int8 kernels", int8[n["int8_class"]]],
            ["bf16", "yes (OpenVINO computes in bf16)" if n["bf16_class"] == "bf16" else "no (fp32)"],
            ["Python", report["python"]],
            ["resnet-zoo", report["zoo_version"]],
        ],
    )
    table(
        "versions", ["package", "version"], [[k, v or "not installed"] for k, v in report["versions"].items()]
    )
    table(
        "backends",
        ["backend", "usable", "detail"],
        [[b["name"], "yes" if b["usable"] else "no", b["detail"]] for b in report["backends"]],
    )
    table("places", ["what", "where"], [[k, str(v)] for k, v in report["paths"].items()])
