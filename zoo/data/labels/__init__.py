"""Class-name lists, one file per label set, one name per line in class-index order."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from zoo.errors import ZooError
from zoo.utils.names import check_name

_DIR = Path(__file__).resolve().parent


@cache
def load_labels(name: str) -> tuple[str, ...]:
    path = _DIR / f"{check_name(name, 'label set')}.txt"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in _DIR.glob("*.txt")))
        raise ZooError(f"unknown label set {name!r}; known: {known}.")
    return tuple(path.read_text().splitlines())
