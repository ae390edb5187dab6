"""A Triton Inference Server model repository from an exported artifact.

Four models per artifact, named after it (`resnet20-cifar10-onnx-int8-cpu` below):

    resnet20-cifar10-onnx-int8-cpu              ensemble: encoded image bytes (UINT8) -> class probabilities,
     ├─ ...-preprocess   (Python backend)         whose labels Triton's classification extension returns
     ├─ ...-classifier   GPU: onnxruntime_onnx or tensorrt_plan; CPU: Python backend over ONNX Runtime
     └─ ...-softmax      (Python backend)

The Python-backend models run the zoo's own code (serve/triton_backend.py): the same decoding and
preprocessing as `zoo predict`, the same runtime, the same softmax. Every config.pbtxt is written from
Triton's own `ModelConfig` protobuf (shipped in tritonclient), so a field Triton does not know cannot be
written. Each model directory is built under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import shutil
import site
from pathlib import Path
from typing import Any

import zoo
from zoo.errors import ZooError
from zoo.export import trust
from zoo.utils.files import swap_dir_into_place, temp_dir
from zoo.utils.lazy import lazy_import

json_format = lazy_import("google.protobuf.json_format")
model_config_pb2 = lazy_import("tritonclient.grpc.model_config_pb2")
text_format = lazy_import("google.protobuf.text_format")

BACKEND_MODELS = Path(__file__).with_name("triton_models")  # the model.py of each Python-backend model
PLATFORMS = {".onnx": "onnxruntime_onnx", ".engine": "tensorrt_plan"}
MODEL_FILES = {"onnxruntime_onnx": "model.onnx", "tensorrt_plan": "model.plan"}  # Triton's default names
IMAGE, PROBABILITIES = "IMAGE", "PROBABILITIES"


def model_name(card: dict[str, Any]) -> str:
    """The ensemble's name: the tag and format, with dots (not allowed everywhere) as dashes."""
    return f"{card['source']}-{card['format']}".replace(".", "-")


def model_config_class():
    return model_config_pb2.ModelConfig


def config_text(config: dict[str, Any]) -> str:
    """config.pbtxt from a dict with ModelConfig's field names: parsed into the protobuf (an unknown field
    or value is one sentence), then printed by protobuf's own text format."""
    try:
        message = json_format.ParseDict(config, model_config_class()())
    except json_format.ParseError as e:
        raise ZooError(f"not a valid Triton model configuration: {e}.") from None
    return text_format.MessageToString(message)


def read_config(path: Path):
    """A config.pbtxt parsed into Triton's ModelConfig (what the server itself does with it)."""
    return text_format.Parse(Path(path).read_text(), model_config_class()())


def check_servable(fmt: str, file: str, device: str) -> None:
    """One sentence, before any work, for what Triton cannot serve on `device`."""
    if device not in ("cpu", "gpu"):
        raise ZooError(f"--device must be cpu or gpu, not {device!r}.")
    suffix = Path(file).suffix
    if suffix not in PLATFORMS:
        raise ZooError(f"{fmt} artifacts cannot be served by Triton; export onnx or trt-* formats.")
    if device == "cpu" and suffix != ".onnx":
        raise ZooError(f"a TensorRT engine ({fmt}) runs only on a GPU server: pass --device gpu.")


def configs(card: dict[str, Any], device: str = "cpu", dynamic_batching: bool = True) -> dict[str, dict]:
    """The four model configurations for an artifact's card, by model name."""
    check_servable(card["format"], card["file"], device)
    base = model_name(card)
    chw, classes = list(card["input"]["shape"][1:]), len(card["labels"])
    classifier = classifier_config(card, f"{base}-classifier", device, dynamic_batching)
    python = {"backend": "python", "max_batch_size": 0, "instance_group": [{"kind": "KIND_CPU", "count": 1}]}
    preprocess = python | {
        "name": f"{base}-preprocess",
        "input": [{"name": IMAGE, "data_type": "TYPE_UINT8", "dims": [-1]}],
        "output": [{"name": "INPUT", "data_type": "TYPE_FP32", "dims": [1, *chw]}],
    }
    softmax = python | {
        "name": f"{base}-softmax",
        "input": [{"name": "LOGITS", "data_type": "TYPE_FP32", "dims": [1, classes]}],
        "output": [{"name": PROBABILITIES, "data_type": "TYPE_FP32", "dims": [classes]}],
    }
    step = [
        (preprocess["name"], {IMAGE: IMAGE}, {"INPUT": "preprocessed"}),
        (classifier["name"], {card["input"]["name"]: "preprocessed"}, {card["output"]["name"]: "logits"}),
        (softmax["name"], {"LOGITS": "logits"}, {PROBABILITIES: PROBABILITIES}),
    ]
    ensemble = {
        "name": base,
        "platform": "ensemble",
        "max_batch_size": 0,
        "input": [{"name": IMAGE, "data_type": "TYPE_UINT8", "dims": [-1]}],
        "output": [
            {
                "name": PROBABILITIES,
                "data_type": "TYPE_FP32",
                "dims": [classes],
                "label_filename": "labels.txt",
            }
        ],
        "ensemble_scheduling": {
            "step": [
                {"model_name": m, "model_version": -1, "input_map": i, "output_map": o} for m, i, o in step
            ]
        },
    }
    return {c["name"]: c for c in (ensemble, preprocess, classifier, softmax)}


def classifier_config(card: dict[str, Any], name: str, device: str, dynamic_batching: bool) -> dict[str, Any]:
    """The classifier: Triton's own backend for the file on a GPU, the zoo's runtime in the Python backend
    on a CPU; batch limits from the artifact's profile, its opt and max as preferred batch sizes."""
    batch = card.get("batch", {"opt": 8, "max": 64})
    config: dict[str, Any] = {
        "name": name,
        "max_batch_size": int(batch["max"]),
        "input": [
            {
                "name": card["input"]["name"],
                "data_type": "TYPE_FP32",
                "dims": list(card["input"]["shape"][1:]),
            }
        ],
        "output": [{"name": card["output"]["name"], "data_type": "TYPE_FP32", "dims": [len(card["labels"])]}],
        "instance_group": [{"kind": "KIND_GPU" if device == "gpu" else "KIND_CPU", "count": 1}],
    }
    if device == "gpu":
        config["platform"] = PLATFORMS[Path(card["file"]).suffix]
    else:
        config["backend"] = "python"
    if dynamic_batching:
        preferred = sorted({int(batch["opt"]), int(batch["max"])})
        config["dynamic_batching"] = {"preferred_batch_size": preferred, "max_queue_delay_microseconds": 2000}
    return config


def write_repository(
    artifact: Path, repo: Path, device: str = "cpu", dynamic_batching: bool = True
) -> dict[str, Any]:
    """Write (or replace) the four models of an artifact directory into the repository `repo`."""
    artifact = Path(artifact)
    card = trust.opened(artifact)  # what the server will load is held to what `zoo predict` is held to
    models = configs(card, device, dynamic_batching)
    try:
        repo.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ZooError(f"cannot write the repository {repo}: {e.strerror or e}.") from None
    for name, config in models.items():
        tmp = temp_dir(repo, name)
        try:
            _fill(tmp, config, card, artifact)
            swap_dir_into_place(tmp, repo / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"repository": str(repo), "ensemble": model_name(card), "models": list(models), "device": device}


def _fill(directory: Path, config: dict[str, Any], card: dict[str, Any], artifact: Path) -> None:
    """One model directory: config.pbtxt, version 1 (the model file, or a Python model and what it runs),
    the labels (for the ensemble's classification output) and the artifact's card."""
    (directory / "config.pbtxt").write_text(config_text(config))
    version = directory / "1"
    version.mkdir()
    if config.get("platform") == "ensemble":
        (directory / "labels.txt").write_text("".join(f"{label}\n" for label in card["labels"]))
    elif config.get("platform"):
        shutil.copy2(artifact / card["file"], version / MODEL_FILES[config["platform"]])
        if config["platform"] == "tensorrt_plan":  # run in the container first: can its TensorRT load it?
            shutil.copy2(BACKEND_MODELS / "check_engine.py", directory / "check_engine.py")
    else:
        role = config["name"].rsplit("-", 1)[1]  # preprocess, classifier or softmax
        shutil.copy2(BACKEND_MODELS / f"{role}.py", version / "model.py")
        shutil.copy2(BACKEND_MODELS / "zoo_site.py", version / "zoo_site.py")
        (version / "zoo_site.json").write_text(json.dumps({"paths": python_paths()}, indent=2) + "\n")
        if role == "classifier":  # the model file and its card, run by the zoo's runtime
            shutil.copytree(artifact, version / "artifact")
        elif role == "preprocess":  # the card: its preprocessing spec
            (version / "artifact").mkdir()
            shutil.copy2(artifact / "card.json", version / "artifact" / "card.json")
    (directory / "card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")


def python_paths() -> list[str]:
    """Where the zoo and its packages live in this environment, for the Python backend's interpreter
    (the bundled server starts it without site-packages)."""
    here = [*site.getsitepackages(), str(Path(zoo.__file__).resolve().parent.parent)]
    return [p for p in dict.fromkeys(here) if Path(p).is_dir()]
