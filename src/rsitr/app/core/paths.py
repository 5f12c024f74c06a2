"""Every artifact path of an rsitr project, in one place.

The application layer alone knows where things live; library packages receive paths,
splits and models as arguments. Layout (relative to the ``paths`` section of params.yaml):

``data/`` (owned by DVC: ``dvc repro``)
    ``raw/<dataset>/`` inputs (``synth`` writes ``raw/synth``; real ones are ``dvc add``-ed),
    ``interim/manifest.parquet``, ``interim/rejected.csv``, ``interim/clusters.parquet``,
    ``processed/manifest.parquet`` (the data version), ``processed/removed.csv``.
``reports/data/`` (DVC metrics, committed)
    ``ingest.json``, ``dedup.json``, ``split.json``.
``models/`` (owned by the Prefect flows; git-ignored)
    ``keywords/keywords.txt`` (+ ``keywords_<lang>.txt``, ``keywords.json``, ``report.json``),
    ``<variant>/best.pt`` + ``run.json`` (the published model and the MLflow run + fingerprint
    that made it; both change only when a training finishes), ``staging/`` (the training in
    progress: ``last.pt``, ``best.pt``), ``train.json``, ``hash_heads.pt`` (coarse-to-fine),
    ``eliminated.json`` (EBA), ``.lock`` (one process per variant),
    ``ranks/[c2f/]<test_set>.<lang>.npz`` (per-query ranks of each evaluation, for the bootstrap).
    ``foundation/foundation.pt`` + ``run.json`` + ``pretrain.json`` (``rsitr pretrain``; ``staging/last.pt``).
``metrics/`` (written by the flows, committed; ``dvc metrics show`` reads them)
    ``<variant>/<test_set>[.<lang>].json``, ``c2f/<variant>/<test_set>[.<lang>].json``.
``reports/`` leaderboard (``leaderboard.md``/``.csv``) and visual retrieval reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rsitr.config import PathsParams, RsitrParams

KEYWORDS_DIR = "keywords"
FOUNDATION_DIR = "foundation"  # continual pretraining (``rsitr pretrain``)
RESERVED_VARIANT_NAMES = frozenset({KEYWORDS_DIR, "c2f", FOUNDATION_DIR})


@dataclass(frozen=True)
class ProjectPaths:
    """The artifact paths of one params file (each root read from ``paths`` when first used,
    so a DVC stage reads exactly the ``paths.*`` keys it declares)."""

    settings: PathsParams

    @classmethod
    def of(cls, params: RsitrParams) -> "ProjectPaths":
        return cls(params.paths)

    @property
    def data(self) -> Path:
        return Path(self.settings.data)

    @property
    def models(self) -> Path:
        return Path(self.settings.models)

    @property
    def metrics(self) -> Path:
        return Path(self.settings.metrics)

    @property
    def reports(self) -> Path:
        return Path(self.settings.reports)

    # ------------------------------------------------------------------ data (DVC)
    @property
    def interim(self) -> Path:
        return self.data / "interim"

    @property
    def processed(self) -> Path:
        return self.data / "processed"

    @property
    def ingest_manifest(self) -> Path:
        return self.interim / "manifest.parquet"

    @property
    def rejected(self) -> Path:
        return self.interim / "rejected.csv"

    @property
    def clusters(self) -> Path:
        return self.interim / "clusters.parquet"

    @property
    def manifest(self) -> Path:
        """The processed (split) manifest: its md5 is the data version."""
        return self.processed / "manifest.parquet"

    @property
    def removed(self) -> Path:
        return self.processed / "removed.csv"

    @property
    def data_reports(self) -> Path:
        return self.reports / "data"

    def data_report(self, stage: str) -> Path:
        return self.data_reports / f"{stage}.json"

    # ------------------------------------------------------------------ model work (Prefect)
    @property
    def keywords_dir(self) -> Path:
        return self.models / KEYWORDS_DIR

    @property
    def keywords(self) -> Path:
        return self.keywords_dir / "keywords.txt"

    def keywords_for(self, language: str) -> Path:
        return self.keywords_dir / f"keywords_{language}.txt"

    def variant_dir(self, variant: str) -> Path:
        return self.models / variant

    def staging_dir(self, variant: str) -> Path:
        """Where a training in progress writes (``last.pt``, its ``best.pt``); published at the end."""
        return self.variant_dir(variant) / "staging"

    def best_checkpoint(self, variant: str) -> Path:
        return self.variant_dir(variant) / "best.pt"

    def last_checkpoint(self, variant: str) -> Path:
        return self.staging_dir(variant) / "last.pt"

    def run_record(self, variant: str) -> Path:
        return self.variant_dir(variant) / "run.json"

    def active_record(self, variant: str) -> Path:
        return self.variant_dir(variant) / "active.json"

    def train_summary(self, variant: str) -> Path:
        return self.variant_dir(variant) / "train.json"

    def hash_heads(self, variant: str) -> Path:
        return self.variant_dir(variant) / "hash_heads.pt"

    def eliminated(self, variant: str) -> Path:
        return self.variant_dir(variant) / "eliminated.json"

    def eba_report(self, variant: str) -> Path:
        return self.variant_dir(variant) / "eba_report.json"

    def metrics_file(self, variant: str, test_set: str, language: str, *, c2f: bool = False) -> Path:
        """``metrics/[c2f/]<variant>/<test_set>.json`` (English) or ``<test_set>.<lang>.json``."""
        suffix = "" if language == "en" else f".{language}"
        folder = self.metrics / "c2f" / variant if c2f else self.metrics / variant
        return folder / f"{test_set}{suffix}.json"

    def ranks_file(self, variant: str, test_set: str, language: str, *, c2f: bool = False) -> Path:
        """``models/<variant>/ranks/[c2f/]<test_set>.<lang>.npz``: the evaluation's per-query ranks.

        Not under ``metrics/``: that folder is committed and read whole by ``dvc metrics``; the
        ranks are binary, change with every model, and travel as MLflow artifacts (``ranks/``)."""
        folder = self.variant_dir(variant) / "ranks"
        return (folder / "c2f" if c2f else folder) / f"{test_set}.{language}.npz"

    # ------------------------------------------------------------------ reports
    @property
    def leaderboard_dir(self) -> Path:
        return self.reports

    @property
    def claims(self) -> Path:
        """``reports/claims.csv``: the papers' claims with their paired bootstrap verdicts."""
        return self.reports / "claims.csv"

    def retrieval_report_dir(self, variant: str) -> Path:
        return self.reports / "retrieval" / variant

    # ------------------------------------------------------------------ foundation model (continual pretraining)
    @property
    def foundation_dir(self) -> Path:
        """``models/foundation/``: ``foundation.pt`` + ``run.json`` + ``pretrain.json``, ``staging/last.pt``."""
        return self.models / FOUNDATION_DIR

    @property
    def foundation_staging(self) -> Path:
        return self.foundation_dir / "staging"

    @property
    def foundation_checkpoint(self) -> Path:
        """The published foundation model: an open_clip state dict for ``model.pretrained``."""
        return self.foundation_dir / "foundation.pt"

    @property
    def foundation_record(self) -> Path:
        return self.foundation_dir / "run.json"

    @property
    def foundation_summary(self) -> Path:
        return self.foundation_dir / "pretrain.json"
