"""`zoo doctor`: what is installed, which runtimes work on this machine, and where things are."""

from __future__ import annotations

import os
from typing import Any

from zoo.machine import cpu_record, machine, version
from zoo.paths import BUILTIN_WEIGHTS, cache_dir

PACKAGES = (
    "torch",
    "numpy",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxscript",
    "tensorrt",
    "polygraphy",
    "openvino",
    "gradio",
    "safetensors",
    "typer",
)


def _probe(name: str, fn) -> dict[str, Any]:
    try:
        return {"name": name, "usable": True, "detail": fn()}
    except Exception as e:  # any failure to load a backend means: not usable here, and why
        return {"name": name, "usable": False, "detail": f"{type(e).__name__}: {e}".splitlines()[0][:160]}


def _torch() -> str:
    import torch

    cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return f"torch {torch.__version__}, CUDA devices: {', '.join(cuda) or 'none'}"


def _onnxruntime() -> str:
    import onnxruntime as ort

    both = version("onnxruntime") and version("onnxruntime-gpu")
    clash = "; both onnxruntime and onnxruntime-gpu are installed: uninstall one of them" if both else ""
    return "providers: " + ", ".join(ort.get_available_providers()) + clash


def _tensorrt() -> str:
    """Usable means a builder can be created here (imported alone says little: a CUDA 13 build under an
    older driver imports and then fails)."""
    import tensorrt as trt

    if trt.Builder(trt.Logger(trt.Logger.ERROR)) is None:
        raise RuntimeError("it could not create a builder on this GPU")
    return f"TensorRT {trt.__version__}: a builder was created"


def _openvino() -> str:
    import openvino as ov

    return "devices: " + ", ".join(ov.Core().available_devices)


def _aoti() -> str:
    import torch._inductor  # noqa: F401

    return "AOTInductor packages (.pt2) compile and load with this torch"


def _gradio() -> str:
    import gradio

    return f"web demo: gradio {gradio.__version__}"


def diagnose() -> dict[str, Any]:
    backends = [
        _probe("pytorch", _torch),
        _probe("onnxruntime", _onnxruntime),
        _probe("tensorrt", _tensorrt),
        _probe("openvino", _openvino),
        _probe("aoti", _aoti),
        _probe("gradio", _gradio),
    ]
    for b in backends:
        hint = {
            "tensorrt": "pip install 'resnet-zoo[trt]' on a machine with an NVIDIA GPU",
            "openvino": "pip install 'resnet-zoo[openvino]'",
            "gradio": "pip install 'resnet-zoo[app]'",
        }
        if not b["usable"] and b["name"] in hint and "No module named" in b["detail"]:
            b["detail"] = f"not installed: {hint[b['name']]}"
    data = os.environ.get("ZOO_DATA")
    return {
        **machine(),
        "cpu_numerics": cpu_record(),
        "versions": {p: version(p) for p in PACKAGES},
        "backends": backends,
        "paths": {
            "weights (built-in)": BUILTIN_WEIGHTS,
            "cache ($ZOO_CACHE)": cache_dir(),
            "data ($ZOO_DATA)": data or "not set: pass --data DIR or set ZOO_DATA",
        },
    }
