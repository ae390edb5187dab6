"""The zoo's Triton Python-backend models (see serve/triton.py): preprocessing, a CPU classifier and the
softmax, each the zoo's own code, so the server computes what `zoo predict` computes.

Runs only inside Triton's Python backend, which provides `triton_python_backend_utils`. Tensors cross
into and out of numpy by DLPack: the bundled backend's `as_numpy()` and `Tensor(name, array)` were built
against NumPy 1 and read wrong or empty data under NumPy 2, while DLPack is the same in both. Each
model's `initialize` imports only what its own step needs: every model is a process of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def _utils():  # the module Triton's Python-backend stub provides; it exists only inside the server
    import triton_python_backend_utils as pb_utils

    return pb_utils


def _array(tensor) -> np.ndarray:
    return np.from_dlpack(tensor)


def _tensor(name: str, array: np.ndarray):
    return _utils().Tensor.from_dlpack(name, np.ascontiguousarray(array).__dlpack__())


def _artifact(args: dict[str, Any]) -> Path:
    return Path(args["model_repository"]) / args["model_version"] / "artifact"


def _error(message: str):
    pb = _utils()
    return pb.InferenceResponse(output_tensors=[], error=pb.TritonError(message))


class Preprocess:
    """Encoded image bytes (UINT8) -> the model's input: decoded, resized, cropped and normalised by
    zoo.preprocess with the artifact's own spec. A bad image is an error response with the zoo's sentence."""

    def initialize(self, args: dict[str, Any]) -> None:
        from zoo.data.preprocess import PreprocessSpec

        card = json.loads((_artifact(args) / "card.json").read_text())
        self.spec = PreprocessSpec.from_dict(card["preprocess"])

    def execute(self, requests: list) -> list:
        from zoo.data.preprocess import load_image, preprocess
        from zoo.errors import ZooError

        pb, out = _utils(), []
        for request in requests:
            data = _array(pb.get_input_tensor_by_name(request, "IMAGE"))
            try:
                x = preprocess(load_image(data.tobytes()), self.spec)[None]
            except ZooError as e:
                out.append(_error(str(e)))
                continue
            out.append(pb.InferenceResponse([_tensor("INPUT", x)]))
        return out


class Classifier:
    """The artifact run by the zoo's own runtime (ONNX Runtime on the CPU); requests batched together by
    Triton's dynamic batcher are run as one batch."""

    def initialize(self, args: dict[str, Any]) -> None:
        from zoo.serve.runtimes import open_runtime

        self.runtime = open_runtime(_artifact(args), shared=True)
        self.input, self.output = self.runtime.card["input"]["name"], self.runtime.card["output"]["name"]

    def execute(self, requests: list) -> list:
        pb = _utils()
        inputs = [_array(pb.get_input_tensor_by_name(r, self.input)) for r in requests]
        logits = self.runtime.run(np.concatenate(inputs))
        ends = np.cumsum([len(x) for x in inputs])
        return [pb.InferenceResponse([_tensor(self.output, part)]) for part in np.split(logits, ends[:-1])]

    def finalize(self) -> None:
        self.runtime.close()


class Softmax:
    """Logits -> probabilities, by the same softmax as `zoo predict`."""

    def initialize(self, args: dict[str, Any]) -> None:
        pass

    def execute(self, requests: list) -> list:
        from zoo.serve.predict import softmax

        pb = _utils()
        out = []
        for request in requests:
            logits = _array(pb.get_input_tensor_by_name(request, "LOGITS")).astype(np.float64)
            out.append(
                pb.InferenceResponse([_tensor("PROBABILITIES", softmax(logits)[0].astype(np.float32))])
            )
        return out
