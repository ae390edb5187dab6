"""What can be run, checked and timed: the PyTorch original (eager or compiled), or an exported artifact
run by its own runtime or by another backend (OpenVINO runs the ONNX file). One table, read by
`zoo export`, `zoo bench` and the parity check. Light on purpose: the CLI reads it to write its help.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo.errors import ZooError
from zoo.export.formats import FORMATS


@dataclass(frozen=True)
class Target:
    name: str
    artifact: str | None  # the export format it runs (None: the PyTorch model itself)
    backend: str | None = None  # a runtime other than the artifact's own
    compiled: bool = False  # torch.compile, for the PyTorch model

    @property
    def card_key(self) -> str:
        """Where its timings go in the artifact's card: another backend's apart from the artifact's own."""
        return f"bench_{self.backend}" if self.backend else "bench"


TARGETS: dict[str, Target] = {
    "pytorch": Target("pytorch", None),
    "pytorch-compiled": Target("pytorch-compiled", None, compiled=True),
    **{name: Target(name, name) for name in FORMATS},
    # OpenVINO runs the ONNX graphs the zoo writes, its FP16 one, and the CPU flavour of INT8: a CPU
    # runtime, whose int8 kernels saturate like ONNX Runtime's without VNNI (7-bit weights there)
    "openvino": Target("openvino", "onnx", backend="openvino"),
    "openvino-fp16": Target("openvino-fp16", "onnx-fp16", backend="openvino"),
    "openvino-int8": Target("openvino-int8", "onnx-int8-cpu", backend="openvino"),
    # the TensorRT flavour of INT8 as a plain ONNX Runtime session runs it on a CPU (its fused kernels,
    # which saturate without VNNI), beside the exact arithmetic the zoo judges it by
    "onnx-int8-fused": Target("onnx-int8-fused", "onnx-int8", backend="onnxruntime-fused"),
}
EAGER = "pytorch"  # the baseline every speed-up is measured against


def runnable_here() -> list[str]:
    """`--formats all`: every target this machine can run (its runtime is available here: TensorRT
    engines need TensorRT and a GPU, OpenVINO targets the openvino package)."""
    from zoo.serve.runtimes import runtime_for

    return [
        name
        for name, t in TARGETS.items()
        if t.artifact is None or runtime_for(t.artifact, t.backend).available()
    ]


def get(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ZooError(f"unknown format {name!r}; choose from {', '.join(TARGETS)}.") from None
