"""EBAKER's loss: global + local InfoNCE with Eliminate-Before-Align, plus the KER MLM term.

EBAKER (Eliminate Before Align: A Remote Sensing Image-Text Retrieval Framework with
Keyword Explicit Reasoning, ACM MM 2024), Sec. 2.2 and 2.4, Eq. 7-15:

``L = InfoNCE(global) + InfoNCE(local) + mlm_weight * L_MLM``; from the drop epoch on, the
InfoNCE terms lose the rows (anchors) of weakly correlated pairs.

Eliminate Before Align (EBA):

* a similarity bank (FIFO of ``bank_size`` floats, a registered buffer with its write
  counters, so it travels with the checkpoint) records the positive-pair global cosine of
  every training pair seen;
* at each epoch start (``on_epoch_start``) the threshold is the ``drop_ratio`` quantile
  (lower interpolation: an observed value, so ``ceil``-ish ``drop_ratio`` of the pairs lie
  at or below it) of the bank entries written during the previous epoch (``scope="epoch"``,
  the paper: "we record the global similarity scores of all sample pairs within the current
  epoch"), or of the whole FIFO (``scope="bank"``, what the released code's 200,000-entry
  FIFO amounts to when an epoch has fewer pairs);
* from ``drop_epoch`` (0-indexed) on, every pair of a batch whose positive global cosine is
  ``<= threshold`` is dropped as an ANCHOR (row) of image->text and of text->image, in the
  global and in the local InfoNCE; its image and caption remain columns, i.e. negatives of
  the other rows. The mean is over the kept rows;
* every elimination is recorded (epoch, caption id, image id, similarity); ``epoch_summary``
  reports the counts, ``export_eliminated`` writes them as JSON, and the records are part
  of ``state_dict`` (``get_extra_state``), so they survive checkpoint and resume.

The terms returned are ``global_infonce``, ``local_infonce`` (local on) and ``mlm`` (KER
on; already multiplied by ``mlm_weight``, since the trainer sums the terms).

Paper-exact by default (``docs/methods.md``, EBAKER): each InfoNCE is the SUM of its two
cross-entropies, ``CE(i2t) + CE(t2i)`` (Eq. 13 and the released ``CLIPLoss``), so the MLM
weight 0.5 has its paper meaning; ``direction_reduction="mean"`` averages them instead
(rsitr option). Logits are ``logit_scale * score`` (x 20 at the fixed temperature 0.05); the
local score is the raw Frobenius norm over every context position unless the variant turns on
``local_normalize`` / ``text_positions="real"`` (``rsitr.models.local_alignment``). The EBA
threshold is taken over the whole FIFO bank (``scope="bank"``, the released code) or over the
pairs of the previous epoch only (``scope="epoch"``, the paper's wording).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from rsitr.config.schema import EbakerOptions, method_options
from rsitr.data.manifest import select_split
from rsitr.losses.base import TrainerLoss
from rsitr.losses.infonce import masked_cross_entropy, same_image_mask
from rsitr.models.local_alignment import local_similarity


class SimilarityBank(nn.Module):
    """FIFO of positive-pair similarities with write counters (all buffers, checkpointed)."""

    def __init__(self, size: int):
        super().__init__()
        if size < 1:
            raise ValueError(f"bank_size must be positive, got {size}")
        self.register_buffer("values", torch.zeros(size, dtype=torch.float32))
        self.register_buffer("written", torch.zeros((), dtype=torch.long))  # total pushes ever
        self.register_buffer("epoch_mark", torch.zeros((), dtype=torch.long))  # ``written`` at the last epoch start

    @property
    def size(self) -> int:
        return self.values.numel()

    def __len__(self) -> int:
        return int(min(int(self.written), self.size))

    @torch.no_grad()
    def push(self, similarities: torch.Tensor) -> None:
        """Append ``[n]`` values, overwriting the oldest when full."""
        values = similarities.detach().reshape(-1).to(self.values)
        if values.numel() > self.size:
            self.written += values.numel() - self.size
            values = values[-self.size :]
        slots = (int(self.written) + torch.arange(values.numel(), device=self.values.device)) % self.size
        self.values[slots] = values
        self.written += values.numel()

    def latest(self, count: int) -> torch.Tensor:
        """The last ``min(count, len)`` values pushed, oldest first."""
        count = min(int(count), len(self))
        start = int(self.written) - count
        slots = (start + torch.arange(count, device=self.values.device)) % self.size
        return self.values[slots]

    def since_mark(self) -> torch.Tensor:
        """Values pushed since the last ``mark()`` (as many as the FIFO still holds)."""
        return self.latest(int(self.written - self.epoch_mark))

    def mark(self) -> None:
        self.epoch_mark.copy_(self.written)


def quantile_threshold(values: torch.Tensor, ratio: float) -> float:
    """The ``ratio`` quantile of ``values`` with lower interpolation (an observed value)."""
    if values.numel() == 0:
        return float("nan")
    return float(torch.quantile(values.float(), float(ratio), interpolation="lower"))


class EbakerLoss(TrainerLoss):
    """Loss contract: ``outputs`` (``EbakerModel.forward``) and ``batch`` in, named terms out.

    Under data parallelism (``rsitr.training.distributed.GlobalBatchLoss``) the global and
    local InfoNCE and EBA see the global batch: the per-sample features below are gathered,
    every rank pushes the same positives into its bank and eliminates the same rows. The
    masked-language-model term stays on each rank's own masked positions.
    """

    gather_keys = ("image_features", "text_features", "image_tokens", "text_tokens", "text_mask")
    local_terms = ("mlm",)

    def __init__(
        self,
        variant: Any | None = None,
        *,
        options: EbakerOptions | None = None,
        scope: Literal["epoch", "bank"] | None = None,
    ):
        super().__init__()
        self.options: EbakerOptions = options if options is not None else method_options(variant, EbakerOptions)
        scope = scope or self.options.scope  # the keyword overrides the options (tests)
        if scope not in ("epoch", "bank"):
            raise ValueError(f"scope must be 'epoch' or 'bank', got {scope!r}")
        self.scope = scope
        self.bank = SimilarityBank(self.options.bank_size)
        self.register_buffer("threshold", torch.tensor(float("nan")))
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))
        self.eliminated: list[dict[str, float | int]] = []  # every elimination, all epochs
        self._epoch_eliminated = 0
        self._epoch_pairs = 0

    # ------------------------------------------------------------------ EBA schedule
    @property
    def active(self) -> bool:
        """Whether eliminations apply in the current epoch."""
        return bool(self.options.eba and int(self.epoch) >= self.options.drop_epoch and torch.isfinite(self.threshold))

    def on_epoch_start(self, epoch: int) -> None:
        """Set the threshold for ``epoch`` from the bank, and open a new bank window."""
        self.epoch.fill_(int(epoch))
        self._epoch_eliminated = 0
        self._epoch_pairs = 0
        values = self.bank.since_mark() if self.scope == "epoch" else self.bank.latest(len(self.bank))
        if self.options.eba and epoch >= self.options.drop_epoch and values.numel() > 0:
            self.threshold.fill_(quantile_threshold(values, self.options.drop_ratio))
        else:
            self.threshold.fill_(float("nan"))
        self.bank.mark()

    def keep_rows(self, positive: torch.Tensor) -> torch.Tensor | None:
        """``bool [B]`` of the anchors kept (``None``: all), given the positive cosines ``[B]``."""
        if not self.active:
            return None
        return positive > self.threshold.to(positive.dtype)

    # ------------------------------------------------------------------ loss
    def forward(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        image_features = outputs["image_features"]  # [B, D]
        text_features = outputs["text_features"]  # [B, D]
        scale = outputs.get("logit_scale", 1.0 / self.options.temperature)
        size = image_features.shape[0]
        mask = same_image_mask(batch.get("image_ids"), size, image_features.device)  # [B, B]

        positive = (image_features.detach().float() * text_features.detach().float()).sum(dim=-1)  # [B]
        keep = self.keep_rows(positive) if self.options.eba else None
        rows = None
        if keep is not None:
            rows = keep.nonzero().squeeze(1)  # [B - M]
            self._record(~keep, positive, batch)
        if self.options.eba and self.training:
            self.bank.push(positive)
        self._epoch_pairs += size

        global_logits = scale * image_features @ text_features.T  # [B, B] image rows, text columns
        terms = {"global_infonce": self._infonce(global_logits, mask, rows)}
        if self.options.local and "image_tokens" in outputs:
            local = local_similarity(
                outputs["image_tokens"], outputs["text_tokens"], outputs["text_mask"].sum(dim=1),
                normalize=self.options.local_normalize,
            )  # [B, B]
            terms["local_infonce"] = self._infonce(scale * local, mask, rows)
        if self.options.ker and "mlm_logits" in outputs:
            logits, targets = outputs["mlm_logits"].float(), outputs["mlm_targets"]  # [M, V], [M]
            mlm = F.cross_entropy(logits, targets) if targets.numel() else logits.sum() * 0.0
            terms["mlm"] = self.options.mlm_weight * mlm
        return terms

    def _infonce(self, logits: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """i2t + t2i cross-entropy (each a mean over the kept anchor ``rows``; all columns stay).

        Summed as the paper and release (``direction_reduction="sum"``), or averaged.
        """
        both = masked_cross_entropy(logits, mask, rows) + masked_cross_entropy(logits.T, mask, rows)
        return both if self.options.direction_reduction == "sum" else 0.5 * both

    def _record(self, dropped: torch.Tensor, positive: torch.Tensor, batch: dict[str, Any]) -> None:
        indices = dropped.nonzero().squeeze(1).tolist()
        if not indices:
            return
        caption_ids = batch.get("caption_ids")
        image_ids = batch.get("image_ids")
        epoch = int(self.epoch)
        for i in indices:
            self.eliminated.append({
                "epoch": epoch,
                "caption_id": int(caption_ids[i]) if caption_ids is not None else -1,
                "image_id": int(image_ids[i]) if image_ids is not None else -1,
                "similarity": float(positive[i]),
            })
        self._epoch_eliminated += len(indices)

    # ------------------------------------------------------------------ reporting
    def epoch_summary(self) -> dict[str, float]:
        """Per-epoch EBA figures for the trainer's log (empty with EBA off)."""
        if not self.options.eba:
            return {}
        summary = {
            "eba_eliminated": float(self._epoch_eliminated),
            "eba_eliminated_total": float(len(self.eliminated)),
            "eba_eliminated_captions": float(len({r["caption_id"] for r in self.eliminated})),
            "eba_bank_entries": float(len(self.bank)),
        }
        if torch.isfinite(self.threshold):
            summary["eba_threshold"] = float(self.threshold)
        return summary

    @property
    def eliminated_caption_ids(self) -> list[int]:
        """Distinct training caption ids (indices into the train split's captions) ever eliminated."""
        return sorted({int(r["caption_id"]) for r in self.eliminated})

    def write_artifacts(self, folder: Path) -> list[Path]:
        """``eliminated.json``: which training pairs EBA dropped, per epoch."""
        return [self.export_eliminated(Path(folder) / "eliminated.json")]

    def export_eliminated(self, path: str | Path) -> Path:
        """Write the elimination records (e.g. ``models/<variant>/eliminated.json``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "drop_ratio": self.options.drop_ratio,
            "drop_epoch": self.options.drop_epoch,
            "scope": self.scope,
            "eliminated_caption_ids": self.eliminated_caption_ids,
            "per_epoch": _count_by_epoch(self.eliminated),
            "records": self.eliminated,
        }
        path.write_text(json.dumps(payload, indent=2) + "\n")
        return path

    # the records are Python objects: they travel in state_dict as "extra state"
    def get_extra_state(self) -> dict[str, Any]:
        return {"eliminated": [dict(r) for r in self.eliminated], "epoch_eliminated": self._epoch_eliminated,
                "epoch_pairs": self._epoch_pairs}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.eliminated = [dict(r) for r in state.get("eliminated", [])]
        self._epoch_eliminated = int(state.get("epoch_eliminated", 0))
        self._epoch_pairs = int(state.get("epoch_pairs", 0))


def _count_by_epoch(records: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[str(record["epoch"])] = counts.get(str(record["epoch"]), 0) + 1
    return counts


# ---------------------------------------------------------------------------------------
# Diagnostics: how well does EBA find the weak captions planted in the synthetic benchmark?


def records_from_checkpoint(path: str | Path) -> list[dict[str, Any]]:
    """The elimination records stored with a training checkpoint's loss state."""
    state = torch.load(Path(path), map_location="cpu", weights_only=False)
    return list(state.get("loss_state", {}).get("_extra_state", {}).get("eliminated", []))


def train_caption_rows(manifest: Any, *, datasets: Any = (), languages: Any = ("en",)) -> Any:
    """Manifest rows of the train split in ``select_split`` order: row ``k`` is caption id ``k``."""
    rows = manifest[manifest["split"] == "train"]
    if datasets:
        rows = rows[rows["dataset"].isin(list(datasets))]
    if languages:
        rows = rows[rows["language"].isin(list(languages))]
    rows = rows.sort_values(["dataset", "image_id", "language", "caption_index"], kind="stable").reset_index(drop=True)
    split = select_split(manifest, "train", datasets=datasets, languages=languages)
    ids = [split.image_ids[i] for i in split.caption_image]
    if ids != rows["image_id"].tolist():  # the caption ids would not mean what we think
        raise RuntimeError("train caption order differs from rsitr.data.manifest.select_split")
    return rows


def elimination_precision(
    records: list[dict[str, Any]],
    manifest: Any,
    weak_captions: list[dict[str, Any]],
    *,
    datasets: Any = (),
    languages: Any = ("en",),
) -> dict[str, Any]:
    """Precision/recall of EBA's eliminated training pairs against planted weak captions.

    ``weak_captions``: ``ground_truth.json["weak_captions"]`` (dataset, filename,
    caption_index); a caption is identified by (dataset, image key, caption index), in any
    language (an Arabic translation of a planted caption is planted too).
    """
    rows = train_caption_rows(manifest, datasets=datasets, languages=languages)
    keys = list(zip(rows["dataset"], rows["image_key"], rows["caption_index"].astype(int)))
    planted = {(w["dataset"], w["filename"], int(w["caption_index"])) for w in weak_captions}
    planted_ids = {k for k, key in enumerate(keys) if key in planted}
    events = [int(r["caption_id"]) for r in records]
    distinct = set(events)
    per_epoch: dict[str, dict[str, float]] = {}
    for record in records:
        entry = per_epoch.setdefault(str(record["epoch"]), {"eliminated": 0, "planted": 0})
        entry["eliminated"] += 1
        entry["planted"] += int(int(record["caption_id"]) in planted_ids)
    for entry in per_epoch.values():
        entry["precision"] = entry["planted"] / max(1, entry["eliminated"])
    hits = distinct & planted_ids
    return {
        "train_captions": len(keys),
        "planted_in_train": len(planted_ids),
        "planted_rate": len(planted_ids) / max(1, len(keys)),
        "eliminations": len(events),
        "eliminated_captions": len(distinct),
        "precision_events": sum(e in planted_ids for e in events) / max(1, len(events)),
        "precision_captions": len(hits) / max(1, len(distinct)),
        "recall_captions": len(hits) / max(1, len(planted_ids)),
        "per_epoch": per_epoch,
        "eliminated": [
            {"caption_id": k, "dataset": keys[k][0], "image_key": keys[k][1], "caption_index": keys[k][2],
             "planted": k in planted_ids, "caption": str(rows["caption"].iloc[k])}
            for k in sorted(distinct)
        ],
    }
