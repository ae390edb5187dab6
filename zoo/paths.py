"""Where the zoo keeps things: built-in weights, the download cache, the user's own weights, the data."""

from __future__ import annotations

import os
from pathlib import Path

from zoo.errors import ZooError

PACKAGE_DIR = Path(__file__).resolve().parent
BUILTIN_WEIGHTS = PACKAGE_DIR.parent / "weights"  # the repo's weights/, installed beside zoo/ as a package


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
