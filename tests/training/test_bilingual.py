"""Bilingual captions end to end: language filtering, Arabic normalisation, truncation report,
and a run that starts from another run's checkpoint (English first, then Arabic)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from toy_data import toy_params_dict
from rsitr.config import params_from_dict
from rsitr.models import build_model
from rsitr.models.trained import load_checkpoint
from rsitr.data.manifest import select_split
from rsitr.training.data import token_length_report
from rsitr.app.steps.training import fit

ARABIC_WITH_MARKS = "حَقْلٌ أَحْمَرُ بسيــط"  # tashkeel, hamza-on-alef and tatweel


def _bilingual_manifest() -> pd.DataFrame:
    rows = []
    for i in range(4):
        for language, caption in [("en", f"a red field {i}"), ("ar", f"{ARABIC_WITH_MARKS} {i}")]:
            rows.append(dict(dataset="toy", image_id=f"toy/{i}", image_key=f"{i}", image_path=f"/x/{i}.png",
                             caption=caption, language=language, official_split="test", caption_index=0,
                             split="test", cluster=i))
    return pd.DataFrame(rows)


def test_select_split_filters_languages_and_normalises_arabic():
    manifest = _bilingual_manifest()
    arabic = select_split(manifest, "test", languages=["ar"])
    assert arabic.num_images == 4 and set(arabic.caption_languages) == {"ar"}
    assert arabic.captions[0] == "حقل احمر بسيط 0"  # marks and tatweel gone, alef unified
    raw = select_split(manifest, "test", languages=["ar"], normalize_arabic=False)
    assert raw.captions[0].startswith(ARABIC_WITH_MARKS)
    both = select_split(manifest, "test", languages=["en", "ar"])
    assert len(both.captions) == 8 and both.num_images == 4
    # every caption still points at its own image, whatever the language
    assert all(both.image_ids[i].endswith(c.split()[-1]) for i, c in zip(both.caption_image, both.captions))


def test_token_length_report_flags_truncated_arabic(repo_root):
    from rsitr.config import load_params

    model = build_model(load_params(repo_root / "params.yaml"), "zeroshot")
    split = select_split(_bilingual_manifest(), "test", languages=["en", "ar"])
    report = token_length_report(model.tokenizer, split, context_length=8)
    assert report["en"]["truncated_share"] == 0.0
    assert report["ar"]["truncated_share"] == 1.0  # Arabic splits into many byte-level pieces
    assert report["ar"]["mean_tokens"] > report["en"]["mean_tokens"]
    assert report["ar"]["distinct_token_ratio"] > 0.2  # not collapsed into a few unknown ids
    full = token_length_report(model.tokenizer, split, context_length=model.context_length)
    assert full["ar"]["truncated_share"] == 0.0


def test_a_variant_whose_parent_is_not_trained_names_the_fix(toy_benchmark, tmp_path):
    from rsitr.errors import ModelError

    raw = toy_params_dict(toy_benchmark, epochs=1)
    raw["paths"]["models"] = str(tmp_path / "models")
    raw["variants"]["arabic"] = {"method": "finetune", "train": {"init_from_variant": "finetune"}}
    with pytest.raises(ModelError, match=r"not found; train the variant first \(`rsitr train --variant finetune`\)"):
        fit(params_from_dict(raw), "arabic", progress=False)


def test_training_can_start_from_another_variants_checkpoint(small_toy_benchmark, tmp_path):
    """The thesis regime: English first (finetune), then Arabic from its checkpoint (init_from_variant)."""
    from rsitr.app.core.fingerprint import train_fingerprint
    from rsitr.app.core.paths import ProjectPaths
    from rsitr.app.steps.training import run_train, with_parent_checkpoint

    raw = toy_params_dict(small_toy_benchmark, epochs=1)
    raw["paths"]["models"] = str(tmp_path / "models")
    summary = run_train(params_from_dict(raw), "finetune", track=False, progress=False)  # trains and publishes
    published = str(ProjectPaths.of(params_from_dict(raw)).best_checkpoint("finetune"))
    raw["variants"]["second"] = {"method": "finetune", "train": {"init_from_variant": "finetune", "lr": 1e-12,
                                                               "warmup_share": 0.99}}
    params = params_from_dict(raw)
    assert with_parent_checkpoint(params, "second").variant("second").train.init_from == published
    before = train_fingerprint(params, "second")
    raw["variants"]["finetune"]["train"] = {"lr": 2e-3}  # the parent changes: the child retrains too
    assert train_fingerprint(params_from_dict(raw), "second") != before
    second = fit(params, "second", progress=False)
    start = load_checkpoint(published)["model"]
    end = load_checkpoint(second.checkpoint)["model"]
    fresh = build_model(params, "zeroshot").state_dict()  # the parent trained: its weights are not the initial ones
    assert not all(torch.equal(fresh[k], start[k]) for k in start if k in fresh)
    # with a vanishing learning rate the second run stays at the first run's weights
    assert all(torch.allclose(start[k], end[k], atol=1e-6) for k in start)
    assert second.history[0]["val_mR"] == pytest.approx(summary["final"]["val_mR"], abs=1e-6)
