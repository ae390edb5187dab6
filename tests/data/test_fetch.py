"""Fetching CIFAR-10 on first use: the canonical python archive over a loopback server (an archive in the
original format, built from the real shared data), the checksum, the conversion, and no code from pickles."""

from __future__ import annotations

import copy
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from zoo import ZooError
from zoo.data import fetch
from zoo.data.datasets import datasets, find_dataset


def _pickled_batch(x: np.ndarray, y: np.ndarray) -> bytes:
    """One batch as Krizhevsky's Python 2 pickles hold it: bytes keys, (N, 3072) uint8 CHW rows."""
    rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    return pickle.dumps(
        {b"batch_label": b"batch", b"labels": [int(v) for v in y], b"data": rows, b"filenames": []},
        protocol=2,
    )


def _archive(path: Path, batches: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, raw in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *a):
            hits.append(self.path)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}", hits
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def no_local_data(zoo_cache, monkeypatch, server):
    """A fresh machine: no ZOO_DATA, an empty cache, the canonical URL answered by the loopback mirror."""
    root, url, hits = server
    monkeypatch.delenv("ZOO_DATA", raising=False)
    monkeypatch.setenv("ZOO_MIRROR", url)
    return root, hits


def _expect_md5(monkeypatch, md5: str) -> None:
    """The dataset table with the test archive's md5 in place of the real archive's (same code path)."""
    table = copy.deepcopy(datasets())  # the table is cached: never edit the shared copy
    table["cifar10"]["download"]["md5"] = md5
    monkeypatch.setattr(fetch.catalog, "datasets", lambda: table)


def test_the_canonical_source_is_torchvisions():
    source = datasets()["cifar10"]["download"]
    assert source["url"] == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert source["md5"] == "c58f30108f718f92721af3b95e74349a"  # torchvision/datasets/cifar.py
    assert not fetch.can_fetch("imagenet1k")


@pytest.mark.slow
def test_cifar10_is_fetched_verified_and_converted_once_without_local_data(
    cifar_dir, no_local_data, monkeypatch
):
    root, hits = no_local_data
    train = np.concatenate([np.load(f)["x"] for f in sorted(cifar_dir.glob("train_*.npz"))])
    train_y = np.concatenate([np.load(f)["y"] for f in sorted(cifar_dir.glob("train_*.npz"))])
    test = np.load(cifar_dir / "test.npz")
    batches = {f"data_batch_{i + 1}": _pickled_batch(train[i::5], train_y[i::5]) for i in range(5)}
    batches["test_batch"] = _pickled_batch(test["x"], test["y"])
    batches["batches.meta"] = pickle.dumps({b"label_names": [b"airplane"]}, protocol=2)
    _expect_md5(monkeypatch, _archive(root / "cifar-10-python.tar.gz", batches))

    got = find_dataset("cifar10", None, "test")
    assert np.array_equal(got.images, test["x"]) and np.array_equal(got.labels, test["y"])
    got_train = find_dataset("cifar10", None, "train")
    assert len(got_train) == 50_000
    assert np.array_equal(got_train.images[:10_000], train[0::5])
    assert np.array_equal(got_train.labels[-10_000:], train_y[4::5])
    assert hits == ["/cifar-10-python.tar.gz"]  # fetched once; the second use read the converted copy
    assert not list((fetch.fetched_root()).glob(".*.tmp"))


def test_an_archive_with_another_checksum_is_refused_and_discarded(no_local_data, monkeypatch):
    root, _ = no_local_data
    _archive(root / "cifar-10-python.tar.gz", {"test_batch": b"not the real archive"})
    with pytest.raises(ZooError, match="not the published"):
        find_dataset("cifar10", None, "test")
    assert not list((fetch.fetched_root().parent / "downloads").glob("*.tar.gz"))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(no_local_data, monkeypatch, tmp_path):
    root, _ = no_local_data
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    batch = pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    _expect_md5(monkeypatch, _archive(root / "cifar-10-python.tar.gz", dict.fromkeys(names, batch)))
    with pytest.raises(ZooError, match="could not be read safely"):
        find_dataset("cifar10", None, "test")
    assert not marker.exists()
    assert not (fetch.fetched_root() / "cifar10").exists()


def test_without_data_an_imagenet_model_names_what_to_pass(monkeypatch, zoo_cache):
    monkeypatch.delenv("ZOO_DATA", raising=False)
    with pytest.raises(ZooError, match="pass --data DIR or set ZOO_DATA"):
        find_dataset("imagenet1k", None, "test")
    monkeypatch.setenv("ZOO_DATA", str(zoo_cache / "nowhere"))
    with pytest.raises(ZooError, match="does not exist"):
        find_dataset("imagenet1k", None, "test")
