"""The options that several commands share, declared once: the same name means the same thing in every
command that takes it, and every value shows what it is (DIR, N, TAG, FORMATS) rather than its Python type.

The vocabulary:
  --artifacts DIR   the artifacts folder (DIR/TAG/FORMAT/), read or written by every deployment command
  --out DIR         where a command writes its own results (reports, a run folder)
  -f/--formats      a comma-separated list of formats; -f/--format one format
  --batch SIZES     batch sizes to time (bench); --batch-range MIN:OPT:MAX the batch sizes an artifact
                    accepts (export); --batch-size N the batch of a training step
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document and nothing else.")]
DataOpt = Annotated[str | None, typer.Option(metavar="DIR", help="Dataset root (default: $ZOO_DATA).")]
ArtifactsOpt = Annotated[
    Path,
    typer.Option("--artifacts", metavar="DIR", help="Artifacts folder; each artifact is DIR/TAG/FORMAT/."),
]
ParityImagesOpt = Annotated[
    int | None,
    typer.Option(metavar="N", help="Labelled test images for the parity check (default: all; 0: skip)."),
]
SecondsOpt = Annotated[
    float, typer.Option(metavar="SECONDS", help="Timed seconds per format and batch size.")
]


# The values come from the registered runtimes (zoo/serve/runtimes.py), which this help does not import:
# `zoo --help` stays free of numpy; an unknown value is answered with the list.
BackendOpt = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        help="Run an ONNX artifact with another runtime: openvino, ONNX Runtime's cuda or tensorrt "
        "provider, or its CPU with INT8 in exact arithmetic (onnxruntime-exact) or its fused int8 kernels "
        "(onnxruntime-fused, as a plain session runs it). `zoo doctor` shows which work here.",
    ),
]
AllowOpt = Annotated[
    bool,
    typer.Option(
        "--allow-unverified",
        help="Use artifacts whose last parity check failed or that were never checked (with a warning).",
    ),
]


def formats_option(help: str) -> typer.Option:
    """-f/--formats, a comma-separated list of formats: one declaration, each command its own help."""
    return typer.Option("--formats", "-f", metavar="FORMATS", help=help)


TritonFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        metavar="FORMAT",
        help="The artifact to serve: onnx, onnx-fp16, onnx-int8(-cpu), trt-* (default: onnx-int8-cpu on "
        "the CPU, onnx-fp16 on a GPU).",
    ),
]
ModelArg = Annotated[
    str, typer.Argument(metavar="MODEL", help="A pretrained tag, or an arch (its default tag).")
]
TagArg = Annotated[str, typer.Argument(metavar="TAG", help="A pretrained tag.")]

# training
RecipeOpt = Annotated[
    str,
    typer.Option(
        metavar="RECIPE",
        help="Recipe name (cifar_budget, cifar_zoo, cifar_distill, cifar_paper, imagenet_paper) or TOML file.",
    ),
]
EpochsOpt = Annotated[int | None, typer.Option(metavar="N", help="Override the recipe's length.")]
BatchSizeOpt = Annotated[int | None, typer.Option(metavar="N", help="Override the recipe's batch size.")]
TrainDeviceOpt = Annotated[str, typer.Option(metavar="DEVICE", help="auto, cpu, cuda, cuda:1 ...")]
AmpOpt = Annotated[
    str,
    typer.Option(
        metavar="DTYPE",
        help="auto (fp32 on a CPU, bf16 on CUDA, fp16 where it has none), bf16, fp16 or fp32.",
    ),
]
TrainLimitOpt = Annotated[int | None, typer.Option(metavar="N", help="Use only the first N training images.")]
TestLimitOpt = Annotated[
    int | None, typer.Option(metavar="N", help="Evaluate on only the first N test images.")
]
WeightsDirOpt = Annotated[
    Path | None,
    typer.Option(metavar="DIR", help="Manifest folder to add the tag to (default: $ZOO_CACHE/weights)."),
]


def examples(*lines: str) -> str:
    """A command's --help epilog: example command lines, printed as written (click's \\b keeps them)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)
