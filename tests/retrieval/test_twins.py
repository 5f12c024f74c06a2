"""Tests of rsitr.retrieval.twins: a hand-computed case, a brute-force reference, path matching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsitr.retrieval.twins import TWIN_METRICS, twin_accuracy, twin_index_pairs

# Image 0 owns captions 0, 1; image 1 owns 2, 3, 4; image 2 owns 5; image 3 owns 6.
# Twin pairs: (0, 1) and (3, 2) (the order inside a pair does not matter).
CAPTION_IMAGE = [0, 0, 1, 1, 1, 2, 3]
SCORES = np.array([
    #  c0   c1   c2   c3   c4   c5   c6
    [0.9, 0.2, 0.5, 0.1, 0.3, 0.0, 0.0],  # image 0
    [0.4, 0.6, 0.8, 0.1, 0.7, 0.0, 0.0],  # image 1
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.3],  # image 2
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.0],  # image 3
])


def test_hand_computed_twin_accuracy() -> None:
    # t2i, one decision per caption of a twin image: does it score its own image above the twin?
    #   c0: 0.9 > 0.4 yes   c1: 0.2 > 0.6 no                        (image 0 vs 1)
    #   c2: 0.8 > 0.5 yes   c3: 0.1 = 0.1 tie, no   c4: 0.7 > 0.3 yes  (image 1 vs 0)
    #   c5: 0.2 > 0.1 yes                                            (image 2 vs 3)
    #   c6: 0.0 > 0.3 no                                             (image 3 vs 2)
    #   -> 4 of 7
    # i2t, one decision per twin image: mean score of its own captions vs of the twin's captions
    #   image 0: (0.9 + 0.2) / 2 = 0.55  > (0.5 + 0.1 + 0.3) / 3 = 0.30  yes
    #   image 1: (0.8 + 0.1 + 0.7) / 3 = 0.533 > (0.4 + 0.6) / 2 = 0.50  yes
    #   image 2: 0.2 > 0.3 no;  image 3: 0.0 > 0.1 no
    #   -> 2 of 4
    result = twin_accuracy(SCORES, CAPTION_IMAGE, [(0, 1), (3, 2)])
    assert set(result) == set(TWIN_METRICS)
    assert result["twin_acc_t2i"] == pytest.approx(100 * 4 / 7)
    assert result["twin_acc_i2t"] == pytest.approx(50.0)
    assert result["twin_acc"] == pytest.approx((100 * 4 / 7 + 50.0) / 2)
    assert result["twin_pairs"] == 2


def test_one_pair_and_torch_inputs() -> None:
    # Pair (0, 1) alone: t2i 3 of 5 (c0, c2, c4), i2t 2 of 2.
    expected = {"twin_acc": 80.0, "twin_acc_t2i": 60.0, "twin_acc_i2t": 100.0, "twin_pairs": 1}
    assert twin_accuracy(SCORES, CAPTION_IMAGE, [(0, 1)]) == pytest.approx(expected)
    assert twin_accuracy(torch.tensor(SCORES), torch.tensor(CAPTION_IMAGE), np.array([[1, 0]])) == pytest.approx(
        expected)


def _brute_force(scores: np.ndarray, owner: np.ndarray, pairs: list[tuple[int, int]]) -> tuple[float, float]:
    t2i, i2t = [], []
    for a, b in pairs:
        for own, twin in ((a, b), (b, a)):
            t2i += [scores[own, j] > scores[twin, j] for j in np.flatnonzero(owner == own)]
            i2t.append(scores[own, owner == own].mean() > scores[own, owner == twin].mean())
    return 100 * float(np.mean(t2i)), 100 * float(np.mean(i2t))


def test_matches_a_brute_force_reference_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    owner = np.concatenate([np.arange(30), rng.integers(0, 30, size=70)])
    rng.shuffle(owner)  # captions in any order, 1..n captions per image
    scores = rng.normal(size=(30, owner.size)).round(1)  # rounding makes ties
    pairs = [(0, 1), (5, 2), (7, 29), (10, 11), (12, 3)]
    t2i, i2t = _brute_force(scores, owner, pairs)
    result = twin_accuracy(scores, owner, pairs)
    assert result["twin_acc_t2i"] == pytest.approx(t2i) and result["twin_acc_i2t"] == pytest.approx(i2t)


@pytest.mark.parametrize("pairs, message", [
    ([], "empty"), ([(0, 0)], "itself"), ([(0, 4)], "outside"), ([(0, 1, 2)], r"\[P, 2\]"),
])
def test_invalid_pairs_are_rejected(pairs: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        twin_accuracy(SCORES, CAPTION_IMAGE, pairs)


def test_twin_pairs_are_found_by_path_suffix() -> None:
    paths = ["data/raw/synth/a/images/1.tif", "/abs/data/raw/synth/a/images/2.tif", "x/b/images/1.tif",
             "data/raw/synth/a/images/3.tif"]
    twins = [
        ("a/images/1.tif", "a/images/2.tif"),  # relative and absolute image paths alike
        ("a/images/3.tif", "a/images/9.tif"),  # the twin is not in this split: left out
        ("images/1.tif", "a/images/2.tif"),  # images/1.tif ends two paths: ambiguous, left out
        ("a/images/3.tif", "a/images/1.tif"),
    ]
    assert twin_index_pairs(paths, twins) == [(0, 1), (3, 0)]
    assert twin_index_pairs(paths, []) == []
