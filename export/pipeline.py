"""`zoo export`: a pretrained tag -> the artifacts asked for, each built from what it needs, each a
directory with a card; an artifact built from the same inputs is reused.

    onnx ─┬─ onnx-fp16 ── trt-fp16
          ├─ onnx-int8 ── trt-int8        (TensorRT-style Q/DQ)
          ├─ onnx-int8-cpu                 (ONNX Runtime's fast CPU path)
          └─ trt-fp32
    pt2                                    (AOTInductor, from the PyTorch model)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export.artifact import Artifact, build_artifact, find_reusable
from zoo.errors import ZooError

FORMATS = ("onnx", "onnx-fp16", "onnx-int8", "onnx-int8-cpu", "trt-fp32", "trt-fp16", "trt-int8", "pt2")
PARENT = {
    "onnx-fp16": "onnx",
    "onnx-int8": "onnx",
    "onnx-int8-cpu": "onnx",
    "trt-fp32": "onnx",
    "trt-fp16": "onnx-fp16",
    "trt-int8": "onnx-int8",
}
TRT_PRESET = {"fp32": "trt-fp32", "fp16": "trt-fp16", "int8": "trt-int8"}


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


@dataclass
class Result:
    format: str
    status: str  # built, reused, failed
    artifact: Artifact | None = None
    message: str = ""


def plan(formats: list[str]) -> list[str]:
    """The formats asked for plus what they are built from, parents first."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ZooError(f"unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}.")
    wanted: list[str] = []
    for f in formats:
        chain = [f]
        while chain[-1] in PARENT:
            chain.append(PARENT[chain[-1]])
        for step in reversed(chain):
            if step not in wanted:
                wanted.append(step)
    return sorted(wanted, key=FORMATS.index)


def pt2_target(device: str) -> dict[str, Any]:
    """What a .pt2 is compiled for: the device, and on CUDA the GPU model and compute capability (a
    package for another GPU architecture must be rebuilt, not reused)."""
    target: dict[str, Any] = {"device": device}
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(torch.device(device))
            target |= {"gpu": p.name, "compute_capability": f"{p.major}.{p.minor}"}
    return target


EXPORT_PACKAGES = ("resnet-zoo", "torch", "onnx", "onnxruntime", "onnxscript", "tensorrt")


def versions() -> dict[str, str | None]:
    """The versions an artifact's card records."""
    from zoo.machine import versions as installed

    return installed(EXPORT_PACKAGES)


def export_model(name: str, options: ExportOptions, log: Callable[[str], None] = print) -> list[Result]:
    """Build every artifact of `options.formats` for the pretrained tag `name` under options.out/TAG/."""
    from zoo import registry
    from zoo.labels import load_labels
    from zoo.weights import sha256_file, weights_file

    _, spec = registry.resolve(name)
    if spec is None:
        raise ZooError(f"{name} has no pretrained weights to export; see `zoo list --pretrained`.")
    steps = plan(options.formats)
    model = registry.create_model(spec.name, pretrained=True)
    weights_sha = sha256_file(weights_file(spec))
    source = {
        "source": spec.name,
        "arch": spec.arch,
        "weights_sha256": weights_sha,
        "dataset": spec.dataset,
        "preprocess": spec.preprocess.to_dict(),
        "labels": list(load_labels(spec.labels)),
    }
    ctx = _Context(spec, model, options, source, log)
    int8 = [f for f in steps if f in ("onnx-int8", "onnx-int8-cpu", "trt-int8")]
    if int8 and options.calib_data:
        ctx.calibration()  # before any work: a --calib-data that cannot be used says why
    elif int8 and not ctx.has_data():  # before any work: INT8 cannot be calibrated on nothing
        raise ZooError(
            f"{', '.join(int8)} needs real {spec.dataset} images to calibrate on: pass --calib-data DIR "
            "(a folder of the model's own dataset) or set ZOO_DATA."
        )
    results: dict[str, Result] = {}
    for fmt in steps:
        parent = PARENT.get(fmt)
        if parent and results[parent].status == "failed":
            results[fmt] = Result(fmt, "failed", message=f"skipped: {parent} failed")
            continue
        try:
            results[fmt] = ctx.make(fmt, results[parent].artifact if parent else None)
        except ZooError as e:
            results[fmt] = Result(fmt, "failed", message=str(e))
        log(_line(results[fmt]))
    return [results[f] for f in steps]


def _line(r: Result) -> str:
    if r.status == "failed":
        return f"{r.format}: failed"
    return f"{r.format}: {'reused' if r.status == 'reused' else 'built'} {r.artifact.path}"


class _Context:
    def __init__(self, spec, model, options: ExportOptions, source: dict, log) -> None:
        self.spec, self.model, self.o, self.source, self.log = spec, model, options, source, log
        self.root = Path(options.out) / spec.name
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
            from export.calibration import batches, calibration_images

            images = calibration_images(self.spec, self.o.calib_data, self.o.calib_size)
            self._calib = batches(images, self.spec)
        return self._calib

    def key(self, fmt: str, parent: Artifact | None, **extra: Any) -> dict[str, Any]:
        base = {"format": fmt, "weights_sha256": self.source["weights_sha256"], "versions": versions()}
        if parent is not None:
            base["parent_sha256"] = parent.card["sha256"]
        return base | extra

    def make(self, fmt: str, parent: Artifact | None) -> Result:
        maker = getattr(self, "_" + fmt.replace("-", "_"))
        key, card, build = maker(parent)
        directory = self.root / fmt
        reused = find_reusable(directory, key)
        if reused is not None:
            return Result(fmt, "reused", reused, "same inputs: reused")
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
        return Result(fmt, "built", build_artifact(directory, fmt, key, card, build))

    # one method per format: (key, card fields, build(model_path) -> extra card fields)

    def _onnx(self, parent):
        from export.onnx import export_onnx
        from export.verify import compare_with_torch

        meta = {k: self.source[k] for k in ("source", "weights_sha256", "preprocess", "labels", "dataset")}

        def build(path: Path) -> dict:
            x = self.example()
            export_onnx(
                self.model, x, path, self.o.opset, max(self.o.batch[2], 2), {**meta, "precision": "fp32"}
            )
            return {"opset": self.o.opset, "onnx_check": compare_with_torch(self.model, path, x)}

        return (
            self.key("onnx", None, opset=self.o.opset, max_batch=self.o.batch[2]),
            {"opset": self.o.opset},
            build,
        )

    def has_data(self) -> bool:
        """Whether real images of the model's dataset are at hand (for ranges and calibration)."""
        try:
            self.calibration()
        except ZooError:
            return False
        return True

    def _onnx_fp16(self, parent):
        from export.fp16 import export_fp16

        # With real images, nodes whose measured range reaches FP16's limits stay FP32 (as AutoCast). Without
        # (ImageNet has no redistributable set), convert as the common tools do: weights checked, activation
        # ranges not measured; the card and the summary say so.
        measured = self.has_data()

        def build(path: Path) -> dict:
            batches = self.calibration()[:4] if measured else []
            return {"fp16": export_fp16(parent.file, path, batches, {"source": self.spec.name})}

        ranges = "measured" if measured else "not measured (no images: weights checked only)"
        return (
            self.key("onnx-fp16", parent, ranges=ranges),
            {"opset": parent.card["opset"], "ranges": ranges},
            build,
        )

    def _int8(self, parent, flavour: str, fmt: str):
        from export.int8 import quantize

        calib = {
            "data": str(self.o.calib_data or f"$ZOO_DATA ({self.spec.dataset}, train split)"),
            "size": self.o.calib_size,
            "method": self.o.calib_method,
        }

        def build(path: Path) -> dict:
            info = quantize(
                parent.file,
                path,
                self.calibration(),
                flavour,
                self.o.calib_method,
                {"source": self.spec.name},
            )
            from export.calibration import describe_calibration_set

            source = describe_calibration_set(self.spec, self.o.calib_data)
            return {
                "int8": info,
                "calibration": calib | {"images": sum(len(b) for b in self.calibration()), "source": source},
            }

        from export.int8 import REVISION

        key = self.key(fmt, parent, calibration=calib, int8_revision=REVISION)
        return key, {"opset": parent.card["opset"]}, build

    def _onnx_int8(self, parent):
        return self._int8(parent, "trt", "onnx-int8")

    def _onnx_int8_cpu(self, parent):
        return self._int8(parent, "cpu", "onnx-int8-cpu")

    def _trt(self, parent, precision: str, fmt: str):
        from export import tensorrt

        if not tensorrt.available():
            raise ZooError(tensorrt.MISSING)
        key = self.key(
            fmt,
            parent,
            engine=tensorrt.engine_key(
                parent.card["sha256"], precision, self.o.batch, self.spec.preprocess.input_shape
            ),
        )

        def build(path: Path) -> dict:
            from zoo.paths import cache_dir

            return tensorrt.build_engine(
                parent.file,
                path,
                self.o.batch,
                self.spec.preprocess.input_shape,
                precision,
                cache_dir() / "tensorrt",
            )

        return key, {"built_from": parent.format}, build

    def _trt_fp32(self, parent):
        return self._trt(parent, "fp32", "trt-fp32")

    def _trt_fp16(self, parent):
        return self._trt(parent, "fp16", "trt-fp16")

    def _trt_int8(self, parent):
        return self._trt(parent, "int8", "trt-int8")

    def _pt2(self, parent):
        from export.aoti import export_pt2

        def build(path: Path) -> dict:
            return export_pt2(self.model, self.example(), path, max(self.o.batch[2], 2), self.o.device)

        return self.key("pt2", None, max_batch=self.o.batch[2], **pt2_target(self.o.device)), {}, build
