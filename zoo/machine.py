"""What a figure was measured on: the machine, the accelerator and the package versions. Recorded beside
every measurement the zoo writes (training summaries, bench reports, artifact cards, `zoo doctor`)."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

from zoo.lazy import installed, lazy_import

torch = lazy_import("torch")


def version(dist: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions(dists: tuple[str, ...]) -> dict[str, str | None]:
    return {d: version(d) for d in dists}


def machine() -> dict[str, Any]:
    """The CPU (model name from /proc/cpuinfo where there is one), its cores, the OS and Python."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def hardware(device: Any = None) -> dict[str, Any]:
    """`machine()` plus torch, its CPU threads, OMP_NUM_THREADS and the GPU (the one `device` names, or
    the first) where there is one. Imports torch only if it is installed."""
    info: dict[str, Any] = {**machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    if not installed("torch"):
        return info
    info |= {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if device is not None:
        info["device"] = str(device)
    gpu = torch.device(device) if device is not None else torch.device("cuda", 0)
    if gpu.type == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(gpu)
        info |= {"gpu": p.name, "compute_capability": f"{p.major}.{p.minor}", "cuda": torch.version.cuda}
    return info
