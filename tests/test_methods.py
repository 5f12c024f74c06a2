"""A method is declared once (``rsitr.config.methods.MethodSpec``): adding one is its own files and
one registration; every registry agrees; the application and the config never name a method."""

from __future__ import annotations

import ast
import importlib
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from toy_data import toy_params_dict
from rsitr.config import METHODS, method_spec, params_from_dict, unregister_method
from rsitr.losses import TrainerLoss, build_variant_loss
from rsitr.models import build_model
from rsitr.models.retrieval_model import RetrievalModel
from rsitr.training.trainer import TrainJob, train_variant

SRC = Path(__file__).resolve().parents[1] / "src" / "rsitr"
REPO = SRC.parents[1]

TOY_FILES = {
    "toy_method/__init__.py": "",
    "toy_method/options.py": '''
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class ToyOptions:
            scale: float = 10.0
        ''',
    "toy_method/model.py": '''
        from rsitr.models.retrieval_model import RetrievalModel

        class ToyModel(RetrievalModel):
            """CLIP with a fixed logit scale taken from the toy options."""

            def forward(self, images, tokens, **batch):
                out = super().forward(images, tokens)
                out["logit_scale"] = out["logit_scale"].detach() * 0 + self.variant.options.scale
                return out
        ''',
    "toy_method/loss.py": '''
        import torch
        import torch.nn.functional as F
        from rsitr.losses import TrainerLoss

        class ToyLoss(TrainerLoss):
            def __init__(self, variant=None):
                super().__init__()
                self.epochs_started = []

            def forward(self, outputs, batch):
                logits = outputs["logit_scale"] * outputs["image_features"] @ outputs["text_features"].T
                target = torch.arange(logits.shape[0])
                return {"toy_i2t": F.cross_entropy(logits, target), "toy_t2i": F.cross_entropy(logits.T, target)}

            def on_epoch_start(self, epoch):
                self.epochs_started.append(epoch)
        ''',
    "toy_method/register.py": '''
        from rsitr.config import MethodSpec, register_method
        from toy_method.loss import ToyLoss
        from toy_method.model import ToyModel
        from toy_method.options import ToyOptions

        SPEC = register_method(MethodSpec(name="toy", options=ToyOptions, model=ToyModel, loss=ToyLoss,
                                          description="a toy method written by a test"))
        ''',
}


@pytest.fixture
def toy_method(tmp_path, monkeypatch):
    for name, text in TOY_FILES.items():
        path = tmp_path / "plugin" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path / "plugin"))
    yield importlib.import_module("toy_method.register").SPEC
    unregister_method("toy")
    for module in [m for m in sys.modules if m.split(".")[0] == "toy_method"]:
        del sys.modules[module]


def test_a_new_method_is_its_own_files_and_one_registration(toy_method, small_toy_benchmark, tmp_path):
    raw = toy_params_dict(small_toy_benchmark, epochs=1)
    raw["paths"]["models"] = str(tmp_path / "models")
    raw["variants"]["toy_fast"] = {"method": "toy", "options": {"scale": 20.0}}
    params = params_from_dict(raw)
    variant = params.variant("toy_fast")
    assert variant.options.scale == 20.0 and variant.trains
    model = build_model(params, "toy_fast")
    assert type(model).__name__ == "ToyModel"
    assert type(build_variant_loss(params, "toy_fast")).__name__ == "ToyLoss"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    manifest = pd.read_parquet(small_toy_benchmark / "processed" / "manifest.parquet")
    result = train_variant(params, "toy_fast", TrainJob(out_dir=tmp_path / "out", manifest=manifest, progress=False))
    assert result.epochs == 1 and Path(result.checkpoint).is_file()
    assert {"epoch_toy_i2t", "epoch_toy_t2i"} <= set(result.history[0])
    trained = torch.load(result.checkpoint, weights_only=False)["model"]
    assert any(not torch.equal(before[k], trained[k]) for k in before if k in trained)


def test_a_wrong_option_of_the_new_method_names_the_key(toy_method):
    raw = toy_params_dict(Path("/unused"))
    raw["variants"]["toy_bad"] = {"method": "toy", "options": {"scael": 1.0}}
    with pytest.raises(Exception, match="variants.toy_bad.options.scael"):
        params_from_dict(raw)


def test_every_registered_method_has_options_a_model_and_a_trainer_loss():
    assert {"zeroshot", "finetune", "petl", "ebaker"} <= set(METHODS)
    for name, spec in METHODS.items():
        assert spec.name == name and method_spec(name) is spec
        assert issubclass(spec.model, RetrievalModel), name
        assert spec.loss is None or issubclass(spec.loss, TrainerLoss), name
        spec.options()  # every option has a default
    params_yaml = yaml.safe_load((REPO / "params.yaml").read_text())
    assert {v["method"] for v in params_yaml["variants"].values()} <= set(METHODS)


def _method_name_strings(path: Path, names: set[str]) -> list[str]:
    """String constants equal to a method name, outside docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words = {node.value} | set(node.value.replace("(", " ").replace(")", " ").split())
            hits = words & names
            if hits:
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {sorted(hits)}")
    return found


def test_the_application_and_the_config_never_name_a_method():
    names = set(METHODS)
    offenders = [hit for package in ("app", "config") for path in sorted((SRC / package).rglob("*.py"))
                 for hit in _method_name_strings(path, names)]
    assert offenders == []


def test_the_scan_catches_a_method_name(tmp_path):
    path = SRC / "app" / "_probe_tmp.py"
    try:
        path.write_text('"""a docstring naming ebaker is fine"""\nif method == "ebaker":\n    pass\n')
        assert _method_name_strings(path, set(METHODS)) == ["app/_probe_tmp.py:2 ['ebaker']"]
    finally:
        path.unlink()
