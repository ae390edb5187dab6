"""The datasets the zoo knows and the layouts it reads them in.

The table `datasets.toml` (beside this module) says, for each dataset, the family of architectures
that classify it, its preprocessing preset, its labels, what its test split is, where it is found under a
data root and, if it may be redistributed, where it is fetched from. The readers: CIFAR-10 shards,
ImageFolder, and the ImageNet sample.

Each is a sequence of (RGB PIL image, class index), usable as a torch Dataset. Found under a root given
by --data or $ZOO_DATA (see `zoo.paths.data_dir`).
"""

from __future__ import annotations

import csv
import io
import os
import tomllib
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zoo.data import fetch
from zoo.data.labels import load_labels
from zoo.data.preprocess import PreprocessSpec, load_image
from zoo.errors import ZooError, reading
from zoo.models.weights import builtin_presets
from zoo.utils.files import read_text
from zoo.utils.names import check_name
from zoo.utils.paths import data_dir


@cache
def datasets() -> dict[str, dict[str, Any]]:
    with open(Path(__file__).with_name("datasets.toml"), "rb") as f:
        return tomllib.load(f)


def dataset(name: str) -> dict[str, Any]:
    """The table's entry for `name`; one sentence naming the known datasets if there is none."""
    table = datasets()
    if check_name(name, "dataset") not in table:
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


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm"}


def _subfolders() -> dict[str, tuple[str, ...]]:
    """Conventional sub-folders of a data root, per dataset name of the manifest (zoo/datasets.toml)."""
    return {name: tuple(d.get("subfolders", ())) for name, d in datasets().items()}


SUBFOLDERS = _subfolders()


class CIFAR10:
    """CIFAR-10 as `.npz` shards (`train_*.npz`, `test.npz`), each with x uint8 (N,32,32,3) RGB and y int64."""

    classes = 10

    def __init__(self, root: str | os.PathLike, split: str = "test") -> None:
        root = Path(root)
        files = sorted(root.glob("train_*.npz")) if split == "train" else [root / f"{split}.npz"]
        if not files or not all(f.is_file() for f in files):
            raise ZooError(
                f"{root} has no CIFAR-10 {split} split (expected {'train_*.npz' if split == 'train' else split + '.npz'})."
            )
        self.root, self.split = root, split
        parts = [_shard(f) for f in files]
        self.images = np.concatenate([x for x, _ in parts])
        self.labels = np.concatenate([y for _, y in parts])
        check_labels(self.labels, self.classes, root)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[i]), int(self.labels[i])


MAX_SHARD_BYTES = 1 << 30


def _shard(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one CIFAR-10 shard: x uint8 (N, 32, 32, 3), y integers (N,); one sentence otherwise."""
    if not path.is_file() or path.stat().st_size > MAX_SHARD_BYTES:
        raise ZooError(f"{path} is not a CIFAR-10 shard (a regular .npz file of at most 1 GiB).")
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
    except KeyError:
        raise ZooError(
            f"{path} is not a CIFAR-10 shard: it needs arrays `x` (images) and `y` (labels)."
        ) from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # object arrays, corrupt zip, ...
        raise ZooError(f"{path} is not a readable CIFAR-10 shard ({str(e).splitlines()[0][:120]}).") from None
    if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8:
        raise ZooError(f"{path}: CIFAR-10 images must be uint8 (N, 32, 32, 3), not {x.dtype} {x.shape}.")
    if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(x):
        raise ZooError(
            f"{path}: CIFAR-10 labels must be integers, one per image ({len(x)}), not {y.dtype} {y.shape}."
        )
    return x, y.astype(np.int64)


def check_labels(labels: np.ndarray, classes: int, where: object) -> None:
    """Every label a class index of the dataset: an out-of-range one would score 0% or crash a loss."""
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        bad = int(labels[(labels < 0) | (labels >= classes)][0])
        raise ZooError(f"{where}: label {bad} is not a class index from 0 to {classes - 1}.")


class ImageFolder:
    """`root/CLASS/*.jpg`, classes in sorted order (as torchvision's ImageFolder)."""

    def __init__(self, root: str | os.PathLike) -> None:
        root = Path(root)
        self.root = root
        self.class_names = sorted(d.name for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
        self.samples = [
            (p, i)
            for i, c in enumerate(self.class_names)
            for p in sorted((root / c).rglob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not self.samples:
            raise ZooError(f"{root} holds no images in class folders (expected {root}/CLASS/*.jpg).")
        self.classes = len(self.class_names)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:

        path, label = self.samples[i]
        return load_image(path), label


class ImageNetSample:
    """A folder with `labels.csv` (filename, class_index, ...) and `images/`: one photo per ImageNet class."""

    classes = 1000

    def __init__(self, root: str | os.PathLike) -> None:
        root = Path(root)
        self.root = root
        index = root / "labels.csv"
        if not index.is_file():
            raise ZooError(f"{root} has no labels.csv.")
        try:
            rows = csv.DictReader(io.StringIO(read_text(index, 64 << 20, "ImageNet-sample index")))
            self.samples = [(root / "images" / _plain(r["filename"]), int(r["class_index"])) for r in rows]
        except (KeyError, ValueError, TypeError, csv.Error):
            raise ZooError(
                f"{index} is not an ImageNet-sample index (a CSV with filename and class_index columns, "
                "file names without folders)."
            ) from None
        check_labels(np.array([y for _, y in self.samples], dtype=np.int64), self.classes, index)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:

        path, label = self.samples[i]
        return load_image(path), label


def _plain(name: str) -> str:
    if not name or Path(name).name != name or name.startswith(".") or "\0" in name:
        raise ValueError(name)
    return name


def open_dataset(path: str | os.PathLike, split: str = "test") -> CIFAR10 | ImageFolder | ImageNetSample:
    """Recognise the layout of `path`; for an ImageFolder root with train/ and val/, `split` picks one."""
    path = Path(path)
    if not path.is_dir():
        raise ZooError(f"dataset folder {path} does not exist.")
    with reading(f"the dataset folder {path}"):
        return _open_dataset(path, split)


def _open_dataset(path: Path, split: str) -> CIFAR10 | ImageFolder | ImageNetSample:
    if (path / "test.npz").is_file() or any(path.glob("train_*.npz")):
        return CIFAR10(path, split)
    if (path / "labels.csv").is_file():
        return ImageNetSample(path)
    for name in (split, "val" if split == "test" else split):
        if (path / name).is_dir() and any((path / name).iterdir()):
            return ImageFolder(path / name)
    return ImageFolder(path)


def find_dataset(dataset: str, data: str | os.PathLike | None = None, split: str = "test"):
    """The dataset a model was trained on (manifest name) under a data root or its sub-folders.

    `data` (--data) must exist. Otherwise $ZOO_DATA lists roots (separated by os.pathsep) and the first
    that exists is used; where none does, a dataset the zoo may redistribute (CIFAR-10) is fetched into
    the cache once, so the same command works beside a local copy and on a fresh machine."""
    if data:
        root = data_dir(data)
    else:
        roots = [Path(p).expanduser() for p in os.environ.get("ZOO_DATA", "").split(os.pathsep) if p]
        root = next((r for r in roots if r.is_dir()), None)
        if root is None and fetch.can_fetch(dataset):
            return open_dataset(fetch.ensure(dataset), split)
        if root is None:
            where = (
                f"$ZOO_DATA ({', '.join(map(str, roots))}) does not exist" if roots else "no data root given"
            )
            raise ZooError(
                f"no {dataset} images: {where}; pass --data DIR or set ZOO_DATA to a folder with them "
                "(ImageNet has no redistributable copy the zoo could fetch)."
            )
    for sub in SUBFOLDERS.get(dataset, ()):
        if (root / sub).is_dir():
            return open_dataset(root / sub, split)
    return open_dataset(root, split)


RESOLUTION_RANGE = (0.5, 4.0)  # native shorter side / the model's input side, for data to be accepted


def check_fits(
    dataset, num_classes: int, side: int, model: str, source: str | os.PathLike | None = None
) -> None:
    """Refuse, in one sentence and before any work, a dataset whose class count or image size does not
    fit the model (an ImageNet folder for a CIFAR-10 net, 32 px images for a 224 px one)."""
    where = f" in {source}" if source else ""
    classes = getattr(dataset, "classes", None)
    if classes and classes > 1 and classes != num_classes:
        raise ZooError(
            f"the images{where} are of {classes} classes but {model} has {num_classes}: "
            "use data of the model's own dataset."
        )
    n = len(dataset)
    if n == 0:
        raise ZooError(f"the dataset{where} holds no images.")
    picks = sorted({int(i) for i in np.linspace(0, n - 1, num=min(n, 8))})
    native = float(np.median([min(dataset[i][0].size) for i in picks]))
    lo, hi = RESOLUTION_RANGE
    if not lo <= native / side <= hi:
        raise ZooError(
            f"the images{where} are about {native:.0f} px on their shorter side, but {model} sees {side} px: "
            "use images of the model's own dataset at its resolution."
        )


def batches(dataset, n: int | None = None, size: int = 250):
    """(images, labels) lists over the first `n` items of a dataset (default: all), `size` at a time: the
    one way the zoo walks a labelled split (evaluation, parity)."""
    n = len(dataset) if n is None else min(n, len(dataset))
    for start in range(0, n, size):
        items = [dataset[i] for i in range(start, min(n, start + size))]
        yield [img for img, _ in items], [y for _, y in items]
