"""PyTorch -> ONNX: one file (no external data), dynamic batch, I/O named `input` and `logits`, checked
by onnx.checker and shape inference, with the preprocessing, labels and weights hash in metadata_props."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.utils.files import atomic_path
from zoo.utils.lazy import lazy_import
from zoo.utils.quiet import quiet_exporter

onnx = lazy_import("onnx")
external_data_helper = lazy_import("onnx.external_data_helper")
protobuf_message = lazy_import("google.protobuf.message")
ort = lazy_import("onnxruntime")
torch = lazy_import("torch")

INPUT, OUTPUT = "input", "logits"
DEFAULT_OPSET = 20
MAX_OPSET = 23


def check_opset(opset: int) -> None:
    if not 7 <= opset <= MAX_OPSET:
        raise ZooError(
            f"opset {opset} is not supported; choose one from 7 to {MAX_OPSET} (default {DEFAULT_OPSET})."
        )


def export_onnx(
    model,
    example: np.ndarray,
    path: Path,
    opset: int = DEFAULT_OPSET,
    max_batch: int = 1024,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Export `model` (eval mode) to `path`. `example` is a real NCHW batch of at least 2 images: a batch of
    1 would be specialised by torch.export and lose the dynamic batch dimension."""
    check_opset(opset)
    if example.shape[0] < 2:
        raise ZooError("the example batch for ONNX export needs at least 2 images.")
    x = torch.from_numpy(np.ascontiguousarray(example))
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    kwargs = {
        "dynamo": True,
        "input_names": [INPUT],
        "output_names": [OUTPUT],
        "opset_version": opset,
        "dynamic_shapes": {"x": {0: batch}},
        "external_data": False,
    }
    with quiet_exporter():
        try:
            program = torch.onnx.export(model.eval(), (x,), None, **kwargs)
        except Exception as e:  # the exporter raises many types; the user needs the first line
            raise ZooError(
                f"torch.onnx.export failed for opset {opset}: {str(e).splitlines()[0][:300]}"
            ) from None
    proto = program.model_proto
    annotate(proto, metadata or {})
    finish(proto, path)
    return path


def annotate(proto, metadata: dict[str, Any]) -> None:
    """Write metadata_props (JSON for non-strings), replacing keys already there."""
    del_keys = set(metadata)
    keep = [p for p in proto.metadata_props if p.key not in del_keys]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)


def load(path: Path, with_weights: bool = True):
    """An ONNX model, or one clear sentence when the file is not one."""
    try:
        proto = onnx.load(str(path), load_external_data=with_weights)
    except (protobuf_message.DecodeError, OSError, ValueError) as e:
        raise ZooError(f"{path} is not a readable ONNX model ({type(e).__name__}).") from None
    if not proto.graph.node:
        raise ZooError(f"{path} is not a readable ONNX model (it has no graph).")
    return proto


def finish(proto, path: Path) -> None:
    """Check, infer shapes, and write atomically."""
    try:
        onnx.checker.check_model(proto, full_check=False)
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ZooError(f"the ONNX graph for {path.name} is invalid: {str(e).splitlines()[0]}") from None
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))


def ort_session(
    path: Path | bytes,
    threads: int | None = None,
    providers: list[str] | None = None,
    spinning: bool = True,
    exact_int8: bool = False,
    gpu: bool = False,
):
    """An ONNX Runtime session with full graph optimisation; the one place sessions are made.

    spinning=False stops its worker threads from spinning after each run: they would otherwise keep the
    cores busy and starve whatever else runs in the process (PyTorch beside it in the demo ran 2-3x
    slower). A process that runs ONNX Runtime alone (a benchmark) keeps the spin, which lowers latency.

    exact_int8=True turns ONNX Runtime's Q/DQ fusion off: a Q/DQ graph then computes exact int8 arithmetic
    in float (what TensorRT computes), not the fused kernels of this CPU, which saturate without VNNI."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if exact_int8:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    first = providers[0] if providers else None
    first = first[0] if isinstance(first, tuple) else first
    if gpu and first in ort.get_available_providers():
        # a GPU backend runs every node there or refuses: ORT would quietly move QLinear ops to the CPU
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    source = path if isinstance(path, bytes) else str(path)
    try:
        with warnings.catch_warnings():  # a missing provider is refused in one sentence by the caller
            warnings.simplefilter("ignore", UserWarning)
            return ort.InferenceSession(source, options, providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types for a foreign or corrupt model
        raise ZooError(
            f"ONNX Runtime cannot load {path if not isinstance(path, bytes) else 'the model'}: "
            f"{str(e).splitlines()[0][:300]}"
        ) from None


def check_contract(path: Path, card: dict[str, Any]) -> None:
    """The labels, preprocessing and precision inside an ONNX model (under the sha256 its card checks)
    must be the card's, and the model may not read data from files beside it that no hash covers."""
    proto = load(path, with_weights=False)
    external = [t.name for t in external_data_helper._get_all_tensors(proto) if t.data_location == 1]
    if external:
        raise ZooError(
            f"{path} reads {len(external)} tensors (e.g. {external[0]!r}) from files beside it that its "
            "card's sha256 does not cover; the zoo's ONNX artifacts are one file: export it again."
        )
    inside = {p.key: p.value for p in proto.metadata_props}
    for key in ("labels", "preprocess", "precision"):
        try:
            value = inside[key] if key == "precision" else json.loads(inside[key])
        except (KeyError, ValueError):
            raise ZooError(f"{path} carries no {key} of its own; export the artifact again.") from None
        if value != card[key]:
            raise ZooError(
                f"the {key} in {Path(path).parent / 'card.json'} differ from those inside {Path(path).name}, "
                "which its sha256 covers: the card was edited after export; export the artifact again."
            )
    graph = proto.graph
    ins = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if len(ins) != 1 or len(graph.output) != 1:
        raise ZooError(f"{path} has {len(ins)} inputs and {len(graph.output)} outputs, not one of each.")
    for value, rank, what in ((ins[0], 4, "input"), (graph.output[0], 2, "output")):
        t = value.type.tensor_type
        if t.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) or len(t.shape.dim) != rank:
            raise ZooError(
                f"{path}'s {what} is not a {rank}-D float tensor ({onnx.TensorProto.DataType.Name(t.elem_type)}, "
                f"rank {len(t.shape.dim)}); the zoo runs NCHW images to (N, classes) scores."
            )
    classes = graph.output[0].type.tensor_type.shape.dim[1]
    if classes.HasField("dim_value") and classes.dim_value != len(card["labels"]):
        raise ZooError(
            f"{path} answers {classes.dim_value} scores per image, but its card has {len(card['labels'])} "
            "labels; export the artifact again."
        )
