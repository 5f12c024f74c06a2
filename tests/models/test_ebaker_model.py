"""EbakerModel on rsitr-tiny: training lowers the loss, evaluation contract, describe, keywords file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from rsitr.app.steps.keywords import variant_keywords
from rsitr.config import load_params
from rsitr.errors import DataError
from rsitr.models import build_model
from rsitr.losses import build_variant_loss
from rsitr.models.describe import describe_model
from rsitr.models.local_alignment import local_similarity
from toy_data import TEST_ARCH

REPO = Path(__file__).resolve().parents[2]
KEYWORDS = ["tree", "trees", "road", "building", "storagetank", "river", "green"]
CAPTIONS = [
    "a green tree beside the road",
    "many buildings near a river",
    "a storagetank next to the building",
    "a river crosses the green field",
    "trees along a wide road",
    "a parking lot with cars",
    "the street is next to the river",
    "a large storagetank and a road",
]


def _params(tmp_path: Path, *overrides: str):
    base = ["variants.ebaker.method=ebaker", f"paths.data={tmp_path / 'data'}", f"paths.models={tmp_path / 'models'}", "seed=0"]
    return load_params(REPO / "params.yaml", [*base, *overrides])


def _model_and_loss(tmp_path: Path, *overrides: str):
    torch.manual_seed(0)
    params = _params(tmp_path, *overrides)
    model = build_model(params, "ebaker", load_weights=False)
    model.set_keywords(KEYWORDS)
    return params, model, build_variant_loss(params, "ebaker")


def _batch(model, size: int = 8) -> dict:
    g = torch.Generator().manual_seed(1)
    captions = CAPTIONS[:size]
    return {
        "images": torch.randn(size, 3, model.image_size, model.image_size, generator=g),
        "tokens": model.tokenize(captions),
        "captions": captions,
        "image_ids": torch.arange(size),
        "caption_ids": torch.arange(size) * 5,
    }


def _step(model, loss_fn, batch) -> dict[str, torch.Tensor]:
    outputs = model(batch["images"], batch["tokens"], captions=batch["captions"],
                    image_ids=batch["image_ids"], caption_ids=batch["caption_ids"])
    return loss_fn(outputs, batch)


def test_training_steps_lower_the_loss_with_every_term(tmp_path):
    # the tests' micro architecture: the same towers, losses and heads at a tenth of rsitr-tiny's cost per step
    _, model, loss_fn = _model_and_loss(tmp_path, "variants.ebaker.options.drop_epoch=0",
                                        "variants.ebaker.options.ker_layers=1", f"model.arch={TEST_ARCH}")
    batch = _batch(model, 6)
    model.train()
    # the paper-exact local logits (20 x the raw Frobenius norm over every position) are large:
    # at 2e-3 the local term diverges on this random tiny model; EBAKER itself trains at 1.5e-5
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    history: list[dict[str, float]] = []
    for epoch in range(2):
        loss_fn.on_epoch_start(epoch)
        for _ in range(4):
            terms = _step(model, loss_fn, batch)
            assert set(terms) == {"global_infonce", "local_infonce", "mlm"}
            assert all(torch.isfinite(v) and v.requires_grad for v in terms.values())
            loss = sum(terms.values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append({k: float(v.detach()) for k, v in {"loss": loss, **terms}.items()})
    first, last = history[0], history[-1]
    assert last["loss"] < 0.8 * first["loss"], history
    assert all(last[k] < first[k] for k in first), (first, last)
    assert model.clip.logit_scale.grad is None  # fixed temperature 0.05
    assert float(model.logit_scale()) == pytest.approx(20.0)
    assert len(loss_fn.bank) == 48 and "eba_eliminated" in loss_fn.epoch_summary()
    assert model.ker_head.mask_embedding.grad is not None  # the [mask] embedding learns
    assert model.clip.token_embedding.weight.shape[0] == 49408  # vocabulary untouched


def test_terms_follow_the_switches(tmp_path):
    _, model, loss_fn = _model_and_loss(tmp_path, "variants.ebaker.options.local=false",
                                        "variants.ebaker.options.ker=false")
    terms = _step(model.train(), loss_fn, _batch(model, 4))
    assert set(terms) == {"global_infonce"}
    assert model.ker_head is None and set(model.components()) == {"backbone"}


def test_forward_features_and_local_matrix(tmp_path):
    _, model, _ = _model_and_loss(tmp_path)
    batch = _batch(model, 4)
    out = model.train()(batch["images"], batch["tokens"], captions=batch["captions"])
    patches = (model.image_size // model.clip.visual.patch_size[0]) ** 2
    assert out["image_tokens"].shape == (4, patches, 128)
    assert out["text_tokens"].shape == (4, model.context_length, 128)
    assert out["text_mask"].sum(1).tolist() == [model.context_length] * 4  # paper-exact: every context position
    _, real, _ = _model_and_loss(tmp_path, "variants.ebaker.options.text_positions=real")
    mask = real.train()(batch["images"], batch["tokens"], captions=batch["captions"])["text_mask"]
    assert mask.sum(1).tolist() == [len(model.tokenizer.encode(c)) for c in batch["captions"]]
    assert out["mlm_logits"].shape == (int(out["mlm_targets"].numel()), 49408)
    keyword_ids = model.keyword_masker().mask_for(batch["captions"], batch["tokens"])
    assert torch.equal(out["mlm_targets"], batch["tokens"][keyword_ids])
    # pooled features are CLIP's own embeddings
    torch.testing.assert_close(out["image_features"], model.encode_image(batch["images"]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["text_features"], model.encode_text(batch["tokens"]), rtol=1e-4, atol=1e-5)


def test_masked_encoder_without_masks_is_the_text_encoder(tmp_path):
    _, model, _ = _model_and_loss(tmp_path)
    tokens = model.tokenize(CAPTIONS[:3])
    _, features = model.encode_text_tokens(tokens)
    unmasked = model.encode_masked_text_tokens(tokens, torch.zeros_like(tokens, dtype=torch.bool))
    torch.testing.assert_close(unmasked, features)


def test_score_is_weighted_global_plus_blockwise_local(tmp_path):
    _, model, _ = _model_and_loss(tmp_path, "variants.ebaker.options.eval_block_size=3")
    batch = _batch(model, 7)
    model.eval()
    images, texts = model.embed_images(batch["images"]), model.embed_texts(batch["tokens"])
    assert set(images) == {"global", "tokens"} and set(texts) == {"global", "tokens", "mask"}
    scores = model.score(images, texts)
    cosine = images["global"] @ texts["global"].T
    local = local_similarity(images["tokens"], texts["tokens"], texts["mask"].sum(1))
    torch.testing.assert_close(scores, 0.6 * cosine + 0.4 * local, rtol=1e-5, atol=1e-6)


def test_score_is_global_cosine_with_local_off(tmp_path):
    _, model, _ = _model_and_loss(tmp_path, "variants.ebaker.options.local=false")
    batch = _batch(model, 5)
    model.eval()
    images, texts = model.embed_images(batch["images"]), model.embed_texts(batch["tokens"])
    assert set(images) == {"global"} and set(texts) == {"global"}
    torch.testing.assert_close(model.score(images, texts), images["global"] @ texts["global"].T)


def test_builds_without_keywords_and_training_names_the_fix(tmp_path):
    params = _params(tmp_path)
    model = build_model(params, "ebaker", load_weights=False).train()
    batch = _batch(model, 2)
    with pytest.raises(DataError, match=r"rsitr keywords.*options.ker=false"):
        model(batch["images"], batch["tokens"], captions=batch["captions"])
    # the application reads the keywords step's list and hands it over
    (tmp_path / "models" / "keywords").mkdir(parents=True)
    (tmp_path / "models" / "keywords" / "keywords.txt").write_text("road\ntree\n")
    model.set_keywords(variant_keywords(params))
    out = model(batch["images"], batch["tokens"], captions=batch["captions"])
    assert out["mlm_targets"].numel() == 2  # "tree", "road"


def test_checkpoint_state_round_trip(tmp_path):
    params, model, _ = _model_and_loss(tmp_path)
    state = model.saved_state_dict()
    assert any(key.startswith("ker_head.") for key in state)
    other = build_model(params, "ebaker", load_weights=False)
    other.load_saved_state_dict(state)
    for key, value in other.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_describe_counts_backbone_and_ker_head(tmp_path):
    params, model, _ = _model_and_loss(tmp_path)
    report = describe_model(model)
    components = report["components"]
    assert set(components) == {"backbone", "ker_head"}
    clip_params = sum(p.numel() for p in model.clip.parameters())
    head_params = sum(p.numel() for p in model.ker_head.parameters())
    assert components["backbone"]["total"] == clip_params
    assert components["backbone"]["trainable"] == clip_params - 1  # fixed temperature
    assert components["ker_head"] == {"total": head_params, "trainable": head_params}
    assert report["total_params"] == clip_params + head_params
    assert report["trainable_params"] == clip_params + head_params - 1


@pytest.mark.slow
def test_describe_cli_vit_b_32(tmp_path):
    """The acceptance command: per-component counts at ViT-B-32, no weights, no keywords file."""
    result = subprocess.run(
        [sys.executable, "-m", "rsitr.cli", "describe", "--variant", "ebaker", "--set", "variants.ebaker.method=ebaker",
         "--set", "model.arch=ViT-B-32", "--set", f"paths.data={tmp_path / 'nodata'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    components = report["components"]
    assert set(components) == {"backbone", "ker_head"}
    assert components["backbone"]["total"] == 151_277_313  # open_clip ViT-B-32
    width, vocab, layers = 512, 49408, 4
    block = 4 * width + (3 * width * width + 3 * width) + (width * width + width) + 2 * (4 * width * width) + 5 * width
    cross = 4 * width + (3 * width * width + 3 * width) + (width * width + width)
    mlm = (width * width + width) + 2 * width + (width * vocab + vocab)
    assert components["ker_head"]["total"] == cross + layers * block + 2 * width + mlm + width  # + [mask] embedding
    assert report["trainable_params"] == components["backbone"]["trainable"] + components["ker_head"]["trainable"]
