"""An artifact is a directory: the model file and `card.json`. Built in a temporary sibling directory and
renamed into place, so no half-written artifact is ever visible; a card whose key matches is reused."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

CARD = "card.json"
CARD_VERSION = 1
FILES = {
    "onnx": "model.onnx",
    "onnx-fp16": "model.onnx",
    "onnx-int8": "model.onnx",
    "onnx-int8-cpu": "model.onnx",
    "trt-fp32": "model.engine",
    "trt-fp16": "model.engine",
    "trt-int8": "model.engine",
    "pt2": "model.pt2",
}
PRECISION = {
    "onnx": "fp32",
    "onnx-fp16": "fp16",
    "onnx-int8": "int8",
    "onnx-int8-cpu": "int8",
    "trt-fp32": "fp32",
    "trt-fp16": "fp16",
    "trt-int8": "int8",
    "pt2": "fp32",
}


@dataclass
class Artifact:
    path: Path  # the directory
    card: dict[str, Any]
    reused: bool = False

    @property
    def file(self) -> Path:
        return self.path / self.card["file"]

    @property
    def format(self) -> str:
        return self.card["format"]


def read_card(directory: Path) -> dict[str, Any]:
    """The card of an artifact directory, or one clear sentence saying why it is not one."""
    card_path = Path(directory) / CARD
    if not card_path.is_file():
        raise ZooError(f"{directory} is not an artifact directory (no {CARD}); create one with `zoo export`.")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError:
        raise ZooError(f"{card_path} is not valid JSON; export the artifact again.") from None
    if card.get("card_version") != CARD_VERSION:
        raise ZooError(
            f"{directory} was written by an incompatible version of resnet-zoo "
            f"(card version {card.get('card_version')}, this one reads {CARD_VERSION}); export it again."
        )
    if not (Path(directory) / card.get("file", "")).is_file():
        raise ZooError(f"{directory} is missing its model file {card.get('file')!r}; export it again.")
    return card


def open_artifact(directory: Path) -> Artifact:
    return Artifact(Path(directory), read_card(directory))


def find_reusable(directory: Path, key: dict[str, Any]) -> Artifact | None:
    """The artifact already in `directory` if it was built from the same inputs, with its file intact."""
    from zoo.weights import sha256_file

    try:
        card = read_card(directory)
    except ZooError:
        return None
    if card.get("key") != key or sha256_file(directory / card["file"]) != card.get("sha256"):
        return None
    return Artifact(directory, card, reused=True)


def build_artifact(
    directory: Path,
    fmt: str,
    key: dict[str, Any],
    card: dict[str, Any],
    build: Callable[[Path], dict[str, Any] | None],
) -> Artifact:
    """Run `build(model_path)` in a temporary directory, write the card, then move it into place."""
    from zoo.weights import sha256_file

    directory = Path(directory)
    parent = directory.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=parent))
    except OSError as e:
        raise ZooError(f"cannot write to {parent}: {e.strerror or e}.") from None
    try:
        model_file = tmp / FILES[fmt]
        extra = build(model_file) or {}
        full = {
            "card_version": CARD_VERSION,
            "format": fmt,
            "precision": PRECISION[fmt],
            "file": model_file.name,
            "sha256": sha256_file(model_file),
            "size_bytes": model_file.stat().st_size,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "key": key,
            **card,
            **extra,
        }
        write_card(tmp, full)
        old = None
        if directory.exists():  # swap: the old artifact disappears only once the new one is complete
            old = parent / f".{directory.name}.old-{os.getpid()}"
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return Artifact(directory, full)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_card(directory: Path, card: dict[str, Any]) -> None:
    from zoo.weights import atomic_path

    with atomic_path(Path(directory) / CARD) as tmp:
        tmp.write_text(json.dumps(card, indent=2, default=str) + "\n")


def update_card(directory: Path, **fields: Any) -> dict[str, Any]:
    """Add results (parity, benchmarks) to an existing card, atomically."""
    card = read_card(directory)
    card.update(fields)
    write_card(directory, card)
    return card
