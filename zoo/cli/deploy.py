"""The deployment commands: export, parity, predict, bench, serve, triton, bench-triton."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.app import command, emit_json, log_for, split_list
from zoo.cli.options import (
    AllowOpt,
    ArtifactsOpt,
    BackendOpt,
    DataOpt,
    JsonOpt,
    ModelArg,
    ParityImagesOpt,
    SecondsOpt,
    TagArg,
    TritonFormatOpt,
    examples,
    formats_option,
)
from zoo.cli.output import (
    PARITY_COLUMNS,
    exit_if_failed,
    export_row,
    parity_cells,
    parity_footnote,
    show_export,
    table,
)
from zoo.errors import ZooError


def _formats() -> list[str]:
    from zoo.export.formats import FORMATS

    return list(FORMATS)


def _targets() -> list[str]:
    from zoo.serve.targets import TARGETS

    return list(TARGETS)


@command(
    "export",
    short_help="Export to ONNX, FP16/INT8, TensorRT or .pt2, with parity.",
    epilog=examples(
        "zoo export resnet20.cifar10 -f onnx,onnx-int8-cpu     # checked on the CIFAR-10 test split",
        "zoo export resnet50 --trt fp16 --batch-range 1:16:128  # FP16 ONNX, its engine, parity",
        "zoo export resnet50 --trt int8 --calib-data /data/imagenet/train",
    ),
)
def export_cmd(
    model: ModelArg,
    formats: Annotated[
        str | None,
        formats_option(f"Comma-separated: {', '.join(_formats())} (default: onnx)."),
    ] = None,
    trt: Annotated[
        str | None,
        typer.Option(
            metavar="PRECISION",
            help="fp32, fp16 or int8: the ONNX graph of that precision, its engine, and parity.",
        ),
    ] = None,
    batch_range: Annotated[
        str,
        typer.Option(
            metavar="MIN:OPT:MAX",
            help="The batch sizes the artifacts accept: dynamic from MIN to MAX, engines tuned for OPT.",
        ),
    ] = "1:8:64",
    opset: Annotated[int, typer.Option(metavar="N", help="ONNX opset.")] = 20,
    calib_data: Annotated[
        str | None,
        typer.Option(
            metavar="DIR", help="Calibration images (default: the model's own dataset under --data)."
        ),
    ] = None,
    calib_size: Annotated[int, typer.Option(metavar="N", help="Number of calibration images.")] = 512,
    calib_method: Annotated[
        str, typer.Option(metavar="METHOD", help="entropy, percentile or minmax.")
    ] = "entropy",
    parity_images: ParityImagesOpt = None,
    device: Annotated[
        str, typer.Option(metavar="DEVICE", help="Device of a pt2 package: cpu or cuda.")
    ] = "cpu",
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a pretrained model to ONNX, FP16/INT8 ONNX, TensorRT engines or AOTInductor, each checked
    against its PyTorch original on real labelled images (parity)."""
    from zoo import api

    checked = api.export(
        model,
        split_list(formats or ""),
        trt=trt,
        artifacts=artifacts,
        batch=batch_range,
        opset=opset,
        calib_data=calib_data,
        calib_size=calib_size,
        calib_method=calib_method,
        parity_images=parity_images,
        device=device,
        data=data,
        log=log_for(as_json),
    )
    if as_json:
        emit_json([export_row(c) for c in checked])
    else:
        show_export(f"zoo export {model} -> {artifacts}", checked)
        if model.endswith(".untrained"):
            typer.echo(
                "note: untrained weights: agreement says how closely the artifacts follow them; "
                "their accuracy means nothing.",
                err=True,
            )
    exit_if_failed(checked, quiet=as_json)


def _bar(precision: str, key: str) -> str:
    from zoo.serve.bars import BARS

    what = (
        "Minimum top-1 agreement (%)" if key == "top1_agreement" else "Maximum top-1 accuracy drop (points)"
    )
    return f"{what} of {precision.upper()} artifacts (default {BARS[precision][key]})."


@command(
    "parity",
    short_help="Check exported artifacts against their PyTorch original.",
    epilog=examples(
        "zoo parity resnet20.cifar10                        # every artifact of the tag",
        "zoo parity resnet20.cifar10 -f onnx-int8,onnx-int8-cpu --limit 1000",
        "zoo parity resnet20.cifar10 artifacts/resnet20.cifar10/onnx-int8",
        "zoo parity resnet20.cifar10 --backend openvino",
    ),
)
def parity_cmd(
    model: Annotated[
        str, typer.Argument(metavar="TAG", help="The pretrained tag the artifacts were exported from.")
    ],
    dirs: Annotated[
        list[Path] | None,
        typer.Argument(metavar="ARTIFACT_DIR", help="Artifact folders (default: all under --artifacts/TAG)."),
    ] = None,
    formats: Annotated[
        str | None,
        formats_option("Comma-separated: only these artifacts under --artifacts/TAG (default: all of them)."),
    ] = None,
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = None,
    limit: Annotated[
        int | None, typer.Option(metavar="N", help="Only the first N labelled images (default: all).")
    ] = None,
    fp32_bar: Annotated[
        float | None, typer.Option(metavar="PCT", help=_bar("fp32", "top1_agreement"))
    ] = None,
    fp16_bar: Annotated[
        float | None, typer.Option(metavar="PCT", help=_bar("fp16", "top1_agreement"))
    ] = None,
    int8_bar: Annotated[
        float | None, typer.Option(metavar="PCT", help=_bar("int8", "top1_agreement"))
    ] = None,
    int8_max_drop: Annotated[
        float | None, typer.Option(metavar="POINTS", help=_bar("int8", "accuracy_drop"))
    ] = None,
    backend: BackendOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Top-1/top-5 agreement and accuracy of artifacts against their PyTorch original on real images.
    BF16 compute (OpenVINO's default on CPUs with it) is held to the FP16 bar."""
    from zoo import api

    bars = {"fp32_bar": fp32_bar, "fp16_bar": fp16_bar, "int8_bar": int8_bar, "int8_max_drop": int8_max_drop}
    results = api.parity(model, dirs, artifacts, data, limit, bars, backend, split_list(formats or ""))
    by = f" with {backend}" if backend else ""
    if as_json:
        emit_json(results)
    else:
        table(
            f"zoo parity {api.weights(model).name}{by}",
            PARITY_COLUMNS,
            [parity_cells(Path(d).name, r) for d, r in results.items()],
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
        typer.echo(f"error: {d}{by}: {reason}", err=True)
    if failed:
        raise typer.Exit(1)


@command(
    "predict",
    short_help="Classify images with a model or an exported artifact.",
    epilog=examples(
        "zoo predict photos/ --model resnet50",
        "zoo predict 'shots/*.jpg' --artifact artifacts/resnet50.tv2_in1k/onnx-fp16 --topk 3",
        "zoo predict https://example.com/cat.jpg --model resnet50",
        "cat photo.png | zoo predict - --artifact artifacts/resnet20.cifar10/onnx-int8-cpu",
    ),
)
def predict_cmd(
    images: Annotated[
        list[str],
        typer.Argument(
            metavar="IMAGES", help="Image files, folders, glob patterns, http(s) URLs, or - (standard input)."
        ),
    ],
    model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="A pretrained tag or arch (PyTorch eager).")
    ] = None,
    artifact: Annotated[
        Path | None, typer.Option(metavar="DIR", help="An artifact folder from `zoo export`.")
    ] = None,
    topk: Annotated[int, typer.Option(metavar="K", help="How many labels per image.")] = 5,
    backend: BackendOpt = None,
    allow_unverified: AllowOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Classify images with a model or an exported artifact, through its own preprocessing. An artifact
    runs only if its last parity check passed (see `zoo parity`), unless --allow-unverified; an engine or
    .pt2 runs native code, so one that this machine did not export opens only after `zoo trust DIR`."""
    from zoo import api

    if (model is None) == (artifact is None):
        raise ZooError(
            _which_model(images) if model is None else "give --model NAME or --artifact DIR, not both."
        )
    results = api.predict(artifact or model, images, topk, backend, allow_unverified, log_for(False))
    if as_json:
        emit_json(results)
    else:
        for r in results:
            if "error" in r:
                typer.echo(f"{r['image']}: error: {r['error']}", err=True)
            else:
                typer.echo(f"{r['image']}: {_top_line(r['top'])}")
    bad = [r for r in results if "error" in r]
    if bad:
        if not as_json:
            typer.echo(
                f"error: {len(bad)} of {len(results)} images could not be classified (named above).", err=True
            )
        raise typer.Exit(1)


def _which_model(images: list[str]) -> str:
    """The sentence for a `zoo predict` given neither --model nor --artifact: when its first word is a
    model name (and no file) or an artifact folder, as `zoo export NAME` would take it, the command meant."""
    import shlex

    from zoo.export.artifact import CARD
    from zoo.models import registry
    from zoo.utils.files import exists

    first, rest = images[0], shlex.join(images[1:]) or "IMAGES"
    if exists(Path(first) / CARD):
        return f"{first} is an artifact folder, not an image: `zoo predict --artifact {shlex.quote(first)} {rest}`."
    if not exists(first):
        try:
            registry.resolve(first)
        except ZooError:
            pass
        else:
            return f"{first} is a model, not an image: `zoo predict --model {shlex.quote(first)} {rest}`."
    return "give the model to run: --model NAME (a tag or arch) or --artifact DIR (from `zoo export`)."


def _top_line(top: list[dict]) -> str:
    """'tabby 71.2%, tiger cat 20.4%, Egyptian cat 8.0%, the other 2 < 0.1%': a label at 0.0% says nothing."""
    shown = [t for t in top if t["prob"] >= 0.0005] or top[:1]
    rest = len(top) - len(shown)
    return ", ".join(f"{t['label']} {100 * t['prob']:.1f}%" for t in shown) + (
        f", the other {rest} < 0.1%" if rest else ""
    )


@command(
    "trust",
    short_help="Allow an engine or .pt2 exported elsewhere to be opened.",
    epilog=examples(
        "zoo trust artifacts/resnet50.tv2_in1k/pt2",
        "zoo trust --list                                   # what this zoo opens, and why",
        "zoo trust --revoke artifacts/resnet50.tv2_in1k/pt2",
    ),
)
def trust_cmd(
    artifact: Annotated[
        Path | None,
        typer.Argument(
            metavar="ARTIFACT_DIR", help="An artifact folder (an engine or a .pt2) from elsewhere."
        ),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the artifacts trusted here (exported here or by hand).")
    ] = False,
    revoke: Annotated[
        bool, typer.Option("--revoke", help="Take ARTIFACT_DIR out of the trusted index.")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="With --list: first drop the entries whose folder no longer holds their model file (a copy "
            "elsewhere is then refused until trusted again).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Allow an engine or .pt2 artifact that this machine did not export to be opened: loading one runs the
    native code inside it, so the zoo opens only those it exported itself or that you trust here, once,
    by their sha256 (an ONNX artifact needs no trust: the labels and preprocessing inside it are checked).
    --list shows the index, --revoke takes an artifact out of it."""
    from zoo import api

    if list_ == (artifact is not None) or (revoke and artifact is None) or (prune and not list_):
        raise ZooError("name an artifact folder (to trust it, or --revoke it), or give --list (--prune).")
    if list_:
        return _show_trusted(api.trusted(prune), as_json)
    result = api.untrust(artifact) if revoke else api.trust(artifact)
    if as_json:
        emit_json(result)
    elif revoke:
        typer.echo(
            f"revoked {result['artifact']} ({result['format']}, sha256 {result['sha256'][:16]}...): it opens "
            "again only once exported here or trusted anew."
        )
    elif result["trusted"]:
        typer.echo(
            f"trusted {result['artifact']} ({result['format']} of {result['source']}, sha256 "
            f"{result['sha256'][:16]}...): its native code will run when it is opened. Index: {result['index']}."
        )
    else:
        typer.echo(f"{result['artifact']} is {result['format']}: it runs no native code and needs no trust.")


def _show_trusted(doc: dict, as_json: bool) -> None:
    if as_json:
        return emit_json(doc)
    if doc["pruned"]:
        n = len(doc["pruned"])
        typer.echo(f"pruned {n} entr{'ies' if n > 1 else 'y'} whose folder no longer holds its model file.")
    if not doc["entries"]:
        return typer.echo(f"no artifact is trusted here yet (index: {doc['index']}).")
    where = {True: "", False: " (gone)", None: ""}
    table(
        f"trusted here ({doc['index']})",
        ["sha256", "format", "source", "why", "recorded", "folder"],
        [
            [str(e.get("sha256", ""))[:16]]
            + [str(e.get(k) or "-") for k in ("format", "source", "why", "recorded", "folder")[:-1]]
            + [str(e.get("folder") or "-") + where[e["present"]]]
            for e in doc["entries"]
        ],
    )
    if any(e["present"] is False for e in doc["entries"]):
        typer.echo("`zoo trust --list --prune` drops the entries marked (gone).")


@command(
    "bench",
    short_help="Latency and throughput per format and batch size.",
    epilog=examples(
        "zoo bench resnet20.cifar10                          # exports what is missing first",
        "zoo bench resnet50 -f pytorch,onnx-fp16,trt-fp16 --batch 1,8,64",
        "zoo bench resnet50 -f all --seconds 5 --repeats 5 --json",
    ),
)
def bench_cmd(
    model: TagArg,
    formats: Annotated[
        str,
        formats_option(f"Comma-separated: {', '.join(_targets())}; or all (every one this machine runs)."),
    ] = "pytorch,onnx,onnx-fp16,onnx-int8,onnx-int8-cpu",
    batch: Annotated[
        str, typer.Option(metavar="SIZES", help="Comma-separated batch sizes to time.")
    ] = "1,8,32",
    seconds: SecondsOpt = 2.0,
    threads: Annotated[
        int | None,
        typer.Option(metavar="N", help="Threads for PyTorch and ONNX Runtime (default: all cores)."),
    ] = None,
    parity_images: ParityImagesOpt = None,
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Where the JSON, CSV, Markdown and PNG go.")
    ] = Path("bench"),
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = None,
    repeats: Annotated[
        int,
        typer.Option(
            metavar="N", help="Fresh processes per format, taken in turns; figures are their medians."
        ),
    ] = 3,
    untrained: Annotated[
        bool,
        typer.Option(help="Time the architecture with seeded random weights (for models not trained here)."),
    ] = False,
    device: Annotated[
        str,
        typer.Option(
            metavar="DEVICE",
            help="Where the PyTorch baselines (and a pt2 it builds) run: auto (where the targets run), cpu, cuda.",
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
    from zoo import api
    from zoo.serve.bench import SUMMARY_COLUMNS, fastest_sentence, summary_cells
    from zoo.serve.checked_export import MARKS

    try:
        batches = [int(b) for b in batch.split(",")]
    except ValueError:
        raise ZooError(f"--batch {batch!r} is not a comma-separated list of integers.") from None
    report = api.bench(
        model,
        "all" if formats == "all" else split_list(formats),
        batches,
        seconds=seconds,
        threads=threads,
        parity_images=parity_images,
        out=out,
        artifacts=artifacts,
        data=data,
        repeats=repeats,
        untrained=untrained,
        device=device,
        allow_unverified=allow_unverified,
        log=log_for(as_json),
    )
    if as_json:
        return emit_json(report)
    table(
        f"zoo bench {report['model']} on {report['hardware']['cpu']}",
        SUMMARY_COLUMNS,
        [[c[0], f"{MARKS.get(c[1].split(' (')[0], '·')} {c[1]}", *c[2:]] for c in summary_cells(report)],
    )
    if report["fastest"]:
        typer.echo(fastest_sentence(report["fastest"]))
    for check in report.get("checks", []):  # what the bench says of its own figures
        typer.echo(f"warning: {check}.", err=True)
    typer.echo(f"wrote {out}/bench-{report['model']}.json, .csv, .md and .png")
    if report["untrained"]:
        typer.echo("note: untrained weights: the timings hold, accuracy and agreement mean little.", err=True)
    for e in report["summary"]:
        if e["status"] == "failed" or e.get("refused") or e.get("warning"):
            typer.echo(f"note: {e['format']}: {e.get('message') or e.get('warning')}", err=True)


@command(
    "serve",
    short_help="Start the web demo, or a Triton server for a repository.",
    epilog=examples(
        "zoo serve                                  # every tag with artifacts under ./artifacts",
        "zoo serve --model resnet20.cifar10 --model resnet56.cifar10 --port 8080",
        "zoo serve --triton triton/",
    ),
)
def serve_cmd(
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(metavar="PORT", help="Port (the Triton server's HTTP port with --triton).")
    ] = 7860,
    share: Annotated[bool, typer.Option(help="Ask Gradio for a public share link.")] = False,
    model: Annotated[
        list[str] | None,
        typer.Option(metavar="TAG", help="A tag to offer (repeatable; default: those with artifacts here)."),
    ] = None,
    artifacts: ArtifactsOpt = Path("artifacts"),
    triton: Annotated[
        Path | None,
        typer.Option(
            metavar="REPO", help="Serve this model repository (from `zoo triton`) with Triton instead."
        ),
    ] = None,
    allow_unverified: AllowOpt = False,
) -> None:
    """Start the web demo (an artifact's top-5 next to its PyTorch original's), or with --triton a Triton
    Inference Server on loopback for a repository written by `zoo triton`."""
    from zoo.utils.ports import check_listen

    check_listen("127.0.0.1" if triton is not None else host, port)  # Triton listens on loopback
    if triton is not None:
        from zoo.serve.tritonserver import serve_until_interrupted

        return serve_until_interrupted(triton, port, typer.echo)
    from zoo import api
    from zoo.serve.demo import launch

    demo = api.demo(model, artifacts, allow_unverified=allow_unverified)
    # Gradio's own start-up lines name its API (`share=True in launch()`); the zoo says it in its words
    launch(demo, server_name=host, server_port=port, share=share, quiet=True, prevent_thread_lock=True)
    typer.echo(f"the demo runs at {demo.local_url}" + (f" and {demo.share_url}" if share else ""))
    if not share:
        typer.echo("`zoo serve --share` asks Gradio for a public link; Ctrl+C stops the demo.")
    demo.block_thread()


@command(
    "triton",
    short_help="Write a Triton model repository for an artifact.",
    epilog=examples(
        "zoo triton resnet20.cifar10 --repo triton/ && zoo serve --triton triton/",
        "zoo triton resnet50 -f trt-fp16 --device gpu --repo triton/",
    ),
)
def triton_cmd(
    model: ModelArg,
    format: TritonFormatOpt = None,
    repo: Annotated[Path, typer.Option(metavar="DIR", help="The model repository to write into.")] = Path(
        "triton"
    ),
    device: Annotated[
        str,
        typer.Option(
            metavar="DEVICE",
            help="cpu: a Python-backend classifier over ONNX Runtime (what runs here); gpu: "
            "Triton's onnxruntime_onnx or tensorrt_plan backend.",
        ),
    ] = "cpu",
    dynamic_batching: Annotated[bool, typer.Option(help="Let Triton batch concurrent requests.")] = True,
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = None,
    allow_unverified: AllowOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a Triton Inference Server model repository for an artifact (exported first if missing):
    the classifier, and an ensemble that takes encoded image bytes and returns labelled probabilities."""
    from zoo import api

    written = api.triton(
        model, format, repo, device, dynamic_batching, artifacts, data, allow_unverified, log_for(as_json)
    )
    if as_json:
        return emit_json(written)
    typer.echo(f"wrote {len(written['models'])} models into {repo}: {', '.join(written['models'])}")
    typer.echo(
        f"serve them with `zoo serve --triton {repo}`; call {written['ensemble']} with image bytes (UINT8)."
    )


@command(
    "bench-triton",
    short_help="Load-test an artifact served by Triton on loopback.",
    epilog=examples("zoo bench-triton resnet20.cifar10 --clients 16 --requests 100"),
)
def bench_triton_cmd(
    model: TagArg,
    format: TritonFormatOpt = None,
    clients: Annotated[int, typer.Option(metavar="N", help="Concurrent clients.")] = 8,
    requests: Annotated[int, typer.Option(metavar="N", help="Requests per client.")] = 50,
    out: Annotated[Path, typer.Option(metavar="DIR", help="Where the JSON and Markdown go.")] = Path("bench"),
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = None,
    allow_unverified: AllowOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Load-test an artifact served by a real Triton server on loopback (the CPU flavour), with dynamic
    batching on and off: failures, p50/p95/p99 latency and requests/s of image bytes in, top-5 out."""
    from zoo import api
    from zoo.serve.triton_bench import markdown

    report = api.bench_triton(
        model,
        format,
        clients,
        requests,
        out,
        artifacts,
        data,
        allow_unverified,
        log_for(as_json),
        check=False,
    )
    if as_json:
        emit_json(report)
    else:
        typer.echo(markdown(report), nl=False)
        typer.echo(f"wrote {out}/triton-{report['ensemble']}.json and .md")
    api.check_load_test(report)
