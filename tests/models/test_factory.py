"""Model building: architectures, pretrained sources (files, ITRA prefixes, offline tags), counts."""

from __future__ import annotations

import time

import pytest
import torch

from rsitr.config import load_params
from rsitr.errors import ModelError
from rsitr.models import build_model
from rsitr.models.checkpoints import convert_itra_state_dict
from rsitr.models.describe import describe_model


@pytest.fixture(scope="module")
def params(repo_root):
    return load_params(repo_root / "params.yaml")


def _embeddings(model) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    images = torch.randn(3, 3, model.image_size, model.image_size)
    tokens = model.tokenize(["a river crosses the forest .", "two planes near the terminal .", "bare land ."])
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokens)


def test_vit_b_32_parameter_count(repo_root):
    params = load_params(repo_root / "params.yaml", ["model.arch=ViT-B-32"])
    description = describe_model(build_model(params, "finetune", load_weights=False))
    assert description["total_params"] == 151_277_313
    assert description["trainable_params"] == 151_277_313
    zeroshot = describe_model(build_model(params, "zeroshot", load_weights=False))
    assert zeroshot["trainable_params"] == 0


def test_random_checkpoint_file_loads_through_pretrained(tmp_path, repo_root, params):
    source = build_model(params, "zeroshot")
    path = tmp_path / "random_clip.pt"
    torch.save(source.clip.state_dict(), path)
    loaded = build_model(load_params(repo_root / "params.yaml", [f"model.pretrained={path}"]), "zeroshot")
    for a, b in zip(_embeddings(source), _embeddings(loaded)):
        assert torch.equal(a, b)
    other_seed = build_model(load_params(repo_root / "params.yaml", ["seed=1"]), "zeroshot")
    assert not torch.equal(_embeddings(source)[0], _embeddings(other_seed)[0])  # the file really was loaded


def test_random_initialisation_is_named_by_the_seed(repo_root, params):
    """No weights + seed names one base model exactly (adapter-only checkpoints rely on it)."""
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = build_model(params, "zeroshot")
    assert torch.equal(torch.rand(1), before)  # the global RNG is left alone
    second = build_model(params, "zeroshot")
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_itra_prefixed_state_dict_loads_after_conversion(tmp_path, repo_root, params):
    source = build_model(params, "zeroshot")
    itra = {}
    for key, value in source.clip.state_dict().items():
        itra[("image_backbone." + key[len("visual."):]) if key.startswith("visual.") else "text_backbone." + key] = value
    assert convert_itra_state_dict(itra).keys() == source.clip.state_dict().keys()
    path = tmp_path / "georsclip_like.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in itra.items()}}, path)
    loaded = build_model(load_params(repo_root / "params.yaml", [f"model.pretrained={path}"]), "zeroshot")
    for a, b in zip(_embeddings(source), _embeddings(loaded)):
        assert torch.equal(a, b)


def test_mismatched_checkpoint_is_a_clear_error(tmp_path, repo_root):
    path = tmp_path / "wrong.pt"
    torch.save({"visual.conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(ModelError, match="does not fit architecture"):
        build_model(load_params(repo_root / "params.yaml", [f"model.pretrained={path}"]), "zeroshot")
    with pytest.raises(ModelError, match="not found"):
        build_model(load_params(repo_root / "params.yaml", ["model.pretrained=/nope/model.pt"]), "zeroshot")


def test_unknown_architecture_lists_valid_ones(repo_root):
    with pytest.raises(ModelError, match="unknown architecture 'ViT-Q-99'.*rsitr-tiny"):
        build_model(load_params(repo_root / "params.yaml", ["model.arch=ViT-Q-99"]), "zeroshot")


def test_offline_tag_fails_fast_with_instructions(repo_root, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = load_params(repo_root / "params.yaml",
                         ["model.arch=ViT-B-32", "model.pretrained=openai", f"model.cache_dir={tmp_path}"])
    start = time.perf_counter()
    with pytest.raises(ModelError, match="not available offline.*model.pretrained=/path/to"):
        build_model(params, "zeroshot")
    assert time.perf_counter() - start < 10
