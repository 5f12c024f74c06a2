"""CfitrModel on the tests' micro architecture: a cross-modal, masked SSM; negatives; pair scores; training."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from rsitr.config import load_params
from rsitr.config.cfitr import CfitrOptions
from rsitr.errors import ConfigError
from rsitr.losses.cfitr import CfitrLoss
from rsitr.models.cfitr import CfitrModel, draw_negatives, real_positions
from rsitr.models.factory import build_clip
from toy_data import TEST_ARCH

REPO = Path(__file__).resolve().parents[2]
CAPTIONS = [
    "a green tree beside the road",
    "many buildings near a river",
    "a storagetank",
    "a river crosses the green field with many trees and a long road",
    "trees along a wide road",
    "a parking lot with cars",
    "the street is next to the river",
    "a large storagetank and a road",
]


def _model(**options) -> CfitrModel:
    torch.manual_seed(0)
    params = load_params(REPO / "params.yaml", [f"model.arch={TEST_ARCH}"])
    base = dict(negatives=3, fusion_width=32, fusion_heads=2, image_token_grid=2)
    variant = dataclasses.replace(params.variant("finetune"), name="cfitr", method="cfitr",
                                  options=CfitrOptions(**{**base, **options}))
    return CfitrModel(build_clip(params.model, load_weights=False), variant, params)


def _batch(model: CfitrModel, size: int = 8, ids: list[int] | None = None) -> dict:
    g = torch.Generator().manual_seed(1)
    return {
        "images": torch.randn(size, 3, model.image_size, model.image_size, generator=g),
        "tokens": model.tokenize(CAPTIONS[:size]),
        "image_ids": torch.tensor(ids if ids is not None else list(range(size))),
    }


@pytest.fixture(scope="module")
def evaluated():
    model = _model().eval()
    batch = _batch(model)
    return model, model.embed_images(batch["images"]), model.embed_texts(batch["tokens"]), batch


def test_ssm_score_depends_on_the_image_tokens(evaluated):
    model, images, texts, _ = evaluated
    before = model.pair_scores(images, texts, torch.tensor([0]), torch.tensor([2]))
    changed = {**images, "tokens": images["tokens"].clone()}
    changed["tokens"][0, 1] += 1.0  # one image token of image 0
    after = model.pair_scores(changed, texts, torch.tensor([0]), torch.tensor([2]))
    assert not torch.allclose(before, after)


def test_padded_text_positions_are_masked(evaluated):
    model, images, texts, _ = evaluated
    real = texts["mask"].bool()  # [C, L]
    short = 2  # "a storagetank": most of the context is padding
    assert not real[short].all()
    tokens = texts["tokens"][[short]]  # [1, L, D] full context, padding included
    image = images["tokens"][[0]]
    with torch.no_grad():
        before = model.fusion(tokens, real[[short]], image)
        noisy = tokens.clone()
        noisy[0, ~real[short]] = torch.randn(int((~real[short]).sum()), tokens.shape[-1])
        after = model.fusion(noisy, real[[short]], image)
        unmasked = model.fusion(noisy, torch.ones_like(real[[short]]), image)
    assert torch.allclose(before, after, atol=1e-6)
    assert not torch.allclose(before, unmasked)  # the masked positions would matter without the mask


def test_pair_scores_equal_one_pair_at_a_time(evaluated):
    model, images, texts, _ = evaluated
    image_index = torch.tensor([0, 1, 2, 3, 7, 5, 0, 6])
    text_index = torch.tensor([3, 2, 2, 0, 1, 4, 7, 6])
    batched = model.pair_scores(images, texts, image_index, text_index)
    single = torch.stack([
        model.pair_scores(images, texts, image_index[[m]], text_index[[m]])[0] for m in range(len(image_index))
    ])
    assert batched.shape == (8,)
    assert torch.allclose(batched, single, atol=1e-5)


def test_score_is_the_dual_cosine(evaluated):
    model, images, texts, _ = evaluated
    scores = model.score(images, texts)
    assert torch.allclose(scores, images["global"] @ texts["global"].T, atol=1e-6)
    assert images["hash"].shape == (8, 128) and texts["hash"].abs().max() < 1


def test_random_negatives_never_share_the_image_and_follow_the_global_rng():
    ids = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4, 5, 6])
    for seed in range(20):
        torch.manual_seed(seed)
        negatives = draw_negatives(ids, 4)  # [B, 4]
        assert negatives.shape == (10, 4)
        assert (ids[negatives] != ids[:, None]).all()
        assert all(len(set(row.tolist())) == 4 for row in negatives)  # without replacement
    torch.manual_seed(3)
    first = draw_negatives(ids, 4)
    torch.manual_seed(3)
    assert torch.equal(first, draw_negatives(ids, 4))


def test_hard_negatives_are_the_highest_scoring_other_images():
    ids = torch.tensor([0, 0, 1, 2])
    scores = torch.tensor([[9.0, 8.0, 1.0, 2.0], [8.0, 9.0, 3.0, 1.0], [5.0, 4.0, 9.0, 0.0], [1.0, 2.0, 3.0, 9.0]])
    assert draw_negatives(ids, 1, scores).flatten().tolist() == [3, 2, 0, 2]


def test_forward_negatives_exclude_same_image_captions():
    model = _model(negatives=5)
    ids = [0, 0, 1, 1, 2, 3, 4, 5]
    batch = _batch(model, ids=ids)
    outputs = model(batch["images"], batch["tokens"], image_ids=batch["image_ids"])
    negatives = outputs["negative_captions"]
    assert outputs["rank_logits"].shape == (8, 6)
    assert (batch["image_ids"][negatives] != batch["image_ids"][:, None]).all()


def test_real_positions_end_at_end_of_text():
    model = _model()
    tokens = model.tokenize(["a storagetank", "a river"])
    real = real_positions(tokens)
    assert real.sum(dim=1).tolist() == [int((tokens[i] != 0).sum()) for i in range(2)]


def test_tower_init_copies_the_image_towers_last_blocks():
    model = _model(fusion_init="tower", fusion_layers=1, fusion_width=32, fusion_heads=2)
    tower = model.clip.visual.transformer.resblocks[-1]
    assert torch.equal(model.fusion.blocks[0].mlp.c_fc.weight, tower.mlp.c_fc.weight)
    assert model.fusion.blocks[0] is not tower
    with pytest.raises(ConfigError, match="fusion_width"):
        _model(fusion_init="tower", fusion_width=64)


def test_training_steps_lower_the_loss():
    model = _model()
    loss_fn = CfitrLoss(model.variant)
    batch = _batch(model, 8)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    torch.manual_seed(0)
    for _ in range(12):
        outputs = model(batch["images"], batch["tokens"], image_ids=batch["image_ids"])
        terms = loss_fn(outputs, batch)
        loss = sum(terms.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in {"loss": loss, **terms}.items()})
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert history[-1]["rank"] < history[0]["rank"]


def test_loads_a_dual_encoder_checkpoint_keeping_fresh_heads():
    model = _model()
    donor = _model()
    with torch.no_grad():
        for parameter in donor.clip.parameters():
            parameter.add_(0.01)
    fusion_before = model.fusion.rank_head.weight.clone()
    model.load_saved_state_dict({f"clip.{k}": v for k, v in donor.clip.state_dict().items()})
    assert torch.equal(model.clip.visual.conv1.weight, donor.clip.visual.conv1.weight)
    assert torch.equal(model.fusion.rank_head.weight, fusion_before)
    with pytest.raises(Exception, match="keys"):
        model.load_saved_state_dict({"clip.not_a_key": torch.zeros(1)})
