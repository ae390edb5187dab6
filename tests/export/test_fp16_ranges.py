"""The FP16 converter's choice of FP32 nodes (export/fp16.py), by measured range (issue #27): a node stays
FP32 when any of its inputs or outputs reaches the limit, not only its output. Hand-built graphs, whose
ranges are known without running the converter."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from zoo.export.fp16 import DATA_MAX, activation_ranges, convert_fp16, fp32_nodes


def _chain() -> onnx.ModelProto:
    """x -> up (x * 1e5: out of FP16's safe range) -> down (* 1e-5: back in range) -> relu -> y."""
    nodes = [
        helper.make_node("Mul", ["x", "big"], ["a"], name="up"),
        helper.make_node("Mul", ["a", "small"], ["b"], name="down"),
        helper.make_node("Relu", ["b"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [
            numpy_helper.from_array(np.array(1e5, np.float32), "big"),
            numpy_helper.from_array(np.array(1e-5, np.float32), "small"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_node_whose_input_is_out_of_range_stays_fp32_though_its_output_is_in_range():
    proto = _chain()
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    ranges = activation_ranges(proto, [x])
    assert ranges["a"] == np.float32(1e5) and ranges["b"] < DATA_MAX  # by construction, measured
    keep = fp32_nodes(proto, ranges)
    # "up" writes the big tensor, "down" reads it: both FP32; "relu" sees only small values: FP16
    assert keep == {"up", "down"}


def test_the_converted_chain_computes_what_the_fp32_one_does():
    """Kept FP32 as chosen, the converted graph matches the original to FP16's precision."""
    import onnxruntime as ort

    proto = _chain()
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    keep = fp32_nodes(proto, activation_ranges(proto, [x]))
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(  # noqa: E731
        None, {"x": x}
    )[0]
    np.testing.assert_allclose(run(convert_fp16(proto, keep)), run(proto), rtol=1e-3, atol=1e-3)
