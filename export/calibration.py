"""Calibration images for INT8: real images of the model's own dataset at its own resolution, through the
model's own preprocessing. CIFAR-10 train images for CIFAR models, the ImageNet sample (or an ImageNet
folder) for ImageNet models, or a user's folder; data of another resolution or class count is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from zoo.data.datasets import check_fits, find_dataset, open_dataset
from zoo.data.preprocess import preprocess_batch
from zoo.errors import at_least_one
from zoo.models.weights import WeightSpec


def open_calibration_set(
    weights: WeightSpec, calib_data: str | Path | None = None, data: str | Path | None = None
):
    """The user's --calib-data folder, else the train split of the model's own dataset under `data`
    (the --data root; None: $ZOO_DATA)."""
    return open_dataset(calib_data, "train") if calib_data else find_dataset(weights.dataset, data, "train")


def calibration_images(
    weights: WeightSpec,
    calib_data: str | Path | None,
    size: int,
    seed: int = 0,
    data: str | Path | None = None,
) -> list[Image.Image]:
    """`size` images spread over the calibration set (deterministic), after the resolution check."""
    at_least_one(calib_size=size)
    dataset = open_calibration_set(weights, calib_data, data)
    check_fits(dataset, weights.num_classes, weights.preprocess.shorter_side, weights.name, calib_data)
    rng = np.random.default_rng(seed)
    picks = rng.permutation(len(dataset))[: min(size, len(dataset))]
    return [dataset[int(i)][0] for i in picks]


def describe_calibration_set(
    weights: WeightSpec, calib_data: str | Path | None, data: str | Path | None = None
) -> str:
    """Where the calibration images really came from (folder and split), for the card."""
    dataset = open_calibration_set(weights, calib_data, data)
    root = getattr(dataset, "root", None) or calib_data
    split = getattr(dataset, "split", None)
    return f"{root}{f' ({split} split)' if split else ''} [{type(dataset).__name__}]"


def batches(images: list[Image.Image], weights: WeightSpec, batch_size: int = 32) -> list[np.ndarray]:
    """Preprocessed NCHW float32 batches, through the tag's own preprocessing spec."""
    return [
        preprocess_batch(images[i : i + batch_size], weights.preprocess)
        for i in range(0, len(images), batch_size)
    ]
