"""The check right after an export: the artifact under ONNX Runtime against its PyTorch original."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.errors import ZooError
from zoo.export.onnx import INPUT, ort_session
from zoo.utils.lazy import lazy_import

torch = lazy_import("torch")

ATOL, RTOL = 1e-3, 1e-3  # FP32 ONNX vs eager PyTorch on the CPU: only summation order differs


def compare_with_torch(model, onnx_path: Path, x: np.ndarray) -> dict:

    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = ort_session(onnx_path).run(None, {INPUT: x})[0]
    diff = float(np.abs(ref - got).max())
    if not np.allclose(got, ref, atol=ATOL, rtol=RTOL):
        raise ZooError(
            f"the exported ONNX model differs from PyTorch by up to {diff:.3g} on real images "
            f"(tolerance {ATOL}); it was not kept."
        )
    return {
        "runtime": "onnxruntime",
        "images": int(len(x)),
        "max_abs_diff": diff,
        "top1_agree": bool((ref.argmax(1) == got.argmax(1)).all()),
    }
