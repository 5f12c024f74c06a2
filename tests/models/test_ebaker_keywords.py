"""EBAKER keyword masking (KER): exactly the keyword BPE pieces, all pieces of multi-piece words."""

from __future__ import annotations

import open_clip
import pytest
import torch

from rsitr.errors import DataError, ModelError
from rsitr.models.keyword_masking import KeywordMasker, read_keywords


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer("ViT-B-32")  # the real CLIP BPE tokenizer (bundled vocabulary)


def _pieces(tokenizer, word: str) -> list[int]:
    return tokenizer.encode(word)


def _masked_ids(tokens: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    return [row[m].tolist() for row, m in zip(tokens, mask)]


def test_multi_piece_keyword_has_all_pieces_masked(tokenizer):
    multi = [w for w in ("storagetank", "parkinglot", "denseresidential", "baseballfield") if len(_pieces(tokenizer, w)) > 1]
    assert multi, "expected at least one keyword that BPE splits into several pieces"
    word = multi[0]
    pieces = _pieces(tokenizer, word)
    masker = KeywordMasker(tokenizer, [word, "tank"])
    caption = f"a {word} beside a tank and a storage building"
    tokens, mask = masker([caption])
    assert torch.equal(tokens, tokenizer([caption]))
    # every piece of the multi-piece word, then the single-piece keyword; nothing else
    assert _masked_ids(tokens, mask) == [pieces + _pieces(tokenizer, "tank")]
    start = 2  # SOT, "a"
    assert mask[0, start : start + len(pieces)].all() and int(mask.sum()) == len(pieces) + 1


def test_matching_is_case_insensitive_and_on_word_boundaries(tokenizer):
    masker = KeywordMasker(tokenizer, ["Tree", "road"])
    captions = ["Trees line the street, one TREE near the Road.", "a street with streetlights", "tree-lined roads; tree"]
    tokens, mask = masker(captions)
    assert torch.equal(tokens, tokenizer(captions))
    tree, road = _pieces(tokenizer, "tree"), _pieces(tokenizer, "road")
    assert _masked_ids(tokens, mask) == [tree + road, [], tree + tree]
    decoded = [tokenizer.decode(row[m].tolist()).split() for row, m in zip(tokens, mask)]
    assert decoded == [["tree", "road"], [], ["tree", "tree"]]


def test_sot_eot_padding_never_masked_and_truncation_matches_tokenizer(tokenizer):
    masker = KeywordMasker(tokenizer, ["tree"], context_length=8)
    caption = "tree " * 20
    tokens, mask = masker([caption])
    assert torch.equal(tokens, tokenizer([caption], context_length=8))
    assert tokens[0, -1] == tokenizer.eot_token_id
    assert mask[0].tolist() == [False] + [True] * 6 + [False]


def test_mask_for_rejects_misaligned_tokens(tokenizer):
    masker = KeywordMasker(tokenizer, ["tree"])
    tokens = tokenizer(["a tree"])
    assert masker.mask_for(["a tree"], tokens).sum() == 1
    with pytest.raises(ModelError, match="misaligned"):
        masker.mask_for(["a tree"], tokenizer(["the tree"]))


def test_missing_keyword_file_names_file_and_fix(tmp_path):
    with pytest.raises(DataError, match="rsitr keywords") as error:
        read_keywords(tmp_path / "processed" / "keywords.txt")
    assert "keywords.txt" in str(error.value)


def test_read_keywords_skips_blank_lines(tmp_path):
    path = tmp_path / "keywords.txt"
    path.write_text("road\n\n  tree \nالطريق\n", encoding="utf-8")
    assert read_keywords(path) == ["road", "tree", "الطريق"]
