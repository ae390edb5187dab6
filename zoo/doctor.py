"""`zoo doctor`: what is installed, which runtimes work on this machine, and where things are."""

from __future__ import annotations

import os
from typing import Any

from zoo import __version__
from zoo.utils.lazy import install_hint
from zoo.utils.machine import cpu_record, machine, version
from zoo.utils.paths import BUILTIN_WEIGHTS, cache_dir
from zoo.utils.progress import step

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
        with step(f"probing {name}"):
            return {"name": name, "usable": True, "detail": fn()}
    except Exception as e:  # any failure to load a backend means: not usable here, and why
        if isinstance(e, ImportError) and "No module named" in str(e):
            return {"name": name, "usable": False, "detail": install_hint(e.name or name)}
        return {"name": name, "usable": False, "detail": f"{type(e).__name__}: {e}".splitlines()[0][:160]}


def _gradio() -> str:
    import gradio

    return f"web demo: gradio {gradio.__version__}"


def diagnose() -> dict[str, Any]:
    """Each registered runtime's probe (zoo/serve/runtimes.py), then the web demo's."""
    from zoo.serve.runtimes import RUNTIMES

    backends = [_probe(name, cls.probe) for name, cls in RUNTIMES.items()] + [_probe("gradio", _gradio)]
    data = os.environ.get("ZOO_DATA")
    return {
        **machine(),
        "zoo_version": __version__,
        "cpu_numerics": cpu_record(),
        "versions": {p: version(p) for p in PACKAGES},
        "backends": backends,
        "paths": {
            "weights (built-in)": BUILTIN_WEIGHTS,
            "cache ($ZOO_CACHE)": cache_dir(),
            "data ($ZOO_DATA)": data or "not set: pass --data DIR or set ZOO_DATA",
        },
    }
