"""The options that several commands share, declared once: the same name means the same thing in every
command that takes it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document and nothing else.")]
DataOpt = Annotated[str | None, typer.Option(help="Dataset root (default: $ZOO_DATA).")]
ArtifactsOpt = Annotated[Path, typer.Option(help="Artifacts folder; each artifact is OUT/TAG/FORMAT/.")]
ArtifactsInOpt = Annotated[
    Path, typer.Option("--artifacts", help="Artifacts folder; each artifact is DIR/TAG/FORMAT/.")
]
ParityImagesOpt = Annotated[
    int | None, typer.Option(help="Labelled test images for the parity check (default: all; 0: skip).")
]


# The values come from the registered runtimes (zoo/serve/runtimes.py), which this help does not import:
# `zoo --help` stays free of numpy; an unknown value is answered with the list.
BackendOpt = Annotated[
    str | None,
    typer.Option(
        help="Run an ONNX artifact with another runtime: openvino, or ONNX Runtime's cuda or tensorrt "
        "provider (`zoo doctor` shows which work here)."
    ),
]
AllowOpt = Annotated[
    bool,
    typer.Option(
        "--allow-unverified",
        help="Use artifacts whose last parity check failed or that were never checked (with a warning).",
    ),
]
TritonFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help="The artifact to serve: onnx, onnx-fp16, onnx-int8(-cpu), trt-* (default: onnx-int8-cpu on "
        "the CPU, onnx-fp16 on a GPU).",
    ),
]
ModelArg = Annotated[str, typer.Argument(help="A pretrained tag or arch (its default tag).")]
TagArg = Annotated[str, typer.Argument(help="A pretrained tag.")]
ReportOutOpt = Annotated[Path, typer.Option("--out", help="Where the report files go.")]

# training
RecipeOpt = Annotated[
    str,
    typer.Option(help="Recipe name (cifar_budget, cifar_zoo, cifar_paper, imagenet_paper) or TOML file."),
]
EpochsOpt = Annotated[int | None, typer.Option(help="Override the recipe's length.")]
BatchSizeOpt = Annotated[int | None, typer.Option(help="Override the recipe's batch size.")]
TrainDeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")]
AmpOpt = Annotated[
    str, typer.Option(help="auto (bf16 on CUDA, fp16 where it has none), bf16, fp16 (GPUs) or fp32.")
]
TrainLimitOpt = Annotated[int | None, typer.Option(help="Use only the first N training images.")]
TestLimitOpt = Annotated[int | None, typer.Option(help="Evaluate on only the first N test images.")]
WeightsDirOpt = Annotated[
    Path | None, typer.Option(help="Manifest folder to add the tag to (default: $ZOO_CACHE/weights).")
]
