"""The export formats: one table of what each is built from, its file, its precision and the function
that makes it. `zoo export`, `zoo bench`, the demo and the artifact writer all read this table; a new
format is one row here and one maker in `export/pipeline.py`.

    onnx ─┬─ onnx-fp16 ── trt-fp16
          ├─ onnx-int8 ── trt-int8        (TensorRT-style Q/DQ)
          ├─ onnx-int8-cpu                 (ONNX Runtime's fast CPU path)
          └─ trt-fp32
    pt2                                    (AOTInductor, from the PyTorch model)

Light on purpose (no numpy, no torch): the CLI reads it to write its help.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo.errors import ZooError


@dataclass(frozen=True)
class Format:
    name: str
    parent: str | None  # the artifact it is built from (None: the PyTorch model)
    file: str  # the model file inside the artifact directory
    precision: str  # fp32, fp16 or int8: the parity bar it is held to
    maker: str  # the function in export/pipeline.py that builds it
    variant: str = ""  # what the maker is told apart by: the INT8 layout, the engine's precision
    help: str = ""


_TABLE = (
    Format("onnx", None, "model.onnx", "fp32", "make_onnx", help="ONNX, FP32, dynamic batch"),
    Format("onnx-fp16", "onnx", "model.onnx", "fp16", "make_fp16", help="FP16-typed ONNX graph"),
    Format("onnx-int8", "onnx", "model.onnx", "int8", "make_int8", "trt", "Q/DQ INT8 laid out for TensorRT"),
    Format("onnx-int8-cpu", "onnx", "model.onnx", "int8", "make_int8", "cpu", "INT8 for ONNX Runtime's CPU"),
    Format("trt-fp32", "onnx", "model.engine", "fp32", "make_engine", "fp32", "TensorRT engine, FP32"),
    Format("trt-fp16", "onnx-fp16", "model.engine", "fp16", "make_engine", "fp16", "TensorRT engine, FP16"),
    Format("trt-int8", "onnx-int8", "model.engine", "int8", "make_engine", "int8", "TensorRT engine, INT8"),
    Format("pt2", None, "model.pt2", "fp32", "make_pt2", help="AOTInductor package"),
)
FORMATS: dict[str, Format] = {f.name: f for f in _TABLE}
INT8 = tuple(f.name for f in _TABLE if f.precision == "int8")  # what needs calibration images
ONNX_FORMATS = tuple(f.name for f in _TABLE if f.file.endswith(".onnx"))  # what every --backend runs
TRT_PRESET = {f.variant: f.name for f in _TABLE if f.maker == "make_engine"}  # `--trt fp16` -> trt-fp16


def get(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ZooError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}.") from None


def plan(formats: list[str]) -> list[str]:
    """The formats asked for plus what they are built from, parents first, in the table's order."""
    wanted: set[str] = set()
    for name in formats:
        f: Format | None = get(name)
        while f is not None and f.name not in wanted:
            wanted.add(f.name)
            f = FORMATS[f.parent] if f.parent else None
    return [name for name in FORMATS if name in wanted]
