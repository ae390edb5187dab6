"""The GPU check script (tests/gpu/check.py), exercised on the CPU: the same commands with --device cpu,
each step's JSON written, and `--backend cuda` refused in one sentence where ONNX Runtime has no CUDA."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gpu_check_runs_its_steps_on_the_cpu_and_writes_each_result(tmp_path, data):
    import onnxruntime as ort

    steps = "train,refuse,pt2,bench"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "gpu" / "check.py"),
            str(tmp_path),
            "--cpu",
            f"--steps={steps}",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=REPO,
    )
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["cpu_mode"] and set(report["steps"]) == set(steps.split(",")), done.stderr[-2000:]
    for name, step in report["steps"].items():
        assert step["ok"], (name, step["output_tail"][-1500:])
    assert report["steps"]["train"]["json"]["complete"]
    assert report["steps"]["pt2"]["json"][-1]["parity"]["verdict"]["passed"]
    bench = report["steps"]["bench"]["json"]
    assert {r["format"] for r in bench["rows"]} == {"pytorch", "pt2"} and all(
        r["device"] == "cpu" for r in bench["rows"]
    )
    refusal = report["steps"]["refuse"]["output_tail"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "could not use CUDAExecutionProvider" in refusal and "install onnxruntime-gpu" in refusal
    assert done.returncode == 0
