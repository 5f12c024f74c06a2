"""Trimming trailing padding before CLIP's causal text tower changes no result (rsitr.models.text_tower)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from rsitr.config import load_params
from rsitr.models import build_model
from rsitr.models.text_tower import pooled_text, project_text, text_tower, trim_padding, used_length

REPO = Path(__file__).resolve().parents[2]
CAPTIONS = ["a plane near the terminal", "many green trees surround the white building in a dense residential area", "lake"]
KEYWORDS = ["plane", "terminal", "trees", "building", "lake", "green"]


def _params(*overrides: str):
    return load_params(REPO / "params.yaml", ["seed=0", *overrides])


def _model(variant: str):
    torch.manual_seed(0)
    model = build_model(_params(), variant, load_weights=False)
    if hasattr(model, "set_keywords"):
        model.set_keywords(KEYWORDS)
    return model


def test_trim_keeps_every_column_up_to_the_last_end_of_text():
    model = _model("finetune")
    tokens = model.tokenize(CAPTIONS)  # [3, 64]
    trimmed = trim_padding(model.clip, tokens)
    longest = max(len(model.tokenizer.encode(c)) for c in CAPTIONS) + 2  # + start and end of text
    assert used_length(tokens) == longest and trimmed.shape == (3, longest)
    assert torch.equal(trimmed, tokens[:, :longest]) and not tokens[:, longest:].any()


@pytest.mark.parametrize("variant", ["finetune", "petl"])
def test_pooled_text_equals_open_clip_encode_text_on_the_full_context(variant):
    model = _model(variant)
    tokens = model.tokenize(CAPTIONS)
    full = model.clip.encode_text(tokens)  # open_clip: every one of the 64 positions
    assert torch.allclose(pooled_text(model.clip, tokens), full, atol=1e-5)
    assert torch.allclose(model.encode_text(tokens), F.normalize(full, dim=-1), atol=1e-5)


def test_ebaker_ker_logits_equal_the_full_context_pass():
    """The KER pass runs on trimmed tokens; its logits equal the same head on all 64 positions."""
    model = _model("ebaker").train()
    torch.manual_seed(1)
    images = torch.randn(3, 3, model.image_size, model.image_size)
    tokens = model.tokenize(CAPTIONS)
    full = model(images, tokens, captions=CAPTIONS)
    assert full["text_tokens"].shape[1] == tokens.shape[1]  # paper-exact local score: all 64 positions
    keyword_mask = model.keyword_masker().mask_for(CAPTIONS, tokens)  # [3, 64]
    x = model.clip.token_embedding(tokens)
    x = torch.where(keyword_mask.unsqueeze(-1), model.ker_head.mask_embedding, x)
    masked_full = project_text(model.clip, text_tower(model.clip, tokens, token_embeddings=x))  # [3, 64, D]
    image_pooled, patches = model.encode_image_tokens(images)
    eot = tokens.argmax(dim=-1)
    padding = torch.arange(tokens.shape[1])[None, :] > eot[:, None]
    logits_full = model.ker_head(masked_full, torch.cat([image_pooled.unsqueeze(1), patches], 1), keyword_mask, padding)
    assert logits_full.shape == full["mlm_logits"].shape and logits_full.shape[0] == int(keyword_mask.sum()) > 0
    assert torch.allclose(full["mlm_logits"], logits_full, atol=1e-4)


def test_zeroshot_random_ignores_the_pretrained_weights(tmp_path):
    from open_clip import create_model

    base = create_model("rsitr-tiny", pretrained=None)
    with torch.no_grad():
        for parameter in base.parameters():
            parameter.add_(1.0)
    checkpoint = tmp_path / "foundation.pt"
    torch.save(base.state_dict(), checkpoint)
    params = _params(f"model.pretrained={checkpoint}", "variants.zr.method=zeroshot", "variants.zr.options.weights=random")
    pretrained = build_model(params, "zeroshot").clip.state_dict()
    random_init = build_model(params, "zr").clip.state_dict()
    assert torch.equal(pretrained["token_embedding.weight"], base.state_dict()["token_embedding.weight"])
    assert not torch.equal(random_init["token_embedding.weight"], pretrained["token_embedding.weight"])
    fresh = build_model(_params(), "zeroshot").clip.state_dict()  # no model.pretrained: the seeded random init
    assert torch.equal(random_init["token_embedding.weight"], fresh["token_embedding.weight"])


def test_petl_adapted_text_features_equal_the_full_context_pass():
    model = _model("petl").eval()
    with torch.no_grad():
        for parameter in model.adapter.parameters():  # non-zero adapters: the adapted blocks matter
            parameter.normal_(0.0, 0.1)
    tokens = model.tokenize(CAPTIONS)
    x = text_tower(model.clip, tokens)  # [3, 64, W]: all positions, adapters inside
    pooled = project_text(model.clip, x[torch.arange(3), tokens.argmax(dim=-1)])  # [3, D]
    assert torch.allclose(model.encode_text_features(tokens), F.normalize(pooled, dim=-1), atol=1e-5)
