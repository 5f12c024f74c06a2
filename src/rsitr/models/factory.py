"""Build open_clip CLIP models from ``params.model``: architecture + pretrained source.

``pretrained`` is one of: empty (random initialisation), an open_clip tag (``openai``,
``laion2b_s34b_b79k``) or a local checkpoint file (open_clip, RemoteCLIP, GeoRSCLIP).
rsitr registers its own small architectures (``model_configs/*.json``, e.g.
``rsitr-tiny`` that trains on a CPU in minutes) beside open_clip's. An ``arch`` with one of
open_clip's schemas (``hf-hub:org/repo``, ``local-dir:/folder``) names config, weights and
preprocessing together, as ``open_clip.create_model`` reads them; ``pretrained`` stays empty.
The bundle carries the model's open_clip ``PreprocessCfg`` (size, mean/std, interpolation,
resize mode, fill colour), which ``rsitr.data.images.ImageLoader`` applies.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.factory import parse_model_name, resize_pos_embed, resize_text_pos_embed
from open_clip.transform import PreprocessCfg

from rsitr.config import ModelParams
from rsitr.errors import ModelError, unknown_name
from rsitr.models.checkpoints import read_state_dict

MODEL_CONFIG_DIR = Path(__file__).with_name("model_configs")
_registered = False


def register_model_configs() -> None:
    """Make rsitr's architectures (``rsitr-tiny``...) known to open_clip, once."""
    global _registered
    if not _registered:
        open_clip.add_model_config(MODEL_CONFIG_DIR)
        _registered = True


def available_architectures() -> list[str]:
    register_model_configs()
    return open_clip.list_models()


@dataclass
class ClipBundle:
    """An open_clip model with the tokenizer and preprocessing that belong to it."""

    clip: open_clip.CLIP
    tokenizer: Any
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    preprocess: PreprocessCfg


def _resolve_pretrained(arch: str, pretrained: str) -> tuple[str, str]:
    """Classify ``pretrained`` as ``("none"|"file"|"tag", value)``."""
    if not pretrained:
        return "none", ""
    if Path(pretrained).expanduser().is_file():
        return "file", str(Path(pretrained).expanduser())
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if pretrained in tags:
        return "tag", pretrained
    if any(sep in pretrained for sep in ("/", "\\")) or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")):
        raise ModelError(f"model.pretrained: checkpoint file {pretrained!r} not found")
    raise ModelError(
        f"model.pretrained: {pretrained!r} is neither a file nor an open_clip tag of {arch}; "
        f"valid tags: {', '.join(tags) or '(none)'}"
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def build_clip(model: ModelParams, *, load_weights: bool = True, seed: int = 0) -> ClipBundle:
    """Create the CLIP model of ``model.arch`` and load ``model.pretrained`` into it.

    A random initialisation is seeded by ``seed`` (without touching the global RNG), so
    "architecture + no weights + seed" names one base model exactly, as a tag or file does.
    """
    register_model_configs()
    arch = model.arch
    schema, _ = parse_model_name(arch)
    if schema is not None:
        clip = _create_from_schema(model, load_weights, seed)
    else:
        if arch not in open_clip.list_models():
            raise ModelError("model.arch: " + unknown_name("architecture", arch, available_architectures()))
        _check_hf_text_tower(arch)
        kind, source = _resolve_pretrained(arch, model.pretrained) if load_weights else ("none", "")
        if kind == "tag":
            clip = _create_from_tag(arch, source, model.cache_dir or None)
        else:
            clip = _seeded(seed, open_clip.create_model, arch, pretrained=None)
            if kind == "file":
                load_into_clip(clip, source)
    clip.eval()
    preprocess = PreprocessCfg(**clip.visual.preprocess_cfg)  # what open_clip's create_model_and_transforms uses
    size = preprocess.size
    return ClipBundle(
        clip=clip,
        tokenizer=open_clip.get_tokenizer(arch, cache_dir=model.cache_dir or None),
        image_size=int(size[0] if isinstance(size, (tuple, list)) else size),
        mean=tuple(preprocess.mean),
        std=tuple(preprocess.std),
        preprocess=preprocess,
    )


def _seeded(seed: int, function, *args, **kwargs):
    """``function`` under ``torch.manual_seed(seed)``, the global RNG left as it was; open_clip kept quiet."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _quietly(function, *args, **kwargs)


def _create_from_schema(model: ModelParams, load_weights: bool, seed: int) -> open_clip.CLIP:
    """``hf-hub:org/repo`` or ``local-dir:/folder``: open_clip reads config, weights and preprocessing there."""
    arch = model.arch
    if model.pretrained:
        raise ModelError(f"model.pretrained={model.pretrained!r} cannot be combined with model.arch={arch} (its "
                         "weights come from there); set model.pretrained= (empty)")
    schema, identifier = parse_model_name(arch)
    try:
        return _seeded(seed, open_clip.create_model, arch, cache_dir=model.cache_dir or None,
                       load_weights=load_weights)
    except Exception as exc:  # noqa: BLE001 - hub, cache and file failures come in many types
        if schema == "hf-hub" and _offline():
            raise ModelError(
                f"model.arch={arch}: {identifier!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
                f"on a connected machine run `hf download {identifier}` and copy the cache (HF_HOME) here"
            ) from None
        reason = _first_line(exc)
        raise ModelError(f"model.arch={arch} could not be loaded ({type(exc).__name__}: {reason}); check the "
                         f"{'Hugging Face repository name' if schema == 'hf-hub' else 'folder'} and its "
                         "open_clip_config.json") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no message"


def _check_hf_text_tower(arch: str) -> None:
    """Multilingual towers (e.g. ``xlm-roberta-base-ViT-B-32``) need transformers and the HF model.

    rsitr's bilingual (Arabic/English) training uses such a tower at real scale; offline, this
    says exactly what to install and download instead of failing deep inside open_clip.
    """
    text_cfg = (open_clip.get_model_config(arch) or {}).get("text_cfg", {})
    hf_name = text_cfg.get("hf_model_name") or text_cfg.get("hf_tokenizer_name")
    if not hf_name:
        return
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise ModelError(
            f"model.arch={arch} has a Hugging Face text tower ({hf_name}); install it with "
            "`pip install transformers sentencepiece`"
        ) from None
    if _offline():
        try:
            from transformers import AutoConfig, AutoTokenizer

            AutoConfig.from_pretrained(hf_name, local_files_only=True)
            AutoTokenizer.from_pretrained(hf_name, local_files_only=True)
        except Exception:  # noqa: BLE001 - any miss in the local cache
            raise ModelError(
                f"model.arch={arch} needs the Hugging Face model {hf_name!r} (tokenizer and weights), which is not "
                f"in the local cache and HF_HUB_OFFLINE is set. On a connected machine run "
                f"`huggingface-cli download {hf_name}` and copy the cache (HF_HOME) here"
            ) from None


def _quietly(function, *args, **kwargs):
    """open_clip logs a warning for every randomly initialised model; rsitr says so itself."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        return function(*args, **kwargs)
    finally:
        root.setLevel(level)


def _cached_weights(arch: str, tag: str, cache_dir: str | None) -> str | None:
    """The local file of an open_clip tag's weights, if a previous download left one."""
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        model_id, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in names:
            hit = try_to_load_from_cache(model_id, name, cache_dir=cache_dir)
            if isinstance(hit, str):
                return hit
    url = cfg.get("url", "")
    if url:
        candidate = Path(cache_dir or Path.home() / ".cache" / "clip") / os.path.basename(url)
        if candidate.is_file():
            return str(candidate)
    return None


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether huggingface.co answers within ``timeout_s`` (DNS included, bounded by a thread)."""
    import socket
    import threading

    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(("huggingface.co", 443), timeout=timeout_s).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s + 0.5)
    return bool(result and result[0])


def _create_from_tag(arch: str, tag: str, cache_dir: str | None) -> open_clip.CLIP:
    """Pretrained weights by tag; without network this fails in seconds with instructions."""
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    where = cfg.get("hf_hub") or cfg.get("url") or "the open_clip release"
    advice = (
        f"Download them on a connected machine (open_clip.create_model({arch!r}, pretrained={tag!r}) "
        f"or the file from {where}), then set model.pretrained=/path/to/open_clip_pytorch_model.bin "
        "(or model.cache_dir to the folder that holds the cached download)."
    )
    if _cached_weights(arch, tag, cache_dir) is None and (_offline() or not _hub_reachable()):
        reason = "HF_HUB_OFFLINE is set" if _offline() else "the Hugging Face hub is unreachable"
        raise ModelError(f"pretrained weights {arch}/{tag} are not available offline ({reason}). {advice}")
    try:
        return open_clip.create_model(arch, pretrained=tag, cache_dir=cache_dir, require_pretrained=True)
    except Exception as exc:  # noqa: BLE001 - download/cache failures come in many types
        raise ModelError(f"pretrained weights {arch}/{tag} could not be loaded ({type(exc).__name__}: {exc}). "
                         f"{advice}") from None


def load_into_clip(clip: open_clip.CLIP, path: str | Path) -> None:
    """Load an open_clip/RemoteCLIP/GeoRSCLIP state dict file into ``clip`` (strict)."""
    state = read_state_dict(path)
    if "logit_scale" in state and state["logit_scale"].ndim != clip.logit_scale.ndim:
        state["logit_scale"] = state["logit_scale"].reshape(clip.logit_scale.shape)
    resize_pos_embed(state, clip)
    resize_text_pos_embed(state, clip)
    try:
        result = clip.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).split("\n\t")[1] if "\n\t" in str(exc) else str(exc)
        raise ModelError(
            f"checkpoint {str(path)!r} does not fit architecture {type(clip).__name__}: {first}; "
            "check model.arch matches the checkpoint"
        ) from None
    missing = [k for k in result.missing_keys if k != "logit_bias"]
    if missing or result.unexpected_keys:
        raise ModelError(
            f"checkpoint {str(path)!r} does not fit architecture: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {result.unexpected_keys[:5]}; "
            "check model.arch matches the checkpoint"
        )
