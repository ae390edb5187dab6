"""PyTorch -> AOTInductor package (`.pt2`): torch.export with a dynamic batch dimension, compiled ahead
of time and loadable without the model's Python code. Tied to the torch version and the device (and for
CUDA the GPU architecture) like an engine; the card records both."""

from __future__ import annotations

import io
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.utils.lazy import lazy_import

torch = lazy_import("torch")


def export_pt2(
    model, example: np.ndarray, path: Path, max_batch: int = 1024, device: str = "cpu"
) -> dict[str, Any]:

    if example.shape[0] < 2:
        raise ZooError("the example batch for AOTInductor needs at least 2 images.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ZooError("a CUDA .pt2 was asked for, but PyTorch sees no CUDA device here.")
    x = torch.from_numpy(np.ascontiguousarray(example)).to(device)
    model = model.eval().to(device)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    with (
        torch.no_grad(),
        warnings.catch_warnings(),
        redirect_stdout(io.StringIO()),
        redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        try:
            program = torch.export.export(model, (x,), dynamic_shapes={"x": {0: batch}})
            torch._inductor.aoti_compile_and_package(program, package_path=str(path))
        except Exception as e:  # the compiler raises many types; the user needs the first line
            raise ZooError(f"AOTInductor failed: {str(e).splitlines()[0][:300]}") from None
    info: dict[str, Any] = {"torch": torch.__version__, "device": device}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info |= {"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}"}
    return {"aoti": info}


def check_compatible(card: dict[str, Any], here: dict[str, Any] | None = None) -> None:
    """A .pt2 runs only on the torch that compiled it and, for CUDA, on a GPU of the same architecture:
    one sentence otherwise. `here`: this machine's {torch, gpu, compute_capability} (default: measured)."""
    built = card.get("aoti", {})
    here = here or _here(built.get("device", "cpu"))
    if built.get("torch") != here["torch"]:
        raise ZooError(
            f"this .pt2 was compiled by torch {built.get('torch')} and cannot run on torch "
            f"{here['torch']}; run `zoo export ... --formats pt2` again."
        )
    if str(built.get("device", "cpu")).startswith("cuda"):
        if here.get("compute_capability") is None:
            raise ZooError("this .pt2 was compiled for a CUDA GPU, and PyTorch sees none here.")
        if built.get("compute_capability") != here["compute_capability"]:
            raise ZooError(
                f"this .pt2 was compiled for {built.get('gpu')} (compute capability "
                f"{built.get('compute_capability')}), not this {here.get('gpu')} "
                f"({here['compute_capability']}); run `zoo export ... --formats pt2 --device cuda` again here."
            )


def _here(device: str) -> dict[str, Any]:
    here: dict[str, Any] = {"torch": torch.__version__}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(torch.device(device))
        here |= {"gpu": p.name, "compute_capability": f"{p.major}.{p.minor}"}
    return here
