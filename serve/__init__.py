"""Running artifacts: one runtime interface, prediction, parity and benchmarks.

import serve
with serve.open_runtime("artifacts/resnet20.cifar10/onnx-int8-cpu") as rt:
    print(serve.predict(rt, ["cat.jpg"]))
"""

import importlib
from typing import Any

_API = {
    "open_runtime": "serve.runtimes",
    "predict": "serve.predict",
    "parity": "serve.parity",
    "bench": "serve.bench",
}


def __getattr__(name: str) -> Any:  # lazy: importing serve must not import torch or onnxruntime
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'serve' has no attribute {name!r}")
