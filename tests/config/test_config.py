"""params.yaml loads into typed frozen dataclasses and rejects bad values with useful messages."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from rsitr.config import METHODS, load_params, params_from_dict, to_dict
from rsitr.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_load_and_are_frozen():
    params = load_params(REPO / "params.yaml")
    assert params.model.arch == "rsitr-tiny"
    assert params.variant("finetune").method == "finetune"
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.train.epochs = 3  # type: ignore[misc]


def test_overrides_are_typed_and_reach_variants():
    params = load_params(REPO / "params.yaml", ["train.epochs=2", "train.lr=0.001", "model.arch=ViT-B-32"])
    assert params.train.epochs == 2 and isinstance(params.train.lr, float)
    assert params.variant("finetune").train.epochs == 2  # global train values flow into variants
    assert params.model.arch == "ViT-B-32"


def test_variant_train_overrides_merge_onto_global_train():
    raw = _raw()
    raw["variants"]["finetune"]["train"] = {"lr": 1e-5, "augment": {"rot90": False}}
    params = params_from_dict(raw)
    variant = params.variant("finetune")
    assert variant.train.lr == 1e-5
    assert variant.train.augment.rot90 is False and variant.train.augment.hflip is True
    assert variant.train.epochs == params.train.epochs


def test_unknown_key_names_key_and_valid_keys():
    with pytest.raises(ConfigError) as err:
        load_params(REPO / "params.yaml", ["train.epoch=3"])
    message = str(err.value)
    assert "train.epoch" in message and "epochs" in message and "batch_size" in message


def test_unknown_top_level_section():
    raw = _raw()
    raw["trian"] = {}
    with pytest.raises(ConfigError, match="trian.*valid top-level keys"):
        params_from_dict(raw)


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"train\.epochs: expected an integer"):
        load_params(REPO / "params.yaml", ["train.epochs=three"])
    with pytest.raises(ConfigError, match=r"train\.amp: expected true or false"):
        load_params(REPO / "params.yaml", ["train.amp=1"])


def test_unknown_method_and_variant_list_valid_choices():
    raw = _raw()
    raw["variants"]["mine"] = {"method": "fancy"}
    with pytest.raises(ConfigError, match="unknown method 'fancy'.*" + ", ".join(sorted(METHODS))):
        params_from_dict(raw)
    params = load_params(REPO / "params.yaml")
    with pytest.raises(ConfigError, match="unknown variant 'nope'; valid variants: .*finetune"):
        params.variant("nope")


def test_literal_choices_listed():
    with pytest.raises(ConfigError, match="valid choices: adam, adamw, sgd"):
        load_params(REPO / "params.yaml", ["train.optimizer=lion"])


def test_method_options_are_validated_per_method():
    raw = _raw()
    raw["variants"]["finetune"]["options"] = {"bottleneck": 64}
    with pytest.raises(ConfigError, match="variants.finetune.options.*bottleneck.*init_temperature"):
        params_from_dict(raw)


def test_unknown_dataset_format_and_test_set():
    raw = _raw()
    raw["datasets"][0]["format"] = "coco"
    with pytest.raises(ConfigError, match="unknown dataset format 'coco'.*csv, karpathy, nwpu, precomp"):
        params_from_dict(raw)
    with pytest.raises(ConfigError, match="eval.test_sets.*unknown dataset 'rsicd'"):
        load_params(REPO / "params.yaml", ["eval.test_sets=[rsicd]"])


def test_round_trip_through_plain_dict():
    params = load_params(REPO / "params.yaml")
    tree = to_dict(params)
    assert tree["variants"]["finetune"]["train"]["epochs"] == params.train.epochs
    yaml.safe_dump(tree)  # plain, serialisable types only


@pytest.mark.parametrize("entry, message", [
    ({"init_from_variant": "nosuch"}, "init_from_variant: unknown variant 'nosuch'"),
    ({"init_from_variant": "zeroshot"}, "does not train"),
    ({"init_from_variant": "child"}, "is a cycle"),
    ({"init_from_variant": "finetune", "init_from": "x.pt"}, "either init_from"),
])
def test_init_from_variant_is_checked(entry, message):
    raw = _raw()
    raw["variants"]["child"] = {"method": "finetune", "train": entry}
    with pytest.raises(ConfigError, match=message):
        params_from_dict(raw)


def test_bilingual_regimes_start_from_the_english_model():
    params = load_params(REPO / "params.yaml")
    for name in ("finetune_ar", "bilingual"):
        assert params.variant(name).train.init_from_variant == "finetune"


def test_option_defaults_are_the_papers():
    from rsitr.config import EbakerOptions, TrainParams
    from rsitr.config import CoarseToFineParams

    ebaker = EbakerOptions()
    assert (ebaker.text_positions, ebaker.local_normalize, ebaker.direction_reduction) == ("all", False, "sum")
    assert (ebaker.drop_epoch, ebaker.scope, ebaker.mlm_weight, ebaker.temperature) == (4, "bank", 0.5, 0.05)
    assert CoarseToFineParams().regulariser_reduction == "sum"
    assert (TrainParams().step_epochs, TrainParams().gamma) == (20, 0.7)
