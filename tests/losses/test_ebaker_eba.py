"""EBAKER's Eliminate-Before-Align: bank, quantile threshold, row elimination, records, checkpointing."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from rsitr.config.schema import EbakerOptions
from rsitr.losses.ebaker import EbakerLoss, SimilarityBank, quantile_threshold

SCALE = 20.0


def _loss(**changes) -> EbakerLoss:
    options = replace(EbakerOptions(), **{"local": False, "ker": False, "bank_size": 64, **changes})
    return EbakerLoss(options=options)


def _outputs(size: int, dim: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image_features": F.normalize(torch.randn(size, dim, generator=g), dim=-1),
        "text_features": F.normalize(torch.randn(size, dim, generator=g), dim=-1),
        "logit_scale": torch.tensor(SCALE),
    }


def _manual_infonce(logits: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """Per-row cross-entropy written out: kept anchors only, every column in the softmax;
    the two directions SUMMED (EBAKER Eq. 13, the released CLIPLoss)."""
    def direction(matrix: torch.Tensor) -> torch.Tensor:
        losses = [torch.logsumexp(matrix[r], dim=0) - matrix[r, r] for r in rows]
        return torch.stack(losses).mean()
    return direction(logits) + direction(logits.T)


def test_bank_is_a_fifo_with_counters():
    bank = SimilarityBank(5)
    bank.push(torch.arange(3.0))
    assert len(bank) == 3 and bank.latest(3).tolist() == [0, 1, 2]
    bank.mark()
    bank.push(torch.arange(3.0, 8.0))
    assert len(bank) == 5 and bank.latest(5).tolist() == [3, 4, 5, 6, 7]
    assert bank.since_mark().tolist() == [3, 4, 5, 6, 7]
    bank.push(torch.arange(10.0, 22.0))  # more than the capacity at once: the newest survive
    assert bank.latest(5).tolist() == [17, 18, 19, 20, 21] and int(bank.written) == 20


def test_threshold_is_the_drop_ratio_quantile_of_the_last_epoch():
    loss = _loss(drop_ratio=0.1, drop_epoch=1, bank_size=1000, scope="epoch")
    loss.on_epoch_start(0)
    values = torch.randperm(50).float() / 50  # 0.00 .. 0.98
    loss.bank.push(values)
    assert not torch.isfinite(loss.threshold)  # nothing is eliminated before the drop epoch
    loss.on_epoch_start(1)
    expected = float(torch.sort(values).values[int(0.1 * 49)])  # lower interpolation: an observed value
    assert float(loss.threshold) == pytest.approx(expected) == pytest.approx(quantile_threshold(values, 0.1))
    assert float((values <= loss.threshold).float().mean()) == pytest.approx(0.1)
    # epoch scope: epoch 1's own values set epoch 2's threshold, epoch 0's are ignored
    loss.bank.push(torch.full((10,), 0.9))
    loss.on_epoch_start(2)
    assert float(loss.threshold) == pytest.approx(0.9)


def test_whole_bank_scope_uses_the_fifo():
    loss = EbakerLoss(options=replace(EbakerOptions(), bank_size=30, drop_ratio=0.0, drop_epoch=0), scope="bank")
    loss.on_epoch_start(0)
    loss.bank.push(torch.linspace(0, 1, 40))  # the 10 oldest fall out
    loss.on_epoch_start(1)
    assert float(loss.threshold) == pytest.approx(float(torch.linspace(0, 1, 40)[10]))


def test_eliminated_rows_leave_anchors_but_stay_negatives():
    outputs = _outputs(6)
    positive = (outputs["image_features"] * outputs["text_features"]).sum(-1)
    loss = _loss(drop_ratio=0.5, drop_epoch=1)
    loss.on_epoch_start(0)
    loss.bank.push(positive)
    loss.on_epoch_start(1)
    threshold = float(loss.threshold)
    kept = [i for i in range(6) if float(positive[i]) > threshold]
    dropped = [i for i in range(6) if i not in kept]
    assert 0 < len(dropped) < 6 and max(float(positive[i]) for i in dropped) == pytest.approx(threshold)

    batch = {"image_ids": torch.arange(100, 106), "caption_ids": torch.arange(200, 206)}
    terms = loss(outputs, batch)
    logits = SCALE * outputs["image_features"] @ outputs["text_features"].T
    torch.testing.assert_close(terms["global_infonce"], _manual_infonce(logits, kept))
    # removing the eliminated pairs from the batch altogether would give a different loss: they are negatives
    sub = torch.tensor(kept)
    assert not torch.allclose(terms["global_infonce"], _manual_infonce(logits[sub][:, sub], list(range(len(kept)))))
    # records: which training pairs were eliminated, in which epoch, at what similarity
    assert [r["caption_id"] for r in loss.eliminated] == [200 + i for i in dropped]
    assert [r["image_id"] for r in loss.eliminated] == [100 + i for i in dropped]
    assert all(r["epoch"] == 1 for r in loss.eliminated)
    summary = loss.epoch_summary()
    assert summary["eba_eliminated"] == len(dropped) and summary["eba_threshold"] == pytest.approx(threshold)


def test_local_infonce_loses_the_same_rows():
    g = torch.Generator().manual_seed(3)
    outputs = _outputs(5, dim=4, seed=3)
    mask = torch.ones(5, 3, dtype=torch.bool)
    outputs.update({
        "image_tokens": F.normalize(torch.randn(5, 2, 4, generator=g), dim=-1),
        "text_tokens": F.normalize(torch.randn(5, 3, 4, generator=g), dim=-1),
        "text_mask": mask,
    })
    positive = (outputs["image_features"] * outputs["text_features"]).sum(-1)
    loss = _loss(local=True, drop_ratio=0.4, drop_epoch=0)
    loss.bank.push(positive)
    loss.on_epoch_start(0)
    kept = [i for i in range(5) if float(positive[i]) > float(loss.threshold)]
    terms = loss(outputs, {})
    from rsitr.models.local_alignment import local_similarity

    local = local_similarity(outputs["image_tokens"], outputs["text_tokens"], mask.sum(1))
    torch.testing.assert_close(terms["local_infonce"], _manual_infonce(SCALE * local, kept))
    assert set(terms) == {"global_infonce", "local_infonce"}


def test_no_elimination_before_drop_epoch_or_with_eba_off():
    outputs = _outputs(4)
    for loss in (_loss(drop_epoch=3), _loss(eba=False, drop_epoch=0)):
        loss.on_epoch_start(0)
        loss.bank.push(torch.linspace(-1, 1, 20))
        loss.on_epoch_start(1 if loss.options.eba else 0)
        logits = SCALE * outputs["image_features"] @ outputs["text_features"].T
        torch.testing.assert_close(loss(outputs, {})["global_infonce"], _manual_infonce(logits, list(range(4))))
        assert loss.eliminated == []


def test_every_training_pair_is_recorded_in_the_bank():
    loss = _loss()
    loss.on_epoch_start(0)
    outputs = _outputs(7)
    loss(outputs, {})
    positive = (outputs["image_features"] * outputs["text_features"]).sum(-1)
    torch.testing.assert_close(loss.bank.latest(7), positive)


def test_state_dict_round_trip_keeps_bank_threshold_and_records(tmp_path):
    loss = _loss(drop_ratio=0.5, drop_epoch=1)
    loss.on_epoch_start(0)
    loss.bank.push(torch.linspace(-0.5, 0.5, 11))
    loss.on_epoch_start(1)
    loss(_outputs(8, seed=4), {"caption_ids": torch.arange(8), "image_ids": torch.arange(8)})
    assert loss.eliminated

    path = tmp_path / "loss.pt"
    torch.save(loss.state_dict(), path)
    restored = _loss(drop_ratio=0.5, drop_epoch=1)
    restored.load_state_dict(torch.load(path, weights_only=False))
    assert torch.equal(restored.bank.values, loss.bank.values)
    assert int(restored.bank.written) == int(loss.bank.written) and int(restored.bank.epoch_mark) == int(loss.bank.epoch_mark)
    assert float(restored.threshold) == float(loss.threshold) and int(restored.epoch) == 1
    assert restored.eliminated == loss.eliminated
    assert restored.epoch_summary() == loss.epoch_summary()

    exported = json.loads(restored.export_eliminated(tmp_path / "eliminated.json").read_text())
    assert exported["eliminated_caption_ids"] == restored.eliminated_caption_ids
    assert exported["per_epoch"] == {"1": len(loss.eliminated)}


def test_mlm_term_is_weighted_cross_entropy_on_masked_positions():
    loss = _loss(ker=True, mlm_weight=0.5, eba=False)
    outputs = _outputs(3)
    logits = torch.randn(4, 11)
    targets = torch.tensor([1, 5, 7, 10])
    outputs.update({"mlm_logits": logits, "mlm_targets": targets})
    terms = loss(outputs, {})
    torch.testing.assert_close(terms["mlm"], 0.5 * F.cross_entropy(logits, targets))
    outputs.update({"mlm_logits": torch.zeros(0, 11), "mlm_targets": torch.zeros(0, dtype=torch.long)})
    assert float(loss(outputs, {})["mlm"]) == 0.0


def test_elimination_precision_maps_caption_ids_through_the_train_split():
    import pandas as pd

    from rsitr.losses.ebaker import elimination_precision

    rows = []
    for dataset in ("synth_b", "synth_a"):  # deliberately not in sorted order
        for image in ("y.jpg", "x.jpg"):
            for language in ("en", "ar"):
                for index in range(2):
                    rows.append({"dataset": dataset, "image_id": f"{dataset}/{image}", "image_key": image,
                                 "image_path": f"/i/{dataset}/{image}", "caption": f"{dataset} {image} {index}",
                                 "language": language, "split": "train", "caption_index": index})
    rows.append({**rows[0], "split": "test"})
    manifest = pd.DataFrame(rows)
    weak = [{"dataset": "synth_a", "filename": "y.jpg", "caption_index": 1, "split": "train"},
            {"dataset": "synth_b", "filename": "x.jpg", "caption_index": 0, "split": "train"}]
    # English train order (select_split): a/x0 a/x1 a/y0 a/y1 b/x0 b/x1 b/y0 b/y1
    records = [{"epoch": 2, "caption_id": 3}, {"epoch": 3, "caption_id": 3}, {"epoch": 3, "caption_id": 0}]
    report = elimination_precision(records, manifest, weak)
    assert report["train_captions"] == 8 and report["planted_in_train"] == 2
    assert report["precision_events"] == pytest.approx(2 / 3)
    assert report["precision_captions"] == pytest.approx(1 / 2) and report["recall_captions"] == pytest.approx(1 / 2)
    assert report["per_epoch"]["2"] == {"eliminated": 1, "planted": 1, "precision": 1.0}
    assert [(e["dataset"], e["image_key"], e["caption_index"], e["planted"]) for e in report["eliminated"]] == [
        ("synth_a", "x.jpg", 0, False), ("synth_a", "y.jpg", 1, True)]
