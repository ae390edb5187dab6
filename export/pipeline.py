"""`zoo export`: a pretrained tag -> the artifacts asked for, each built from what it needs, each a
directory with a card; an artifact built from the same inputs is reused. What each format is built from,
its file and precision are in `export/formats.py`; how each is built is one maker below.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.labels import load_labels
from zoo.errors import ZooError
from zoo.export import tensorrt
from zoo.export.aoti import export_pt2
from zoo.export.artifact import Artifact, build_artifact, existing_artifact, find_reusable
from zoo.export.calibration import batches, calibration_images, describe_calibration_set
from zoo.export.formats import FORMATS, INT8, Format, plan
from zoo.export.fp16 import export_fp16
from zoo.export.int8 import REVISION, arithmetic, quantize, weight_bits_for
from zoo.export.onnx import export_onnx
from zoo.export.verify import compare_with_torch
from zoo.models import registry
from zoo.models.weights import sha256_file, weights_file
from zoo.utils.lazy import lazy_import
from zoo.utils.machine import cpu_record
from zoo.utils.machine import versions as installed
from zoo.utils.paths import cache_dir
from zoo.utils.progress import step

torch = lazy_import("torch")

__all__ = ["ExportOptions", "Exported", "export_model", "plan"]


@dataclass
class ExportOptions:
    formats: list[str] = field(default_factory=lambda: ["onnx"])
    out: Path = Path("artifacts")
    batch: tuple[int, int, int] = (1, 8, 64)
    opset: int = 20
    calib_data: str | None = None
    calib_size: int = 512
    calib_method: str = "entropy"
    device: str = "cpu"  # for pt2
    data: str | None = None  # dataset root of the model's own images (None: $ZOO_DATA)
    # an artifact already under OUT/TAG/FORMAT is used as it is, whatever options exported it (the bench
    # and `zoo triton` run what the user exported; they never rebuild it with their defaults)
    use_existing: bool = False


@dataclass
class Exported:
    """What became of one format: built, reused (same inputs as an artifact already there) or failed."""

    format: str
    status: str  # built, reused, failed
    artifact: Artifact | None = None
    message: str = ""


def pt2_target(device: str) -> dict[str, Any]:
    """What a .pt2 is compiled for: the device, and on CUDA the GPU model and compute capability (a
    package for another GPU architecture must be rebuilt, not reused)."""
    target: dict[str, Any] = {"device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(torch.device(device))
        target |= {"gpu": p.name, "compute_capability": f"{p.major}.{p.minor}"}
    return target


EXPORT_PACKAGES = ("resnet-zoo", "torch", "onnx", "onnxruntime", "onnxscript", "tensorrt")


def versions() -> dict[str, str | None]:
    """The versions an artifact's card records."""
    return installed(EXPORT_PACKAGES)


def export_model(name: str, options: ExportOptions, log: Callable[[str], None] = print) -> list[Exported]:
    """Build every artifact of `options.formats` for the pretrained tag `name` under options.out/TAG/."""
    _, spec = registry.resolve(name)
    if spec is None:
        raise ZooError(f"{name} has no pretrained weights to export; see `zoo list --pretrained`.")
    there = {}
    if options.use_existing:
        sha = sha256_file(weights_file(spec))
        found = {f: existing_artifact(Path(options.out) / spec.name / f, sha) for f in options.formats}
        there = {f: a for f, a in found.items() if a is not None}
    missing = [f for f in options.formats if f not in there]
    steps = [f for f in FORMATS if f in there or f in (plan(missing) if missing else [])]
    build = Builder(spec, registry.create_model(spec.name, pretrained=True), options)
    int8 = [f for f in steps if f in INT8 and f not in there]
    if int8 and options.calib_data:
        build.calibration()  # before any work: a --calib-data that cannot be used says why
    elif int8 and not build.has_data():  # before any work: INT8 cannot be calibrated on nothing
        raise ZooError(
            f"{', '.join(int8)} needs real {spec.dataset} images to calibrate on: pass --calib-data DIR "
            "(a folder of the model's own dataset), --data DIR or set ZOO_DATA."
        )
    results: dict[str, Exported] = {}
    for fmt in map(FORMATS.get, steps):
        if fmt.name in there:
            results[fmt.name] = Exported(
                fmt.name, "reused", there[fmt.name], "there already: used as exported"
            )
            log(_line(results[fmt.name]))
            continue
        parent = results[fmt.parent] if fmt.parent else None
        if parent is not None and parent.artifact is None:
            results[fmt.name] = Exported(fmt.name, "failed", message=f"skipped: {fmt.parent} failed")
            continue
        started = time.monotonic()
        try:
            with step(f"{fmt.name}: {fmt.help or 'building'}"):
                results[fmt.name] = build.make(fmt, parent.artifact if parent else None)
        except ZooError as e:
            results[fmt.name] = Exported(fmt.name, "failed", message=str(e))
        log(_line(results[fmt.name], time.monotonic() - started))
    return [results[f] for f in steps]


def _line(r: Exported, seconds: float | None = None) -> str:
    """One line a step: what happened, how long it took and how large the file is (as Ultralytics says)."""
    if r.status == "failed":
        return f"{r.format}: failed" + (f" after {seconds:.1f} s" if seconds is not None else "")
    took = f" in {seconds:.1f} s" if seconds is not None and r.status == "built" else ""
    size = (
        f", {r.artifact.card.get('size_bytes', 0) / 1e6:.1f} MB" if r.artifact.card.get("size_bytes") else ""
    )
    return f"{r.format}: {r.status}{took}{size} -> {r.artifact.path}"


class Builder:
    """What every maker of one tag's export shares: the weights, the model, the options, the card's
    source fields and the calibration images (read once, when first needed)."""

    def __init__(self, spec, model, options: ExportOptions) -> None:

        self.spec, self.model, self.o = spec, model, options
        self.root = Path(options.out) / spec.name
        self.source = {
            "source": spec.name,
            "arch": spec.arch,
            "weights_sha256": sha256_file(weights_file(spec)),
            "dataset": spec.dataset,
            "preprocess": spec.preprocess.to_dict(),
            "labels": list(load_labels(spec.labels)),
        }
        self._calib: list[np.ndarray] | None = None

    def example(self) -> np.ndarray:
        """Two real images when the dataset is at hand, else two random inputs of the right shape."""
        try:
            return self.calibration()[0][:2]
        except ZooError:
            c, h, w = self.spec.preprocess.input_shape
            return np.random.default_rng(0).standard_normal((2, c, h, w)).astype(np.float32)

    def calibration(self) -> list[np.ndarray]:
        if self._calib is None:
            with step(f"reading {self.o.calib_size} calibration images"):
                images = calibration_images(self.spec, self.o.calib_data, self.o.calib_size, data=self.o.data)
                self._calib = batches(images, self.spec)
        return self._calib

    def has_data(self) -> bool:
        """Whether real images of the model's dataset are at hand (for ranges and calibration)."""
        try:
            self.calibration()
        except ZooError:
            return False
        return True

    def key(self, fmt: str, parent: Artifact | None, **extra: Any) -> dict[str, Any]:
        base = {"format": fmt, "weights_sha256": self.source["weights_sha256"], "versions": versions()}
        if parent is not None:
            base["parent_sha256"] = parent.card["sha256"]
        return base | extra

    def make(self, fmt: Format, parent: Artifact | None) -> Exported:
        key, card, build = MAKERS[fmt.maker](self, fmt, parent)
        directory = self.root / fmt.name
        reused = find_reusable(directory, key)
        if reused is not None:
            return Exported(fmt.name, "reused", reused, "same inputs: reused")
        card = {
            **self.source,
            **card,
            "batch": dict(zip(("min", "opt", "max"), self.o.batch, strict=True)),
            "input": {
                "name": "input",
                "shape": [None, *self.spec.preprocess.input_shape],
                "dtype": "float32",
            },
            "output": {"name": "logits", "shape": [None, self.spec.num_classes]},
            "versions": versions(),
        }
        return Exported(fmt.name, "built", build_artifact(directory, fmt, key, card, build))


# One maker per row kind of export/formats.py: (b, fmt, parent) -> (reuse key, card fields, build), where
# build(model_path) writes the model file and returns more card fields. Nothing heavy runs before build.
Made = tuple[dict[str, Any], dict[str, Any], Callable[[Path], dict[str, Any]]]


def make_onnx(b: Builder, fmt: Format, parent: Artifact | None) -> Made:

    meta = {k: b.source[k] for k in ("source", "weights_sha256", "preprocess", "labels", "dataset")}

    def build(path: Path) -> dict:
        x = b.example()
        export_onnx(b.model, x, path, b.o.opset, max(b.o.batch[2], 2), {**meta, "precision": fmt.precision})
        return {"opset": b.o.opset, "onnx_check": compare_with_torch(b.model, path, x)}

    return b.key(fmt.name, None, opset=b.o.opset, max_batch=b.o.batch[2]), {"opset": b.o.opset}, build


def make_fp16(b: Builder, fmt: Format, parent: Artifact) -> Made:

    # With real images, nodes whose measured range reaches FP16's limits stay FP32 (as AutoCast). Without
    # (ImageNet has no redistributable set), convert as the common tools do: weights checked, activation
    # ranges not measured; the card and the summary say so.
    measured = b.has_data()

    def build(path: Path) -> dict:
        ranges = b.calibration()[:4] if measured else []  # real batches to measure activation ranges on
        return {"fp16": export_fp16(parent.file, path, ranges, {"source": b.spec.name})}

    ranges = "measured" if measured else "not measured (no images: weights checked only)"
    return (
        b.key(fmt.name, parent, ranges=ranges),
        {"opset": parent.card["opset"], "ranges": ranges},
        build,
    )


def make_int8(b: Builder, fmt: Format, parent: Artifact) -> Made:

    calib = {
        "data": str(b.o.calib_data or f"{b.o.data or '$ZOO_DATA'} ({b.spec.dataset}, train split)"),
        "size": b.o.calib_size,
        "method": b.o.calib_method,
    }

    host = cpu_record()
    bits = weight_bits_for(fmt.variant, host["int8_class"])

    def build(path: Path) -> dict:
        info = quantize(
            parent.file, path, b.calibration(), fmt.variant, b.o.calib_method, {"source": b.spec.name}, bits
        )
        info |= {"built_for": host["int8_class"], "built_on": host}
        info["arithmetic"] = arithmetic(info)
        source = describe_calibration_set(b.spec, b.o.calib_data, data=b.o.data)
        return {
            "int8": info,
            "calibration": calib | {"images": sum(len(x) for x in b.calibration()), "source": source},
        }

    # the weights' bits are chosen for this CPU's class: an export on another class rebuilds, not reuses
    key = b.key(fmt.name, parent, calibration=calib, int8_revision=REVISION, weight_bits=bits)
    return key, {"opset": parent.card["opset"]}, build


def make_engine(b: Builder, fmt: Format, parent: Artifact) -> Made:

    if not tensorrt.available():
        raise ZooError(tensorrt.MISSING)
    shape = b.spec.preprocess.input_shape
    engine = tensorrt.engine_key(parent.card["sha256"], fmt.variant, b.o.batch, shape)

    def build(path: Path) -> dict:

        return tensorrt.build_engine(
            parent.file, path, b.o.batch, shape, fmt.variant, cache_dir() / "tensorrt"
        )

    return b.key(fmt.name, parent, engine=engine), {"built_from": parent.format}, build


def make_pt2(b: Builder, fmt: Format, parent: Artifact | None) -> Made:

    def build(path: Path) -> dict:
        return export_pt2(b.model, b.example(), path, max(b.o.batch[2], 2), b.o.device)

    return b.key(fmt.name, None, max_batch=b.o.batch[2], **pt2_target(b.o.device)), {}, build


MAKERS: dict[str, Callable[[Builder, Format, Artifact | None], Made]] = {
    f.__name__: f for f in (make_onnx, make_fp16, make_int8, make_engine, make_pt2)
}
