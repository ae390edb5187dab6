"""What a figure was measured on: the machine, the accelerator and the package versions. Recorded beside
every measurement the zoo writes (training summaries, bench reports, artifact cards, `zoo doctor`)."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

from zoo.utils.lazy import installed, lazy_import

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


# The instruction-set features that change what a CPU computes, not only how fast: int8 dot products with
# VNNI (AVX-512 VNNI, AVX-VNNI, AMX) accumulate exactly, those without it (AVX2, AVX-512 alone) go through
# u8 x s8 pairs summed in int16, which saturate; bf16 (AVX-512 BF16, AMX) is what OpenVINO computes in where
# it exists.
NUMERIC_FEATURES = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
FEATURES_ENV = "ZOO_CPU_FEATURES"  # comma-separated: stands in for /proc/cpuinfo (tests, what-if checks)


def cpu_features() -> list[str]:
    """The NUMERIC_FEATURES this CPU has, from /proc/cpuinfo's flags (or $ZOO_CPU_FEATURES)."""
    given = os.environ.get(FEATURES_ENV)
    if given is not None:
        return [f for f in NUMERIC_FEATURES if f in {g.strip() for g in given.split(",")}]
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith("flags")), "")
        flags = set(line.partition(":")[2].split())
    except OSError:
        pass
    return [f for f in NUMERIC_FEATURES if f in flags]


def int8_class(features: list[str]) -> str:
    """How this CPU's int8 kernels add up: 'vnni' (exact int32 accumulation) or 'no-vnni' (u8s8 pairs
    that saturate in int16 unless the weights have 7 bits)."""
    return "vnni" if {"avx512_vnni", "avx_vnni", "amx_int8"} & set(features) else "no-vnni"


def bf16_class(features: list[str]) -> str:
    return "bf16" if {"avx512_bf16", "amx_bf16"} & set(features) else "no-bf16"


def cpu_record(features: list[str] | None = None) -> dict[str, Any]:
    """What a CPU verdict records of the CPU: model, numeric features and the classes they make."""
    features = cpu_features() if features is None else features
    return {
        "cpu": machine()["cpu"],
        "features": features,
        "int8_class": int8_class(features),
        "bf16_class": bf16_class(features),
    }


def hardware(device: Any = None) -> dict[str, Any]:
    """`machine()` plus the CPU's numeric features (one model name covers CPUs with and without AVX-512),
    torch, its CPU threads, OMP_NUM_THREADS and the GPU (the one `device` names, or the first) where there
    is one. Imports torch only if it is installed."""
    info: dict[str, Any] = {
        **machine(),
        "cpu_features": cpu_features(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
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
