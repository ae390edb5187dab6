"""Calibration images for INT8: real images of the model's own dataset at its own resolution, through the
model's own preprocessing. CIFAR-10 train images for CIFAR models, the ImageNet sample (or an ImageNet
folder) for ImageNet models, or a user's folder; data of another resolution or class count is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from zoo.errors import ZooError
from zoo.preprocess import preprocess_batch
from zoo.weights import WeightSpec

RESOLUTION_RANGE = (0.5, 4.0)  # native shorter side / the spec's resize, for calibration data to be accepted


def open_calibration_set(weights: WeightSpec, calib_data: str | Path | None = None):
    from zoo.data import find_dataset, open_dataset

    dataset = (
        open_dataset(calib_data, "train") if calib_data else find_dataset(weights.dataset, None, "train")
    )
    classes = getattr(dataset, "classes", None)
    if classes and classes > 1 and classes != weights.num_classes:
        raise ZooError(
            f"the calibration data has {classes} classes but {weights.name} has {weights.num_classes}: "
            f"calibrate on {weights.dataset} images (the model's own dataset)."
        )
    return dataset


def calibration_images(
    weights: WeightSpec, calib_data: str | Path | None, size: int, seed: int = 0
) -> list[Image.Image]:
    """`size` images spread over the calibration set (deterministic), after the resolution check."""
    if size < 1:
        raise ZooError("--calib-size must be at least 1.")
    dataset = open_calibration_set(weights, calib_data)
    rng = np.random.default_rng(seed)
    picks = rng.permutation(len(dataset))[: min(size, len(dataset))]
    images = [dataset[int(i)][0] for i in picks]
    _check_resolution(images, weights, calib_data)
    return images


def _check_resolution(images: list[Image.Image], weights: WeightSpec, source) -> None:
    target = weights.preprocess.resize or weights.preprocess.crop
    native = float(np.median([min(img.size) for img in images]))
    lo, hi = RESOLUTION_RANGE
    if not lo <= native / target <= hi:
        raise ZooError(
            f"the calibration images{f' in {source}' if source else ''} are about {native:.0f} px on their "
            f"shorter side, but {weights.name} sees {target} px: calibrate on {weights.dataset} images "
            "at the model's own resolution."
        )


def batches(images: list[Image.Image], weights: WeightSpec, batch_size: int = 32) -> list[np.ndarray]:
    """Preprocessed NCHW float32 batches, through the tag's own preprocessing spec."""
    return [
        preprocess_batch(images[i : i + batch_size], weights.preprocess)
        for i in range(0, len(images), batch_size)
    ]
