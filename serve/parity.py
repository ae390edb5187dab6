"""Parity: does an artifact still predict what its PyTorch original predicts, on real labelled images?

Top-1 agreement, top-5 agreement (the original's top-1 inside the artifact's top-5, and the mean overlap of
the two top-5 sets), the accuracy of both, and the max / mean absolute logit difference. Bars by precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from zoo.data.datasets import batches, check_fits, find_dataset
from zoo.data.preprocess import preprocess_batch
from zoo.errors import ZooError
from zoo.export.artifact import read_card, update_card
from zoo.models import registry
from zoo.models.weights import sha256_file, weights_file
from zoo.serve.bars import BARS, JUDGED_AS, bars_with, looser  # noqa: F401  (re-exported: parity is their user)
from zoo.serve.runtimes import Runtime, TorchRuntime, open_runtime
from zoo.serve.verdicts import card_key
from zoo.utils.metrics import hits, top_k
from zoo.utils.progress import step


@dataclass
class LabelledImages:
    """Preprocessed batches of real images with their labels, shared by every runtime compared."""

    batches: list[np.ndarray]
    labels: np.ndarray
    source: str


def stream(
    spec, dataset, limit: int | None = None, batch_size: int = 250
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(preprocessed batch, labels) over the first `limit` images, one batch in memory at a time: the
    50,000 ImageNet validation images would take about 30 GB preprocessed at once."""
    for images, labels in batches(dataset, limit or None, batch_size):
        yield preprocess_batch(images, spec), np.asarray(labels)


def labelled_images(
    spec, dataset, limit: int | None = None, batch_size: int = 250, source: str = ""
) -> LabelledImages:
    """Every batch at once, for comparing runtimes one after the other (check_artifacts streams)."""
    pairs = list(stream(spec, dataset, limit, batch_size))
    labels = np.concatenate([y for _, y in pairs]) if pairs else np.zeros(0, np.int64)
    return LabelledImages([b for b, _ in pairs], labels, source)


def logits_of(runtime: Runtime, data: LabelledImages) -> np.ndarray:
    return np.concatenate([runtime.run(b) for b in data.batches])


Z95 = 1.959963984540054  # two-sided 95%
METHOD = (
    "95% confidence intervals: Wilson score for agreement, paired (Wald, with McNemar's exact test) for "
    "the accuracy change; a bar fails only when the whole interval lies beyond it"
)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion, in %."""
    if n == 0:
        return 0.0, 100.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def paired_change(ref_correct: np.ndarray, cand_correct: np.ndarray, z: float = Z95) -> dict[str, Any]:
    """Accuracy change (candidate - reference, points) on the same images, with its paired interval and
    McNemar's exact p-value: only the images where exactly one of the two is right carry information."""
    n = len(ref_correct)
    lost = int(np.sum(ref_correct & ~cand_correct))  # the original right, the artifact wrong
    gained = int(np.sum(~ref_correct & cand_correct))
    d = (gained - lost) / n if n else 0.0
    se = math.sqrt(max(0.0, (lost + gained) - (gained - lost) ** 2 / n)) / n if n else 0.0
    k, m = min(lost, gained), lost + gained
    p = min(1.0, float(Fraction(2 * sum(math.comb(m, i) for i in range(k + 1)), 2**m))) if m else 1.0
    return {
        "change": 100.0 * d,
        "ci": [100.0 * (d - z * se), 100.0 * (d + z * se)],
        "lost": lost,
        "gained": gained,
        "mcnemar_p": p,
    }


def compare(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """The parity metrics of candidate logits against reference logits (in %, over the same images)."""
    ref5, cand5 = top_k(reference), top_k(candidate)
    ref_first, ref_among = hits(ref5, labels)
    cand_first, cand_among = hits(cand5, labels)
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ref5, cand5, strict=True)])
    diff = np.abs(reference - candidate)
    agree = int(np.sum(ref5[:, 0] == cand5[:, 0]))
    return {
        "images": int(len(labels)),
        "method": METHOD,
        "top1_agreement_ci": list(wilson(agree, len(labels))),
        "top1_change": paired_change(ref_first, cand_first),
        "top1_agreement": 100.0 * float(np.mean(ref5[:, 0] == cand5[:, 0])),
        "top5_agreement": 100.0 * float(np.mean([r in c for r, c in zip(ref5[:, 0], cand5, strict=True)])),
        "top5_overlap": 100.0 * float(overlap),
        "reference_top1": 100.0 * float(np.mean(ref_first)),
        "top1": 100.0 * float(np.mean(cand_first)),
        "reference_top5": 100.0 * float(np.mean(ref_among)),
        "top5": 100.0 * float(np.mean(cand_among)),
        "max_abs_logit_diff": float(diff.max()),
        "mean_abs_logit_diff": float(diff.mean()),
        "nonfinite": int((~np.isfinite(candidate)).sum()),
    }


def verdict(
    metrics: dict[str, Any], precision: str, bars: dict[str, dict[str, float]] | None = None
) -> dict[str, Any]:
    """Whether the metrics pass the bars of this precision; the failures say which bar and by how much."""
    bars = bars or BARS
    precision = precision.split()[0]
    bar = bars.get(precision) or bars[JUDGED_AS[precision]]
    failures = []
    if metrics["nonfinite"]:
        failures.append(f"{metrics['nonfinite']} non-finite logits")
    n = metrics["images"]
    lo, hi = metrics.get("top1_agreement_ci") or (metrics["top1_agreement"],) * 2
    if hi < bar["top1_agreement"]:
        failures.append(
            f"top-1 agreement {metrics['top1_agreement']:.2f}% (95% CI {lo:.2f}–{hi:.2f}, {n} images) "
            f"< {bar['top1_agreement']}%"
        )
    change = metrics.get("top1_change") or {"change": metrics["top1"] - metrics["reference_top1"]}
    ci = change.get("ci") or [change["change"]] * 2
    drop, least = -change["change"], -ci[1]  # the drop, and the smallest drop the data allow
    if "accuracy_drop" in bar and least > bar["accuracy_drop"]:
        failures.append(
            f"top-1 accuracy drop {drop:.2f} points (95% CI {least:.2f}–{-ci[0]:.2f}, {n} images) "
            f"> {bar['accuracy_drop']}"
        )
    return {"passed": not failures, "bars": bar, "failures": failures, "method": METHOD}


def parity(
    reference: Runtime,
    candidate: Runtime,
    data: LabelledImages,
    reference_logits: np.ndarray | None = None,
    bars: dict | None = None,
) -> dict[str, Any]:
    """The metrics, the verdict under the zoo's own bars (the one an artifact's card keeps, and every
    command honours) and, when other bars are given, the verdict under those beside it, named as such:
    looser bars can never turn a failure into a pass. `measured_on` says where the verdict holds."""
    ref = logits_of(reference, data) if reference_logits is None else reference_logits
    return judge(reference, candidate, ref, logits_of(candidate, data), data.labels, data.source, bars)


def judge(
    reference: Runtime,
    candidate: Runtime,
    ref: np.ndarray,
    cand: np.ndarray,
    labels: np.ndarray,
    source: str,
    bars: dict | None = None,
) -> dict[str, Any]:
    """The parity result of `candidate`'s logits against `reference`'s on images with `labels`."""
    metrics = compare(ref, cand, labels)
    out = {
        "data": source,
        "reference": reference.describe(),
        "candidate": candidate.describe(),
        "measured_on": candidate.measured_on(),
        **metrics,
        "verdict": verdict(metrics, candidate.precision),
    }
    if bars is not None and bars != BARS:
        out["verdict_given_bars"] = verdict(metrics, candidate.precision, bars) | {"looser": looser(bars)}
    return out


def check_exported_from(directory, spec) -> None:
    """Refuse, in one sentence, an artifact that was not exported from the weights of `spec`."""
    card = read_card(directory)
    if card.get("source") != spec.name:
        raise ZooError(
            f"{directory} was exported from {card.get('source')}, not {spec.name}: compare it with its own "
            f"original, `zoo parity {card.get('source')} {directory}`."
        )
    if card.get("weights_sha256") != sha256_file(weights_file(spec)):
        raise ZooError(
            f"{directory} was exported from other weights than {spec.name}'s (sha256 "
            f"{str(card.get('weights_sha256'))[:12]}…): export it again from these."
        )


def _run_batch(batch, y, reference, opened: dict, ref: list, labels: list, logits: dict, out: dict) -> None:
    """One batch through the original and every artifact still running; one that fails is dropped."""
    ref.append(reference.run(batch))
    labels.append(y)
    for key, (_, _, rt) in list(opened.items()):
        try:
            logits[key].append(rt.run(batch))
        except ZooError as e:
            out[key] = {"failed": f"could not run it for parity: {e}"}
            opened.pop(key)[2].close()


def check_artifacts(
    tag: str,
    directories: list,
    data: str | None = None,
    limit: int | None = None,
    bars: dict | None = None,
    backend: str | None = None,
) -> dict:
    """Parity of each artifact directory against the PyTorch original of `tag` on the tag's own labelled
    test images; the original runs once for all of them. An item is a directory, run by `backend`
    (default: the artifact's own runtime), or a `(directory, backend)` pair. Each result is also written
    into the artifact's card, as `parity` (or `parity_BACKEND` for another backend). Keyed by the
    directory as a string, or by `(directory string, backend)` for a pair."""
    runs = [
        (d, None, backend) if not isinstance(d, tuple) else (d[0], (str(d[0]), d[1]), d[1])
        for d in directories
    ]
    keys = [key or str(d) for d, key, _ in runs]
    if not runs:
        return {}
    _, spec = registry.resolve(tag)
    for d, _, _ in runs:  # before any work: an artifact of other weights is no candidate for this original
        check_exported_from(d, spec)
    try:
        dataset = find_dataset(spec.dataset, data, "test")
    except ZooError as e:
        return {key: {"skipped": f"no labelled {spec.dataset} images: {e}"} for key in keys}
    check_fits(dataset, spec.num_classes, spec.preprocess.shorter_side, spec.name, data)
    if limit is not None and limit < 1:
        raise ZooError(f"the number of parity images must be at least 1, not {limit}.")
    source = f"{spec.dataset} test ({type(dataset).__name__})"
    out: dict = {}
    opened: dict = {}  # key -> (directory, backend, runtime): every candidate sees each batch once
    try:
        for (d, _, run_by), key in zip(runs, keys, strict=True):
            try:
                opened[key] = (d, run_by, open_runtime(d, backend=run_by))
            except ZooError as e:  # a built artifact that cannot be run is a failure, not a skip
                out[key] = {"failed": f"could not run it for parity: {e}"}
        # the original runs where the artifacts run (a GPU's artifacts against the GPU's PyTorch)
        on_gpu = any(rt.device.startswith("cuda") for _, _, rt in opened.values())
        reference = TorchRuntime(tag, device="cuda" if on_gpu else "cpu")
        ref, labels, logits = [], [], {key: [] for key in opened}
        n = min(len(dataset), limit or len(dataset))
        with step(f"parity of {len(opened)} artifact(s) on {n:,} images", total=n) as advance:
            for batch, y in stream(spec.preprocess, dataset, limit):
                advance(len(batch))
                _run_batch(batch, y, reference, opened, ref, labels, logits, out)
        for key, (d, run_by, rt) in opened.items():
            result = judge(
                reference,
                rt,
                np.concatenate(ref),
                np.concatenate(logits[key]),
                np.concatenate(labels),
                source,
                bars,
            )
            update_card(d, **{card_key(run_by): result})
            out[key] = result
    finally:
        for _, _, rt in opened.values():
            rt.close()
    return {key: out[key] for key in keys}
