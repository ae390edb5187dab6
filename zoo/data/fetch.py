"""Fetching a dataset the zoo may redistribute (CIFAR-10) into the cache on first use, as torchvision
and Ultralytics do: downloaded from its canonical URL, checked against the published checksum, converted
once to the zoo's `.npz` layout, and never unpickled with code execution.

The CIFAR-10 python archive's batches are pickles of dicts of numpy arrays and lists; they are read by
`SafeUnpickler`, which rebuilds numpy arrays and nothing else (any other global is refused).
"""

from __future__ import annotations

import io
import pickle
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np

from zoo.data import datasets as catalog  # (a module: datasets.py imports this one)
from zoo.errors import ZooError
from zoo.models.weights import download, mirrored, verify_hash
from zoo.utils.files import temp_dir
from zoo.utils.paths import cache_dir

ALLOWED_GLOBALS = {  # what a pickled numpy array needs, under numpy 1.x and 2.x names
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes in a protocol-2 pickle written by Python 3 (as torch's safe loader allows)
}


def fetched_root() -> Path:
    """Where fetched datasets live: $ZOO_CACHE/data (a data root like ../shared/data)."""
    return cache_dir() / "data"


def can_fetch(dataset: str) -> bool:
    return "download" in catalog.datasets().get(dataset, {})


def ensure(dataset: str) -> Path:
    """The folder of `dataset` under the cache, fetched and converted first if it is not there yet."""
    source = catalog.datasets().get(dataset, {}).get("download")
    if source is None:
        raise ZooError(
            f"{dataset} cannot be downloaded (it is not redistributable): pass --data DIR or set ZOO_DATA."
        )
    target = fetched_root() / dataset
    if (target / "test.npz").is_file():
        return target

    archive = cache_dir() / "downloads" / source["url"].rsplit("/", 1)[-1]
    if archive.is_file():
        verify_hash(archive, md5=source["md5"])
    else:
        print(f"note: fetching {dataset} from {source['url']} into {archive.parent} (once)", file=sys.stderr)
        download(mirrored(source["url"]), archive, md5=source["md5"])
    _convert_cifar_python(archive, target)
    return target


class SafeUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; any other class or function is an error."""

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name} (only numpy arrays are allowed)")


def load_batch(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 NHWC, labels int64) of one CIFAR-10 python batch."""
    try:
        d = SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise ZooError(f"a CIFAR-10 batch could not be read safely ({e}).") from None
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    data = np.asarray(d["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ZooError(f"a CIFAR-10 batch holds data of shape {data.shape}, not (N, 3072).")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(d["labels"], dtype=np.int64)


def _convert_cifar_python(archive: Path, target: Path) -> None:
    """cifar-10-python.tar.gz -> target/train_0N.npz (one per batch) and target/test.npz, atomically."""
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():  # read in memory: nothing is extracted, no path is trusted
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in names:
                    batches[base] = load_batch(tar.extractfile(member).read())
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ZooError(
            f"{archive} is not a readable CIFAR-10 archive ({e}); delete it to fetch it again."
        ) from None
    missing = [n for n in names if n not in batches]
    if missing:
        raise ZooError(f"{archive} lacks {', '.join(missing)}; it is not the CIFAR-10 python archive.")

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(target.parent, target.name)
    try:
        for i, name in enumerate(names[:5]):
            np.savez(tmp / f"train_{i:02d}.npz", x=batches[name][0], y=batches[name][1])
        np.savez(tmp / "test.npz", x=batches["test_batch"][0], y=batches["test_batch"][1])
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
