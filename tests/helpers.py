"""Helpers the tests of several modules share (fixtures are in conftest.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from zoo.data.preprocess import PreprocessSpec
from zoo.errors import ZooError
from zoo.serve.runtimes import Runtime


def one_sentence(result, *words: str) -> None:
    """A CLI result that is a user's mistake: exit 1, no traceback, and the words in the one error line."""
    assert result.exit_code == 1, result.output
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    for w in words:
        assert w in result.output, result.output


def zoo_without_torchvision(*args: str) -> subprocess.CompletedProcess:
    """`zoo ARGS` as on a fresh machine, which has no torchvision (CI installs it for cross-checks only):
    a process in which torchvision cannot be found, its output captured."""
    hide = (
        "import importlib.util, sys;"
        "real = importlib.util.find_spec;"
        "importlib.util.find_spec = lambda n, *a, **k: None if n.split('.')[0] == 'torchvision' else real(n, *a, **k);"
        "from zoo.cli import main; sys.argv = ['zoo'] + sys.argv[1:]; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", hide, *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def only_the_zoos_words(result: subprocess.CompletedProcess) -> None:
    """A command that succeeded and printed nothing of the exporter's or torch's own warnings."""
    assert result.returncode == 0, result.stderr
    assert "torchvision" not in result.stderr + result.stdout
    assert "warning" not in (result.stderr + result.stdout).lower()


def small_cifar(data: Path, root: Path, train: int = 1024, test: int = 1000) -> Path:
    """A CIFAR-10 data root holding the first `train` training and `test` test images of the real one:
    what publishing measures on is the test split it is given, so a test need not evaluate all 10,000."""
    (root / "cifar10").mkdir(parents=True)
    for split, n in (("train_00", train), ("test", test)):
        real = np.load(data / "cifar10" / f"{split}.npz")
        np.savez(root / "cifar10" / f"{split}.npz", x=real["x"][:n], y=real["y"][:n])
    return root


SPEC = PreprocessSpec.from_dict({"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.25] * 3})
CIFAR_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_card(folder: Path, **fields) -> dict:
    """Write a card of an ONNX artifact for the model file in `folder`, its sha256 matching the file (as
    anyone who can edit the folder could write it); `fields` replace the defaults."""
    card = {
        "card_version": 1,
        "format": "onnx",
        "precision": "fp32",
        "file": "model.onnx",
        "source": "resnet20.cifar10",
        "preprocess": SPEC.to_dict(),
        "labels": CIFAR_LABELS,
        "input": {"name": "input"},
        "output": {"name": "logits"},
        **fields,
    }
    card["sha256"] = hashlib.sha256((folder / card["file"]).read_bytes()).hexdigest()
    (folder / "card.json").write_text(json.dumps(card, allow_nan=True))
    return card


class ProfileLimited(Runtime):
    """A backend that, like a TensorRT engine, refuses batches above its profile maximum."""

    backend = "limited"

    def __init__(self, maximum: int) -> None:
        card = {"profile": {"min": 1, "opt": 2, "max": maximum}}
        super().__init__("limited", SPEC, [str(i) for i in range(10)], "fp16", "cpu", "trt-fp16", card)
        self.seen: list[int] = []

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) > self.max_batch:
            raise ZooError(f"batch {len(batch)} exceeds this engine's profile maximum {self.max_batch}")
        self.seen.append(len(batch))
        return batch.reshape(len(batch), 3, -1).mean(axis=2) @ np.ones((3, 10), np.float32) * np.arange(10)
