"""`zoo`: the command line. The one module that knows zoo, export and serve; it imports them lazily so
that `zoo --help` and `zoo list` answer without importing torch."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from zoo.cli_output import (
    PARITY_COLUMNS,
    exit_if_failed,
    export_row,
    parity_cells,
    parity_footnote,
    rich_console,
    say_trained,
    show_export,
    table,
)
from zoo.errors import ZooError

app = typer.Typer(
    help="resnet-zoo: the ResNets of He et al. 2015, exported through ONNX to TensorRT, with parity checks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich help formatting alone costs ~0.15 s of start-up
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


def _data_root(data: str | None) -> str | None:
    """--data, checked to exist here, once; None leaves the choice to $ZOO_DATA deeper down."""
    from zoo.paths import data_dir

    return str(data_dir(data)) if data else None


DataOpt = Annotated[str | None, typer.Option(help="Dataset root (default: $ZOO_DATA).")]
ArtifactsOpt = Annotated[Path, typer.Option(help="Artifacts folder; each artifact is OUT/TAG/FORMAT/.")]
ParityImagesOpt = Annotated[
    int | None, typer.Option(help="Labelled test images for the parity check (default: all; 0: skip).")
]


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
    rich_console.Console().print("\n".join(lines), highlight=False)


@command("doctor")
def doctor_cmd(as_json: JsonOpt = False) -> None:
    """Versions, devices, which runtimes work here, and where data and caches are."""
    from zoo.doctor import diagnose

    report = diagnose()
    if as_json:
        return emit_json(report)
    n = report["cpu_numerics"]
    int8 = {"vnni": "exact int32 dot products (VNNI)", "no-vnni": "u8s8 pairs that saturate (no VNNI)"}
    table(
        "machine",
        ["what", "here"],
        [
            ["CPU", f"{report['cpu']} ({report['cpu_count']} cores)"],
            ["features that change numerics", ", ".join(n["features"]) or "none of them"],
            ["int8 kernels", int8[n["int8_class"]]],
            ["bf16", "yes (OpenVINO computes in bf16)" if n["bf16_class"] == "bf16" else "no (fp32)"],
            ["Python", report["python"]],
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
    """Import a checkpoint, such as a torchvision .pth, as safetensors with a manifest entry."""
    from zoo.checkpoints import import_checkpoint

    spec = import_checkpoint(
        checkpoint, name, dataset=dataset, labels=labels, preprocess=preprocess, out_dir=out_dir
    )
    if as_json:
        return emit_json(spec.to_dict())
    typer.echo(f"imported {spec.name}: {spec.file} (sha256 {spec.sha256})")


@command("train")
def train_cmd(
    arch: Annotated[str, typer.Argument(help="Architecture to train, e.g. resnet20.")],
    data: DataOpt = None,
    recipe: Annotated[
        str,
        typer.Option(help="Recipe name (cifar_budget, cifar_zoo, cifar_paper, imagenet_paper) or TOML file."),
    ] = "cifar_budget",
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's length.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the recipe's batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Override the recipe's peak learning rate.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default: runs/ARCH-RECIPE).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    amp: Annotated[
        str, typer.Option(help="auto (bf16 on CUDA, fp16 where it has none), bf16, fp16 (GPUs) or fp32.")
    ] = "auto",
    train_limit: Annotated[int | None, typer.Option(help="Use only the first N training images.")] = None,
    test_limit: Annotated[int | None, typer.Option(help="Evaluate on only the first N test images.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N steps (resume later).")] = None,
    publish: Annotated[
        str | None, typer.Option(help="Add the result as this ARCH.TAG to a manifest.")
    ] = None,
    weights_dir: Annotated[
        Path | None, typer.Option(help="Manifest folder for --publish (default: $ZOO_CACHE/weights).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train an architecture with a recipe; checkpoints every epoch, metrics in JSON Lines."""
    from zoo.recipe import load_recipe
    from zoo.train import TrainConfig, train

    r = load_recipe(recipe).for_arch(arch).with_overrides(epochs, batch_size, lr)
    out = out or Path("runs") / f"{arch}-{r.name}"
    cfg = TrainConfig(
        arch,
        data,
        r,
        out,
        device=device,
        resume=resume,
        compile=compile,
        amp=amp,
        train_limit=train_limit,
        test_limit=test_limit,
        max_steps=max_steps,
        progress=not as_json,
    )
    summary = train(cfg)
    if publish and summary:
        from zoo.publish import publish_run

        summary["published"] = publish_run(out, publish, weights_dir, _data_root(data)).name
    if as_json:
        return emit_json({k: v for k, v in summary.items() if k != "recipe_doc"})
    say_trained(arch, out, summary)


@command("publish")
def publish_cmd(
    run: Annotated[Path, typer.Argument(help="A finished `zoo train` run folder.")],
    name: Annotated[str, typer.Argument(help="The ARCH.TAG to publish it as.")],
    weights_dir: Annotated[
        Path | None, typer.Option(help="Manifest folder (default: $ZOO_CACHE/weights).")
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Dataset root for the evaluation (default: $ZOO_DATA).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ship a finished run as a pretrained tag: metrics measured by `zoo eval` (single crop and flip)."""
    from zoo.publish import publish_run

    spec = publish_run(run, name, weights_dir, _data_root(data))
    if as_json:
        return emit_json(spec.to_dict())
    m = spec.metrics
    typer.echo(
        f"published {spec.name}: top-1 {m['top1']:.2f}% (flip {m.get('top1_flip', float('nan')):.2f}%) -> {spec.file}"
    )


@command("bench-train")
def bench_train_cmd(
    archs: Annotated[str, typer.Option(help="Comma-separated CIFAR architectures.")] = "resnet20,resnet56",
    settings: Annotated[
        str | None, typer.Option(help="Comma-separated settings (default: all of zoo.train_bench.SETTINGS).")
    ] = None,
    seconds: Annotated[float, typer.Option(help="Timed seconds per setting.")] = 15.0,
    data: Annotated[str | None, typer.Option(help="Dataset root (default: $ZOO_DATA).")] = None,
    out: Annotated[Path, typer.Option(help="Where bench-train.json goes.")] = Path("bench"),
    as_json: JsonOpt = False,
) -> None:
    """Training throughput here: img/s per architecture and setting, and where an epoch's time goes."""
    from zoo import registry
    from zoo.files import atomic_path
    from zoo.train_bench import SETTINGS, bench_train

    names = [a.strip() for a in archs.split(",") if a.strip()]
    for a in names:
        arch, _ = registry.resolve(a)
        if registry.archs()[arch]["family"] != "cifar":
            raise ZooError(f"{a} is not a CIFAR architecture; bench-train measures CIFAR-10 training.")
    chosen = [s.strip() for s in settings.split(",")] if settings else list(SETTINGS)
    unknown = [s for s in chosen if s not in SETTINGS]
    if unknown:
        raise ZooError(f"unknown setting {unknown[0]!r}; choose from {', '.join(SETTINGS)}.")
    if not seconds > 0:
        raise ZooError(f"--seconds must be positive, not {seconds}.")
    report = bench_train(names, chosen, seconds, data)
    with atomic_path(out / "bench-train.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
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


@command("teacher-table")
def teacher_table_cmd(
    recipe: Annotated[
        str, typer.Option(help="The recipe whose [distill] teacher and augmentation it serves.")
    ],
    arch: Annotated[
        str, typer.Option(help="The student (the recipe's per-architecture sections).")
    ] = "resnet20",
    data: DataOpt = None,
    train_limit: Annotated[
        int | None, typer.Option(help="Only the first N training images (as `zoo train --train-limit`).")
    ] = None,
    stop_after: Annotated[
        int | None, typer.Option(help="Stop after N images (continue later by running it again).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute the teacher's logits for every augmented view of every training image, once, for every
    student of the recipe: resumable, checked against the teacher's weights, the augmentation and the split."""
    from zoo.data import find_dataset
    from zoo.recipe import load_recipe
    from zoo.teacher import Teacher, build_table

    r = load_recipe(recipe).for_arch(arch)
    if not r.distill.teacher:
        raise ZooError(f'recipe {r.name} names no teacher: add [distill] teacher = ["resnet56.cifar10"].')
    train = find_dataset(r.dataset, _data_root(data), "train")  # the training split only, never the test
    if not hasattr(train, "images"):
        raise ZooError(f"a teacher table covers the CIFAR augmentation; {r.dataset} has none.")
    log = (lambda _m: None) if as_json else (lambda m: typer.echo(m, err=True))
    folder = build_table(
        Teacher(list(r.distill.teacher)),
        train.images[:train_limit],
        train.labels[:train_limit],
        int(r.augment.pad),
        bool(r.augment.hflip),
        log=log,
        stop_after=stop_after,
    )
    meta = json.loads((folder / "table.json").read_text())
    if as_json:
        return emit_json({"folder": str(folder), **meta})
    state = "complete" if meta.get("complete") else f"{meta['done']} of {meta['key']['images']} images"
    typer.echo(
        f"teacher table {folder}: {state}" + (f", sha256 {meta['sha256']}" if meta.get("sha256") else "")
    )


@command("runs")
def runs_cmd(
    root: Annotated[Path, typer.Argument(help="Folder holding run folders (searched recursively).")] = Path(
        "runs"
    ),
    as_json: JsonOpt = False,
) -> None:
    """Every training run under ROOT: what it trains, epochs done of planned, its last test top-1, and the
    command that continues it."""
    from zoo import runs

    states = runs.find(root)
    if as_json:
        return emit_json(states)
    if not states:
        raise ZooError(f"no training runs under {root}.")
    typer.echo(runs.markdown(states), nl=False)


@command("table6")
def table6_cmd(as_json: JsonOpt = False) -> None:
    """The paper's Table 6 regenerated: its CIFAR-10 errors beside the reference checkpoints' and the zoo's."""
    from zoo.table6 import markdown, rows

    rows_ = rows()
    if as_json:
        return emit_json(rows_)
    typer.echo(markdown(rows_), nl=False)


@command("degradation")
def degradation_cmd(
    data: Annotated[str | None, typer.Option(help="Dataset root (default: $ZOO_DATA).")] = None,
    depths: Annotated[str, typer.Option(help="Two depths, e.g. 20,56.")] = "20,56",
    recipe: Annotated[
        str, typer.Option(help="Recipe name or TOML file, the same for all four runs.")
    ] = "cifar_paper",
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's length.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the four runs, degradation.json and .png.")] = Path(
        "runs/degradation"
    ),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda ...")] = "auto",
    amp: Annotated[
        str, typer.Option(help="auto (bf16 on CUDA, fp16 where it has none), bf16, fp16 (GPUs) or fp32.")
    ] = "auto",
    train_limit: Annotated[int | None, typer.Option(help="Use only the first N training images.")] = None,
    test_limit: Annotated[int | None, typer.Option(help="Evaluate on only the first N test images.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the recipe's batch size.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The paper's degradation experiment: plain vs residual nets at two depths, Figure 6's curves."""
    from zoo.degradation import degradation, table
    from zoo.recipe import load_recipe

    try:
        a, b = (int(d) for d in depths.split(","))
    except ValueError:
        raise ZooError(f"--depths {depths!r} must be two depths, e.g. 20,56.") from None
    r = load_recipe(recipe).general().with_overrides(epochs, batch_size)  # the same recipe for all four
    result = degradation(
        (a, b),
        r,
        data,
        out,
        device=device,
        amp=amp,
        train_limit=train_limit,
        test_limit=test_limit,
        progress=not as_json,
    )
    if as_json:
        return emit_json({k: {"test_top1": v["test_top1"]} for k, v in result["runs"].items()})
    typer.echo(table(result), nl=False)
    typer.echo(f"wrote {out / 'degradation.json'} and {out / 'degradation.png'}")


@command("eval")
def eval_cmd(
    models: Annotated[
        list[str], typer.Argument(help="Tags, run folders or checkpoints; several = an ensemble.")
    ],
    data: Annotated[str | None, typer.Option(help="Dataset root (default: $ZOO_DATA).")] = None,
    split: Annotated[str, typer.Option(help="test, train, val ...")] = "test",
    protocol: Annotated[str, typer.Option(help="single, flip, 10crop or multiscale.")] = "single",
    limit: Annotated[int | None, typer.Option(help="Only the first N images.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Top-1/top-5 accuracy on a labelled dataset, with the paper's test protocols and ensembles."""
    from zoo.evaluate import evaluate

    result = evaluate(models, data, split, protocol, limit)
    if as_json:
        return emit_json(result)
    typer.echo(
        f"{' + '.join(result['models'])} [{protocol}] on {result['n']} {split} images: "
        f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%"
    )


def _export_formats(format: str | None, trt: str | None) -> list[str]:
    """--format and --trt: what to build, parents first (ONNX alone when neither is given)."""
    from export.formats import TRT_PRESET, plan

    formats = [f.strip() for f in format.split(",") if f.strip()] if format else []
    if trt:
        if trt not in TRT_PRESET:
            raise ZooError(f"--trt must be fp32, fp16 or int8, not {trt!r}.")
        formats.append(TRT_PRESET[trt])
    return plan(formats or ["onnx"])


def _formats() -> list[str]:
    from export.formats import FORMATS

    return list(FORMATS)


def _targets() -> list[str]:
    from serve.targets import TARGETS

    return list(TARGETS)


@command("export")
def export_cmd(
    model: Annotated[str, typer.Argument(help="A pretrained tag or arch (its default tag).")],
    format: Annotated[
        str | None, typer.Option("--format", "-f", help=f"Comma-separated: {', '.join(_formats())}.")
    ] = None,
    trt: Annotated[
        str | None,
        typer.Option(help="fp32, fp16 or int8: the ONNX graph of that precision, its engine, and parity."),
    ] = None,
    batch: Annotated[
        str, typer.Option(help="Dynamic batch range MIN:OPT:MAX (the engine profile).")
    ] = "1:8:64",
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 20,
    calib_data: Annotated[
        str | None,
        typer.Option(help="Calibration images (default: the model's own dataset under --data)."),
    ] = None,
    calib_size: Annotated[int, typer.Option(help="Number of calibration images.")] = 512,
    calib_method: Annotated[str, typer.Option(help="entropy, percentile or minmax.")] = "entropy",
    parity_images: ParityImagesOpt = None,
    device: Annotated[str, typer.Option(help="Device of a pt2 package: cpu or cuda.")] = "cpu",
    out: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a pretrained model to ONNX, FP16/INT8 ONNX, TensorRT engines or AOTInductor, with parity."""
    from export.pipeline import ExportOptions
    from export.tensorrt import parse_profile
    from serve.checked_export import export_and_check

    data = _data_root(data)
    formats = _export_formats(format, trt)
    options = ExportOptions(
        formats=formats,
        out=out,
        batch=parse_profile(batch),
        opset=opset,
        calib_data=calib_data,
        calib_size=calib_size,
        calib_method=calib_method,
        device=device,
        data=data,
    )
    # with no data root at all, the calibration folder's labelled test split is the parity set
    parity_data = calib_data if calib_data and not data and not os.environ.get("ZOO_DATA") else None
    log = (lambda _m: None) if as_json else (lambda m: typer.echo(m, err=True))
    checked = export_and_check(
        model, formats, options, parity_images=parity_images, parity_data=parity_data, log=log
    )
    if as_json:
        emit_json([export_row(c) for c in checked])
    else:
        show_export(f"zoo export {model} -> {out}", checked)
        if model.endswith(".untrained"):
            typer.echo(
                "note: untrained weights: agreement says how closely the artifacts follow them; "
                "their accuracy means nothing.",
                err=True,
            )
    exit_if_failed(checked, quiet=as_json)


BackendOpt = Annotated[
    str | None,
    typer.Option(help="Run ONNX artifacts with openvino, or ONNX Runtime's cuda or tensorrt provider."),
]
AllowOpt = Annotated[
    bool,
    typer.Option(
        "--allow-unverified",
        help="Use artifacts whose last parity check failed or that were never checked (with a warning).",
    ),
]


def _admit(directory: Path, backend: str | None, allow: bool) -> None:
    """The verdict policy (serve/verdicts.py): refuse in one sentence, or print its warnings on stderr."""
    from serve.verdicts import admit

    for line in admit(directory, backend, allow):
        typer.echo(line, err=True)


@command("predict")
def predict_cmd(
    images: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.")],
    model: Annotated[str | None, typer.Option(help="A pretrained tag (PyTorch eager).")] = None,
    artifact: Annotated[Path | None, typer.Option(help="An artifact directory from `zoo export`.")] = None,
    topk: Annotated[int, typer.Option(help="How many labels per image.")] = 5,
    backend: BackendOpt = None,
    allow_unverified: AllowOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Classify images with a model or an exported artifact, through its own preprocessing. An artifact
    runs only if its last parity check passed (see `zoo parity`), unless --allow-unverified."""
    from serve.predict import predict
    from serve.runtimes import open_runtime, require_backend

    if (model is None) == (artifact is None):
        raise ZooError("give exactly one of --model NAME or --artifact DIR.")
    if artifact is not None:
        require_backend(backend)  # a backend this machine lacks is said before the verdict is read
        _admit(artifact, backend, allow_unverified)
    with open_runtime(artifact or model, backend=backend) as rt:
        results = predict(rt, images, topk)
    if as_json:
        emit_json(results)
    else:
        for r in results:
            if "error" in r:
                typer.echo(f"{r['image']}: error: {r['error']}", err=True)
            else:
                typer.echo(
                    f"{r['image']}: " + ", ".join(f"{t['label']} {100 * t['prob']:.1f}%" for t in r["top"])
                )
    bad = [r for r in results if "error" in r]
    if bad:
        if not as_json:
            typer.echo(
                f"error: {len(bad)} of {len(results)} images could not be classified (named above).", err=True
            )
        raise typer.Exit(1)


def _bar(precision: str, key: str) -> str:
    from serve.bars import BARS

    what = (
        "Minimum top-1 agreement (%)" if key == "top1_agreement" else "Maximum top-1 accuracy drop (points)"
    )
    return f"{what} of {precision.upper()} artifacts (default {BARS[precision][key]})."


@command("parity")
def parity_cmd(
    model: Annotated[str, typer.Argument(help="The pretrained tag the artifacts were exported from.")],
    artifacts: Annotated[
        list[Path] | None, typer.Argument(help="Artifact directories (default: all under --out/TAG).")
    ] = None,
    out: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = None,
    limit: Annotated[
        int | None, typer.Option(help="Only the first N labelled images (default: all).")
    ] = None,
    fp32_bar: Annotated[float | None, typer.Option(help=_bar("fp32", "top1_agreement"))] = None,
    fp16_bar: Annotated[float | None, typer.Option(help=_bar("fp16", "top1_agreement"))] = None,
    int8_bar: Annotated[float | None, typer.Option(help=_bar("int8", "top1_agreement"))] = None,
    int8_max_drop: Annotated[float | None, typer.Option(help=_bar("int8", "accuracy_drop"))] = None,
    backend: BackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Top-1/top-5 agreement and accuracy of artifacts against their PyTorch original on real images.
    BF16 compute (OpenVINO's default on CPUs with it) is held to the FP16 bar."""
    from export.artifact import artifact_dirs
    from serve.checked_export import MARKS, status_of
    from serve.parity import bars_with, check_artifacts
    from serve.runtimes import check_backend
    from zoo import registry

    data = _data_root(data)
    check_backend(backend)  # before looking for artifacts
    _, spec = registry.resolve(model)
    if spec is None:
        raise ZooError(f"{model} has no pretrained weights, so there is no original to compare with.")
    dirs = artifacts or artifact_dirs(out / spec.name)
    if not dirs:
        raise ZooError(f"no artifacts of {spec.name} under {out}; run `zoo export {spec.name}` first.")
    bars = bars_with(fp32_bar=fp32_bar, fp16_bar=fp16_bar, int8_bar=int8_bar, int8_max_drop=int8_max_drop)
    results = check_artifacts(spec.name, dirs, data, limit, bars, backend)
    if as_json:
        emit_json(results)
    else:
        table(
            f"zoo parity {spec.name}",
            PARITY_COLUMNS,
            [parity_cells(Path(d).name, r, MARKS[status_of(r)]) for d, r in results.items()],
        )
        parity_footnote(results.values())
    # the exit code follows the bars asked for; the card keeps the verdict under the zoo's own bars
    judged = {d: r.get("verdict_given_bars") or r.get("verdict") for d, r in results.items()}
    failed = {d: r for d, r in results.items() if not (judged[d] or {}).get("passed", False)}
    for d, r in [] if as_json else results.items():
        given, own = r.get("verdict_given_bars"), r.get("verdict")
        if given and own and given["passed"] and not own["passed"]:
            typer.echo(
                f"note: {d} passes the bars you gave ({'; '.join(given['looser']) or 'custom'}) but not the "
                "zoo's own: its card stays failed, and predict, serve, triton and bench refuse it without "
                "--allow-unverified.",
                err=True,
            )
    for d, r in [] if as_json else failed.items():
        reason = "; ".join(judged[d]["failures"]) if judged[d] else r.get("skipped") or r.get("failed")
        typer.echo(f"error: {d}: {reason}", err=True)
    if failed:
        raise typer.Exit(1)


@command("bench")
def bench_cmd(
    model: Annotated[str, typer.Argument(help="A pretrained tag.")],
    formats: Annotated[
        str,
        typer.Option(help=f"Comma-separated: {', '.join(_targets())}; or all (every one this machine runs)."),
    ] = "pytorch,onnx,onnx-fp16,onnx-int8,onnx-int8-cpu",
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8,32",
    seconds: Annotated[float, typer.Option(help="Timed seconds per format and batch size.")] = 2.0,
    threads: Annotated[
        int | None, typer.Option(help="Threads for PyTorch and ONNX Runtime (default: all cores).")
    ] = None,
    parity_images: ParityImagesOpt = None,
    out: Annotated[Path, typer.Option(help="Where the JSON, CSV and PNG go.")] = Path("bench"),
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = None,
    repeats: Annotated[
        int, typer.Option(help="Fresh processes per format, taken in turns; figures are their medians.")
    ] = 3,
    untrained: Annotated[
        bool,
        typer.Option(help="Time the architecture with seeded random weights (for models not trained here)."),
    ] = False,
    device: Annotated[
        str,
        typer.Option(
            help="Where the PyTorch baselines (and a pt2 it builds) run: auto (where the targets run), cpu, cuda."
        ),
    ] = "auto",
    allow_unverified: Annotated[
        bool,
        typer.Option(
            "--allow-unverified",
            help="Also time artifacts that failed their parity check or were never checked (marked).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Latency (p50/p90/p99) and throughput per format and batch size, model-only and end-to-end.
    Each format runs in fresh processes, in turns with the others; the figures are medians over them."""
    from serve.bench import SUMMARY_COLUMNS, BenchOptions, bench, summary_cells
    from serve.checked_export import MARKS
    from serve.targets import runnable_here

    wanted = runnable_here() if formats == "all" else [f.strip() for f in formats.split(",") if f.strip()]
    options = BenchOptions(
        formats=wanted,
        batches=_batch_sizes(batch, repeats),
        seconds=seconds,
        threads=threads,
        parity_images=parity_images,
        repeats=repeats,
        untrained=untrained,
        out=out,
        artifacts=artifacts,
        device=device,
        data=_data_root(data),
        allow_unverified=allow_unverified,
    )
    report = bench(model, options, (lambda _m: None) if as_json else (lambda m: typer.echo(m, err=True)))
    if as_json:
        return emit_json(report)
    table(
        f"zoo bench {report['model']} on {report['hardware']['cpu']}",
        SUMMARY_COLUMNS,
        [[c[0], f"{MARKS.get(c[1].split(' (')[0], '·')} {c[1]}", *c[2:]] for c in summary_cells(report)],
    )
    if report["fastest"]:
        from serve.bench import fastest_sentence

        typer.echo(fastest_sentence(report["fastest"]))
    typer.echo(f"wrote {out}/bench-{report['model']}.json, .csv, .md and .png")
    if report["untrained"]:
        typer.echo("note: untrained weights: the timings hold, accuracy and agreement mean little.", err=True)
    for e in report["summary"]:
        if e["status"] == "failed" or e.get("refused") or e.get("warning"):
            typer.echo(f"note: {e['format']}: {e.get('message') or e.get('warning')}", err=True)


def _batch_sizes(batch: str, repeats: int) -> list[int]:
    try:
        batches = [int(b) for b in batch.split(",")]
    except ValueError:
        raise ZooError(f"--batch {batch!r} is not a comma-separated list of integers.") from None
    if repeats < 1 or any(b < 1 for b in batches):
        raise ZooError("--repeats and every --batch size must be at least 1.")
    return batches


@command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (the Triton server's HTTP port with --triton).")] = 7860,
    share: Annotated[bool, typer.Option(help="Ask Gradio for a public share link.")] = False,
    model: Annotated[
        list[str] | None, typer.Option(help="Tags to offer (repeatable; default: the local ones).")
    ] = None,
    artifacts: Annotated[Path, typer.Option(help="Artifacts folder to pick from.")] = Path("artifacts"),
    triton: Annotated[
        Path | None, typer.Option(help="Serve this model repository (from `zoo triton`) with Triton instead.")
    ] = None,
    allow_unverified: AllowOpt = False,
) -> None:
    """Start the web demo (an artifact's top-5 next to its PyTorch original's), or with --triton a Triton
    Inference Server on loopback for a repository written by `zoo triton`."""
    if triton is not None:
        from serve.tritonserver import serve_until_interrupted

        return serve_until_interrupted(triton, port, typer.echo)
    from serve.demo import build_demo  # Gradio, when it is missing, is one sentence where first used

    build_demo(model, artifacts, allow_unverified=allow_unverified).launch(
        server_name=host, server_port=port, share=share
    )


TritonFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help="The artifact to serve: onnx, onnx-fp16, onnx-int8(-cpu), trt-* (default: onnx-int8-cpu on "
        "the CPU, onnx-fp16 on a GPU).",
    ),
]
TRITON_DEFAULT = {"cpu": "onnx-int8-cpu", "gpu": "onnx-fp16"}  # the default artifact per --device


@command("triton")
def triton_cmd(
    model: Annotated[str, typer.Argument(help="A pretrained tag or arch (its default tag).")],
    format: TritonFormatOpt = None,
    repo: Annotated[Path, typer.Option(help="The model repository to write into.")] = Path("triton"),
    device: Annotated[
        str,
        typer.Option(
            help="cpu: a Python-backend classifier over ONNX Runtime (what runs here); gpu: "
            "Triton's onnxruntime_onnx or tensorrt_plan backend."
        ),
    ] = "cpu",
    dynamic_batching: Annotated[bool, typer.Option(help="Let Triton batch concurrent requests.")] = True,
    out: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = None,
    allow_unverified: AllowOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a Triton Inference Server model repository for an artifact (exported first if missing):
    the classifier, and an ensemble that takes encoded image bytes and returns labelled probabilities."""
    from export.formats import get
    from serve.triton import check_servable, write_repository

    format = format or TRITON_DEFAULT.get(device, "onnx-int8-cpu")
    check_servable(format, get(format).file, device)  # before exporting anything
    artifact = _exported(model, format, out, data, allow_unverified, quiet=as_json)
    written = write_repository(artifact, repo, device, dynamic_batching)
    if as_json:
        return emit_json(written)
    typer.echo(f"wrote {len(written['models'])} models into {repo}: {', '.join(written['models'])}")
    typer.echo(
        f"serve them with `zoo serve --triton {repo}`; call {written['ensemble']} with image bytes (UINT8)."
    )


def _exported(model: str, fmt: str, out: Path, data: str | None, allow: bool, quiet: bool = False) -> Path:
    """The artifact of `fmt` for `model`: the one under OUT/TAG/FMT as it is (whatever options it was
    exported with), else exported and checked as `zoo export` does; then admitted by its verdict."""
    from export.pipeline import ExportOptions
    from serve.checked_export import export_and_check

    log = (lambda _m: None) if quiet else (lambda m: typer.echo(m, err=True))
    options = ExportOptions(formats=[fmt], out=out, data=_data_root(data), use_existing=True)
    done = export_and_check(model, [fmt], options, log=log, recheck=False)[-1]
    if done.artifact is None:
        raise ZooError(f"{fmt} could not be exported: {done.message}")
    _admit(done.artifact.path, None, allow)
    return done.artifact.path


@command("bench-triton")
def bench_triton_cmd(
    model: Annotated[str, typer.Argument(help="A pretrained tag.")],
    format: TritonFormatOpt = None,
    clients: Annotated[int, typer.Option(help="Concurrent clients.")] = 8,
    requests: Annotated[int, typer.Option(help="Requests per client.")] = 50,
    out: Annotated[Path, typer.Option(help="Where the JSON and Markdown go.")] = Path("bench"),
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = None,
    allow_unverified: AllowOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Load-test an artifact served by a real Triton server on loopback (the CPU flavour), with dynamic
    batching on and off: failures, p50/p95/p99 latency and requests/s of image bytes in, top-5 out."""
    from serve.bench import encoded_images
    from serve.triton_bench import bench_triton
    from zoo import registry
    from zoo.data import find_dataset

    artifact = _exported(
        model, format or TRITON_DEFAULT["cpu"], artifacts, data, allow_unverified, quiet=as_json
    )
    spec = registry.resolve(model)[1]
    images = encoded_images(find_dataset(spec.dataset, _data_root(data), "test"), 64)
    log = (lambda _m: None) if as_json else (lambda m: typer.echo(m, err=True))
    report = bench_triton(artifact, images, out, clients, requests, log)
    if as_json:
        return emit_json(report)
    from serve.triton_bench import markdown

    typer.echo(markdown(report), nl=False)
    typer.echo(f"wrote {out}/triton-{report['ensemble']}.json and .md")
    failed = sum(r["failures"] for r in report["runs"].values())
    if failed:
        first = next(r["first_failure"] for r in report["runs"].values() if r["failures"])
        raise ZooError(f"{failed} requests failed under load; the first: {first}")


def main() -> None:
    try:
        app()
    except ZooError as e:  # raised outside a command (e.g. while parsing)
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
