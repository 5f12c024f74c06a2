"""The c2f step's coarse codes: nothing to fit for a model with its own hash codes or for simhash / sign."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsitr.app.steps.c2f import _no_fitting, code_kind, variant_coder
from rsitr.config import load_params
from rsitr.retrieval.codes import HeadCoder, ModelHashCoder, SignCoder, SimHashCoder


def _params(tmp_path: Path, *overrides: str):
    return load_params("params.yaml", [f"paths.models={tmp_path / 'models'}", *overrides])


@pytest.mark.parametrize(("codes", "own_hash", "expected"), [
    ("learned", True, "model"), ("simhash", False, "simhash"), ("sign", True, "sign"),
    ("auto", True, "model"), ("auto", False, "simhash"),
])
def test_nothing_is_fitted_and_the_record_says_why(tmp_path, codes, own_hash, expected):
    params = _params(tmp_path, f"c2f.codes={codes}")
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"weights")
    heads = tmp_path / "models" / "finetune" / "hash_heads.pt"
    heads.parent.mkdir(parents=True)
    heads.write_bytes(b"stale heads of an earlier setting")
    summary = _no_fitting(params, "finetune", checkpoint, own_hash)
    assert summary["codes"] == expected and summary["fitted"] is False
    assert not heads.exists()  # never served with codes they did not make
    assert json.loads(heads.with_suffix(".json").read_text())["codes"] == expected


def test_learned_codes_without_own_hash_are_fitted(tmp_path):
    assert _no_fitting(_params(tmp_path, "c2f.codes=learned"), "finetune", tmp_path / "best.pt", own_hash=False) is None


def test_auto_codes_are_the_models_own_else_simhash(tmp_path):
    params = _params(tmp_path)
    assert params.c2f.codes == "auto"
    assert code_kind(params, own_hash=True) == "learned" and code_kind(params, own_hash=False) == "simhash"
    assert isinstance(variant_coder(params, "finetune", tmp_path, False), SimHashCoder)


def test_the_coder_follows_c2f_codes(tmp_path):
    assert isinstance(variant_coder(_params(tmp_path, "c2f.codes=simhash"), "finetune", tmp_path, False), SimHashCoder)
    assert isinstance(variant_coder(_params(tmp_path, "c2f.codes=sign"), "finetune", tmp_path, False), SignCoder)
    assert isinstance(variant_coder(_params(tmp_path), "cfitr", tmp_path, True), ModelHashCoder)
    assert HeadCoder  # learned without own hash loads the fitted heads (covered by the c2f step tests)


def test_an_unknown_code_kind_is_one_clear_error(tmp_path):
    from rsitr.errors import ConfigError

    with pytest.raises(ConfigError, match=r"c2f\.codes: unknown code kind .pca.; valid code kinds: auto, learned, sign, simhash"):
        _params(tmp_path, "c2f.codes=pca")


def test_the_c2f_figures_logged_to_mlflow_have_plain_names():
    from rsitr.app.steps.c2f import _flat_metrics

    recalls = {"i2t_R1": 1.0, "mR": 2.0}
    payload = {"fine_share": 0.11, "shortlist_recall_i2t": 99.0, "shortlist_recall_t2i": 95.0, "bits": 128,
               "coarse_metrics": recalls, "dual_metrics": recalls, "exhaustive_metrics": None,
               "simhash": {"coarse_metrics": recalls, "shortlist_recall_i2t": 98.0, "shortlist_recall_t2i": 90.0},
               "exhaustive_ssm": {"metrics": recalls, "all_pairs_seconds_estimate": 12.5, "sampled": True}}
    flat = _flat_metrics(payload)
    assert flat["simhash.coarse.mR"] == 2.0 and flat["dual.mR"] == 2.0 and flat["exhaustive_ssm_sampled.mR"] == 2.0
    assert flat["shortlist_recall_t2i"] == 95.0 and flat["exhaustive_ssm_sampled.all_pairs_seconds_estimate"] == 12.5
    assert not any("@" in name for name in flat) and "exhaustive.mR" not in flat


def _manifest(tmp_path: Path) -> None:
    import pandas as pd

    rows = [{"dataset": name, "split": "test", "language": language}
            for name in ("synth_rsicd", "synth_sydney") for language in ("en", "ar")]
    path = tmp_path / "data" / "processed" / "manifest.parquet"
    path.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(path)


def test_c2f_evaluates_the_languages_of_c2f_languages(tmp_path):
    from rsitr.app.steps.c2f import c2f_targets

    _manifest(tmp_path)
    data = f"paths.data={tmp_path / 'data'}"
    assert c2f_targets(_params(tmp_path, data), "finetune") == [("synth_rsicd", "en"), ("synth_sydney", "en")]
    every = c2f_targets(_params(tmp_path, data, "c2f.languages=[]"), "finetune")
    assert every == [("synth_rsicd", "en"), ("synth_rsicd", "ar"), ("synth_sydney", "en"), ("synth_sydney", "ar")]


def test_c2f_languages_outside_the_variants_are_one_clear_error(tmp_path):
    from rsitr.app.steps.c2f import c2f_targets
    from rsitr.errors import ConfigError

    _manifest(tmp_path)
    params = _params(tmp_path, f"paths.data={tmp_path / 'data'}", "c2f.languages=[ar]")
    with pytest.raises(ConfigError, match=r"variant cfitr: c2f.languages \['ar'\] selects none of its evaluation "
                                          r"languages \['en'\]; set c2f.languages=\[\] for all of them"):
        c2f_targets(params, "cfitr")
