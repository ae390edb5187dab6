"""The GPU check: one prepared run for the day a GPU machine is lent (../shared/docs/DEVICE.md). Every step
runs a real `zoo` command or the GPU tests and is written as JSON, so nothing is typed in by hand.

    python3 tests/gpu/check.py OUT_DIR            # on the GPU machine (about 5 minutes on an H200)
    python3 tests/gpu/check.py OUT_DIR --cpu      # the same steps on the CPU, as tests/gpu/test_gpu_check.py runs

Steps: the GPU-logic tests (`gpu`), a training smoke run in bf16 (`train`), `zoo export --formats pt2
--device cuda` with parity (`pt2`), `zoo bench --device cuda` over pytorch, pytorch-compiled and pt2
with CUDA events (`bench`), `--backend cuda` refused in one sentence where ONNX Runtime has no CUDA
(`refuse`), and where TensorRT is installed `zoo export --trt fp16/int8` for resnet20.cifar10 and
resnet50.untrained (`tensorrt`). OUT_DIR/gpu-check.json holds each step's command, exit code, seconds,
the JSON the command printed and the tail of its output; the check exits 1 if a step failed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TAG = "resnet20.cifar10"


def steps(out: Path, cpu: bool) -> dict[str, list[str]]:
    zoo = [sys.executable, "-m", "zoo.cli"]
    device = "cpu" if cpu else "cuda"
    art, runs = str(out / "artifacts"), str(out / "runs")
    plan = {
        "train": [
            *zoo,
            "train",
            "resnet20",
            "--device",
            device,
            "--amp",
            "fp32" if cpu else "bf16",
            "--epochs",
            "1",
            "--train-limit",
            "1024",
            "--test-limit",
            "500",
            "--out",
            runs,
            "--json",
        ],
        "pt2": [
            *zoo,
            "export",
            TAG,
            "--formats",
            "pt2",
            "--device",
            device,
            "--parity-images",
            "1000",
            "--artifacts",
            art,
            "--json",
        ],
        "bench": [
            *zoo,
            "bench",
            TAG,
            "--formats",
            "pytorch,pt2" + ("" if cpu else ",pytorch-compiled"),
            "--device",
            device,
            "--batch",
            "1,64",
            "--seconds",
            "0.5" if not cpu else "0.1",
            "--repeats",
            "1",
            "--parity-images",
            "1000",
            "--artifacts",
            art,
            "--out",
            str(out / "bench"),
            "--json",
        ],
        "refuse": [
            *zoo,
            "predict",
            "--artifact",
            f"{art}/{TAG}/onnx",
            "--backend",
            "cuda",
            str(REPO / "tests" / "gpu" / "check.py"),
        ],
    }
    if not cpu:
        plan = {
            "gpu": [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-m",
                "gpu or tensorrt",
                "-p",
                "no:cacheprovider",
                str(REPO / "tests"),
            ],
            **plan,
        }
    if not cpu and importlib.util.find_spec("tensorrt"):
        for tag in (TAG, "resnet50.untrained"):
            for precision in ("fp16", "int8"):
                plan[f"tensorrt-{tag}-{precision}"] = [
                    *zoo,
                    "export",
                    tag,
                    "--trt",
                    precision,
                    "--artifacts",
                    art,
                    "--parity-images",
                    "2000",
                    "--json",
                ]
    return plan


def run(name: str, cmd: list[str], log) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    result = {
        "command": " ".join(cmd[2:] if cmd[1] == "-m" else cmd),
        "exit_code": done.returncode,
        "seconds": round(time.perf_counter() - t0, 1),
        "output_tail": (done.stdout + done.stderr)[-3000:],
    }
    with contextlib.suppress(json.JSONDecodeError):
        result["json"] = json.loads(done.stdout)
    log(f"{name}: exit {done.returncode} in {result['seconds']} s")
    return result


def judge(name: str, r: dict) -> bool:
    """Whether a step did what it must: exit 0, except `refuse`, which must exit 1 in one sentence."""
    if name == "refuse":
        one_line = [line for line in r["output_tail"].splitlines() if line.strip()]
        return r["exit_code"] == 1 and "Traceback" not in r["output_tail"] and len(one_line) == 1
    return r["exit_code"] == 0


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    out, cpu = Path(argv[0]).resolve(), "--cpu" in argv
    only = next((a.split("=", 1)[1].split(",") for a in argv if a.startswith("--steps=")), None)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "runs", ignore_errors=True)  # the train step's own smoke run: afresh on a rerun
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    import torch

    report = {
        "cpu_mode": cpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "zoo_data": os.environ.get("ZOO_DATA"),
        "steps": {},
    }
    plan = steps(out, cpu)
    if "refuse" in plan and (only is None or "refuse" in only):  # an ONNX artifact for --backend cuda
        run(
            "onnx",
            [
                sys.executable,
                "-m",
                "zoo.cli",
                "export",
                TAG,
                "--artifacts",
                str(out / "artifacts"),
                "--parity-images",
                "500",
            ],
            log,
        )
    for name, cmd in plan.items():
        if only is not None and name not in only:
            continue
        r = run(name, cmd, log)
        r["ok"] = judge(name, r)
        report["steps"][name] = r
        (out / "gpu-check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    failed = [n for n, r in report["steps"].items() if not r["ok"]]
    log(
        f"gpu check: {len(report['steps']) - len(failed)} of {len(report['steps'])} steps ok"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
