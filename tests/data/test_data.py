"""Datasets in their real layouts: CIFAR-10 shards, the ImageNet sample, an ImageFolder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from zoo import ZooError
from zoo.data.datasets import CIFAR10, ImageFolder, ImageNetSample, find_dataset, open_dataset


def test_cifar10_test_and_train_splits(cifar_dir):
    test = CIFAR10(cifar_dir, "test")
    assert len(test) == 10_000 and test.images.shape == (10_000, 32, 32, 3)
    assert np.bincount(test.labels).tolist() == [1000] * 10
    img, label = test[0]
    assert img.size == (32, 32) and img.mode == "RGB" and 0 <= label < 10
    train = CIFAR10(cifar_dir, "train")
    assert len(train) == 50_000 and set(np.unique(train.labels)) == set(range(10))


def test_imagenet_sample_and_autodetection(data, imagenet_sample):
    sample = open_dataset(imagenet_sample)
    assert isinstance(sample, ImageNetSample) and len(sample) == 1000
    img, label = sample[417]
    assert img.mode == "RGB" and label == 417
    assert isinstance(find_dataset("cifar10", data), CIFAR10)
    assert isinstance(find_dataset("imagenet1k", data), ImageNetSample)


def test_image_folder_layout(tmp_path):
    for cls, colour in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
        (tmp_path / "val" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 30), colour).save(tmp_path / "val" / cls / f"{i}.jpg")
    (tmp_path / "val" / "cat" / "notes.txt").write_text("not an image")
    ds = open_dataset(tmp_path, split="test")  # an ImageNet-style root: test falls back to val/
    assert isinstance(ds, ImageFolder) and ds.class_names == ["cat", "dog"] and len(ds) == 6
    img, label = ds[4]
    assert label == 1 and img.getpixel((5, 5))[2] > 150


def test_missing_or_empty_datasets_are_clear_errors(tmp_path, monkeypatch, zoo_cache):
    monkeypatch.delenv("ZOO_DATA", raising=False)
    with pytest.raises(ZooError, match="--data"):
        find_dataset("imagenet1k")
    monkeypatch.setenv("ZOO_MIRROR", "http://127.0.0.1:9")  # nothing listens: CIFAR-10 cannot be fetched
    with pytest.raises(ZooError, match="cannot download .*cifar-10-python.tar.gz"):
        find_dataset("cifar10")
    with pytest.raises(ZooError, match="does not exist"):
        open_dataset(tmp_path / "nowhere")
    with pytest.raises(ZooError, match="no images"):
        open_dataset(tmp_path)


def test_padded_crops_are_windows_of_the_zero_padded_image():
    """Breakage: crops taken outside the padding, or the padding not zero."""
    from zoo.data.loaders import crop_and_flip

    x = torch.randint(1, 255, (6, 3, 8, 8), dtype=torch.uint8)
    out = crop_and_flip(x, 2, False, torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(x)):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert found, f"crop {i} is no window of the padded image"
        offsets.add(found[0])
    assert len(offsets) > 1  # random, not one fixed offset
