"""FP32 ONNX -> INT8 ONNX with explicit Q/DQ, calibrated on real images through the model's own
preprocessing. Two flavours, because their consumers differ:

- "trt": what strongly typed TensorRT compiles. Symmetric int8 activations (zero-point 0), per-channel
  symmetric int8 weights, Q/DQ on each Conv/Gemm input and on the residual (skip) input of each Add,
  none on the branch from the conv nor on the Add's output, so Conv+Add+ReLU fuses and writes INT8.
  Biases stay float (TensorRT's ONNX parser takes DequantizeLinear of int8 only, not the int32 biases
  ONNX Runtime writes by default). What TensorRT computes is exact int8 arithmetic, so on the CPU this
  graph is run, and judged, by ONNX Runtime with its Q/DQ fusion off (EXACT), never by the fused kernels
  of whatever CPU built it. (With fusion off the dequantized products are summed in float, in an order
  that follows the thread count: a value within float rounding of a quantization boundary may land one
  step apart, as TensorRT's float rescaling may too; the fused kernels without VNNI miss by tens of steps.)
- "cpu": ONNX Runtime's x86 fast path. uint8 activations, so every Conv and Add becomes QLinearConv /
  QLinearAdd (with int8 activations the convs that feed Adds stay float and nothing gets faster), and
  the CIFAR nets' option-A shortcuts become identity convs so that they stay quantized too. Its weights
  have 8 bits on CPUs with VNNI and 7 bits elsewhere (`weight_bits_for`): without VNNI the u8 x s8 pairs
  are summed in int16 and saturate (ONNX Runtime's `reduce_range`; measured on an AVX2 EPYC: resnet20
  87.95% with 8 bits, 92.25% with 7, FP32 92.15%).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from zoo.errors import ZooError
from zoo.export.onnx import INPUT, annotate, finish, load
from zoo.utils.lazy import lazy_import

helper = lazy_import("onnx.helper")
numpy_helper = lazy_import("onnx.numpy_helper")
onnx = lazy_import("onnx")
quantization = lazy_import("onnxruntime.quantization")

FLAVOURS = ("trt", "cpu")
REVISION = 4  # of the graphs written here; in the artifact key, so older INT8 artifacts are rebuilt
METHODS = ("entropy", "percentile", "minmax")
EXACT = "exact int8 (ONNX Runtime with Q/DQ fusion off: what TensorRT computes)"


def weight_bits_for(flavour: str, int8_class: str) -> int:
    """8-bit weights, except for the CPU flavour on a CPU whose int8 kernels saturate (no VNNI): 7."""
    return 7 if flavour == "cpu" and int8_class != "vnni" else 8


def arithmetic(int8: dict, fused: bool | None = None) -> str:
    """How an INT8 graph is computed on the CPU, from its card's `int8` record: as the zoo runs its flavour
    (None: the TensorRT flavour exact, the CPU flavour fused), or as asked (`--backend onnxruntime-exact`
    / `onnxruntime-fused`; the latter is what a plain ONNX Runtime session computes)."""
    if fused is None:
        fused = int8.get("flavour") != "trt"
    if not fused:
        return EXACT
    bits = int8.get("weight_bits", 8)
    if int8.get("flavour") == "trt":  # int8 activations: ORT fuses what it can, as it does by default
        return f"ONNX Runtime's fused int8 kernels on the TensorRT flavour's graph, {bits}-bit weights"
    return f"ONNX Runtime's fused u8s8 kernels, {bits}-bit weights (built for {int8.get('built_for', '?')})"


def _reader(batches: Iterable[np.ndarray], input_name: str):
    """ONNX Runtime's calibration reader over our batches, with the `__len__`/`set_range` that let it
    calibrate one batch at a time (its `CalibStridedMinMax` option, which every calibrator honours):
    the histograms then grow batch by batch instead of every activation of every image being held at
    once, which for ResNet-50 at 224 px and 512 images is about 50 GB."""

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = list(batches)
            self.set_range(0, len(self.batches))

        def __len__(self) -> int:
            return len(self.batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.it = iter(self.batches[start_index:end_index])

        def get_next(self):
            batch = next(self.it, None)
            return None if batch is None else {input_name: batch}

    return Reader()


def quantize(
    fp32_path: Path,
    out: Path,
    batches: Iterable[np.ndarray],
    flavour: str = "trt",
    method: str = "entropy",
    metadata: dict | None = None,
    weight_bits: int = 8,
) -> dict:
    """Calibrate on `batches` (real, preprocessed NCHW float32) and write the Q/DQ graph to `out`, with
    weights of `weight_bits` (8, or 7 for CPUs whose int8 kernels saturate)."""
    if weight_bits not in (7, 8):
        raise ZooError(f"INT8 weights have 8 or 7 bits, not {weight_bits}.")
    if flavour not in FLAVOURS:
        raise ZooError(f"INT8 flavour {flavour!r} is not one of {', '.join(FLAVOURS)}.")
    if method not in METHODS:
        raise ZooError(f"calibration method {method!r} is not one of {', '.join(METHODS)}.")
    calibrate = {
        "entropy": quantization.CalibrationMethod.Entropy,
        "percentile": quantization.CalibrationMethod.Percentile,
        "minmax": quantization.CalibrationMethod.MinMax,
    }[method]
    trt = flavour == "trt"
    options = {"WeightSymmetric": True, "ActivationSymmetric": trt, "CalibStridedMinMax": 1}
    if trt:
        options["QuantizeBias"] = False
    if method == "percentile":
        options["CalibPercentile"] = 99.999
    rewritten = 0
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        raw = Path(tmp) / "q.onnx"
        if not trt:
            fp32 = load(fp32_path)
            rewritten = shortcuts_as_convs(fp32)
            fp32_path = Path(tmp) / "fp32.onnx"
            onnx.save(fp32, str(fp32_path))
        quantization.quantize_static(
            str(fp32_path),
            str(raw),
            _reader(batches, INPUT),
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=True,
            activation_type=quantization.QuantType.QInt8 if trt else quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            calibrate_method=calibrate,
            op_types_to_quantize=["Conv", "Gemm", "Add"] if trt else None,
            reduce_range=weight_bits == 7,
            extra_options=options,
        )
        proto = load(raw)
    if trt:
        place_for_tensorrt(proto)
    annotate(
        proto,
        {
            **(metadata or {}),
            "precision": "int8",
            "int8_flavour": flavour,
            "calibration_method": method,
            "weight_bits": weight_bits,
        },
    )
    finish(proto, out)
    return {
        "flavour": flavour,
        "method": method,
        "weight_bits": weight_bits,
        "shortcuts_as_convs": rewritten,
        **qdq_summary(proto),
    }


@contextlib.contextmanager
def _quiet():
    """ONNX Runtime's calibrator prints progress to stdout and advises pre-processing (which measurably
    changes nothing for ResNets): keep stdout for the CLI's own output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def shortcuts_as_convs(proto) -> int:
    """Rewrite each option-A shortcut (a stride-2 Slice on H and W, then a zero Pad of the channels) as
    the 1x1 stride-2 Conv with identity weights that computes exactly the same: ONNX Runtime has no
    quantized Slice or Pad, so the shortcut would run in float between a Dequantize and a Quantize, while
    a Conv becomes one more QLinearConv. Returns how many were rewritten."""
    g = proto.graph
    const = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    const |= {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node if n.op_type == "Constant"}
    producer = {o: n for n in g.node for o in n.output}
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in g.value_info}

    def strided_source(tensor: str) -> str | None:  # the input of a chain of ::2 Slices on axes 2 and 3
        axes: set[int] = set()
        while (node := producer.get(tensor)) is not None and node.op_type == "Slice":
            try:
                starts, _, on, steps = (const[node.input[i]].tolist() for i in (1, 2, 3, 4))
            except (KeyError, IndexError):
                return None
            if any(starts) or any(st != 2 for st in steps) or not set(on) <= {2, 3}:
                return None
            axes |= set(on)
            tensor = node.input[0]
        return tensor if axes == {2, 3} else None

    rewritten = 0
    for i, node in enumerate(g.node):
        if node.op_type != "Pad" or len(node.input) > 2 or node.input[1] not in const:
            continue
        if any(helper.get_attribute_value(a) not in (b"constant", "constant") for a in node.attribute):
            continue
        pads = const[node.input[1]].tolist()
        source = strided_source(node.input[0])
        channels = shapes.get(source, [0, 0])[1]
        # pads = [N, C, H, W begins, N, C, H, W ends]: only the channels may be padded, on either side
        if source is None or not channels or len(pads) != 8 or any(pads[i] for i in (0, 2, 3, 4, 6, 7)):
            continue
        before, after = pads[1], pads[5]
        weight = np.zeros((before + channels + after, channels, 1, 1), np.float32)
        weight[before + np.arange(channels), np.arange(channels)] = 1.0
        name = f"{node.output[0]}_shortcut_weight"
        g.initializer.append(numpy_helper.from_array(weight, name))
        g.node[i].CopyFrom(
            helper.make_node(
                "Conv", [source, name], list(node.output), name=f"{node.name}_as_conv", strides=[2, 2]
            )
        )
        rewritten += 1
    if rewritten:
        _drop_dead(proto)
    return rewritten


def place_for_tensorrt(proto) -> None:
    """Keep Q/DQ only on each Add's skip input (input 1, as zoo.resnet writes `out + shortcut`)."""
    g = proto.graph
    producer = {o: n for n in g.node for o in n.output}

    def quantized_source(tensor: str) -> str | None:  # the float tensor behind a Q -> DQ pair
        dq = producer.get(tensor)
        if dq is None or dq.op_type != "DequantizeLinear":
            return None
        q = producer.get(dq.input[0])
        return q.input[0] if q is not None and q.op_type == "QuantizeLinear" else None

    rename: dict[str, str] = {}
    for node in g.node:
        if node.op_type != "Add":
            continue
        source = quantized_source(node.input[0])  # the branch from the conv: fused by TensorRT
        if source is not None:
            node.input[0] = source
    for node in g.node:  # an Add's output re-quantized only to be dequantized: drop the pair
        if node.op_type == "DequantizeLinear":
            source = quantized_source(node.output[0])
            if source is not None and producer.get(source) is not None and producer[source].op_type == "Add":
                rename[node.output[0]] = source
    for node in g.node:
        for i, t in enumerate(node.input):
            if t in rename:
                node.input[i] = rename[t]
    _drop_dead(proto)


def _drop_dead(proto) -> None:
    g = proto.graph
    needed = {o.name for o in g.output}
    keep = []
    for node in reversed(list(g.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    del g.node[:]
    g.node.extend(reversed(keep))
    used_inits = [i for i in g.initializer if i.name in needed]
    del g.initializer[:]
    g.initializer.extend(used_inits)


def qdq_summary(proto) -> dict:
    """Counts a card records: Q/DQ nodes, and whether every activation zero-point is 0 (symmetric)."""
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    q = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    zero_points = [inits[n.input[2]] for n in q if len(n.input) > 2 and n.input[2] in inits]
    return {
        "quantize_nodes": len(q),
        "dequantize_nodes": sum(n.op_type == "DequantizeLinear" for n in proto.graph.node),
        "symmetric_activations": all(np.all(z == 0) for z in zero_points),
        "activation_dtype": str(zero_points[0].dtype) if zero_points else None,
    }
