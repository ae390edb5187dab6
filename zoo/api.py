"""The zoo's Python API: one function per command of the CLI, each the very function that command calls.

    from zoo import api
    checked = api.export("resnet20.cifar10", ["onnx", "onnx-int8-cpu"])   # zoo export -f onnx,onnx-int8-cpu
    results = api.parity("resnet20.cifar10")                              # zoo parity resnet20.cifar10
    with api.open_runtime("artifacts/resnet20.cifar10/onnx-int8-cpu") as rt:
        print(api.predict(rt, ["cat.jpg"]))                               # zoo predict --artifact ...

The policy of each command lives here, not in the CLI: where parity images come from, which artifacts a
verdict admits (an artifact runs only if its last parity check passed, unless `allow_unverified`), what
`zoo triton` exports first. The CLI parses options, calls one of these, and prints what it returns. Lines
for the user (progress, warnings) go to `log` (default: standard error); results are returned. Every
mistake of the caller is a ZooError with one sentence.

Heavy libraries load only when a function needs them: `import zoo.api` imports neither torch nor ONNX.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError, at_least_one, device_choice, positive_number
from zoo.utils.files import output_dir

if TYPE_CHECKING:
    from PIL import Image

    from zoo.models.weights import WeightSpec
    from zoo.serve.checked_export import Checked
    from zoo.serve.runtimes import Runtime

Log = Callable[[str], None]

__all__ = [
    "bench",
    "bench_train",
    "bench_triton",
    "catalog",
    "create_model",
    "curves",
    "degradation",
    "describe",
    "doctor",
    "evaluate",
    "export",
    "import_weights",
    "list_models",
    "load_image",
    "open_runtime",
    "parity",
    "predict",
    "publish",
    "runs",
    "table6",
    "teacher_table",
    "train",
    "triton",
    "trust",
    "trusted",
    "untrust",
    "weights",
]

DEFAULT_BENCH_TARGETS = ("pytorch", "onnx", "onnx-fp16", "onnx-int8", "onnx-int8-cpu")
TRITON_DEFAULT = {"cpu": "onnx-int8-cpu", "gpu": "onnx-fp16"}  # the artifact `triton` serves per device


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _quiet(_line: str) -> None:
    pass


def _data_root(data: str | os.PathLike | None) -> str | None:
    """A dataset root given by the caller, checked to exist, once; None leaves $ZOO_DATA to decide."""
    from zoo.utils.paths import data_dir

    return str(data_dir(data)) if data else None


# --- models and weights -------------------------------------------------------------------------------


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Architecture names (or, with `pretrained`, arch.tag names) matching a shell-style pattern."""
    from zoo.models import registry

    return registry.list_models(pattern, pretrained=pretrained)


def catalog(pattern: str = "*", pretrained: bool = False) -> list[dict[str, Any]]:
    """`zoo list`: the architectures (or tags) matching a pattern, with size, cost, dataset, top-1 and the
    architecture's default tag. With `pretrained` and a bare pattern, its tags ('resnet5*' -> resnet5*.*)."""
    from zoo.models import registry

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
                "default_tag": getattr(registry.default_tag(arch), "name", None),
            }
        )
    return rows


def create_model(name: str, pretrained: bool = False, **kwargs: Any):
    """The torch.nn.Module of an architecture, or of a tag with its weights (`pretrained=True`)."""
    from zoo.models import registry

    return registry.create_model(name, pretrained=pretrained, **kwargs)


def describe(name: str | os.PathLike) -> dict[str, Any]:
    """`zoo info`: structure, cost, weights, preprocessing and metrics of an architecture or tag; for an
    artifact folder its card and its standing here (`passed`, `failed` or `not validated`, with the reason
    and a note when its verdict was measured on another class of CPU) under each runtime it was checked
    with (`own`: its own runtime)."""
    from zoo.export.artifact import names_artifact, read_card
    from zoo.models import registry

    if names_artifact(name):
        from zoo.serve.verdicts import card_key, standing

        card = read_card(Path(name))
        checked = [None] + sorted(k.removeprefix("parity_") for k in card if k.startswith("parity_"))
        return {
            "artifact": str(name),
            "card": card,
            "standing": {
                b or "own": vars(standing(card, b)) for b in checked if b is None or card[card_key(b)]
            },
        }
    return registry.describe(str(name))


def weights(name: str) -> WeightSpec:
    """The pretrained weights of a tag (or of an architecture's default tag): file, hash, dataset, labels,
    metrics, and `preprocess`, the preprocessing contract: `weights(tag).preprocess(load_image(path))` is
    the normalised CHW float32 array the model (and every artifact exported from it) takes, as
    torchvision's `weights.transforms()` is."""
    from zoo.models import registry

    _, spec = registry.resolve(name)
    if spec is None:
        raise ZooError(f"{name} has no pretrained weights; `zoo list --pretrained` lists the tags.")
    return spec


def load_image(source: str | os.PathLike | bytes) -> Image.Image:
    """An RGB PIL image from a file, bytes or an image, with the zoo's checks (size, format, EXIF)."""
    from zoo.data.preprocess import load_image as load

    return load(source)


def import_weights(
    checkpoint: str | os.PathLike,
    name: str,
    dataset: str = "imagenet1k",
    labels: str | None = None,
    preprocess: str = "imagenet_256",
    out_dir: str | os.PathLike | None = None,
) -> WeightSpec:
    """`zoo import-weights`: a .pth/.pt state dict or .safetensors file as a new tag of a manifest."""
    from zoo.models.checkpoints import import_checkpoint

    return import_checkpoint(
        Path(checkpoint),
        name,
        dataset=dataset,
        labels=labels,
        preprocess=preprocess,
        out_dir=Path(out_dir) if out_dir else None,
    )


def doctor() -> dict[str, Any]:
    """`zoo doctor`: versions, CPU numerics, devices, which runtimes work here, where things are."""
    from zoo.doctor import diagnose

    return diagnose()


def evaluate(
    models: Sequence[str],
    data: str | os.PathLike | None = None,
    split: str = "test",
    protocol: str = "single",
    limit: int | None = None,
) -> dict[str, Any]:
    """`zoo eval`: top-1/top-5 of tags, run folders or checkpoints (several: an ensemble) on a split."""
    from zoo.evaluate import evaluate as run

    return run(list(models), _data_root(data), split, protocol, limit)


# --- export, parity, running artifacts ------------------------------------------------------------------


def export(
    model: str,
    formats: Sequence[str] = (),
    trt: str | None = None,
    artifacts: str | os.PathLike = "artifacts",
    batch: str | tuple[int, int, int] = "1:8:64",
    opset: int = 20,
    calib_data: str | None = None,
    calib_size: int = 512,
    calib_method: str = "entropy",
    parity_images: int | None = None,
    device: str = "cpu",
    data: str | os.PathLike | None = None,
    log: Log = _stderr,
) -> list[Checked]:
    """`zoo export`: build each format (their parents first; ONNX when none is given) under
    ARTIFACTS/TAG/FORMAT/, each checked against the PyTorch original on `parity_images` labelled test images
    (None: the whole split; 0: none). `trt` (fp32, fp16, int8) adds that TensorRT engine. `batch` is the
    dynamic batch range MIN:OPT:MAX."""
    from zoo.export.formats import TRT_PRESET, plan
    from zoo.export.onnx import check_opset
    from zoo.export.pipeline import ExportOptions
    from zoo.export.tensorrt import parse_profile
    from zoo.serve.checked_export import export_and_check

    at_least_one(calib_size=calib_size)  # before any file is written or data looked for
    check_opset(opset)
    device_choice(device, auto=False)
    output_dir(Path(artifacts), "artifacts folder", create=False)  # made by the first artifact written
    data = _data_root(data)
    wanted = [f.strip() for f in ([formats] if isinstance(formats, str) else formats) if f.strip()]
    if trt:
        if trt not in TRT_PRESET:
            raise ZooError(f"--trt must be fp32, fp16 or int8, not {trt!r}.")
        wanted.append(TRT_PRESET[trt])
    formats = plan(wanted or ["onnx"])
    options = ExportOptions(
        formats=formats,
        out=Path(artifacts),
        batch=parse_profile(batch if isinstance(batch, str) else ":".join(str(b) for b in batch)),
        opset=opset,
        calib_data=calib_data,
        calib_size=calib_size,
        calib_method=calib_method,
        device=device,
        data=data,
    )
    # with no data root at all, the calibration folder's labelled test split is the parity set
    parity_data = calib_data if calib_data and not data and not os.environ.get("ZOO_DATA") else None
    return export_and_check(
        model, formats, options, parity_images=parity_images, parity_data=parity_data, log=log
    )


def parity(
    model: str,
    dirs: Sequence[str | os.PathLike] | None = None,
    artifacts: str | os.PathLike = "artifacts",
    data: str | os.PathLike | None = None,
    limit: int | None = None,
    bars: dict[str, float | None] | None = None,
    backend: str | None = None,
    formats: Sequence[str] | None = None,
) -> dict[str, Any]:
    """`zoo parity`: top-1/top-5 agreement and accuracy of the artifact folders `dirs`, or of the `formats`
    under ARTIFACTS/TAG (default: every artifact there) against their PyTorch original. `bars` holds any of
    fp32_bar, fp16_bar, int8_bar, int8_max_drop; each card keeps the verdict under the zoo's own bars, and
    the result under the given ones as `verdict_given_bars`."""
    from zoo.export.artifact import artifact_dirs
    from zoo.export.formats import FORMATS, ONNX_FORMATS, get
    from zoo.serve.bars import bars_with
    from zoo.serve.parity import check_artifacts
    from zoo.serve.runtimes import check_backend

    data = _data_root(data)
    check_backend(backend)  # before looking for artifacts
    spec = weights(model)
    if dirs and formats:
        raise ZooError("name the artifacts by their folders or by --formats, not both.")
    folder = Path(artifacts) / spec.name
    every = not dirs and not formats
    dirs = list(dirs or [folder / get(f).name for f in dict.fromkeys(formats or [])] or artifact_dirs(folder))
    if not dirs:
        raise ZooError(f"no artifacts of {spec.name} under {artifacts}; run `zoo export {spec.name}` first.")
    if every and backend:  # every artifact there that the backend runs: the ONNX ones
        dirs = [d for d in dirs if Path(d).name in ONNX_FORMATS or Path(d).name not in FORMATS]
        if not dirs:
            raise ZooError(f"no ONNX artifacts of {spec.name} under {artifacts} for --backend {backend}.")
    for d in [] if not formats else dirs:
        if not (Path(d) / "card.json").is_file():
            raise ZooError(
                f"no {Path(d).name} artifact of {spec.name} under {artifacts}; "
                f"export it with `zoo export {spec.name} -f {Path(d).name}`."
            )
    return check_artifacts(spec.name, dirs, data, limit, bars_with(**(bars or {})), backend)


def _admit(source: str | os.PathLike, backend: str | None, allow_unverified: bool, log: Log) -> None:
    """What `zoo predict` checks before loading anything: an artifact (a Path, or a string naming a
    directory; a tag is a name, never a path) must be one, run by a backend this machine has, and admitted
    by its verdict; a tag needs a backend that runs tags."""
    from zoo.export import trust
    from zoo.export.artifact import names_artifact, read_card
    from zoo.serve.runtimes import check_backend, require_backend
    from zoo.serve.verdicts import admit

    if names_artifact(source):
        require_backend(backend)  # a backend this machine lacks is said before the verdict is read
        trust.admit(Path(source), read_card(Path(source)))  # no --allow-unverified for what may run code
        for line in admit(source, backend, allow_unverified):
            log(line)
    else:
        check_backend(backend)


def open_runtime(
    source: str | os.PathLike,
    backend: str | None = None,
    allow_unverified: bool = False,
    log: Log = _stderr,
    **options: Any,
) -> Runtime:
    """A runtime for an artifact directory or a tag (PyTorch eager), as `zoo predict` opens it: an
    artifact runs only if its last parity check passed, unless `allow_unverified` (then with a warning).
    `options`: device, threads, shared (see zoo.serve.runtimes.open_runtime)."""
    from zoo.serve.runtimes import open_runtime as open_

    _admit(source, backend, allow_unverified, log)
    return open_(source, backend=backend, **options)


def trust(artifact: str | os.PathLike) -> dict[str, Any]:
    """`zoo trust`: record an artifact that runs native code (an engine, a .pt2) that this zoo did not
    export in the user's index, so that every command opens it; its model file must match its card. Returns
    what was trusted (path, format, source, sha256)."""
    from zoo.export import trust as index
    from zoo.export.artifact import read_card, verify_file

    path = Path(artifact)
    card = read_card(path)
    verify_file(path, card)
    if not index.runs_native_code(card["format"]):
        index.admit(path, card)  # ONNX needs no trust: its own metadata is checked on every open
        return {"artifact": str(path), "format": card["format"], "trusted": False, "needed": False}
    index.record(card, f"trusted by hand: zoo trust {path}", path)
    return {
        "artifact": str(path),
        "format": card["format"],
        "source": card["source"],
        "sha256": card["sha256"],
        "trusted": True,
        "needed": True,
        "index": str(index.index_dir()),
    }


def trusted(prune: bool = False) -> dict[str, Any]:
    """`zoo trust --list`: the artifacts this user's zoo opens although they run native code (exported
    here, or trusted by hand), by their model file's sha256, each with whether its folder still holds it.
    `prune`: first take out the entries whose folder no longer does (`pruned`: those removed)."""
    from zoo.export import trust as index

    pruned = index.prune() if prune else []
    return {"index": str(index.index_dir()), "entries": index.entries(), "pruned": pruned}


def untrust(artifact: str | os.PathLike) -> dict[str, Any]:
    """`zoo trust --revoke`: take an artifact's model file out of the index, so that it opens only once
    exported here again or trusted anew. One sentence when the index does not hold it."""
    from zoo.export import trust as index
    from zoo.export.artifact import read_card

    path = Path(artifact)
    card = read_card(path)
    if not index.forget(card):
        raise ZooError(f"{path} is not in this zoo's trusted index ({index.index_dir()}): nothing to revoke.")
    return {"artifact": str(path), "format": card["format"], "sha256": card["sha256"], "revoked": True}


def predict(
    runtime: Runtime | str | os.PathLike,
    images: Sequence[str | os.PathLike],
    topk: int = 5,
    backend: str | None = None,
    allow_unverified: bool = False,
    log: Log = _stderr,
) -> list[dict[str, Any]]:
    """`zoo predict`: the top-k labels of each image (files, folders, glob patterns), through the model's
    own preprocessing. `runtime` is an open runtime, an artifact directory or a tag; an image that cannot
    be read is an entry with an "error" instead of labels."""
    from zoo.serve.predict import expand
    from zoo.serve.predict import predict as run

    if isinstance(runtime, (str, os.PathLike)):
        from zoo.serve.runtimes import open_runtime as open_

        at_least_one(topk=topk)
        _admit(runtime, backend, allow_unverified, log)
        found = expand([str(i) for i in images])
        if all(error for _, error in found):  # nothing to classify: said before any model is loaded
            return [{"image": path, "error": error} for path, error in found]
        with open_(runtime, backend=backend) as rt:
            return predict(rt, images, topk, log=log)
    if topk > len(runtime.labels):
        n = len(runtime.labels)
        log(f"note: {runtime.name} knows {n} classes, so each image gets all {n} of them (--topk {topk}).")
    return run(runtime, [str(i) for i in images], topk)


def _check_seconds(seconds: float) -> None:
    """--seconds of bench and bench-train: how long to time each setting."""
    positive_number("--seconds", seconds, "seconds", most=3600)


def bench(
    model: str,
    formats: Sequence[str] | str = DEFAULT_BENCH_TARGETS,
    batches: Sequence[int] = (1, 8, 32),
    seconds: float = 2.0,
    threads: int | None = None,
    parity_images: int | None = None,
    out: str | os.PathLike = "bench",
    artifacts: str | os.PathLike = "artifacts",
    data: str | os.PathLike | None = None,
    repeats: int = 3,
    untrained: bool = False,
    device: str = "auto",
    allow_unverified: bool = False,
    log: Log = _stderr,
) -> dict[str, Any]:
    """`zoo bench`: latency and throughput per target and batch size, each target in fresh processes
    taken in turns (`formats="all"`: every target this machine runs); writes JSON, CSV, Markdown, PNG."""
    from zoo.serve.bench import BenchOptions
    from zoo.serve.bench import bench as run
    from zoo.serve.targets import runnable_here

    wanted = runnable_here() if formats == "all" else [formats] if isinstance(formats, str) else list(formats)
    batches = list(batches)
    at_least_one(repeats=repeats, threads=threads)
    if not batches or any(b < 1 for b in batches):
        raise ZooError(f"every --batch size must be at least 1, not {','.join(map(str, batches)) or 'none'}.")
    _check_seconds(seconds)
    output_dir(Path(out), "results folder")
    options = BenchOptions(
        formats=wanted,
        batches=batches,
        seconds=seconds,
        threads=threads,
        parity_images=parity_images,
        repeats=repeats,
        untrained=untrained,
        out=Path(out),
        artifacts=Path(artifacts),
        device=device,
        data=_data_root(data),
        allow_unverified=allow_unverified,
    )
    return run(model, options, log)


def exported(
    model: str,
    fmt: str,
    artifacts: str | os.PathLike = "artifacts",
    data: str | os.PathLike | None = None,
    allow_unverified: bool = False,
    log: Log = _stderr,
) -> Path:
    """The artifact of `fmt` for `model`: the one under ARTIFACTS/TAG/FMT as it is (whatever options it was
    exported with), else exported and checked as `export` does; then admitted by its verdict."""
    from zoo.export.pipeline import ExportOptions
    from zoo.serve.checked_export import export_and_check
    from zoo.serve.verdicts import admit

    options = ExportOptions(formats=[fmt], out=Path(artifacts), data=_data_root(data), use_existing=True)
    done = export_and_check(model, [fmt], options, log=log, recheck=False)[-1]
    if done.artifact is None:
        raise ZooError(f"{fmt} could not be exported: {done.message}")
    for line in admit(done.artifact.path, None, allow_unverified):
        log(line)
    return done.artifact.path


def triton(
    model: str,
    format: str | None = None,
    repo: str | os.PathLike = "triton",
    device: str = "cpu",
    dynamic_batching: bool = True,
    artifacts: str | os.PathLike = "artifacts",
    data: str | os.PathLike | None = None,
    allow_unverified: bool = False,
    log: Log = _stderr,
) -> dict[str, Any]:
    """`zoo triton`: a Triton model repository for an artifact (exported first if missing): the
    classifier, and an ensemble that takes encoded image bytes and returns labelled probabilities."""
    from zoo.export.formats import get
    from zoo.serve.triton import check_servable, write_repository

    format = format or TRITON_DEFAULT.get(device, TRITON_DEFAULT["cpu"])
    check_servable(format, get(format).file, device)  # before exporting anything
    output_dir(Path(repo), "repository folder", create=False)
    artifact = exported(model, format, artifacts, data, allow_unverified, log)
    return write_repository(artifact, Path(repo), device, dynamic_batching)


def bench_triton(
    model: str,
    format: str | None = None,
    clients: int = 8,
    requests: int = 50,
    out: str | os.PathLike = "bench",
    artifacts: str | os.PathLike = "artifacts",
    data: str | os.PathLike | None = None,
    allow_unverified: bool = False,
    log: Log = _stderr,
    check: bool = True,
) -> dict[str, Any]:
    """`zoo bench-triton`: load-test an artifact served by a real Triton server on loopback, with
    dynamic batching on and off. With `check`, raises when any request failed (the report is written
    first; `check_load_test` is that check)."""
    from zoo.data.datasets import find_dataset
    from zoo.serve.bench import encoded_images
    from zoo.serve.triton_bench import bench_triton as run

    at_least_one(clients=clients, requests=requests)  # before an artifact is exported or a server started
    artifact = exported(model, format or TRITON_DEFAULT["cpu"], artifacts, data, allow_unverified, log)
    images = encoded_images(find_dataset(weights(model).dataset, _data_root(data), "test"), 64)
    report = run(artifact, images, Path(out), clients, requests, log)
    if check:
        check_load_test(report)
    return report


def check_load_test(report: dict[str, Any]) -> None:
    """One sentence when requests of a `bench_triton` report failed."""
    failed = sum(r["failures"] for r in report["runs"].values())
    if failed:
        first = next(r["first_failure"] for r in report["runs"].values() if r["failures"])
        raise ZooError(f"{failed} requests failed under load; the first: {first}")


def demo(models: Sequence[str] | None = None, artifacts: str | os.PathLike = "artifacts", **options: Any):
    """`zoo serve`: the web demo as a Gradio Blocks (call `.launch()`), offering `models` (default: the
    local ones) and the artifacts under `artifacts`."""
    from zoo.serve.demo import build_demo

    return build_demo(list(models) if models else None, Path(artifacts), **options)


# --- training and the paper's experiments ----------------------------------------------------------------


def train(
    arch: str,
    recipe: str = "cifar_budget",
    data: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    device: str = "auto",
    resume: bool = False,
    compile: bool = False,
    amp: str = "auto",
    train_limit: int | None = None,
    test_limit: int | None = None,
    max_steps: int | None = None,
    save_every: float = 10.0,
    publish: str | None = None,
    weights_dir: str | os.PathLike | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """`zoo train`: train `arch` with a recipe into a run folder (default runs/ARCH-RECIPE); checkpoints
    every epoch and every `save_every` minutes inside one; `publish` adds the result as that tag once the run
    is finished (a run stopped early is published by the `--resume` that finishes it). Returns
    the run's summary. `command`: what the run records as its command (the CLI's own line; by default
    the `zoo train` line that makes this call)."""
    called = dict(locals())
    from zoo.train.recipe import load_recipe
    from zoo.train.runs import zoo_command
    from zoo.train.trainer import TrainConfig
    from zoo.train.trainer import train as run

    r = load_recipe(recipe).for_arch(arch).with_overrides(epochs, batch_size, lr)
    out = Path(out) if out else Path("runs") / f"{arch}-{r.name}"
    if publish:  # refused now, not after hours of training
        from zoo.train.publish import check_new_tag

        check_new_tag(publish, arch)
        if weights_dir:
            output_dir(Path(weights_dir), "weights folder")
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
        save_every=save_every,
        progress=progress,
        command=command or zoo_command("train", train, called, ("arch",)),
    )
    summary = run(cfg)
    if publish and summary:  # a run stopped early (--max-steps, SIGTERM) is published when it finishes
        from zoo.train.publish import publish_run

        dest = Path(weights_dir) if weights_dir else None
        done = summary["complete"]
        summary["published"] = publish_run(out, publish, dest, _data_root(data)).name if done else None
    return summary


def publish(
    run: str | os.PathLike,
    name: str,
    weights_dir: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    replace: bool = False,
) -> WeightSpec:
    """`zoo publish`: ship a finished run as a tag, its metrics measured by `evaluate` (single, flip);
    `replace`: in the place of the tag `name` of `weights_dir`, only if the run scores higher there."""
    from zoo.train.publish import publish_run

    weights = Path(weights_dir) if weights_dir else None
    return publish_run(Path(run), name, weights, _data_root(data), replace)


def bench_train(
    archs: Sequence[str] = ("resnet20", "resnet56"),
    settings: Sequence[str] | None = None,
    seconds: float = 15.0,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike = "bench",
) -> dict[str, Any]:
    """`zoo bench-train`: training img/s per CIFAR architecture and setting; writes bench-train.json."""
    from zoo.models import registry
    from zoo.train.bench import SETTINGS
    from zoo.train.bench import bench_train as run
    from zoo.utils.files import atomic_path

    for a in archs:
        arch, _ = registry.resolve(a)
        if registry.archs()[arch]["family"] != "cifar":
            raise ZooError(f"{a} is not a CIFAR architecture; bench-train measures CIFAR-10 training.")
    chosen = list(settings) if settings else list(SETTINGS)
    unknown = [s for s in chosen if s not in SETTINGS]
    if unknown:
        raise ZooError(f"unknown setting {unknown[0]!r}; choose from {', '.join(SETTINGS)}.")
    _check_seconds(seconds)
    output_dir(Path(out), "results folder")  # before minutes of timing, not after
    report = run(list(archs), chosen, seconds, data)
    with atomic_path(Path(out) / "bench-train.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    return report


def teacher_table(
    recipe: str,
    arch: str = "resnet20",
    data: str | os.PathLike | None = None,
    train_limit: int | None = None,
    stop_after: int | None = None,
    log: Log = _stderr,
    command: str | None = None,
) -> dict[str, Any]:
    """`zoo teacher-table`: the recipe's teacher's logits for every augmented view of every training
    image, computed once for every student; resumable. Returns the table's folder and metadata.
    `command`: what the table records (by default the `zoo teacher-table` line that makes this call)."""
    called = dict(locals())
    from zoo.data.datasets import find_dataset
    from zoo.train.recipe import load_recipe
    from zoo.train.runs import invocation, zoo_command
    from zoo.train.teacher import Teacher, build_table

    at_least_one(train_limit=train_limit, stop_after=stop_after)
    r = load_recipe(recipe).for_arch(arch)
    if not r.distill.teacher:
        raise ZooError(f'recipe {r.name} names no teacher: add [distill] teacher = ["resnet56.cifar10"].')
    split = find_dataset(r.dataset, _data_root(data), "train")  # the training split only, never the test
    if not hasattr(split, "images"):
        raise ZooError(f"a teacher table covers the CIFAR augmentation; {r.dataset} has none.")
    folder = build_table(
        Teacher(list(r.distill.teacher)),
        split.images[:train_limit],
        split.labels[:train_limit],
        int(r.augment.pad),
        bool(r.augment.hflip),
        log=log,
        stop_after=stop_after,
        started=invocation(
            _data_root(data),
            command or zoo_command("teacher-table", teacher_table, called),
        ),
    )
    return {"folder": str(folder), **json.loads((folder / "table.json").read_text())}


def runs(
    root: str | os.PathLike = "runs", carry: str | os.PathLike | None = None
) -> dict[str, list[dict[str, Any]]]:
    """`zoo runs`: every training run under `root`, and every teacher table in the zoo's cache, each with
    its state and the command that continues it. `carry`: a folder into which the files that continue
    each run are copied (to take them to another machine), except over a copy that is further along. A run
    folder whose records are damaged is listed as such (`damaged`: why); carrying one is refused."""
    from zoo.train import runs as found
    from zoo.utils.paths import cache_dir

    report = {"runs": found.find(Path(root), listing=True), "teacher_tables": found.tables(cache_dir())}
    if carry is not None:
        from zoo.train.carry import carry as carry_runs

        report["carried"] = carry_runs(Path(root), Path(carry))
    return report


def curves(folders: Sequence[str | os.PathLike], out: str | os.PathLike | None = None) -> dict[str, Any]:
    """`zoo curves`: several runs side by side (their curves, where each got, what its recipe changes over
    the first); with `out`, OUT/curves.json and OUT/curves.png written. Returns the comparison and the files written."""
    from zoo.train import curves as pilots

    result = pilots.compare([Path(f) for f in folders])
    written = pilots.write(result, Path(out)) if out is not None else []
    return {**result, "written": [str(p) for p in written]}


def table6() -> list[dict[str, Any]]:
    """`zoo table6`: the paper's Table 6 rows beside the reference checkpoints' and the zoo's figures."""
    from zoo.paper.table6 import rows

    return rows()


def degradation(
    depths: tuple[int, int] = (20, 56),
    recipe: str = "cifar_paper",
    data: str | os.PathLike | None = None,
    out: str | os.PathLike = "runs/degradation",
    epochs: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    amp: str = "auto",
    train_limit: int | None = None,
    test_limit: int | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """`zoo degradation`: plain vs residual nets at two depths under one recipe (Figure 6's curves).
    `command`: what each net's run records (by default the `zoo degradation` line that makes this call)."""
    called = dict(locals())
    from zoo.paper.degradation import degradation as run
    from zoo.train.recipe import load_recipe
    from zoo.train.runs import zoo_command

    r = load_recipe(recipe).general().with_overrides(epochs, batch_size)  # the same recipe for all four
    return run(
        tuple(depths),
        r,
        data,
        Path(out),
        device=device,
        amp=amp,
        train_limit=train_limit,
        test_limit=test_limit,
        progress=progress,
        command=command or zoo_command("degradation", degradation, called),
    )
