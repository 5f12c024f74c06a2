"""The ``ground_truth.json`` sidecar and the run summary.

Training never reads the sidecar; tests and diagnostics do. It lists, with paths
relative to the output folder:

* ``images``: every image's class, object attributes, dataset, split, size, role
  and pHash (hex, as ``str(imagehash.phash(image))``);
* ``twins``: fine-grained pairs and the one attribute that differs;
* ``near_duplicates``: planted copies (``a`` the precomp original, ``b`` the copy)
  and the transform used;
* ``weak_captions``: captions replaced by another class's caption, with their
  position (``line`` in ``<split>_caps.txt`` for precomp, ``sentid`` for Karpathy).
"""

from __future__ import annotations

from collections import Counter

from rsitr.data.synth.plan import KARPATHY, PRECOMP, Plan, PlannedImage
from rsitr.data.synth.settings import Settings
from rsitr.data.synth.writers import karpathy_order, precomp_order


def _image_entry(image: PlannedImage, images: list[PlannedImage], phashes: dict[int, int]) -> dict[str, object]:
    entry: dict[str, object] = dict(image.scene.attributes())
    entry.update({"dataset": image.dataset, "split": image.split, "size_px": image.size_px, "role": image.role,
                  "phash": format(phashes[image.key], "016x")})
    if image.partner is not None:
        entry["twin" if image.role in ("original", "twin") else "near_duplicate_of"] = images[image.partner].relpath
    return entry


def _caption_positions(images: list[PlannedImage]) -> dict[tuple[int, int], tuple[str, int]]:
    """(key, caption index) -> ("line" in the caps file | "sentid", number)."""
    positions: dict[tuple[int, int], tuple[str, int]] = {}
    for split in ("train", "test"):
        for order, image in enumerate(precomp_order(images, split)):
            for index in range(len(image.captions)):
                positions[(image.key, index)] = ("line", order * 5 + index)
    for imgid, image in enumerate(karpathy_order(images)):
        for index in range(len(image.captions)):
            positions[(image.key, index)] = ("sentid", imgid * 5 + index)
    return positions


def summarize(settings: Settings, plan: Plan) -> dict[str, object]:
    """JSON-able counts per dataset and split, and of each planted defect."""
    datasets: dict[str, dict[str, dict[str, int]]] = {
        dataset: {split: {"images": 0, "captions": 0} for split in splits}
        for dataset, splits in ((PRECOMP, ("train", "test")), (KARPATHY, ("train", "val", "test")))
    }
    for image in plan.images:
        counts = datasets[image.dataset][image.split]
        counts["images"] += 1
        counts["captions"] += len(image.captions)
    copies = [image for image in plan.images if image.role == "near_duplicate"]
    return {
        "seed": settings.seed,
        "n_images": settings.n_images,
        "n_files": len(plan.images),
        "arabic": settings.arabic,
        "datasets": datasets,
        "classes": dict(sorted(Counter(image.scene.scene_class for image in plan.images
                                       if image.role != "near_duplicate").items())),
        "twins": sum(1 for image in plan.images if image.role == "twin"),
        "weak_captions": len(plan.weak_captions),
        "near_duplicates": len(copies),
        "near_duplicates_test_to_train": sum(
            1 for image in copies if plan.images[image.partner].split == "test" and image.split == "train"),
    }


def build_ground_truth(settings: Settings, plan: Plan, summary: dict[str, object],
                       phashes: dict[int, int]) -> dict[str, object]:
    """The sidecar's content; ``phashes`` maps image keys to their pHash (as ``str(imagehash.phash)``)."""
    images = plan.images
    positions = _caption_positions(images)
    weak_entries = []
    for weak in plan.weak_captions:
        image = images[weak.key]
        position_name, position = positions[(weak.key, weak.caption_index)]
        entry: dict[str, object] = {
            "dataset": image.dataset, "filename": image.filename, "split": image.split,
            "caption_index": weak.caption_index, position_name: position,
            "caption": weak.caption.english, "true_class": weak.true_class,
            "caption_class": weak.caption.caption_class,
        }
        if settings.arabic:
            entry["caption_ar"] = weak.caption.arabic
        weak_entries.append(entry)
    twins = [
        {"original": images[image.partner].relpath, "twin": image.relpath, "attribute": image.twin_change.attribute,
         "from": image.twin_change.before, "to": image.twin_change.after}
        for image in images if image.role == "twin" and image.twin_change is not None
    ]
    near_duplicates = [
        {"a": images[image.partner].relpath, "b": image.relpath, "a_split": images[image.partner].split,
         "b_split": image.split, "transform": image.transform.to_json()}
        for image in images if image.role == "near_duplicate" and image.transform is not None
    ]
    return {
        "generator": "rsitr.data.synth",
        "parameters": {
            "n_images": settings.n_images, "seed": settings.seed, "image_size": list(settings.image_size),
            "twin_rate": settings.twin_rate, "weak_caption_rate": settings.weak_caption_rate,
            "near_duplicate_rate": settings.near_duplicate_rate, "karpathy_share": settings.karpathy_share,
            "test_share": settings.test_share, "arabic": settings.arabic,
        },
        "datasets": {PRECOMP: "precomp", KARPATHY: "karpathy"},
        "summary": summary,
        "images": {image.relpath: _image_entry(image, images, phashes) for image in images},
        "twins": twins,
        "near_duplicates": near_duplicates,
        "weak_captions": weak_entries,
    }
