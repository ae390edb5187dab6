"""Run inside the serving container before tritonserver: can this container's TensorRT load the engine?

An engine runs only on the TensorRT version (and GPU model) that built it, and Triton's own error for a
foreign engine comes late and says little. `zoo triton --device gpu` copies this file beside the
classifier's card.json; it compares the card's build fingerprint with this container's TensorRT (its
Python bindings, else the libnvinfer library's version) and GPU (nvidia-smi), and exits 1 with one
sentence on a mismatch. Standard library only: the container need not have the zoo installed yet.

    python3 /models/MODEL-classifier/check_engine.py [--tensorrt VERSION] [--gpu NAME]
"""

from __future__ import annotations

import glob
import json
import re
import subprocess
import sys
from pathlib import Path


def container_tensorrt() -> str | None:
    try:
        import tensorrt  # noqa: PLC0415  (the container's, if it has the bindings)

        return tensorrt.__version__
    except ImportError:
        pass
    for lib in sorted(
        glob.glob("/usr/lib/*/libnvinfer.so.*") + glob.glob("/usr/local/tensorrt/lib/libnvinfer.so.*")
    ):
        m = re.search(r"libnvinfer\.so\.(\d+\.\d+\.\d+)", lib)
        if m:
            return m.group(1)
    return None


def container_gpu() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def mismatch(fingerprint: dict, tensorrt: str | None, gpu: str | None) -> str | None:
    """Why the engine cannot run here (None: it can). Versions compare on major.minor.patch."""
    built = str(fingerprint.get("tensorrt", ""))
    if tensorrt is None:
        return f"no TensorRT found in this container, and the engine needs TensorRT {built}"
    if built.split(".")[:3] != tensorrt.split(".")[:3]:
        return f"the engine was built by TensorRT {built}, this container has {tensorrt}"
    if gpu is not None and fingerprint.get("gpu") and fingerprint["gpu"] != gpu:
        return f"the engine was built for a {fingerprint['gpu']}, this GPU is a {gpu}"
    return None


def main(argv: list[str]) -> int:
    args = dict(zip(argv[::2], argv[1::2], strict=False))
    card = json.loads((Path(__file__).resolve().parent / "card.json").read_text())
    why = mismatch(
        card.get("fingerprint", {}),
        args.get("--tensorrt") or container_tensorrt(),
        args.get("--gpu") or container_gpu(),
    )
    if why:
        print(
            f"error: {card['source']}/{card['format']}: {why}; build the engine with this container's "
            "TensorRT on this GPU (`zoo export ... --trt ...` there) and write the repository again.",
            file=sys.stderr,
        )
        return 1
    print(
        f"{card['source']}/{card['format']}: TensorRT {card['fingerprint'].get('tensorrt')} engine loads here"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
