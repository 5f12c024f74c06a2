"""The MLflow pyfunc model rsitr registers: images and texts in, embeddings out.

A logged model (MLflow 3 "Logged Models", linked to its training run) is self-contained:
its artifacts hold the variant's FULL state dict (``weights.pt``, base weights included,
so no pretrained download and no ``models/`` folder is needed) and the resolved
configuration of that one variant (``rsitr.yaml``), the variant's coarse-to-fine hash heads
(``hash_heads.pt``) when it has them, and its ``code/`` folder carries the
rsitr package itself (``code_paths``), so it loads and serves in an environment that has
only the pinned dependencies (``mlflow models serve -m models:/rsitr-finetune@champion``)::

    import mlflow, pandas as pd
    model = mlflow.pyfunc.load_model("models:/rsitr-finetune@champion")
    out = model.predict(pd.DataFrame({"text": ["many planes at an airport"]}))
    out["text_embedding"][0]  # list of floats, L2-normalised

Input: a DataFrame with a ``text`` column (str), an ``image`` column (a base64-encoded
PNG/JPEG, optionally as a ``data:image/...;base64,`` URL, or raw bytes), or both. A path to
an image file on the host is read ONLY when the model is loaded for local batch use with
``mlflow.pyfunc.load_model(uri, model_config={"allow_local_paths": True})``; a served model
(``mlflow models serve``) never has that flag, so a client cannot make the server open its files. Either column may be omitted; a missing/empty cell is skipped.
Output: a DataFrame with ``text_embedding`` and ``image_embedding`` (lists of floats, the
variant's global embeddings, L2-normalised; ``None`` where the row had no such input).
Images are preprocessed exactly as in evaluation (``rsitr.data.images.ImageLoader``);
texts in Arabic script are normalised as in training when ``text.normalize_arabic`` is set.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
import pandas as pd
import torch
import yaml

from rsitr.config import params_from_dict
from rsitr.data.arabic import normalize_arabic
from rsitr.data.images import ImageLoader
from rsitr.errors import DataError
from rsitr.models import build_model
from rsitr.retrieval.hash_head import HASH_HEADS_FILE, HashHeads, load_hash_heads
import rsitr.methods  # noqa: F401 - registers the built-in methods before any params are read

WEIGHTS = "weights"
CONFIG = "config"
HASH_HEADS = "hash_heads"
WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "rsitr.yaml"
TEXT_COLUMN = "text"
IMAGE_COLUMN = "image"
TEXT_OUTPUT = "text_embedding"
IMAGE_OUTPUT = "image_embedding"
TEXT_BATCH = 256
IMAGE_BATCH = 64
ALLOW_LOCAL_PATHS = "allow_local_paths"  # model_config flag: local batch use only, never set when logging
ARABIC_SCRIPT = re.compile("[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")


def _present(value: Any) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    return not (isinstance(value, (str, bytes)) and len(value) == 0)


def _local_path(text: str) -> str | None:
    path = os.path.expanduser(text)
    if len(text) < 4096 and not text.startswith("data:") and os.path.isfile(path):  # isfile: False on any OSError
        return path
    return None


def image_source(value: str | bytes, *, allow_paths: bool = False) -> str | io.BytesIO:
    """The decoded bytes of a base64 (or data-URL) image; a path to open only with ``allow_paths``."""
    if isinstance(value, (bytes, bytearray)):
        return io.BytesIO(bytes(value))
    text = value.strip()
    if allow_paths and (path := _local_path(text)) is not None:
        return path
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return io.BytesIO(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        # no file-existence check here: the message must not tell a client which server paths exist
        raise DataError(
            f"column {IMAGE_COLUMN!r}: value {text[:40]!r} is not base64-encoded image bytes, and a file path is "
            "never opened by a served model; send the image base64-encoded (rsitr.tracking.pyfunc_model."
            "encode_image_file) or as a data:image/...;base64, URL; for local batch use only, load with "
            f"mlflow.pyfunc.load_model(uri, model_config={{{ALLOW_LOCAL_PATHS!r}: True}})") from None


def encode_image_file(path: str | Path) -> str:
    """Base64 of an image file's bytes: the ``image`` column's wire format."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


class EmbeddingModel(mlflow.pyfunc.PythonModel):
    """Rebuilds the rsitr variant from the bundled config and weights; embeds texts and images."""

    def load_context(self, context: Any) -> None:
        bundle = yaml.safe_load(Path(context.artifacts[CONFIG]).read_text(encoding="utf-8"))
        params = params_from_dict(bundle["params"])
        model = build_model(params, bundle["variant"], load_weights=False)
        state = torch.load(context.artifacts[WEIGHTS], map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(device).eval()
        self.normalize_arabic = params.text.normalize_arabic
        self.loader = ImageLoader.for_model(model, cache=False)
        config = getattr(context, "model_config", None) or {}
        self.allow_paths = config.get(ALLOW_LOCAL_PATHS) is True  # opt-in at load time only

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        if self.normalize_arabic:  # as select_split does for Arabic captions
            texts = [normalize_arabic(t) if ARABIC_SCRIPT.search(t) else t for t in texts]
        parts = []
        with torch.no_grad():
            for first in range(0, len(texts), TEXT_BATCH):
                tokens = self.model.tokenize(texts[first : first + TEXT_BATCH]).to(self.model.device)
                parts.append(self.model.embed_texts(tokens)["global"].float().cpu().numpy())
        return np.concatenate(parts)  # [T, D]

    def _pixels(self, row: int, value: Any) -> torch.Tensor:
        """One image value as the model's input tensor; an unreadable one names its row."""
        source = image_source(value, allow_paths=self.allow_paths)
        try:
            return self.loader.normalize(self.loader.uint8(source))  # type: ignore[arg-type]  # [3, S, S]
        except DataError as exc:
            cause = exc.__cause__ or exc
            raise DataError(f"column {IMAGE_COLUMN!r} row {row}: not a readable image ({type(cause).__name__}: "
                            f"{str(cause)[:120]}); send the bytes of a PNG, JPEG or TIFF file, base64-encoded") from None

    def _embed_images(self, values: list[Any]) -> np.ndarray:
        parts = []
        with torch.no_grad():
            for first in range(0, len(values), IMAGE_BATCH):
                batch = torch.stack([self._pixels(first + i, v)
                                     for i, v in enumerate(values[first : first + IMAGE_BATCH])])  # [B, 3, S, S]
                parts.append(self.model.embed_images(batch.to(self.model.device))["global"].float().cpu().numpy())
        return np.concatenate(parts)  # [I, D]

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        try:
            return self._predict(pd.DataFrame(model_input))
        except ModelInputError:
            raise
        except DataError as exc:
            raise ModelInputError(str(exc)) from None

    def _predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        if TEXT_COLUMN not in frame and IMAGE_COLUMN not in frame:
            raise DataError(f"input needs a {TEXT_COLUMN!r} and/or an {IMAGE_COLUMN!r} column, got {list(frame.columns)}")
        output = pd.DataFrame({TEXT_OUTPUT: [None] * len(frame), IMAGE_OUTPUT: [None] * len(frame)}, dtype=object)
        for column, target, embed in (
            (TEXT_COLUMN, TEXT_OUTPUT, self._embed_texts),
            (IMAGE_COLUMN, IMAGE_OUTPUT, self._embed_images),
        ):
            if column not in frame:
                continue
            rows = [i for i, value in enumerate(frame[column].tolist()) if _present(value)]
            if not rows:
                continue
            values = [frame[column].iloc[i] for i in rows]
            embeddings = embed([str(v) for v in values] if column == TEXT_COLUMN else values)
            for row, vector in zip(rows, embeddings):
                output.at[row, target] = vector.tolist()
        return output


class ModelInputError(MlflowException, DataError):
    """A bad prediction input: the scoring server answers 400 with this one line (no stack trace).

    ``mlflow models serve`` turns an ``MlflowException`` into its error code and message, and any
    other exception into "unexpected error" plus a traceback; rsitr callers catch ``DataError``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def signature():
    """Inputs: optional ``text`` string and ``image`` bytes; outputs: optional float arrays.

    ``image`` is binary: the scoring server base64-decodes it from JSON into bytes; a local
    caller may pass bytes or a base64 string (MLflow leaves strings in a binary column as they are).
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    inputs = Schema([
        ColSpec(DataType.string, TEXT_COLUMN, required=False),
        ColSpec(DataType.binary, IMAGE_COLUMN, required=False),
    ])
    outputs = Schema([
        ColSpec(Array(DataType.float), TEXT_OUTPUT, required=False),
        ColSpec(Array(DataType.float), IMAGE_OUTPUT, required=False),
    ])
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(text: str, image_path: str | Path) -> pd.DataFrame:
    return pd.DataFrame({TEXT_COLUMN: [text], IMAGE_COLUMN: [encode_image_file(image_path)]})


def requirements() -> list[str]:
    """Pinned versions of what loading needs (rsitr itself must be installed beside them)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mlflow", "torch", "open_clip_torch", "numpy", "pandas", "pillow", "pyyaml"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/rsitr: bundled as the model's code


def _stage_artifacts(folder: Path, model: Any, params_tree: dict[str, Any], variant: str,
                     hash_heads: str | Path | None = None) -> dict[str, str]:
    weights = folder / WEIGHTS_FILE
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights)
    config = folder / CONFIG_FILE
    config.write_text(yaml.safe_dump({"variant": variant, "params": params_tree}, sort_keys=False, allow_unicode=True),
                      encoding="utf-8")
    artifacts = {WEIGHTS: str(weights), CONFIG: str(config)}
    if hash_heads is not None:
        artifacts[HASH_HEADS] = str(shutil.copyfile(hash_heads, folder / HASH_HEADS_FILE))
    return artifacts


@dataclass
class ModelBundle:
    """A logged model read back from its downloaded folder: everything search needs."""

    params: Any  # RsitrParams of the one variant, as registered
    variant: str
    model: Any  # the retrieval model (eval mode, CPU)
    heads: HashHeads | None  # coarse-to-fine hash heads, when the variant had them


def _artifact(folder: Path, name: str) -> Path | None:
    found = sorted(folder.rglob(name))
    return found[0] if found else None


def load_model_bundle(folder: str | Path) -> ModelBundle:
    """Rebuild the model (and hash heads) from a downloaded logged model's ``artifacts/``."""
    folder = Path(folder)
    config, weights = _artifact(folder, CONFIG_FILE), _artifact(folder, WEIGHTS_FILE)
    if config is None or weights is None:
        raise DataError(f"{str(folder)!r} is not an rsitr logged model (no {CONFIG_FILE} / {WEIGHTS_FILE} artifacts)")
    bundle = yaml.safe_load(config.read_text(encoding="utf-8"))
    params = params_from_dict(bundle["params"])
    model = build_model(params, bundle["variant"], load_weights=False)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    heads_file = _artifact(folder, HASH_HEADS_FILE)
    heads = load_hash_heads(heads_file)[0] if heads_file is not None else None
    return ModelBundle(params=params, variant=str(bundle["variant"]), model=model.eval(), heads=heads)


def log_embedding_model(
    run_id: str,
    *,
    model: Any,
    params_tree: dict[str, Any],
    variant: str,
    example_text: str,
    example_image: str | Path,
    name: str = "model",
    hash_heads: str | Path | None = None,
) -> Any:
    """Log the variant as an MLflow logged model of run ``run_id`` (weights, config, rsitr code).

    Returns MLflow's ``ModelInfo`` (``model_id``, ``model_uri``). The caller has set the
    tracking URI; the run is re-opened in this thread only (MLflow's active run is per thread).
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id):
        artifacts = _stage_artifacts(Path(tmp), model, params_tree, variant, hash_heads)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=EmbeddingModel(),
            artifacts=artifacts,
            code_paths=[str(PACKAGE_DIR)],
            signature=signature(),
            input_example=input_example(example_text, example_image),
            pip_requirements=requirements(),
            model_config={ALLOW_LOCAL_PATHS: False},  # served as logged: no server-side paths; a local
            # batch caller overrides it with load_model(uri, model_config={"allow_local_paths": True})
            metadata={"rsitr_variant": variant, "embedding": "global, L2-normalised",
                      "hash_heads": hash_heads is not None},
        )
