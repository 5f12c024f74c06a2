"""Continual CLIP pretraining: ClipLoss semantics, CSV = WebDataset, exact mid-epoch resume, foundation file."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from rsitr.config import ModelParams, PretrainParams
from rsitr.data.corpus import CsvCorpus, WebDatasetCorpus
from rsitr.data.synth_corpus import CorpusOptions, generate_corpus
from rsitr.losses.infonce import symmetric_infonce
from rsitr.models.checkpoints import read_state_dict
from rsitr.models.factory import build_clip
from rsitr.training.pretrain import MAX_LOGIT_SCALE, PretrainHooks, PretrainState, clip_loss, count_samples, pretrain
from toy_data import TEST_ARCH

SETTINGS = PretrainParams(batch_size=8, lr=2e-3, warmup_steps=1, shuffle_buffer=6, device="cpu", log_every=1,
                          checkpoint_every=2, epochs=1)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    generate_corpus(out, 16, seed=3, options=CorpusOptions(image_size=(32, 48), shard_size=10), progress=False)
    return out


def _run(corpus, out: Path, settings: PretrainParams = SETTINGS, **kwargs):
    bundle = build_clip(ModelParams(arch=TEST_ARCH), seed=0)
    return pretrain(bundle, corpus, settings, out, run_key="k", **kwargs)


def test_clip_loss_is_symmetric_infonce_with_the_learnable_scale() -> None:
    torch.manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)

    class Towers(torch.nn.Module):
        logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

        def encode_image(self, x: torch.Tensor, normalize: bool = False) -> torch.Tensor:
            return x

        encode_text = encode_image

    from open_clip.loss import ClipLoss

    loss = clip_loss(Towers(), ClipLoss(), image, text)
    assert torch.allclose(loss, symmetric_infonce(image, text, 1 / 0.07), atol=1e-6)
    assert not torch.allclose(loss, symmetric_infonce(image, text, 1.0), atol=1e-3)


def test_csv_and_webdataset_corpora_give_identical_losses(corpus_dir: Path, tmp_path: Path) -> None:
    from_csv = _run(CsvCorpus(corpus_dir / "corpus.csv"), tmp_path / "csv")
    from_tar = _run(WebDatasetCorpus(corpus_dir / "shards"), tmp_path / "tar")
    assert from_csv.samples_per_epoch == from_tar.samples_per_epoch == 16
    assert len(from_csv.losses) == 2 and from_csv.losses == from_tar.losses
    assert 0 < from_csv.logit_scale <= math.exp(MAX_LOGIT_SCALE) + 1e-3


class Killed(Exception):
    pass


def test_killed_mid_epoch_resumes_to_the_uninterrupted_weights(corpus_dir: Path, tmp_path: Path) -> None:
    # 2 steps per epoch, 2 epochs; checkpoints at step 2 (epoch end) and 3 (mid-epoch); killed after step 4,
    # before its epoch-end checkpoint, so step 4 is lost and trained again
    settings = dataclasses.replace(SETTINGS, epochs=2, checkpoint_every=3)
    corpus = CsvCorpus(corpus_dir / "corpus.csv")
    whole = _run(corpus, tmp_path / "whole", settings)

    def kill_after_step_4(state: PretrainState) -> None:
        if state.step == 4:
            raise Killed
    with pytest.raises(Killed):
        _run(corpus, tmp_path / "cut", settings, hooks=PretrainHooks(on_step=kill_after_step_4))
    resumed = _run(corpus, tmp_path / "cut", settings, resume=True)

    assert resumed.resumed_from_step == 3 and resumed.samples == 8  # mid-epoch 2: one of its two batches seen
    assert resumed.steps == whole.steps == 4 and resumed.losses == whole.losses
    expected, got = read_state_dict(whole.checkpoint), read_state_dict(resumed.checkpoint)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    fresh = build_clip(ModelParams(arch=TEST_ARCH), seed=0).clip.state_dict()
    assert not all(torch.equal(fresh[k], got[k]) for k in fresh)  # it trained


def test_resume_ignores_a_checkpoint_of_another_configuration(corpus_dir: Path, tmp_path: Path) -> None:
    corpus = CsvCorpus(corpus_dir / "corpus.csv")
    _run(corpus, tmp_path, SETTINGS)
    bundle = build_clip(ModelParams(arch=TEST_ARCH), seed=0)
    again = pretrain(bundle, corpus, SETTINGS, tmp_path, run_key="other", resume=True)
    assert again.resumed_from_step == 0 and again.steps == 2


def test_count_samples_streams_webdataset_and_reads_csv_rows(corpus_dir: Path) -> None:
    assert count_samples(CsvCorpus(corpus_dir / "corpus.csv")) == 16
    assert count_samples(WebDatasetCorpus(corpus_dir / "shards")) == 16
