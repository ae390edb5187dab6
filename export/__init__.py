"""Turning a model into deployable artifacts: ONNX, FP16 and INT8 ONNX, TensorRT engines, AOTInductor.
Installed as `zoo.export`; the product's Python API is `zoo.api`."""
