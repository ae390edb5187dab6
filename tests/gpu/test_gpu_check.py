"""The GPU check script (tests/gpu/check.py), exercised on the CPU: the same commands with --device cpu,
each step's JSON written, and `--backend cuda` refused in one sentence where ONNX Runtime has no CUDA."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TAG = "resnet20.cifar10"


@pytest.mark.slow
def test_the_gpu_check_runs_its_steps_on_the_cpu_and_writes_each_result(tmp_path, data, monkeypatch):
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
    pt2 = tmp_path / "artifacts" / TAG / "pt2"
    _the_pt2_runs_without_the_models_code_and_leaves_nothing_behind(pt2, tmp_path, monkeypatch)


def _the_pt2_runs_without_the_models_code_and_leaves_nothing_behind(
    art: Path, tmp_path: Path, monkeypatch
) -> None:
    """The check's .pt2 (compiled once, here): loaded by torch alone in a fresh process, without the zoo or
    the model's Python code, it answers what the PyTorch original answers; opened by the zoo (which
    exported it: in the user's index), it unpacks its library into a folder of its own and leaves nothing
    in the temporary directory (AOTInductor alone leaves an aotinductor_* folder)."""
    import tempfile

    import numpy as np
    import torch

    from zoo.data.datasets import find_dataset
    from zoo.export.artifact import read_card
    from zoo.models import registry
    from zoo.serve.runtimes import open_runtime

    card = read_card(art)
    assert card["aoti"]["torch"] == torch.__version__ and card["aoti"]["device"] == "cpu"
    spec = registry.resolve(TAG)[1].preprocess
    test = find_dataset("cifar10", None, "test")
    x = np.stack([spec(test[i][0]) for i in range(3)])
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np, torch; m = torch._inductor.aoti_load_package(sys.argv[1]); "
        "np.save(sys.argv[3], m(torch.from_numpy(np.load(sys.argv[2]))).numpy()); "
        "assert 'zoo' not in sys.modules"
    )
    args = [
        sys.executable,
        "-c",
        code,
        str(art / "model.pt2"),
        str(tmp_path / "x.npy"),
        str(tmp_path / "y.npy"),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-1500:]
    with torch.no_grad():
        ref = registry.create_model(TAG, pretrained=True)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, atol=1e-3, rtol=1e-3)

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # restored after the test
    tempfile.tempdir = None
    try:
        with open_runtime(art) as rt:
            np.testing.assert_allclose(rt.run(x), ref, atol=1e-3, rtol=1e-3)
    finally:
        tempfile.tempdir = None
    assert list(tmp.iterdir()) == []
