"""Twin accuracy of the published checkpoints, read-only, with a per-attribute breakdown.

The evaluate step logs ``twin_acc`` (``rsitr.retrieval.twins``) for every variant it
evaluates; this script measures it for checkpoints already in ``models/<variant>/best.pt``
without re-running the step: it writes no metrics file, takes no lock and opens no MLflow
run. It also splits the figure by the attribute a twin changes (colour, count, relation).

``--from-checkpoint`` scores each model with the variant configuration stored in its
checkpoint (what it was trained with) instead of params.yaml's, for checkpoints older than
the current defaults; ``--set`` overrides params as on the CLI (for options the stored
configuration predates).

    python benchmarks/bench_twins.py --variants finetune,ebaker
    python benchmarks/bench_twins.py --variants ebaker --from-checkpoint \\
        --set variants.ebaker.options.local_normalize=true --languages en,ar
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from rsitr.app.steps.evaluation import ground_truth_twins
from rsitr.app.core.paths import ProjectPaths
from rsitr.app.core.runs import published_checkpoint
from rsitr.config import RsitrParams, load_params, params_from_dict, to_dict
from rsitr.data.images import ImageLoader
from rsitr.data.manifest import read_manifest, select_split
from rsitr.models.trained import load_checkpoint, load_trained_model
from rsitr.retrieval.evaluate import encode_split
from rsitr.retrieval.metrics import retrieval_metrics
from rsitr.retrieval.twins import twin_accuracy, twin_index_pairs

ATTRIBUTES = ("colour", "count", "relation")


def _variant_params(params: RsitrParams, variant: str, from_checkpoint: bool, overrides: dict[str, Any]) -> Any:
    if not from_checkpoint:
        return params.variant(variant)
    raw = to_dict(params)
    raw["variants"] = {name: {k: x for k, x in spec.items() if k != "name"} for name, spec in raw["variants"].items()}
    stored = dict(load_checkpoint(published_checkpoint(params, variant))["variant_params"])
    stored.pop("name", None)
    stored["options"] = {**stored.get("options", {}), **overrides.get(variant, {})}
    raw["variants"][variant] = stored
    return params_from_dict(raw).variant(variant)


def _row(model: Any, split: Any, loader: ImageLoader, batch_size: int, twins: list[tuple[str, str]],
         attribute_of: dict[tuple[str, str], str]) -> dict[str, Any]:
    with torch.no_grad():
        images, texts, _ = encode_split(model, split, loader, batch_size, torch.device("cpu"))
        scores = model.score(images, texts).float().cpu()  # [N_images, N_captions]
    row = {"mR": retrieval_metrics(scores, split.caption_image)["mR"]}
    pairs = twin_index_pairs(split.image_paths, twins)
    if pairs:
        row.update(twin_accuracy(scores, split.caption_image, pairs))
    for attribute in ATTRIBUTES:
        subset = twin_index_pairs(split.image_paths, [t for t in twins if attribute_of[t] == attribute])
        if subset:
            row[attribute] = twin_accuracy(scores, split.caption_image, subset)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--variants", default="zeroshot,finetune,ebaker")
    parser.add_argument("--test-sets", default="synth_rsicd,synth_sydney")
    parser.add_argument("--languages", default="en")
    parser.add_argument("--set", action="append", default=[], help="section.key=value (repeatable)")
    parser.add_argument("--from-checkpoint", action="store_true")
    args = parser.parse_args()
    params = load_params(args.params, args.set)
    overrides: dict[str, Any] = {}
    for item in args.set:  # variants.<name>.options.<key>=value: re-applied over a stored configuration
        key, _, _ = item.partition("=")
        parts = key.split(".")
        if len(parts) == 4 and parts[0] == "variants" and parts[2] == "options":
            overrides.setdefault(parts[1], {})[parts[3]] = to_dict(params.variant(parts[1]).options)[parts[3]]
    path = Path(params.synth.out) / "ground_truth.json"
    attribute_of = {(t["original"], t["twin"]): t["attribute"] for t in json.loads(path.read_text())["twins"]}
    twins, manifest = ground_truth_twins(params), read_manifest(ProjectPaths.of(params).manifest)
    for variant in args.variants.split(","):
        v = _variant_params(params, variant, args.from_checkpoint, overrides)
        model = load_trained_model(params, v, published_checkpoint(params, variant)).to("cpu")
        loader = ImageLoader(model.image_size, model.mean, model.std, cache=False)
        for test_set in args.test_sets.split(","):
            for language in args.languages.split(","):
                split = select_split(manifest, "test", datasets=[test_set], languages=[language],
                                     normalize_arabic=params.text.normalize_arabic)
                row = _row(model, split, loader, v.eval.batch_size, twins, attribute_of)
                print(json.dumps({"variant": variant, "test_set": test_set, "language": language, **row}), flush=True)


if __name__ == "__main__":
    main()
