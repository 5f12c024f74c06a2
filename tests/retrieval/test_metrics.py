"""Tests of rsitr.retrieval.metrics: hand-computed cases, a brute-force reference, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsitr.retrieval import metrics as metrics_module
from rsitr.retrieval.metrics import (
    caption_image_from_counts,
    i2t_ranks,
    recall_at_k,
    retrieval_metrics,
    t2i_ranks,
)

KEYS = ["i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10", "mR"]


# --------------------------------------------------------------------------------------
# Hand-computed cases
# --------------------------------------------------------------------------------------


def test_case_a_two_images_four_captions() -> None:
    # Captions 0,1 belong to image 0; captions 2,3 to image 1.
    caption_image = [0, 0, 1, 1]
    s = np.array(
        [
            [0.9, 0.1, 0.5, 0.2],  # image 0
            [0.7, 0.4, 0.6, 0.3],  # image 1
        ]
    )
    # i2t, image 0: ranking c0 (.9), c2 (.5), c3 (.2), c1 (.1). Own captions c0 -> rank 0,
    #   c1 -> rank 3; best = 0 (perfect).
    # i2t, image 1: ranking c0 (.7), c2 (.6), c1 (.4), c3 (.3). Own c2 -> rank 1,
    #   c3 -> rank 3; best = 1 (imperfect: a caption of image 0 beats both).
    np.testing.assert_array_equal(i2t_ranks(s, caption_image), [0, 1])
    # t2i, caption 0: column (.9, .7), own image 0 -> rank 0.
    #      caption 1: column (.1, .4), own image 0 -> rank 1 (image 1 scores higher).
    #      caption 2: column (.5, .6), own image 1 -> rank 0.
    #      caption 3: column (.2, .3), own image 1 -> rank 0.
    np.testing.assert_array_equal(t2i_ranks(s, caption_image), [0, 1, 0, 0])
    result = retrieval_metrics(s, caption_image)
    assert list(result) == KEYS
    # i2t R@1 = 1/2 images; R@5 = R@10 = 2/2. t2i R@1 = 3/4 captions; R@5 = R@10 = 4/4.
    expected = {
        "i2t_R1": 50.0,
        "i2t_R5": 100.0,
        "i2t_R10": 100.0,
        "t2i_R1": 75.0,
        "t2i_R5": 100.0,
        "t2i_R10": 100.0,
        "mR": (50 + 100 + 100 + 75 + 100 + 100) / 6,  # 87.5
    }
    assert result == pytest.approx(expected)
    assert all(isinstance(v, float) for v in result.values())


def test_case_b_ties_follow_stable_sort_by_index() -> None:
    # One caption per image: caption j belongs to image j.
    caption_image = [0, 1, 2]
    s = np.array(
        [
            [0.5, 0.5, 0.1],  # image 0
            [0.5, 0.5, 0.5],  # image 1
            [0.9, 0.2, 0.5],  # image 2
        ]
    )
    # Rule: rank(x) = #(score > s_x) + #(score == s_x and index < x).
    # i2t image 0, own c0 (.5): higher none; tied c1 has index 1 > 0 -> rank 0.
    # i2t image 1, own c1 (.5): higher none; tied c0 (index 0 < 1) is ahead, c2 behind -> 1.
    # i2t image 2, own c2 (.5): higher c0 (.9) -> 1; no other .5 in the row -> rank 1.
    np.testing.assert_array_equal(i2t_ranks(s, caption_image), [0, 1, 1])
    # t2i caption 0, column (.5, .5, .9), own image 0: higher image 2 -> 1; tied image 1 has
    #   a larger index -> rank 1.
    # t2i caption 1, column (.5, .5, .2), own image 1: tied image 0 is ahead -> rank 1.
    # t2i caption 2, column (.1, .5, .5), own image 2: tied image 1 is ahead -> rank 1.
    np.testing.assert_array_equal(t2i_ranks(s, caption_image), [1, 1, 1])
    result = retrieval_metrics(s, caption_image, ks=(1, 2))
    assert result == pytest.approx(
        {
            "i2t_R1": 100 / 3,  # only image 0 has rank 0
            "i2t_R2": 100.0,
            "t2i_R1": 0.0,  # every caption loses a tie or a comparison
            "t2i_R2": 100.0,
            "mR": (100 / 3 + 100 + 0 + 100) / 4,
        }
    )


def test_case_b_constant_matrix_rank_equals_index() -> None:
    # All scores equal: every ranking is by index, so the item with index x has rank x.
    s = np.full((4, 4), 0.25)
    np.testing.assert_array_equal(i2t_ranks(s, [0, 1, 2, 3]), [0, 1, 2, 3])
    np.testing.assert_array_equal(t2i_ranks(s, [0, 1, 2, 3]), [0, 1, 2, 3])
    # Reversed ownership: caption j belongs to image 3 - j. i2t image i owns caption 3 - i
    # (rank 3 - i); t2i caption j's image 3 - j has rank 3 - j.
    np.testing.assert_array_equal(i2t_ranks(s, [3, 2, 1, 0]), [3, 2, 1, 0])
    np.testing.assert_array_equal(t2i_ranks(s, [3, 2, 1, 0]), [3, 2, 1, 0])


def test_case_c_identical_captions_and_varying_caption_counts() -> None:
    # Image 0 owns 5 identical captions (identical columns c0..c4), image 1 owns 2 (c5, c6),
    # image 2 owns 1 (c7).
    caption_image = caption_image_from_counts([5, 2, 1])
    np.testing.assert_array_equal(caption_image, [0, 0, 0, 0, 0, 1, 1, 2])
    s = np.array(
        [
            [0.3, 0.3, 0.3, 0.3, 0.3, 0.2, 0.4, 0.6],  # image 0
            [0.6, 0.6, 0.6, 0.6, 0.6, 0.5, 0.7, 0.3],  # image 1
            [0.1, 0.1, 0.1, 0.1, 0.1, 0.4, 0.2, 0.3],  # image 2
        ]
    )
    # i2t image 0: own c0..c4 all .3; c6 (.4) and c7 (.6) are above them. In the stable
    #   order c0 comes first of the five (rank 2), then c1 (3) ... c4 (6): best = 2.
    # i2t image 1: own c5 (.5), c6 (.7); c6 is the row maximum -> best = 0.
    # i2t image 2: own c7 (.3); only c5 (.4) is higher, no tie -> rank 1.
    np.testing.assert_array_equal(i2t_ranks(s, caption_image), [2, 0, 1])
    # t2i c0..c4: column (.3, .6, .1), own image 0 -> image 1 above -> rank 1 (five times).
    # t2i c5: column (.2, .5, .4), own image 1 -> rank 0. c6: (.4, .7, .2) -> rank 0.
    # t2i c7: column (.6, .3, .3), own image 2: image 0 higher (+1) and image 1 tied with a
    #   smaller index (+1) -> rank 2.
    np.testing.assert_array_equal(t2i_ranks(s, caption_image), [1, 1, 1, 1, 1, 0, 0, 2])
    result = retrieval_metrics(s, caption_image)
    # i2t R@1 = 1/3, R@5 = R@10 = 3/3; t2i R@1 = 2/8, R@5 = R@10 = 8/8.
    assert result == pytest.approx(
        {
            "i2t_R1": 100 / 3,
            "i2t_R5": 100.0,
            "i2t_R10": 100.0,
            "t2i_R1": 25.0,
            "t2i_R5": 100.0,
            "t2i_R10": 100.0,
            "mR": (100 / 3 + 100 + 100 + 25 + 100 + 100) / 6,
        }
    )
    # Finer cut-offs: i2t ranks (2, 0, 1) -> R@2 = 2/3, R@3 = 1; t2i R@2 = 7/8, R@3 = 1.
    fine = retrieval_metrics(s, caption_image, ks=(2, 3))
    assert fine["i2t_R2"] == pytest.approx(200 / 3)
    assert fine["i2t_R3"] == pytest.approx(100.0)
    assert fine["t2i_R2"] == pytest.approx(87.5)
    assert fine["t2i_R3"] == pytest.approx(100.0)


def test_caption_order_does_not_matter_only_the_index() -> None:
    # Interleaved (non-contiguous) ownership must give the same numbers as the contiguous
    # layout of case (a) with columns permuted accordingly.
    s = np.array([[0.9, 0.1, 0.5, 0.2], [0.7, 0.4, 0.6, 0.3]])
    perm = np.array([2, 0, 3, 1])  # new column c holds old column perm[c]
    owner = np.array([0, 0, 1, 1])[perm]  # [1, 0, 1, 0]
    assert retrieval_metrics(s[:, perm], owner)["t2i_R1"] == pytest.approx(75.0)
    assert retrieval_metrics(s[:, perm], owner)["i2t_R1"] == pytest.approx(50.0)


# --------------------------------------------------------------------------------------
# Brute-force reference
# --------------------------------------------------------------------------------------


def _brute_force(s: np.ndarray, owner: np.ndarray) -> tuple[list[int], list[int]]:
    """Independent reference: python sorted() with key (-score, index), a loop per item."""
    n_images, n_captions = s.shape
    i2t = []
    for i in range(n_images):
        order = sorted(range(n_captions), key=lambda j: (-float(s[i, j]), j))
        i2t.append(min(order.index(j) for j in range(n_captions) if owner[j] == i))
    t2i = []
    for j in range(n_captions):
        order = sorted(range(n_images), key=lambda i: (-float(s[i, j]), i))
        t2i.append(order.index(int(owner[j])))
    return i2t, t2i


def _random_owner(rng: np.random.Generator, n_images: int, n_captions: int) -> np.ndarray:
    owner = np.concatenate([np.arange(n_images), rng.integers(0, n_images, n_captions - n_images)])
    return rng.permutation(owner)


@pytest.mark.parametrize(
    "n_images,n_captions", [(1, 1), (1, 4), (3, 3), (4, 9), (12, 60), (25, 40), (40, 200)]
)
@pytest.mark.parametrize("decimals", [None, 1])
def test_matches_brute_force(n_images: int, n_captions: int, decimals: int | None) -> None:
    rng = np.random.default_rng(1000 * n_images + n_captions + (decimals or 0))
    s = rng.standard_normal((n_images, n_captions)).astype(np.float32)
    if decimals is not None:  # many exact ties
        s = np.round(rng.random((n_images, n_captions)), decimals).astype(np.float32)
    owner = _random_owner(rng, n_images, n_captions)
    ref_i2t, ref_t2i = _brute_force(s, owner)
    np.testing.assert_array_equal(i2t_ranks(s, owner), ref_i2t)
    np.testing.assert_array_equal(t2i_ranks(s, owner), ref_t2i)
    result = retrieval_metrics(s, owner)
    for k in (1, 5, 10):
        assert result[f"i2t_R{k}"] == pytest.approx(100 * np.mean(np.array(ref_i2t) < k))
        assert result[f"t2i_R{k}"] == pytest.approx(100 * np.mean(np.array(ref_t2i) < k))
    assert result["mR"] == pytest.approx(np.mean([result[k] for k in KEYS[:6]]))


def test_matches_brute_force_five_captions_per_image_with_duplicate_columns() -> None:
    # RSICD-like layout: 5 captions per image, some captions duplicated across images.
    rng = np.random.default_rng(7)
    n_images = 30
    owner = caption_image_from_counts([5] * n_images)
    s = np.round(rng.random((n_images, 5 * n_images)), 2)
    s[:, 7] = s[:, 3]  # identical captions of different images (c3: image 0, c7: image 1)
    s[:, 50] = s[:, 12]  # c12 (image 2) duplicated twice inside image 10 (c50, c51)
    s[:, 51] = s[:, 12]
    ref_i2t, ref_t2i = _brute_force(s, owner)
    np.testing.assert_array_equal(i2t_ranks(s, owner), ref_i2t)
    np.testing.assert_array_equal(t2i_ranks(s, owner), ref_t2i)


def test_chunked_computation_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    s = np.round(rng.random((23, 71)), 1)
    owner = _random_owner(rng, 23, 71)
    full = retrieval_metrics(s, owner)
    ref_i2t, ref_t2i = _brute_force(s, owner)
    monkeypatch.setattr(metrics_module, "_BLOCK_ELEMENTS", 50)  # blocks of 1-2 rows/cols
    np.testing.assert_array_equal(i2t_ranks(s, owner), ref_i2t)
    np.testing.assert_array_equal(t2i_ranks(s, owner), ref_t2i)
    assert retrieval_metrics(s, owner) == full


def test_torch_and_numpy_inputs_agree() -> None:
    rng = np.random.default_rng(11)
    s = np.round(rng.random((10, 50)), 1).astype(np.float32)
    owner = caption_image_from_counts([5] * 10)
    expected = retrieval_metrics(s, owner)
    assert retrieval_metrics(torch.from_numpy(s), torch.from_numpy(owner)) == expected
    assert retrieval_metrics(torch.from_numpy(s).to(torch.bfloat16), owner) == retrieval_metrics(
        torch.from_numpy(s).to(torch.bfloat16).float().numpy(), owner
    )
    assert retrieval_metrics(s.tolist(), owner.tolist()) == expected


# --------------------------------------------------------------------------------------
# Helpers and validation
# --------------------------------------------------------------------------------------


def test_recall_at_k() -> None:
    assert recall_at_k(np.array([0, 1, 4, 9, 10]), 5) == pytest.approx(60.0)
    assert recall_at_k(np.array([0, 1, 4, 9, 10]), 10) == pytest.approx(80.0)
    with pytest.raises(ValueError, match="empty"):
        recall_at_k(np.array([]), 1)


def test_caption_image_from_counts() -> None:
    np.testing.assert_array_equal(caption_image_from_counts([1, 3]), [0, 1, 1, 1])
    with pytest.raises(ValueError, match=r"counts\[1\] = 0"):
        caption_image_from_counts([2, 0, 1])
    with pytest.raises(ValueError, match="empty"):
        caption_image_from_counts([])
    with pytest.raises(ValueError, match="integers"):
        caption_image_from_counts([1.5, 2.0])


@pytest.mark.parametrize(
    "similarity,caption_image,message",
    [
        (np.zeros(4), [0, 0, 1, 1], "must be 2-D"),
        (np.zeros((2, 4)), [0, 0, 1], "has 3 entries but similarity has 4"),
        (np.zeros((2, 4)), [0, 0, 1, 2], r"caption_image\[3\] = 2 is not a valid image index"),
        (np.zeros((2, 4)), [0, -1, 1, 1], r"caption_image\[1\] = -1"),
        (np.zeros((3, 4)), [0, 0, 1, 1], "1 image\\(s\\) have no caption.*: 2"),
        (np.zeros((2, 4)), [0.0, 0.0, 1.0, 1.0], "integer image indices"),
        (np.zeros((2, 4)), [[0, 0, 1, 1]], "must be 1-D"),
        (np.array([[0.1, np.nan], [0.2, 0.3]]), [0, 1], "NaN"),
        (np.zeros((0, 4)), [], "empty"),
        (np.array([["a", "b"]]), [0, 0], "numeric"),
    ],
)
def test_validation_errors(similarity, caption_image, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        retrieval_metrics(similarity, caption_image)


def test_invalid_ks() -> None:
    with pytest.raises(ValueError, match="ks"):
        retrieval_metrics(np.zeros((1, 1)), [0], ks=(0, 5))
