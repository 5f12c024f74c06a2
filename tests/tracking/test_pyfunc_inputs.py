"""The ``image`` column of the registered pyfunc model: base64, data URL, raw bytes or a path."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from rsitr.errors import DataError
from rsitr.tracking.pyfunc_model import encode_image_file, image_source


def _png(path: Path) -> bytes:
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)
    return path.read_bytes()


def _pixel(source) -> tuple[int, int, int]:
    with Image.open(source) as image:
        return image.convert("RGB").getpixel((0, 0))


def test_every_image_encoding_decodes_to_the_same_image(tmp_path: Path) -> None:
    raw = _png(tmp_path / "red.png")
    encoded = encode_image_file(tmp_path / "red.png")
    assert base64.b64decode(encoded) == raw
    for value in (encoded, f"data:image/png;base64,{encoded}", raw, f"  {encoded}\n"):
        assert _pixel(image_source(value)) == (200, 30, 30)
    path = str(tmp_path / "red.png")
    assert image_source(path, allow_paths=True) == path  # local batch use: an explicit opt-in
    assert _pixel(image_source(path, allow_paths=True)) == (200, 30, 30)
    assert isinstance(image_source(encoded), io.BytesIO)


def test_a_value_that_is_neither_a_file_nor_base64_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not base64-encoded image bytes"):
        image_source(str(tmp_path / "missing.png"), allow_paths=True)
    with pytest.raises(DataError, match="not base64-encoded image bytes"):
        image_source("x" * 300 + "!", allow_paths=True)  # a too-long "file name" must not raise OSError


def test_a_server_side_path_is_refused_without_the_opt_in(tmp_path: Path) -> None:
    _png(tmp_path / "secret.png")
    with pytest.raises(DataError, match="column 'image'.*file path.*base64") as caught:
        image_source(str(tmp_path / "secret.png"))
    assert "\n" not in str(caught.value) and "allow_local_paths" in str(caught.value)


def test_the_logged_model_as_served_refuses_a_server_side_path(trained_toy: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Loaded as ``mlflow models serve`` loads it (pyfunc.load_model on the model URI, no model_config)."""
    import mlflow
    import pandas as pd

    from rsitr.app.steps.registry import register_variant
    from rsitr.config import load_params

    params = load_params(trained_toy, ["tracking.model_prefix=paths"])
    registration = register_variant(params, "finetune")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
    uri = f"models:/{registration.name}/{registration.version}"
    secret = tmp_path / "secret.png"
    _png(secret)
    served = mlflow.pyfunc.load_model(uri)
    from mlflow.types.schema import DataType

    assert {c.name: c.type for c in served.metadata.signature.inputs.inputs}["image"] == DataType.binary
    with pytest.raises(DataError, match="column 'image'.*file path.*base64"):
        served.predict(pd.DataFrame({"image": [str(secret)]}))
    ok = served.predict(pd.DataFrame({"image": [encode_image_file(secret)]}))
    assert len(ok["image_embedding"][0]) > 0
    raw = served.predict(pd.DataFrame({"image": [secret.read_bytes()]}))  # bytes, as the server decodes them
    assert raw["image_embedding"][0] == pytest.approx(ok["image_embedding"][0], abs=1e-6)
    local = mlflow.pyfunc.load_model(uri, model_config={"allow_local_paths": True})
    assert local.predict(pd.DataFrame({"image": [str(secret)]}))["image_embedding"][0] == ok["image_embedding"][0]


def test_the_scoring_server_answers_a_bad_image_with_one_line_and_no_stack_trace(trained_toy: Path, tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``mlflow models serve``'s own app (scoring_server.init), in process: 400 with rsitr's message."""
    import base64

    import mlflow
    from mlflow.pyfunc import scoring_server
    from starlette.testclient import TestClient

    from rsitr.app.steps.registry import register_variant
    from rsitr.config import load_params

    params = load_params(trained_toy, ["tracking.model_prefix=scoring"])
    registration = register_variant(params, "finetune")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
    client = TestClient(scoring_server.init(mlflow.pyfunc.load_model(f"models:/{registration.name}/{registration.version}")))
    secret = tmp_path / "secret.png"
    _png(secret)
    for value in (str(secret), base64.b64encode(b"not an image at all").decode()):
        answer = client.post("/invocations", json={"dataframe_records": [{"image": value}]})
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert "stack_trace" not in body and "Traceback" not in answer.text
    assert "column 'image'" in body["message"] and body["error_code"] == "INVALID_PARAMETER_VALUE"
    good = client.post("/invocations", json={"dataframe_records": [{"image": base64.b64encode(secret.read_bytes()).decode()}]})
    assert good.status_code == 200, good.text
