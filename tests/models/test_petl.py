"""PE-RSITR (petl): parameter counts, identity at init, frozen backbone, checkpoints, training."""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch

from rsitr.config import load_params
from rsitr.errors import ConfigError, ModelError
from rsitr.losses.hmmc import HmmcLoss
from rsitr.models import build_model
from rsitr.losses import build_variant_loss
from rsitr.models.describe import describe_model
from rsitr.models.factory import register_model_configs
from rsitr.models.mrs_adapter import AdaptedBlock, MrsAdapter
from rsitr.models.petl import PetlModel
from rsitr.models.trained import load_trained_model
from rsitr.training.checkpoint import save_checkpoint
from rsitr.training.trainer import build_optimizer
from toy_data import TEST_ARCH

PETL = "variants.petl.method=petl"
CAPTIONS = [
    "a river crosses the green forest .",
    "two planes park near the terminal .",
    "bare land with a few trees .",
    "many buildings around a square .",
    "a bridge over the river .",
    "a stadium next to a parking lot .",
]


def _params(repo_root, *overrides: str):
    return load_params(repo_root / "params.yaml", [PETL, *overrides])


@pytest.fixture(scope="module")
def params(repo_root):
    return _params(repo_root)


@pytest.fixture()
def petl(params) -> PetlModel:
    torch.manual_seed(0)
    return build_model(params, "petl")


def _batch(model, size: int = 6, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "images": torch.randn(size, 3, model.image_size, model.image_size, generator=generator),
        "tokens": model.tokenize(CAPTIONS[:size]),
        "image_ids": torch.arange(size),
        "caption_ids": torch.arange(size),
    }


pytestmark = pytest.mark.usefixtures("single_torch_thread")


# ----------------------------------------------------------------------------- structure
def test_vit_b_32_parameter_counts(repo_root) -> None:
    model = build_model(_params(repo_root, "model.arch=ViT-B-32"), "petl", load_weights=False)
    description = describe_model(model)
    assert description["trainable_params"] == 161_088
    assert description["total_params"] == 151_438_401  # stock ViT-B-32 151,277,313 + adapter
    assert description["components"]["adapter"] == {"total": 161_088, "trainable": 161_088}
    sizes = {name: p.numel() for name, p in model.adapter.named_parameters()}
    by_layer = {}
    for name, count in sizes.items():
        layer = name.rsplit(".", 1)[0]
        by_layer[layer] = by_layer.get(layer, 0) + count
    assert by_layer == {
        "down.image": 49_216,  # 768 -> 64
        "down.text": 32_832,  # 512 -> 64
        "up.image": 45_760,  # 64 -> 704
        "up.text": 29_120,  # 64 -> 448
        "up_shared": 4_160,  # 64 -> 64, both towers
    }
    assert [p for p in model.clip.parameters() if p.requires_grad] == []  # logit_scale included
    blocks = [*model.clip.visual.transformer.resblocks, *model.clip.transformer.resblocks]
    assert len(blocks) == 24 and all(isinstance(b, AdaptedBlock) and b.adapter is model.adapter for b in blocks)


def test_options_unshared_and_block_selection(repo_root) -> None:
    params = _params(repo_root, "variants.petl.options.share_across_modalities=false",
                     "variants.petl.options.blocks=[0,-1]")
    model = build_model(params, "petl")
    assert isinstance(model.adapter.up_shared, torch.nn.ModuleDict)
    assert set(model.adapter.up_shared) == {"image", "text"}
    assert model.adapted_blocks == {"image": [0, 2], "text": [0, 2]}  # rsitr-tiny: 3 blocks a tower
    kinds = [isinstance(b, AdaptedBlock) for b in model.clip.visual.transformer.resblocks]
    assert kinds == [True, False, True]
    with pytest.raises(ConfigError, match="out of range"):
        build_model(_params(repo_root, "variants.petl.options.blocks=[3]"), "petl")


def test_adapter_initialisation() -> None:
    adapter = MrsAdapter({"image": 32, "text": 24}, bottleneck=8, shared_dims=4, dropout=0.0)
    x = torch.randn(2, 5, 32)
    assert torch.equal(adapter(x, "image"), torch.zeros(2, 5, 32))  # fresh adapter = identity block
    for name, p in adapter.named_parameters():
        if name.startswith("down.") and name.endswith("weight"):
            assert p.abs().sum() > 0
            bound = 1.0 / p.shape[1] ** 0.5  # kaiming-uniform(a=sqrt 5) bound
            assert p.abs().max() <= bound
        else:
            assert not p.any(), name
    # shared channels are the last ones: a change of the shared projection moves only them
    with torch.no_grad():
        adapter.up_shared.bias.fill_(1.0)
    out = adapter(torch.randn(2, 5, 24), "text")
    assert not out[..., :20].any() and torch.equal(out[..., 20:], torch.ones(2, 5, 4))


# ----------------------------------------------------------------------------- identity at init
def test_fresh_petl_embeds_like_the_base_model(params, petl) -> None:
    base = build_model(params, "zeroshot")
    base.clip.load_state_dict(petl.clip.state_dict(), strict=True)  # same random backbone
    batch = _batch(petl)
    with torch.no_grad():
        expected_images = base.encode_image(batch["images"])
        expected_texts = base.encode_text(batch["tokens"])
        outputs = petl(batch["images"], batch["tokens"])
        for images in (petl.encode_image(batch["images"]), outputs["image_features"], outputs["image_features_aug"]):
            torch.testing.assert_close(images, expected_images, atol=1e-6, rtol=0)
        for texts in (petl.encode_text(batch["tokens"]), outputs["text_features"], outputs["text_features_aug"]):
            torch.testing.assert_close(texts, expected_texts, atol=1e-6, rtol=0)
    assert set(outputs) == {"image_features", "text_features", "image_features_aug", "text_features_aug",
                            "logit_scale"}
    torch.testing.assert_close(outputs["image_features"].norm(dim=-1), torch.ones(6))


def test_training_mode_makes_a_token_dropout_view(petl) -> None:
    batch = _batch(petl)
    with torch.no_grad():
        stock_images = petl.encode_image(batch["images"])
        torch.nn.init.normal_(petl.adapter.up["image"].weight, std=0.1)
        eval_images = petl.encode_image(batch["images"])  # open_clip's own path, through the wrapped blocks
        assert not torch.allclose(eval_images, stock_images, atol=1e-4)  # the adapter is in the path
        torch.testing.assert_close(petl.encode_image_features(batch["images"]), eval_images, atol=1e-6, rtol=0)
        petl.train()
        outputs = petl(batch["images"], batch["tokens"])
    assert not torch.allclose(outputs["image_features"], outputs["image_features_aug"])
    assert not torch.allclose(outputs["text_features"], outputs["text_features_aug"])


def test_switched_off_intra_term_skips_its_second_pass(repo_root) -> None:
    model = build_model(_params(repo_root, "variants.petl.options.weights.intra_image=0"), "petl").train()
    batch = _batch(model)
    outputs = model(batch["images"], batch["tokens"])
    assert outputs["image_features_aug"] is outputs["image_features"]
    assert outputs["text_features_aug"] is not outputs["text_features"]


def test_deepcopy_keeps_one_shared_adapter(petl) -> None:
    # (the whole PetlModel holds the params' mappingproxy, which deepcopy refuses; copy its modules)
    clip, adapter = copy.deepcopy(torch.nn.ModuleList([petl.clip, petl.adapter]))
    blocks = [*clip.visual.transformer.resblocks, *clip.transformer.resblocks]
    assert all(block.adapter is adapter for block in blocks)
    assert adapter is not petl.adapter


# ----------------------------------------------------------------------------- frozen backbone
def test_one_step_changes_only_the_adapter(params, petl) -> None:
    variant = params.variant("petl")
    loss_fn = build_variant_loss(params, variant)
    assert isinstance(loss_fn, HmmcLoss)
    optimizer = build_optimizer(petl, variant.train)
    backbone = {k: v.clone() for k, v in petl.clip.state_dict().items()}
    adapter = {k: v.clone() for k, v in petl.adapter.state_dict().items()}
    petl.train()
    batch = _batch(petl)
    terms = loss_fn(petl(batch["images"], batch["tokens"], image_ids=batch["image_ids"]), batch)
    sum(terms.values()).backward()
    assert all(p.grad is None for p in petl.clip.parameters())
    optimizer.step()
    for key, value in petl.clip.state_dict().items():
        assert torch.equal(value, backbone[key]), f"backbone tensor {key} changed"
    changed = {k for k, v in petl.adapter.state_dict().items() if not torch.equal(v, adapter[k])}
    # up projections (and their biases) get gradients first; down ones only once up is non-zero
    assert {"up.image.weight", "up.text.weight", "up_shared.weight", "up.image.bias"} <= changed


# ----------------------------------------------------------------------------- weights
def _stock_file(path, seed: int):
    register_model_configs()
    torch.manual_seed(seed)
    stock = open_clip.create_model("rsitr-tiny", pretrained=None)
    torch.save(stock.state_dict(), path)
    return stock, path


def _randomise_adapter(model: PetlModel) -> None:
    with torch.no_grad():  # a trained-looking adapter
        for p in model.adapter.parameters():
            p.normal_(std=0.05)


def _assert_same_embeddings(a: PetlModel, b: PetlModel) -> None:
    batch = _batch(a)
    with torch.no_grad():
        torch.testing.assert_close(a.eval().encode_image(batch["images"]), b.eval().encode_image(batch["images"]))
        torch.testing.assert_close(a.encode_text(batch["tokens"]), b.encode_text(batch["tokens"]))


def test_stock_state_dict_round_trip(tmp_path, repo_root) -> None:
    stock, weights = _stock_file(tmp_path / "stock.pt", seed=1)
    params = _params(repo_root, f"model.pretrained={weights}")  # a pretrained base (RemoteCLIP-like file)
    petl = build_model(params, "petl")
    assert set(petl.clip.state_dict()) == set(stock.state_dict())  # keys unchanged by the wrapping
    petl.clip.load_state_dict(stock.state_dict(), strict=True)

    saved = petl.saved_state_dict()
    adapter_keys = {f"adapter.{k}" for k in petl.adapter.state_dict()}
    assert set(saved) == adapter_keys | {"base_fingerprint"}  # the adapter alone, plus the base check
    assert sum(saved[k].numel() for k in adapter_keys) == sum(p.numel() for p in petl.adapter.parameters())

    _randomise_adapter(petl)
    path = save_checkpoint(tmp_path / "best.pt", model=petl, variant=params.variant("petl"), params=params, epoch=1)
    assert path.stat().st_size < 200_000  # vs ~30 MB for the full tiny model
    _assert_same_embeddings(load_trained_model(params, "petl", path), petl)

    _, other = _stock_file(tmp_path / "other.pt", seed=2)  # the adapter on another base: refused
    with pytest.raises(ModelError, match="different base weights"):
        load_trained_model(_params(repo_root, f"model.pretrained={other}"), "petl", path)
    with pytest.raises(ModelError, match="another method"):
        petl.load_saved_state_dict({f"clip.{k}": v for k, v in stock.state_dict().items()})


def test_random_base_is_rebuilt_from_its_seed_not_saved(tmp_path, params, petl) -> None:
    # model.pretrained is empty: the base is the seeded random initialisation, so the
    # checkpoint holds the adapter and the base's fingerprint, not a copy of the backbone
    saved = petl.saved_state_dict()
    assert not any(k.startswith("clip.") for k in saved)
    assert sum(v.numel() for k, v in saved.items() if k.startswith("adapter.")) == sum(
        p.numel() for p in petl.adapter.parameters())
    _randomise_adapter(petl)
    path = save_checkpoint(tmp_path / "best.pt", model=petl, variant=params.variant("petl"), params=params, epoch=1)
    torch.manual_seed(123)
    _assert_same_embeddings(load_trained_model(params, "petl", path), petl)


def test_gradient_checkpointing_path(petl) -> None:
    petl.clip.set_grad_checkpointing(True)
    petl.train()
    batch = _batch(petl)
    with torch.no_grad():
        torch.nn.init.normal_(petl.adapter.up["text"].weight, std=0.1)
    terms = HmmcLoss()(petl(batch["images"], batch["tokens"]), batch)
    sum(terms.values()).backward()
    assert petl.adapter.down["text"].weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- learning
def test_short_training_lowers_the_hmmc_loss(repo_root) -> None:
    # the tests' micro architecture (the adapter's bottleneck fits its 32-wide towers): a tenth of the cost per step
    params = _params(repo_root, f"model.arch={TEST_ARCH}", "variants.petl.options.shared_dims=16")
    torch.manual_seed(0)
    petl = build_model(params, "petl")
    loss_fn = HmmcLoss(params.variant("petl"))
    optimizer = torch.optim.Adam(petl.adapter.parameters(), lr=3e-3)
    batch = _batch(petl)

    def eval_terms() -> dict[str, float]:
        petl.eval()
        with torch.no_grad():
            return {k: float(v) for k, v in loss_fn(petl(batch["images"], batch["tokens"]), batch).items()}

    before = eval_terms()
    torch.manual_seed(0)
    for _ in range(30):
        petl.train()
        terms = loss_fn(petl(batch["images"], batch["tokens"]), batch)
        optimizer.zero_grad()
        sum(terms.values()).backward()
        optimizer.step()
    after = eval_terms()
    assert sum(after.values()) < 0.95 * sum(before.values()), (before, after)
    assert after["hmmc_cross"] < before["hmmc_cross"], (before, after)
