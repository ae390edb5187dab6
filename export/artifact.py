"""An artifact is a directory: the model file and `card.json`. Built in a temporary sibling directory and
renamed into place, so no half-written artifact is ever visible; a card whose key matches is reused."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.data.preprocess import PreprocessSpec
from zoo.errors import ZooError
from zoo.export import trust
from zoo.export.formats import FORMATS, Format
from zoo.models.weights import sha256_file
from zoo.utils.files import atomic_path, exists, read_json, swap_dir_into_place, temp_dir

CARD = "card.json"
CARD_VERSION = 1
_HEX = re.compile(r"[0-9a-f]{64}")


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


REQUIRED = ("format", "precision", "file", "sha256", "source", "preprocess", "labels")


MAX_CARD_BYTES = 1 << 20


def names_artifact(source: str | os.PathLike) -> bool:
    """Whether `source` names an artifact folder rather than a model: a Path, a string with a path
    separator, or a folder that holds a card. A bare name is a model's even where a folder of that name
    without a card exists (./resnet20 beside a user's runs): the one rule of predict, info and the API."""
    text = str(source)
    if isinstance(source, os.PathLike) or "/" in text or os.sep in text:
        return True
    return exists(text) and exists(Path(text) / CARD)


def read_card(directory: Path) -> dict[str, Any]:
    """The card of an artifact directory, checked field by field, or one clear sentence saying why it is
    not one."""
    card_path = Path(directory) / CARD
    if not card_path.exists():
        if not exists(directory):  # a typo in the path: not "a folder without a card"
            raise ZooError(f"{directory} does not exist: name an artifact directory written by `zoo export`.")
        raise ZooError(f"{directory} is not an artifact directory (no {CARD}); {_what_is_below(directory)}.")
    card = read_json(card_path, MAX_CARD_BYTES, "card")
    if not isinstance(card, dict):
        raise ZooError(f"{card_path} is not a card (a JSON object); export the artifact again.")
    if card.get("card_version") != CARD_VERSION:
        raise ZooError(
            f"{directory} was written by an incompatible version of resnet-zoo "
            f"(card version {card.get('card_version')!r}, this one reads {CARD_VERSION}); export it again."
        )
    missing = [k for k in REQUIRED if k not in card]
    problem = f"lacks {', '.join(missing)}" if missing else _problem(card)
    if problem:
        raise ZooError(f"{card_path} {problem}; export the artifact again.")
    if not (Path(directory) / card["file"]).is_file():
        raise ZooError(f"{directory} is missing its model file {card['file']!r}; export it again.")
    return card


def _what_is_below(folder: Path) -> str:
    """For a folder that is not an artifact: the artifacts it holds (ARTIFACTS/TAG/FORMAT, one or two
    levels down), else how to make one."""
    folder, below = Path(folder), []
    try:
        below = artifact_dirs(folder) if folder.is_dir() else []
        if not below and folder.is_dir():  # the first 100 folders: a dataset's class folders are not read
            tags = itertools.islice((d for d in sorted(folder.iterdir()) if d.is_dir()), 100)
            below = [d for tag in tags for d in artifact_dirs(tag)]
    except OSError:  # a folder this user cannot read: nothing to name
        pass
    if not below:
        return "create one with `zoo export`"
    names = ", ".join(str(d) for d in below[:3]) + (f" and {len(below) - 3} more" if len(below) > 3 else "")
    return f"it holds {len(below)} artifact{'s' * (len(below) > 1)}, name one: {names}"


def _problem(card: dict[str, Any]) -> str | None:
    """What makes a card unusable (None when nothing does): the schema every reader relies on."""
    fmt = card["format"]
    if not isinstance(fmt, str) or fmt not in FORMATS:
        return f"names the unknown format {fmt!r} (known: {', '.join(FORMATS)})"
    spec = FORMATS[fmt]
    if card["file"] != Path(spec.file).name:
        return f"names the model file {card['file']!r}; a {fmt} artifact's is {spec.file}"
    if card["precision"] != spec.precision:
        return f"says precision {card['precision']!r}; a {fmt} artifact's is {spec.precision}"
    if not (isinstance(card["sha256"], str) and len(card["sha256"]) == 64 and _HEX.fullmatch(card["sha256"])):
        return "has no sha256 of its model file (64 hex digits)"
    if not isinstance(card["source"], str):
        return "has no source tag"
    labels = card["labels"]
    if not (
        isinstance(labels, list)
        and len(labels) >= 2
        and all(isinstance(x, str) and 0 < len(x) <= 200 for x in labels)
    ):
        return "has no list of labels (at least 2 non-empty strings, one per class)"
    try:
        PreprocessSpec.from_dict(card["preprocess"])
    except ZooError as e:
        return f"has unusable preprocessing ({str(e).rstrip('.')})"
    if fmt == "pt2" and not (
        isinstance(card.get("aoti"), dict)
        and isinstance(card["aoti"].get("device"), str)
        and isinstance(card["aoti"].get("torch"), str)
    ):
        return "has no `aoti` record of the torch and device that compiled it"
    if fmt.startswith("trt-"):
        profile = card.get("profile")
        if not (
            isinstance(profile, dict)
            and all(isinstance(profile.get(k), int) and profile[k] >= 1 for k in ("min", "opt", "max"))
        ):
            return "has no batch profile (min, opt, max) for its engine"
    for io in ("input", "output"):
        if io in card and not (isinstance(card[io], dict) and isinstance(card[io].get("name"), str)):
            return f"has an unusable `{io}` record"
    return None


def verify_file(directory: Path, card: dict[str, Any]) -> None:
    """The model file must be the one its card describes: nothing edited after export runs."""
    if sha256_file(Path(directory) / card["file"]) != card["sha256"]:
        raise ZooError(
            f"{Path(directory) / card['file']} does not match the sha256 in its card: it was changed "
            "after export; export it again."
        )


def artifact_dirs(folder: Path) -> list[Path]:
    """The artifact directories in `folder` (OUT/TAG): never the hidden temporary ones of an export."""
    return sorted(p.parent for p in Path(folder).glob("*/card.json") if not p.parent.name.startswith("."))


def find_reusable(directory: Path, key: dict[str, Any]) -> Artifact | None:
    """The artifact already in `directory` if it was built from the same inputs, with its file intact."""
    _clean_leftovers(Path(directory).parent, Path(directory).name)
    try:
        card = read_card(directory)
    except ZooError:  # a broken card is a missing artifact: rebuild
        return None
    # the key, and the identity fields the card repeats at the top level for its readers
    if card.get("key") != key or any(card.get(k) != key.get(k) for k in ("format", "weights_sha256")):
        return None
    if sha256_file(directory / card["file"]) != card["sha256"]:
        return None
    return Artifact(directory, card, reused=True)


def existing_artifact(directory: Path, weights_sha256: str) -> Artifact | None:
    """The artifact in `directory` as it is, whatever options exported it, if it is intact and was exported
    from these weights (None otherwise)."""
    try:
        card = read_card(directory)
        verify_file(directory, card)
    except ZooError:
        return None
    if card.get("format") != Path(directory).name or card.get("weights_sha256") != weights_sha256:
        return None
    return Artifact(Path(directory), card, reused=True)


def build_artifact(
    directory: Path,
    fmt: Format,
    key: dict[str, Any],
    card: dict[str, Any],
    build: Callable[[Path], dict[str, Any] | None],
) -> Artifact:
    """Run `build(model_path)` in a temporary directory, write the card, then move it into place."""
    directory = Path(directory)
    parent = directory.parent
    _clean_leftovers(parent, directory.name)
    try:
        parent.mkdir(parents=True, exist_ok=True)

        tmp = temp_dir(parent, f"{directory.name}.{os.getpid()}")
    except OSError as e:
        raise ZooError(f"cannot write to {parent}: {e.strerror or e}.") from None
    try:
        model_file = tmp / fmt.file
        extra = build(model_file) or {}
        full = {
            "card_version": CARD_VERSION,
            "format": fmt.name,
            "precision": fmt.precision,
            "file": model_file.name,
            "sha256": sha256_file(model_file),
            "size_bytes": model_file.stat().st_size,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "key": key,
            **card,
            **extra,
        }
        write_card(tmp, full)
        trust.record(full, "exported", directory)  # this zoo built it: the index outside the folder says so
        swap_dir_into_place(tmp, directory)
        return Artifact(directory, full)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _clean_leftovers(parent: Path, name: str) -> None:
    """Remove what killed exports of `name` left behind (`.NAME.PID.*.tmp`, `.NAME.PID.old`): only those
    whose process is gone, so a concurrent export keeps its own."""
    for p in Path(parent).glob(f".{name}.*"):
        parts = p.name[len(name) + 2 :].split(".")
        if not (p.is_dir() and parts[0].isdigit() and p.suffix in (".tmp", ".old")):
            continue
        try:
            os.kill(int(parts[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except (PermissionError, OverflowError):
            pass


def write_card(directory: Path, card: dict[str, Any]) -> None:

    with atomic_path(Path(directory) / CARD) as tmp:
        tmp.write_text(json.dumps(card, indent=2, default=str) + "\n")


def update_card(directory: Path, **fields: Any) -> dict[str, Any]:
    """Add results (parity, benchmarks) to an existing card, atomically."""
    card = read_card(directory)
    card.update(fields)
    write_card(directory, card)
    return card
