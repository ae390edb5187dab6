"""`zoo eval`: accuracy of a tag, a run or a checkpoint on a labelled dataset, under the paper's test
protocols: single crop, flip averaging, 10-crop (Section 3.4), fully-convolutional multi-scale
(shorter side in {224, 256, 384, 480, 640}) and ensembles (softmax averaged, Table 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import torch
from PIL import Image

from zoo.data.datasets import batches, check_fits, find_dataset, num_classes, preprocess_spec
from zoo.data.preprocess import PreprocessSpec, normalize, preprocess, resize_shorter_side
from zoo.errors import ZooError, at_least_one
from zoo.models import registry
from zoo.models.weights import read_checkpoint
from zoo.train.runs import SUMMARY, WEIGHTS, read_json
from zoo.utils.metrics import accuracy
from zoo.utils.progress import step

PROTOCOLS = ("single", "flip", "10crop", "multiscale")
SCALES = (224, 256, 384, 480, 640)


def _source(source: str) -> tuple[str, Path | None, str]:
    """(architecture, weights file or None for a tag, dataset) of a tag, a run folder or a file: read from
    the manifest or the run's records, without loading (or downloading) any weights."""
    path = Path(source)
    if not path.exists():
        arch, spec = registry.resolve(source)
        if spec is None:
            raise ZooError(f"{arch} has no pretrained weights yet; train it with `zoo train {arch}`.")
        return arch, None, spec.dataset
    weights = path / WEIGHTS if path.is_dir() else path
    if not weights.is_file():
        raise ZooError(f"{path} holds no {WEIGHTS} (a `zoo train` run folder or a checkpoint file).")
    meta: dict[str, Any] = read_json((path if path.is_dir() else path.parent) / SUMMARY) or {}
    if not meta and weights.suffix == ".safetensors":
        with safetensors.safe_open(str(weights), "pt") as f:
            meta = dict(f.metadata() or {})
    if not meta.get("arch"):
        raise ZooError(
            f"cannot tell the architecture of {weights}; import it with `zoo import-weights` first."
        )
    return meta["arch"], weights, meta.get("dataset", "cifar10")


def load_model(source: str) -> tuple[torch.nn.Module, PreprocessSpec, str, str]:
    """(model in eval mode, its preprocessing, a name, its dataset) from a tag, a run folder or a file."""
    arch, weights, dataset = _source(source)
    if weights is None:
        spec = registry.resolve(source)[1]
        return registry.create_model(source, pretrained=True), spec.preprocess, spec.name, dataset
    model = registry.create_model(arch, num_classes=num_classes(dataset))
    registry.load_state(model, read_checkpoint(weights), f"the weights in {weights}", arch)
    return model.eval(), preprocess_spec(dataset), str(Path(source)), dataset


def _views(img: Image.Image, spec: PreprocessSpec, protocol: str) -> list[np.ndarray]:
    """The inputs one image contributes under a protocol, each CHW (sizes differ for multiscale)."""
    if protocol in ("single", "flip"):
        x = preprocess(img, spec)
        return [x, np.ascontiguousarray(x[:, :, ::-1])] if protocol == "flip" else [x]
    if protocol == "10crop":  # four corners and the centre of the resized image, and their flips
        big = resize_shorter_side(img, spec.shorter_side, spec)
        w, h, c = *big.size, spec.crop
        views = []
        for left, top in ((0, 0), (w - c, 0), (0, h - c), (w - c, h - c), ((w - c) // 2, (h - c) // 2)):
            x = normalize(big.crop((left, top, left + c, top + c)), spec)
            views += [x, np.ascontiguousarray(x[:, :, ::-1])]
        return views
    # Fully convolutional: the whole resized image; the global pooling does the rest.
    return [normalize(resize_shorter_side(img, s, spec), spec) for s in SCALES]


@torch.no_grad()
def evaluate(
    sources: list[str],
    data: str | None = None,
    split: str = "test",
    protocol: str = "single",
    limit: int | None = None,
    batch_size: int = 200,
) -> dict[str, Any]:
    """top-1/top-5 (%) and n of one model, or the softmax-averaged ensemble of several."""
    if protocol not in PROTOCOLS:
        raise ZooError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}.")
    at_least_one(limit=limit)
    datasets = {_source(s)[2] for s in sources}  # before any weights are loaded or downloaded
    if len(datasets) > 1:
        raise ZooError(f"an ensemble needs models of one dataset, not {', '.join(sorted(datasets))}.")
    dataset = find_dataset(datasets.pop(), data, split)
    loaded = [load_model(s) for s in sources]
    for model, spec, name, _ in loaded:
        check_fits(dataset, model.fc.out_features, spec.shorter_side, name, data)
    n = min(len(dataset), limit or len(dataset))
    probs = torch.zeros(n, loaded[0][0].fc.out_features)
    labels = torch.zeros(n, dtype=torch.long)
    for model, spec, name, _ in loaded:
        with step(f"eval {name} on {n:,} images ({protocol})", total=n) as advance:
            _evaluate_one(model, spec, dataset, n, batch_size, protocol, probs, labels, advance)
    top1, top5 = accuracy(probs, labels)
    return {
        "models": [name for _, _, name, _ in loaded],
        "protocol": protocol,
        "split": split,
        "n": n,
        "top1": top1,
        "top5": top5,
    }


@torch.no_grad()
def _evaluate_one(model, spec, dataset, n, batch_size, protocol, probs, labels, advance) -> None:
    """Add one model's class probabilities over the first `n` images into `probs` (and `labels`)."""
    start = 0
    for imgs, ys in batches(dataset, n, batch_size):
        views = [_views(img, spec, protocol) for img in imgs]
        if protocol == "multiscale":  # one image and scale at a time: the shapes differ
            p = torch.stack(
                [torch.cat([model(torch.from_numpy(v)[None]) for v in vs]).softmax(1).mean(0) for vs in views]
            )
        else:
            k = len(views[0])
            logits = model(torch.from_numpy(np.stack([v for vs in views for v in vs])))
            p = logits.softmax(1).view(len(imgs), k, -1).mean(1)
        probs[start : start + len(ys)] += p
        labels[start : start + len(ys)] = torch.tensor(ys)
        start += len(ys)
        advance(len(ys))
