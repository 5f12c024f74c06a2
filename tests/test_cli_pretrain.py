"""``rsitr synth-corpus`` and ``rsitr pretrain`` from the command line (in-process, tiny sizes)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from rsitr.cli import main
from toy_data import TEST_ARCH

REPO = Path(__file__).resolve().parents[1]


def test_synth_corpus_then_pretrain_without_tracking(tmp_path: Path, capsys) -> None:
    out = tmp_path / "corpus"
    common = ["--params", str(REPO / "params.yaml")]
    assert main(["synth-corpus", *common, "--out", str(out), "--images", "6", "--seed", "2",
                 "--set", "synth_corpus.shard_size=4", "--set", "synth_corpus.workers=1",
                 "--set", "synth_corpus.image_size=[32,40]"]) == 0
    with open(out / "corpus.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and (out / "shards" / "corpus-000001.tar").is_file()
    settings = ["--set", f"paths.models={tmp_path / 'models'}", "--set", f"pretrain.corpus={out / 'shards'}",
                "--set", "pretrain.batch_size=3", "--set", "pretrain.device=cpu", "--set", "pretrain.warmup_steps=0",
                "--set", f"model.arch={TEST_ARCH}"]  # the tests' micro architecture
    assert main(["pretrain", *common, "--no-track", *settings]) == 0
    state = torch.load(tmp_path / "models" / "foundation" / "foundation.pt", weights_only=True)
    assert "logit_scale" in state and "visual.conv1.weight" in state
    assert '"steps": 2' in capsys.readouterr().out
    assert main(["pretrain", *common, "--no-track", *settings, "--set", "pretrain.batch_size=7"]) == 2  # > corpus
