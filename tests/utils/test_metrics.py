"""Top-k accuracy (zoo/utils/metrics.py), the one count behind the trainer, `zoo eval` and parity,
against torch.topk and a case worked by hand."""

from __future__ import annotations

import numpy as np
import torch

from zoo.utils.metrics import accuracy, hits, top_k


def test_top_k_matches_torch_topk_on_numpy_and_torch_inputs():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(257, 10)).astype(np.float32)
    expected = torch.from_numpy(scores).topk(5, dim=1).indices.numpy()
    np.testing.assert_array_equal(top_k(scores), expected)
    np.testing.assert_array_equal(top_k(torch.from_numpy(scores)), expected)
    assert top_k(scores[:, :3]).shape == (257, 3)  # fewer classes than k


def test_accuracy_by_hand():
    scores = np.array(
        [
            [0.1, 0.9, 0.0, 0.0, 0.0, 0.0],  # label 1: first
            [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # label 4: fifth
            [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # label 5: sixth, missed
            [0.0, 0.0, 0.0, 0.0, 0.2, 0.8],  # label 4: second
        ]
    )
    labels = np.array([1, 4, 5, 4])
    first, among = hits(top_k(scores), labels)
    assert first.tolist() == [True, False, False, False] and among.tolist() == [True, True, False, True]
    assert accuracy(scores, torch.tensor(labels)) == (25.0, 75.0)
