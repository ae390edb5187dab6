"""FP32 ONNX -> FP16-typed ONNX with FP32 inputs and outputs, for strongly typed TensorRT.

As NVIDIA ModelOpt's AutoCast does, the fp32 graph first runs on real images; a node whose inputs or
outputs reach `data_max` in magnitude (or whose weights reach `init_max`) stays in FP32 behind Casts.
Everything else computes in FP16. Casts are inserted only where the precision changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from zoo.export.onnx import annotate, finish, load
from zoo.utils.lazy import lazy_import

helper = lazy_import("onnx.helper")
numpy_helper = lazy_import("onnx.numpy_helper")
onnx = lazy_import("onnx")
ort = lazy_import("onnxruntime")

DATA_MAX = 8192.0  # 1/8 of FP16's largest value: headroom for the sums inside a Conv or Gemm
INIT_MAX = 65504.0


def activation_ranges(proto, batches: Iterable[np.ndarray]) -> dict[str, float]:
    """max |value| of every float tensor of the graph over real input batches (ONNX Runtime, CPU)."""
    inferred = onnx.shape_inference.infer_shapes(proto)
    floats = {
        v.name
        for v in [*inferred.graph.value_info, *inferred.graph.output]
        if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    }
    probe = onnx.ModelProto()
    probe.CopyFrom(inferred)
    known = {o.name for o in probe.graph.output}
    for name in sorted(floats - known):
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    ranges: dict[str, float] = {}
    input_name = session.get_inputs()[0].name
    for batch in batches:
        ranges[input_name] = max(ranges.get(input_name, 0.0), float(np.abs(batch).max()))
        for name, value in zip(names, session.run(names, {input_name: batch}), strict=True):
            ranges[name] = max(ranges.get(name, 0.0), float(np.abs(value).max()) if value.size else 0.0)
    return ranges


def fp32_nodes(
    proto, ranges: dict[str, float], data_max: float = DATA_MAX, init_max: float = INIT_MAX
) -> set[str]:
    """Names of the nodes that must stay FP32, by measured range."""
    inits = {
        i.name: float(np.abs(numpy_helper.to_array(i)).max(initial=0))
        for i in proto.graph.initializer
        if i.data_type == 1
    }
    keep = set()
    for node in proto.graph.node:
        values = [ranges.get(t, 0.0) for t in [*node.input, *node.output]]
        if max(values, default=0.0) >= data_max or any(inits.get(t, 0.0) >= init_max for t in node.input):
            keep.add(node.name)
    return keep


def convert_fp16(proto, keep_fp32: set[str] = frozenset()):
    """A copy of `proto` computing in FP16 except the nodes named in `keep_fp32`; I/O stay FP32."""
    FLOAT, HALF = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    model = onnx.ModelProto()
    model.CopyFrom(onnx.shape_inference.infer_shapes(proto))
    g = model.graph
    typed = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]}
    typed |= {i.name: i.data_type for i in g.initializer}
    is_float = {name for name, t in typed.items() if t == FLOAT}
    producer = {o: n for n in g.node for o in n.output}
    half_node = {n.name: n.name not in keep_fp32 for n in g.node}
    inits = {i.name: i for i in g.initializer}

    def dtype_of(tensor: str) -> int:  # the precision a float tensor has after conversion
        if tensor in inits:
            return HALF if all(half_node[c.name] for c in consumers[tensor]) else FLOAT
        node = producer.get(tensor)
        return HALF if node is not None and half_node[node.name] else FLOAT

    consumers: dict[str, list] = {}
    for n in g.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    new_nodes, casts = [], {}

    def cast(tensor: str, to: int) -> str:
        key = (tensor, to)
        if key not in casts:
            out = f"{tensor}__to_{'fp16' if to == HALF else 'fp32'}"
            casts[key] = out
            new_nodes.append(helper.make_node("Cast", [tensor], [out], to=to, name=f"cast_{out}"))
        return casts[key]

    for n in g.node:
        want = HALF if half_node[n.name] else FLOAT
        for i, t in enumerate(n.input):
            if t and t in is_float and dtype_of(t) != want:
                n.input[i] = cast(t, want)
        if want == HALF:
            _retype_to_half(n)
        new_nodes.append(n)
    for name, init in inits.items():
        if init.data_type == FLOAT and dtype_of(name) == HALF:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name))
    half_outputs = [o.name for o in g.output if o.name in is_float and dtype_of(o.name) == HALF]
    new_nodes += _outputs_back_to_fp32(half_outputs, producer, consumers)
    # graph inputs stay FP32: the casts above already convert them where FP16 nodes read them
    del g.node[:]
    g.node.extend(_toposort(new_nodes, {i.name for i in g.input} | set(inits)))
    del g.value_info[:]
    return model


def _retype_to_half(n) -> None:
    """A node that now computes in FP16: a Cast to FP32 casts to FP16, a Constant holds FP16."""
    for a in n.attribute:
        if n.op_type == "Cast" and a.name == "to" and a.i == onnx.TensorProto.FLOAT:
            a.i = onnx.TensorProto.FLOAT16
        if n.op_type == "Constant" and a.name == "value" and a.t.data_type == onnx.TensorProto.FLOAT:
            a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))


def _outputs_back_to_fp32(names: list[str], producer: dict, consumers: dict) -> list:
    """Graph outputs stay FP32: each FP16 output is renamed inside and cast back under its own name."""
    casts = []
    for name in names:
        inner = f"{name}__fp16"
        node = producer[name]
        for j, o in enumerate(node.output):
            if o == name:
                node.output[j] = inner
        for c in consumers.get(name, []):
            for j, t in enumerate(c.input):
                if t == name:
                    c.input[j] = inner
        casts.append(
            helper.make_node("Cast", [inner], [name], to=onnx.TensorProto.FLOAT, name=f"cast_{name}_out")
        )
    return casts


def _toposort(nodes: list, ready: set[str]) -> list:
    ready = set(ready) | {""}
    pending, ordered = list(nodes), []
    while pending:
        progressed = False
        for n in list(pending):
            if all(t in ready for t in n.input):
                ordered.append(n)
                ready.update(n.output)
                pending.remove(n)
                progressed = True
        if not progressed:
            raise RuntimeError("the FP16 graph has a cycle or a dangling input")
    return ordered


def export_fp16(
    fp32_path: Path, out: Path, batches: Iterable[np.ndarray], metadata: dict | None = None
) -> dict:
    """Write the FP16 graph of `fp32_path` to `out`; returns what was kept in FP32 and why."""
    proto = load(fp32_path)
    ranges = activation_ranges(proto, batches)
    keep = fp32_nodes(proto, ranges)
    half = convert_fp16(proto, keep)
    annotate(half, {**(metadata or {}), "precision": "fp16", "fp32_nodes": sorted(keep)})
    finish(half, out)
    return {
        "fp32_nodes": sorted(keep),
        "data_max": DATA_MAX,
        "max_activation": max(ranges.values()) if ranges else None,  # None: no images, not measured
    }
