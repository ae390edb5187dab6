"""The datasets the zoo knows, read from one table (`zoo/datasets.toml`): for each, the family of
architectures that classify it, its preprocessing preset, its labels, what its test split is, where it is
found under a data root and, if it may be redistributed, where it is fetched from."""

from __future__ import annotations

import tomllib
from functools import cache
from typing import Any

from zoo.errors import ZooError
from zoo.labels import load_labels
from zoo.paths import PACKAGE_DIR
from zoo.preprocess import PreprocessSpec
from zoo.weights import builtin_presets


@cache
def datasets() -> dict[str, dict[str, Any]]:
    with open(PACKAGE_DIR / "datasets.toml", "rb") as f:
        return tomllib.load(f)


def dataset(name: str) -> dict[str, Any]:
    """The table's entry for `name`; one sentence naming the known datasets if there is none."""
    table = datasets()
    if name not in table:
        raise ZooError(f"unknown dataset {name!r}; known: {', '.join(sorted(table))}.")
    return table[name]


def of_family(family: str) -> str:
    """The dataset an architecture family ("cifar", "imagenet") classifies."""
    for name, entry in datasets().items():
        if entry["family"] == family:
            return name
    raise ZooError(f"no dataset for architecture family {family!r}.")


def num_classes(name: str) -> int:

    return len(load_labels(dataset(name)["labels"]))


def preprocess_preset(name: str) -> dict[str, Any]:
    """The preprocessing preset (weights/manifest.toml) of a dataset, as a PreprocessSpec dict."""
    return builtin_presets()[dataset(name)["preprocess"]]


def preprocess_spec(name: str):

    return PreprocessSpec.from_dict(preprocess_preset(name))
