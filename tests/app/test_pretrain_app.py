"""``rsitr pretrain``: published foundation, MLflow run with the corpus version, rsitr-foundation, and every
method starting from the foundation through ``model.pretrained``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import open_clip
import pytest
import torch

from rsitr.app.core.fingerprint import md5_file
from rsitr.app.core.paths import ProjectPaths
from rsitr.app.steps.pretrain import run_pretrain
from rsitr.config import load_params
from rsitr.data.synth_corpus import CorpusOptions, generate_corpus
from rsitr.models import build_model
from rsitr.models.factory import register_model_configs
from rsitr.tracking.mlflow_tracking import ensure_reachable
from toy_data import TEST_ARCH, migrated_tracking_db

REPO = Path(__file__).resolve().parents[2]
# the tests' micro architecture (PE-RSITR's adapter bottleneck narrowed to fit its 32-wide towers)
MICRO = [f"model.arch={TEST_ARCH}", "variants.petl.options.shared_dims=16"]


def _overrides(root: Path, corpus: Path) -> list[str]:
    return [*(f"paths.{k}={root / k}" for k in ("data", "models", "metrics", "reports")),
            f"tracking.uri=sqlite:///{root / 'mlflow.db'}", f"pretrain.corpus={corpus}", "pretrain.batch_size=8",
            "pretrain.device=cpu", "pretrain.log_every=1", "pretrain.checkpoint_every=1", "pretrain.warmup_steps=1",
            "pretrain.lr=0.002", *MICRO]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pretrain")
    generate_corpus(root / "corpus", 16, seed=4, options=CorpusOptions(image_size=(32, 48), shard_size=8),
                    progress=False)
    params = load_params(REPO / "params.yaml", _overrides(root, root / "corpus" / "corpus.csv"))
    from mlflow.tracking import MlflowClient  # artifacts under root, not the current directory

    ensure_reachable(migrated_tracking_db(root / "mlflow.db"))
    MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}").create_experiment(
        params.tracking.experiment, artifact_location=(root / "mlruns").as_uri())
    summary = run_pretrain(params, progress=False)
    return {"root": root, "params": params, "summary": summary}


def test_pretrain_publishes_an_open_clip_foundation_and_its_records(project: dict[str, Any]) -> None:
    paths, summary = ProjectPaths.of(project["params"]), project["summary"]
    assert paths.foundation_checkpoint.is_file() and summary["checkpoint"] == str(paths.foundation_checkpoint)
    assert summary["steps"] == 2 and summary["samples_per_s"] > 0
    record = json.loads(paths.foundation_record.read_text())
    assert record["run_id"] == summary["run_id"] and record["data_version"] == summary["corpus_version"]
    assert not paths.active_record("foundation").exists()
    state = torch.load(paths.foundation_checkpoint, weights_only=True)  # a plain state dict
    register_model_configs()
    clip = open_clip.create_model(TEST_ARCH)
    clip.load_state_dict(state, strict=True)


def test_the_mlflow_run_has_params_losses_corpus_version_and_a_registered_version(project: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    root, summary = project["root"], project["summary"]
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["pretrain.batch_size"] == "8"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    dataset = run.inputs.dataset_inputs[0].dataset
    assert dataset.name == "rsitr-pretrain-corpus"
    assert dataset.digest == md5_file(root / "corpus" / "corpus.csv") == summary["corpus_version"]
    assert "foundation/foundation.pt" in [a.path for a in client.list_artifacts(run.info.run_id, "foundation")]
    assert run.info.artifact_uri.startswith((root / "mlruns").as_uri())
    assert summary["registered"]["name"] == "rsitr-foundation"
    version = client.get_model_version("rsitr-foundation", summary["registered"]["version"])
    assert version.run_id == run.info.run_id


@pytest.mark.parametrize("variant", ["zeroshot", "finetune", "petl", "ebaker"])
def test_every_method_starts_from_the_foundation(project: dict[str, Any], variant: str) -> None:
    root = project["root"]
    checkpoint = ProjectPaths.of(project["params"]).foundation_checkpoint
    params = load_params(REPO / "params.yaml", [f"paths.models={root / 'models'}", f"model.pretrained={checkpoint}",
                                                *MICRO])
    model = build_model(params, variant).eval()
    register_model_configs()
    foundation = open_clip.create_model(TEST_ARCH).eval()
    foundation.load_state_dict(torch.load(checkpoint, weights_only=True), strict=True)
    images = torch.randn(2, 3, model.image_size, model.image_size, generator=torch.Generator().manual_seed(0))
    tokens = model.tokenize(["a river crossing farmland", "many white planes parked near a terminal"])
    with torch.no_grad():
        # the method's own embeddings (adapters and heads included) are the foundation's at the start
        assert torch.allclose(model.encode_image(images), foundation.encode_image(images, normalize=True), atol=1e-6)
        assert torch.allclose(model.encode_text(tokens), foundation.encode_text(tokens, normalize=True), atol=1e-6)
        if variant != "ebaker":  # EBAKER sets its own fixed temperature (options.temperature)
            assert torch.equal(model.clip.logit_scale, foundation.logit_scale)  # the foundation's is kept
        default = build_model(load_params(REPO / "params.yaml", MICRO), variant).eval()
        assert not torch.allclose(default.clip.encode_image(images), model.clip.encode_image(images), atol=1e-4)


def test_the_flow_step_skips_a_current_foundation_and_retrains_on_a_change(tmp_path: Path) -> None:
    from rsitr.app.core.fingerprint import train_fingerprint
    from rsitr.app.steps.pretrain import pretrain_step, with_foundation

    generate_corpus(tmp_path / "corpus", 8, seed=5, options=CorpusOptions(image_size=(32, 40), shard_size=8),
                    progress=False)
    overrides = [*_overrides(tmp_path, tmp_path / "corpus" / "corpus.csv"), "pretrain.shuffle_buffer=0"]
    params = load_params(REPO / "params.yaml", overrides)
    first = pretrain_step(params, track=False)
    checkpoint = Path(first["checkpoint"])
    stamp = checkpoint.stat().st_mtime_ns
    assert first["skipped"] is False and first["steps"] == 1
    assert pretrain_step(params, track=False)["skipped"] is True and checkpoint.stat().st_mtime_ns == stamp
    changed = load_params(REPO / "params.yaml", [*overrides, "pretrain.lr=0.001"])
    assert pretrain_step(changed, track=False)["skipped"] is False and checkpoint.stat().st_mtime_ns != stamp
    # variants then start from the foundation, and their fingerprints follow its content
    variant_params = load_params(REPO / "params.yaml", with_foundation(overrides, str(checkpoint)))
    assert variant_params.model.pretrained == str(checkpoint)
    (tmp_path / "data" / "processed").mkdir(parents=True)
    (tmp_path / "data" / "processed" / "manifest.parquet").write_bytes(b"stand-in manifest")
    before = train_fingerprint(variant_params, "finetune")
    pretrain_step(load_params(REPO / "params.yaml", [*overrides, "pretrain.lr=0.003"]), track=False)
    assert train_fingerprint(variant_params, "finetune") != before
