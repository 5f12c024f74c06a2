"""Registration of a trained variant, and loading it back in a fresh process via ``models:/...@champion``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rsitr.config import load_params
from rsitr.errors import ConfigError, TrackingError
from toy_data import TEST_MODEL_CONFIGS


def _client(params):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=params.tracking.uri, registry_uri=params.tracking.uri)


def test_register_creates_a_tagged_challenger_version(trained_toy: Path, rsitr_cli) -> None:
    overrides = ["tracking.model_prefix=reg"]
    code, out, err = rsitr_cli("register", "--params", str(trained_toy), "--variant", "finetune",
                               *[a for o in overrides for a in ("--set", o)])
    assert code == 0, err
    assert "reg-finetune v1 (alias challenger)" in out
    params = load_params(trained_toy, overrides)
    client = _client(params)
    version = client.get_model_version_by_alias("reg-finetune", "challenger")
    run_id = json.loads((Path(params.paths.models) / "finetune" / "run.json").read_text())["run_id"]
    assert version.run_id == run_id
    tags = version.tags
    assert tags["variant"] == "finetune" and tags["method"] == "finetune" and tags["run_id"] == run_id
    measured = client.get_run(run_id).data.metrics["test.toy.en.mR"]
    assert float(tags["metric.test.toy.en.mR"]) == pytest.approx(measured, abs=1e-3)
    assert tags["gate.metric"] == "test.toy.en.mR"
    assert int(tags["total_params"]) > 0

    # the same run again: the existing version is reused, not duplicated
    code, out, _ = rsitr_cli("register", "--params", str(trained_toy), "--variant", "finetune", "--set", overrides[0])
    assert code == 0 and "already registered as reg-finetune v1" in out
    assert len(client.search_model_versions("name='reg-finetune'")) == 1


def test_register_errors_are_one_line_messages(trained_toy: Path, rsitr_cli, tmp_path: Path) -> None:
    code, _, err = rsitr_cli("register", "--params", str(trained_toy), "--variant", "nosuch")
    assert code == 2 and "unknown variant 'nosuch'" in err and "Traceback" not in err
    params = load_params(trained_toy, [f"paths.models={tmp_path}"])
    from rsitr.app.steps.registry import register_variant

    with pytest.raises(TrackingError, match="run.json"):
        register_variant(params, "finetune")
    with pytest.raises(ConfigError):
        register_variant(params, "nosuch")


FRESH_PROCESS = textwrap.dedent("""
    import sys, numpy as np, pandas as pd, mlflow, open_clip
    open_clip.add_model_config(sys.argv[5])  # the toy model's architecture (toy_data.TEST_ARCH), as a user's own
    from rsitr.tracking.pyfunc_model import encode_image_file
    model = mlflow.pyfunc.load_model(sys.argv[1], model_config={"allow_local_paths": True})  # local batch use
    signature = model.metadata.signature
    assert sorted(c.name for c in signature.inputs.inputs) == ["image", "text"], signature
    assert model.metadata.saved_input_example_info is not None, "no input example"
    images, texts, out = sys.argv[2].split(","), sys.argv[3].split("|"), sys.argv[4]
    frame = pd.DataFrame({"text": texts, "image": [encode_image_file(images[0]), images[1], None]})
    result = model.predict(frame)
    only_text = model.predict(pd.DataFrame({"text": texts[:1]}))
    assert only_text["image_embedding"][0] is None and result["image_embedding"][2] is None
    np.savez(out, text=np.array(result["text_embedding"].tolist()), image=np.array(result["image_embedding"][:2].tolist()),
             only_text=np.array(only_text["text_embedding"].tolist()))
""")


def test_champion_loads_in_a_fresh_process_with_equal_embeddings(trained_toy: Path, tmp_path: Path) -> None:
    import torch

    from rsitr.tracking.registry import promote
    from rsitr.app.steps.registry import register_variant
    from rsitr.models.trained import load_trained_model
    from rsitr.data.images import ImageLoader

    params = load_params(trained_toy, ["tracking.model_prefix=load"])
    registration = register_variant(params, "finetune")
    assert promote(params, "finetune").promoted  # first challenger: no champion yet
    uri = f"models:/{registration.name}@champion"

    images = [str(Path(params.paths.data) / "img" / f"{i}.png") for i in (200, 201)]
    texts = ["a plain red field", "a bare blue field", "حَقْلٌ أَحْمَرُ"]  # Arabic: normalised as in training
    out = tmp_path / "embeddings.npz"
    models_dir = Path(params.paths.models)
    hidden = models_dir.with_name("models-hidden")
    models_dir.rename(hidden)  # the fresh process must not need the models folder (nor params.yaml: cwd is empty)
    try:
        env = {"MLFLOW_TRACKING_URI": params.tracking.uri, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
               "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CUDA_VISIBLE_DEVICES": "", "PYTHONUTF8": "1"}
        empty = tmp_path / "cwd"
        empty.mkdir()
        done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, uri, ",".join(images), "|".join(texts), str(out),
                               str(TEST_MODEL_CONFIGS)],
                              cwd=empty, env=env, capture_output=True, text=True, timeout=300)
    finally:
        hidden.rename(models_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    served = np.load(out)

    model = load_trained_model(params, "finetune", models_dir / "finetune" / "best.pt")
    loader = ImageLoader(model.image_size, model.mean, model.std, cache=False)
    from rsitr.data.arabic import normalize_caption

    with torch.no_grad():
        normalised = [normalize_caption(t, "ar" if i == 2 else "en") for i, t in enumerate(texts)]
        assert normalised[2] != texts[2]
        text = model.embed_texts(model.tokenize(normalised))["global"].numpy()
        image = model.embed_images(torch.stack([loader.normalize(loader.uint8(p)) for p in images]))["global"].numpy()
    np.testing.assert_allclose(served["text"], text, atol=1e-5)
    np.testing.assert_allclose(served["image"], image, atol=1e-5)
    np.testing.assert_allclose(served["only_text"], text[:1], atol=1e-5)
    assert np.linalg.norm(served["image"], axis=1) == pytest.approx([1.0, 1.0], abs=1e-4)


@pytest.mark.parametrize("variant", ["zeroshot_random", "finetune", "finetune_ar", "bilingual", "petl", "ebaker"])
def test_the_bundled_config_of_every_default_variant_loads_on_its_own(variant: str) -> None:
    """A registered model carries one variant's config; a parent reference must not break loading it."""
    from rsitr.config import params_from_dict
    from rsitr.tracking.registry import _bundled_params

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    loaded = params_from_dict(_bundled_params(params, variant))
    assert list(loaded.variants) == [variant]


def test_the_foundation_config_loads_on_its_own() -> None:
    """The registered foundation carries a one-variant config (as registration loads it back)."""
    from rsitr.app.steps.pretrain import foundation_params
    from rsitr.config import params_from_dict, to_dict

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    assert len(params.variants) > 1  # the default run's variants must not leak into the bundle
    loaded = params_from_dict(to_dict(foundation_params(params)) | {"variants": {"foundation": {"method": "zeroshot"}}})
    assert list(loaded.variants) == ["foundation"]
