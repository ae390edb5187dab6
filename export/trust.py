"""What an artifact may make the zoo do when it is opened, decided from outside the artifact folder.

A card's sha256 proves nothing about a card that sits beside its file: whoever can edit one can edit both.
So the data that shapes an answer (labels, preprocessing, precision) is read from where a hash the zoo
holds covers it:
- an ONNX model carries its labels and preprocessing inside the file (metadata_props): its card must
  agree with them, and it may not read weights from files beside it (external data no hash covers);
- an engine or a `.pt2` runs native code when loaded (AOTInductor's shared library, TensorRT plugins):
  it opens only if this user's zoo exported it, or was told once to trust it (`zoo trust DIR`). Both are
  recorded in the user's index ($ZOO_CACHE/trusted/), keyed by the model file's sha256, with the hash of
  the card's contract, so an edited card is refused as well.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.export.formats import FORMATS
from zoo.utils.files import atomic_path, read_json
from zoo.utils.paths import cache_dir

# The fields of a card that decide what its model answers and how it is run.
CONTRACT = ("format", "precision", "file", "sha256", "source", "labels", "preprocess", "aoti", "profile")
CONTRACT += ("input", "output", "int8", "batch")


def index_dir() -> Path:
    return cache_dir() / "trusted"


def contract_sha256(card: dict[str, Any]) -> str:
    fields = {k: card[k] for k in CONTRACT if k in card}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def record(card: dict[str, Any], why: str, directory: Path | None = None) -> None:
    """Put an artifact in the user's index: exported here (`why` = "exported") or trusted by hand, with the
    folder it was recorded for (so that `zoo trust --prune` can tell when it is gone)."""
    entry = {
        "sha256": card["sha256"],
        "contract_sha256": contract_sha256(card),
        "format": card["format"],
        "source": card["source"],
        "why": why,
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "folder": str(Path(directory).resolve()) if directory is not None else None,
    }
    with atomic_path(index_dir() / f"{card['sha256']}.json") as tmp:
        tmp.write_text(json.dumps(entry, indent=2) + "\n")


def recorded(card: dict[str, Any]) -> bool:
    """Whether the index holds this model file with this very card contract."""
    path = index_dir() / f"{card['sha256']}.json"
    try:
        entry = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return False
    return isinstance(entry, dict) and entry.get("contract_sha256") == contract_sha256(card)


def entries() -> list[dict[str, Any]]:
    """Every artifact the index holds, oldest first, each with `present`: whether the folder it was recorded
    for still holds that model file (None when the entry names no folder). A damaged entry is listed as
    such, never hidden."""
    return [entry for _, entry in _indexed()]


def _indexed() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(index_dir().glob("*.json")) if index_dir().is_dir() else []:
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            entry = None
        if not isinstance(entry, dict):
            entry = {"sha256": path.stem, "why": "damaged entry"}
        found.append((path, {**entry, "present": _present(entry)}))
    return sorted(found, key=lambda pe: str(pe[1].get("recorded", "")))


def _present(entry: dict[str, Any]) -> bool | None:
    if not isinstance(entry.get("folder"), str):
        return None
    try:
        card = read_json(Path(entry["folder"]) / "card.json", 1 << 20, "card")
    except (OSError, ValueError, ZooError):  # gone, unreadable, or no card at all
        return False
    return isinstance(card, dict) and card.get("sha256") == entry.get("sha256")


def prune() -> list[dict[str, Any]]:
    """Take out of the index the entries whose folder no longer holds their model file (deleted, or
    exported again since), and damaged entries; entries that name no folder stay. Returns those removed."""
    gone = [(p, e) for p, e in _indexed() if e["present"] is False or e.get("why") == "damaged entry"]
    for path, _ in gone:
        path.unlink(missing_ok=True)
    return [e for _, e in gone]


def forget(card: dict[str, Any]) -> bool:
    """Take this model file out of the index (it opens again only once exported here or trusted anew);
    False when the index did not hold it."""
    path = index_dir() / f"{card['sha256']}.json"
    if not path.is_file():
        return False
    path.unlink()
    return True


def runs_native_code(fmt: str) -> bool:
    return Path(FORMATS[fmt].file).suffix != ".onnx"


def opened(directory: Path) -> dict[str, Any]:
    """The card of an artifact about to be loaded: read, its model file checked against it, admitted."""
    from zoo.export.artifact import read_card, verify_file

    card = read_card(directory)
    verify_file(directory, card)
    admit(directory, card)
    return card


_admitted: set[tuple[str, str]] = set()  # (folder, contract hash): an ONNX model is parsed once a process


def admit(directory: Path, card: dict[str, Any]) -> None:
    """Refuse, in one sentence and before anything is loaded, an artifact whose answer could have been
    changed unnoticed, or whose native code nobody here vouched for."""
    if not runs_native_code(card["format"]):
        key = (str(Path(directory).resolve()), contract_sha256(card))  # the contract holds the file's sha256
        if key not in _admitted:
            from zoo.export.onnx import check_contract

            check_contract(Path(directory) / card["file"], card)
            _admitted.add(key)
        return
    if not recorded(card):
        raise ZooError(
            f"{directory} is a {card['format']} artifact: opening it runs the native code inside it, and "
            "this machine's zoo neither exported it nor was told to trust it (or its card changed since). "
            f"Export it here, or, if you trust where it came from, run `zoo trust {directory}` once."
        )
