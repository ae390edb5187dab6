"""Top-k accuracy, once: the trainer's test figure, `zoo eval` and the parity check all count hits here."""

from __future__ import annotations

import numpy as np


def top_k(scores, k: int = 5) -> np.ndarray:
    """The indices of the k highest scores of each row (logits or probabilities, NumPy or torch), highest
    first; (N, min(k, classes))."""
    scores = np.asarray(scores.detach().float().cpu() if hasattr(scores, "detach") else scores)
    return np.argsort(-scores, axis=1, kind="stable")[:, : min(k, scores.shape[1])]


def hits(top: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `top_k`'s answer: whether the label is the first guess, and whether it is among them."""
    labels = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
    return top[:, 0] == labels, (top == labels[:, None]).any(1)


def accuracy(scores, labels, k: int = 5) -> tuple[float, float]:
    """Top-1 and top-k accuracy in %."""
    first, among = hits(top_k(scores, k), labels)
    return 100.0 * float(first.mean()), 100.0 * float(among.mean())
