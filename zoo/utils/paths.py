"""Where the zoo keeps things: built-in weights, the download cache, the user's own weights, the data."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from zoo.errors import ZooError

# The package zoo.weights: the repository's weights/ folder (pyproject.toml maps it), zoo/weights/ in a wheel.
BUILTIN_WEIGHTS = Path(importlib.util.find_spec("zoo.weights").origin).parent


def cache_dir() -> Path:
    """$ZOO_CACHE, else ~/.cache/resnet-zoo: downloads, converted checkpoints, the user's manifest."""
    return Path(os.environ.get("ZOO_CACHE") or Path.home() / ".cache" / "resnet-zoo").expanduser()


def user_weights_dir() -> Path:
    return cache_dir() / "weights"


def data_dir(option: str | os.PathLike | None = None) -> Path:
    """The dataset root given by --data, else $ZOO_DATA; a clear error when neither points somewhere."""
    raw = option or os.environ.get("ZOO_DATA")
    if not raw:
        raise ZooError("no dataset folder given: pass --data DIR or set ZOO_DATA.")
    path = Path(raw).expanduser()
    if not path.exists():
        raise ZooError(f"dataset folder {path} does not exist.")
    return path
