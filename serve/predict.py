"""`zoo predict`: images -> the artifact's own preprocessing -> top-k labels with probabilities.
Files, folders, globs, http(s) URLs and `-` (standard input); batched; a bad image is reported by name and
the others still processed."""

from __future__ import annotations

import glob
import sys
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.datasets import IMAGE_SUFFIXES
from zoo.data.preprocess import MAX_BYTES, load_image, preprocess
from zoo.errors import ZooError, at_least_one
from zoo.serve.runtimes import Runtime
from zoo.utils import urls
from zoo.utils.metrics import top_k as best

URL_DEADLINE_S = 60.0  # for one image named by its URL, the whole transfer
STDIN = "-"


def expand(items: list[str]) -> list[tuple[str, str | None]]:
    """(path, error) for every image named by files, folders (recursively) and glob patterns."""
    found: list[tuple[str, str | None]] = []
    for item in items:
        if item == STDIN or urls.is_url(item):  # read when it is classified, once
            found.append((item, None))
            continue
        path = Path(item)
        try:
            path.exists()  # a name the file system refuses (too long, NUL) is an error of that item alone
        except (OSError, ValueError) as e:
            found.append((item, f"not a usable file name ({getattr(e, 'strerror', None) or e})"))
            continue
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            found += [(str(p), None) for p in files] or [(item, "the folder holds no images")]
        elif any(c in item for c in "*?["):
            matches = sorted(glob.glob(item, recursive=True))
            found += [(m, None) for m in matches if Path(m).is_file()] or [
                (item, "the pattern matches no file")
            ]
        else:
            gone = "no such file" + (": a link that leads nowhere" if path.is_symlink() else "")
            found.append((item, None if path.exists() else gone))
    return found


def _read(item: str) -> str | bytes:
    """What load_image opens for an item: a file's path, or the bytes of a URL or of standard input."""
    if urls.is_url(item):
        return urls.fetch(item, MAX_BYTES, URL_DEADLINE_S)
    if item != STDIN:
        return item
    if sys.stdin is None or sys.stdin.isatty():
        raise ZooError(
            "- reads an image from standard input, and none is piped in (`cat photo.jpg | zoo predict ... -`)."
        )
    data = sys.stdin.buffer.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ZooError(f"standard input holds more than the {MAX_BYTES:,} bytes an image may have.")
    return data


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def top_k(logits: np.ndarray, labels: list[str], k: int) -> list[list[dict[str, Any]]]:
    """The one top-k: [{index, label, prob}] per row, best first."""
    probs = softmax(logits.astype(np.float64))
    order = best(probs, k)
    return [
        [{"index": int(i), "label": labels[i], "prob": float(p[i])} for i in row]
        for row, p in zip(order, probs, strict=True)
    ]


def predict(runtime: Runtime, items: list[str], topk: int = 5, batch_size: int = 32) -> list[dict[str, Any]]:
    """One result per image: {"image", "top": [...]}, or {"image", "error"} for one that could not be read."""
    at_least_one(topk=topk)
    results: list[dict[str, Any]] = []
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if pending:
            logits = runtime.run(np.stack([x for _, x in pending]))
            for (slot, _), top in zip(pending, top_k(logits, runtime.labels, topk), strict=True):
                results[slot]["top"] = top
            pending.clear()

    for path, error in expand(items):
        results.append({"image": path})
        if error:
            results[-1]["error"] = error
            continue
        try:
            image = load_image(_read(path), name="standard input" if path == STDIN else path)
            pending.append((len(results) - 1, preprocess(image, runtime.preprocess)))
        except ZooError as e:
            results[-1]["error"] = str(e)
        if len(pending) >= batch_size:
            flush()
    flush()
    return results
