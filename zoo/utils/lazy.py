"""The one way the zoo imports a heavy library: at the top of the module that uses it, loaded on first use.

    torch = lazy_import("torch")
    ort = lazy_import("onnxruntime")

names the dependency where a reader looks for it, and imports nothing until an attribute is read (as
Polygraphy's `mod.lazy_import` does). So `import zoo`, the modules of export/ and serve/, and `zoo --help`
load none of torch, ONNX, ONNX Runtime, TensorRT, OpenVINO, Gradio, Matplotlib or tritonclient until a
command needs them (tests/cli/test_cli.py checks this for every module). The exceptions are the modules that
subclass torch classes (the networks, the data loaders, the trainer): they import torch at their top and
are only imported where a model or a training run is made.

A library that is not installed is one sentence naming the extra that installs it (EXTRAS), raised where
it is first used.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

from zoo.errors import ZooError

# top-level package -> (what it is for the user, the extra of resnet-zoo that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "onnx": ("ONNX", "onnx"),
    "onnxruntime": ("ONNX Runtime", "onnx"),
    "onnxscript": ("onnxscript (the ONNX exporter's)", "onnx"),
    "tensorrt": ("TensorRT", "trt"),
    "openvino": ("OpenVINO", "openvino"),
    "gradio": ("Gradio (the web demo)", "app"),
    "matplotlib": ("Matplotlib (the plots)", "plot"),
    "tritonclient": ("tritonclient (Triton repositories and clients)", "triton"),
    "google": ("protobuf (Triton's model configurations)", "triton"),
}


def install_hint(package: str) -> str:
    """'X is not installed: pip install ...' for a top-level package of EXTRAS."""
    what, extra = EXTRAS.get(package, (package, ""))
    command = f"pip install 'resnet-zoo[{extra}]'" if extra else f"pip install {package}"
    return f"{what} is not installed: {command}."


def installed(name: str) -> bool:
    """Whether `name` can be imported here, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package that is missing
        return False


class LazyModule(types.ModuleType):
    """A stand-in for module `name` that imports it when one of its attributes is first read. Each read
    goes through the import system (a dictionary lookup once loaded), so the stand-in always means what
    `import name` would mean now."""

    def _load(self) -> types.ModuleType:
        try:
            return importlib.import_module(self.__name__)
        except ModuleNotFoundError as e:
            top = self.__name__.split(".")[0]
            if e.name is None or e.name.split(".")[0] != top:
                raise  # the library is there but one of its own dependencies is not: its own message
            raise ZooError(install_hint(top)) from None

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._load())

    def __repr__(self) -> str:
        state = "loaded" if sys.modules.get(self.__name__) is not None else "not loaded yet"
        return f"<lazy module {self.__name__!r} ({state})>"


def lazy_import(name: str) -> Any:
    """A module-level stand-in for `import name` (typed Any: it behaves as the module)."""
    return LazyModule(name)
