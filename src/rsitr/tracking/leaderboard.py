"""The leaderboard: measured runs from MLflow beside published (reported) figures.

Measured rows come from MLflow (``search_runs`` in ``tracking.experiment``), so runs
started by ``dvc repro`` and by the Prefect flows compare alike: by default the latest
FINISHED run per ``variant`` tag that has test metrics ``test.<set>.<lang>.<metric>``.
One row per (test set, language, variant); a run that also logged coarse-to-fine metrics
``test.<set>.<lang>.c2f.<metric>`` adds a ``<variant> + c2f`` row. The ``twin_acc`` column
(``test.<set>.<lang>.twin_acc``, the synthetic benchmark's twin diagnostic,
``rsitr.retrieval.twins``) is blank where a run did not log it (real datasets, c2f rows).
``optimizer_steps`` and ``train_seconds`` are the variant's training run's own (a c2f row shows
its variant's); reported rows leave them blank.

Reported rows come from ``reference_results.csv`` (shipped in this package, one citation
per row). They are labelled ``reported`` and always sit in their own tables, never ranked
with measured rows. They appear inside a test set's section only when that test set IS a
real benchmark (its name is ``rsicd``, ``rsitmd``, ``ucm`` or ``nwpu``, alone or followed
by ``_``/``-`` and a suffix, case-insensitive: ``rsicd``, ``RSICD_precomp``); rsitr's
synthetic sets (``synth_rsicd``...) are not, so the figures of benchmarks rsitr did not
measure go to a final "Published results" section, marked as not comparable.

Uncertainty: each measured row's per-query ranks (the run's ``ranks/[c2f/]<set>.<lang>.npz``
artifact, ``rsitr.retrieval.ranks``) give ``mR_ci_low`` / ``mR_ci_high``, a seeded paired
bootstrap over the test images (``report.*``; ``rsitr.tracking.uncertainty``), logged back to
the run as ``test.<set>.<lang>[.c2f].mR_ci_low`` / ``_high``; a row without stored ranks keeps
blank CIs. The same samples give the claims table (``rsitr.tracking.claims``), written as
``claims.csv`` and a section of the markdown. A "Validation curves" section lists each measured
variant's val mR after each data pass (its run's ``val_mR`` history, ``rsitr.tracking.curves``). Tables are
rendered by ``DataFrame.to_markdown``.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from rsitr.config import ReportParams, RsitrParams
from rsitr.config import METHODS
from rsitr.retrieval.ranks import QueryRanks, load_ranks
from rsitr.tracking.claims import COLUMNS as CLAIM_COLUMNS, claims_table
from rsitr.tracking.curves import curve_from_history, curve_lines
from rsitr.tracking.mlflow_tracking import ensure_reachable, tracking_uri
from rsitr.tracking.uncertainty import RowSamples, row_samples

log = logging.getLogger(__name__)

MEASURED = "measured"
REPORTED = "reported"
RECALLS = ("i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10", "mR")
TWIN = "twin_acc"  # percent of twin decisions won (rsitr.retrieval.twins); measured rows only
EBA = "eba_precision"  # percent of EBA's eliminated training captions that were planted weak ones (rsitr.app.steps.eba)
FINE_SHARE = "fine_share"  # c2f rows: percent of the image-caption pairs the fine scorer re-scored
CI = ("mR_ci_low", "mR_ci_high")  # paired bootstrap interval of mR over test images (rsitr.tracking.uncertainty)
BENCHMARKS = ("rsicd", "rsitmd", "ucm", "nwpu")
GROUP = ("arch", "pretrained", "data_version")  # rows of different groups are never ranked together
COLUMNS = (
    "label", *GROUP, "test_set", "language", "benchmark", "model", "method", *RECALLS, TWIN, EBA, FINE_SHARE, *CI,
    "trainable_params", "total_params", "optimizer_steps", "train_seconds", "inference_s", "run_id", "backbone",
    "train_data", "source", "citation",
)
_METRIC_KEY = re.compile(r"^test\.(?P<set>.+)\.(?P<lang>[a-z]{2,3}(?:[-_][A-Za-z]+)?)\.(?:(?P<c2f>c2f)\.)?(?P<metric>\w+)$")
_BENCHMARK_NAME = re.compile(rf"^({'|'.join(BENCHMARKS)})(?:[_-].*)?$", re.IGNORECASE)


def benchmark_of(test_set: str) -> str | None:
    """The real benchmark a test set name denotes (``RSICD``...), or None (synthetic, custom)."""
    match = _BENCHMARK_NAME.match(test_set)
    return match.group(1).upper() if match else None


# ----------------------------------------------------------------------------- measured rows


def _trains(method: str) -> bool:
    spec = METHODS.get(method)
    return spec is None or spec.loss is not None


def _rows_of_run(run: Any) -> list[dict[str, Any]]:
    """One row per (test set, language[, c2f]) the run measured."""
    tags, metrics = run.data.tags, run.data.metrics
    variant, method = tags.get("variant", run.info.run_name), tags.get("method", "")
    groups: dict[tuple[str, str, bool], dict[str, float]] = {}
    for key, value in metrics.items():
        match = _METRIC_KEY.match(key)
        if match:
            group = groups.setdefault((match["set"], match["lang"], bool(match["c2f"])), {})
            group[match["metric"]] = value
    rows = []
    for (test_set, language, c2f), values in sorted(groups.items()):
        if "mR" not in values:
            continue
        prefix = "c2f." if c2f else ""
        trainable = metrics.get(f"{prefix}trainable_params", metrics.get("trainable_params"))
        if not c2f and not _trains(method):
            trainable = 0  # an evaluation-only method trains nothing, whatever the model's requires_grad says
        rows.append({
            "label": MEASURED,
            **run_group(run),
            "test_set": test_set,
            "language": language,
            "benchmark": benchmark_of(test_set) or "",
            "model": f"{variant} + c2f" if c2f else variant,
            "method": method,
            **{k: values.get(k) for k in RECALLS},
            TWIN: values.get(TWIN),
            EBA: None if c2f else metrics.get(EBA),
            FINE_SHARE: 100.0 * values["fine_pair_share"] if c2f and "fine_pair_share" in values else None,
            "trainable_params": trainable,
            "total_params": metrics.get(f"{prefix}total_params", metrics.get("total_params")),
            "optimizer_steps": metrics.get("optimizer_steps"),  # a c2f row shows its variant's training
            "train_seconds": metrics.get(f"{prefix}train_seconds", metrics.get("train_seconds")),
            "inference_s": values.get("total_s"),
            "run_id": run.info.run_id,
        })
    return rows


def run_group(run: Any) -> dict[str, str]:
    """The comparability group of a run: architecture, pretrained weights, data version."""
    tags = run.data.tags
    return {"arch": tags.get("arch", "unknown"), "pretrained": tags.get("pretrained", "none"),
            "data_version": tags.get("data.version", "unknown")}


def _search_runs(client: Any, experiment_id: str) -> Iterable[Any]:
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string="attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"], max_results=1000, page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def measured_rows(params: RsitrParams, *, all_runs: bool = False, variants: Iterable[str] = ()) -> pd.DataFrame:
    """Measured rows from MLflow: per comparability group (arch, pretrained, data version), the
    latest finished, evaluated run of each variant (or every run)."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(params)
    ensure_reachable(uri, params.tracking.connect_timeout_s)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(params.tracking.experiment)
    wanted = set(variants)
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    if experiment is not None:
        for run in _search_runs(client, experiment.experiment_id):
            variant = run.data.tags.get("variant")
            key = (variant, *run_group(run).values())
            if not variant or (wanted and variant not in wanted) or (key in seen and not all_runs):
                continue
            run_rows = _rows_of_run(run)
            if run_rows:
                seen.add(key)
                rows += run_rows
    return pd.DataFrame(rows, columns=list(COLUMNS))


# ----------------------------------------------------------------------------- uncertainty


def _is_c2f(model: str) -> bool:
    return str(model).endswith(" + c2f")


def ranks_artifact(test_set: str, language: str, c2f: bool) -> str:
    """The run artifact holding a row's per-query ranks (written by the evaluate and c2f steps)."""
    return f"ranks/{'c2f/' if c2f else ''}{test_set}.{language}.npz"


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def fetch_ranks(client: Any, measured: pd.DataFrame) -> dict[Any, QueryRanks]:
    """Each measured row's stored ranks (keyed by the DataFrame index); rows without them are left out."""
    out: dict[Any, QueryRanks] = {}
    quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # one bar per file would flood the step's log
    with tempfile.TemporaryDirectory(prefix="rsitr-ranks-") as folder, _environment(quiet):
        for index, row in measured.iterrows():
            artifact = ranks_artifact(row["test_set"], row["language"], _is_c2f(row["model"]))
            try:
                out[index] = load_ranks(client.download_artifacts(str(row["run_id"]), artifact, folder))
            except Exception as error:  # noqa: BLE001 - an older run without ranks: no CI, not a failure
                log.info("%s on %s [%s]: no stored ranks (%s): no CI", row["model"], row["test_set"], row["language"],
                         type(error).__name__)
    return out


def attach_intervals(measured: pd.DataFrame, samples: dict[Any, RowSamples], settings: ReportParams) -> pd.DataFrame:
    """``measured`` with ``mR_ci_low`` / ``mR_ci_high`` filled where a row has samples."""
    measured = measured.copy()
    for index, row_sample in samples.items():
        interval = row_sample.mr_interval(settings.confidence)
        measured.loc[index, list(CI)] = [interval.low, interval.high]
    return measured


def log_intervals(client: Any, measured: pd.DataFrame) -> None:
    """Log each row's CI to its run: ``test.<set>.<lang>[.c2f].mR_ci_low`` / ``_high`` (no '@' in names)."""
    from mlflow.entities import Metric
    import time

    now = int(time.time() * 1000)
    for run_id, rows in measured.dropna(subset=list(CI)).groupby("run_id"):
        metrics = [Metric(f"test.{r.test_set}.{r.language}.{'c2f.' if _is_c2f(r.model) else ''}{name}",
                          float(getattr(r, name)), now, 0) for r in rows.itertuples() for name in CI]
        client.log_batch(str(run_id), metrics=metrics)


def with_uncertainty(params: RsitrParams, measured: pd.DataFrame) -> tuple[pd.DataFrame, dict[Any, RowSamples]]:
    """The measured rows with their mR CIs (logged to MLflow too) and every row's bootstrap samples."""
    if measured.empty:
        return measured, {}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(params))
    samples = row_samples(measured, fetch_ranks(client, measured), params.report)
    measured = attach_intervals(measured, samples, params.report)
    log_intervals(client, measured)
    return measured, samples


# ----------------------------------------------------------------------------- validation curves


def fetch_curves(params: RsitrParams, measured: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each measured variant run's validation curve (its ``val_mR`` history), keyed ``<variant>  run <id>``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(params))
    runs = measured[~measured["model"].map(_is_c2f)].drop_duplicates("run_id")
    return {f"{row.model}  run {str(row.run_id)[:8]}":
            curve_from_history(client.get_metric_history(str(row.run_id), "val_mR"), row.optimizer_steps,
                               client.get_metric_history(str(row.run_id), "paper_epoch"))
            for row in runs.itertuples()}


# ----------------------------------------------------------------------------- reported rows


def reference_rows(path: str | Path | None = None) -> pd.DataFrame:
    """Published figures (``reference_results.csv``), labelled ``reported``, with citations."""
    if path is None:
        text = resources.files("rsitr.tracking").joinpath("reference_results.csv").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    rows = []
    for record in csv.DictReader(text.splitlines()):
        number = lambda key: float(record[key]) if record.get(key) else None  # noqa: E731
        rows.append({
            "label": REPORTED,
            "test_set": record["test_set"],
            "language": "en",
            "benchmark": record["test_set"].upper(),
            "model": record["method"],
            "method": "",
            **{k: number(k) for k in RECALLS},
            "trainable_params": number("trainable_params"),
            "backbone": record["backbone"],
            "train_data": record["train_data"],
            "source": record["source"],
            "citation": record["citation"],
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))


# ----------------------------------------------------------------------------- the table


@dataclass
class Leaderboard:
    """Measured tables per (test set, language), reported tables beside them."""

    measured: pd.DataFrame
    reported: pd.DataFrame
    claims: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(CLAIM_COLUMNS)))
    confidence: float = 0.95
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)  # fetch_curves

    def sections(self) -> list[tuple[tuple[str, ...], str, str, pd.DataFrame, pd.DataFrame]]:
        """(group, test_set, language, measured rows ranked by mR, reported rows of that benchmark)."""
        out = []
        for (*group, test_set, language), rows in self.measured.groupby([*GROUP, "test_set", "language"], sort=True):
            benchmark = benchmark_of(test_set)
            reported = self.reported[self.reported["benchmark"] == benchmark] if benchmark and language == "en" else \
                self.reported.iloc[0:0]
            out.append((tuple(group), test_set, language, rows.sort_values("mR", ascending=False, kind="stable"),
                        reported.sort_values("mR", ascending=False, kind="stable")))
        return out

    def unmatched_reported(self) -> pd.DataFrame:
        """Reported rows of benchmarks no measured test set is: the separate, non-comparable section."""
        measured = {benchmark_of(t) for t, lang in zip(self.measured["test_set"], self.measured["language"])
                    if lang == "en"}
        rows = self.reported[~self.reported["benchmark"].isin(measured - {None})]
        return rows.sort_values(["benchmark", "mR"], ascending=[True, False], kind="stable")

    def table(self) -> pd.DataFrame:
        """Every row, measured first, as written to the CSV (``test_set`` of an inline reported
        row is the measured set it sits beside; ``benchmark`` names the paper's test set)."""
        parts = []
        for _, test_set, language, measured, reported in self.sections():
            parts += [measured, reported.assign(test_set=test_set)]
        parts.append(self.unmatched_reported())
        frames = [p for p in parts if not p.empty]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))
        return table.astype({"optimizer_steps": "Int64"})  # whole steps in the CSV, blank for reported rows


def _number(value: Any, digits: int = 2) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.{digits}f}"


def _count(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    value = float(value)
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}K" if value >= 1e3 else f"{value:.0f}"


def _steps(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{int(value):,}"


def _duration(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    seconds = float(value)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds >= 1 or seconds == 0 else f"{seconds * 1000:.0f} ms"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A GitHub (pipe) table of already formatted cells, by ``DataFrame.to_markdown`` (tabulate)."""
    frame = pd.DataFrame([[cell.replace("|", "\\|") for cell in row] for row in rows], columns=header, dtype=object)
    return frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True).splitlines()


_RECALL_HEADER = ["i2t R@1", "i2t R@5", "i2t R@10", "t2i R@1", "t2i R@5", "t2i R@10", "mR"]


def _interval(low: Any, high: Any) -> str:
    return "" if low is None or high is None or pd.isna(low) or pd.isna(high) else f"[{low:.2f}, {high:.2f}]"


def _measured_lines(rows: pd.DataFrame, confidence: float) -> list[str]:
    header = ["label", "model", "method", *_RECALL_HEADER, f"mR {100 * confidence:g}% CI", "twin acc", "EBA precision",
              "fine-scored pairs", "trainable", "total", "steps", "train time", "inference", "run"]
    body = [[MEASURED, f"**{r.model}**", r.method or "", *[_number(getattr(r, k)) for k in RECALLS],
             _interval(getattr(r, CI[0], None), getattr(r, CI[1], None)), _number(getattr(r, TWIN)), _number(getattr(r, EBA)),
             _number(getattr(r, FINE_SHARE)),
             _count(r.trainable_params), _count(r.total_params), _steps(r.optimizer_steps), _duration(r.train_seconds),
             _duration(r.inference_s), f"`{str(r.run_id)[:8]}`"] for r in rows.itertuples()]
    return _markdown_table(header, body)


def _reported_lines(rows: pd.DataFrame, citations: dict[str, int]) -> list[str]:
    header = ["label", "model", "backbone", "train data", *_RECALL_HEADER, "trainable", "source"]
    body = [[REPORTED, r.model, r.backbone, r.train_data, *[_number(getattr(r, k)) for k in RECALLS],
             _count(r.trainable_params), f"{r.source} [{citations[r.citation]}]"] for r in rows.itertuples()]
    return _markdown_table(header, body)


def _signed(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):+.2f}"


def claims_lines(claims: pd.DataFrame, confidence: float) -> list[str]:
    """The "Claims" section: one row per paper claim and test set, with its verdict."""
    lines = ["## Claims", "",
             f"Each paper's claim as the difference of two measured rows (method - baseline, in points), with its "
             f"paired {100 * confidence:g}% bootstrap interval over the test images (twin pairs for twin accuracy). "
             "Verdict rule (docs/uncertainty.md): superiority is reproduced when the interval lies above 0 and not "
             "reproduced when it lies below the paper's effect (0 when unknown); non-inferiority is reproduced "
             "when it lies above -margin and not reproduced when below it; inconclusive otherwise.", ""]
    if claims.empty:
        return lines + ["No claim has both of its rows in this leaderboard.", ""]
    header = ["claim", "test set", "language", "method", "baseline", "measure", "paper effect", "measured",
              f"{100 * confidence:g}% CI", "verdict", "note"]
    body = [[r.claim, r.test_set, r.language, r.method, r.baseline, r.measure, _signed(r.paper_effect),
             _number(r.measured_effect) if r.measure == "trainable_share" else _signed(r.measured_effect),
             "" if r.measure == "trainable_share" else _interval(r.ci_low, r.ci_high), f"**{r.verdict}**", r.note]
            for r in claims.itertuples()]
    return lines + _markdown_table(header, body) + [""]


def render_markdown(board: Leaderboard, *, uri: str, experiment: str, all_runs: bool) -> str:
    citations = {c: i + 1 for i, c in enumerate(dict.fromkeys(board.reported["citation"]))}
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# rsitr leaderboard",
        "",
        f"Generated {when} from MLflow `{uri}`, experiment `{experiment}` "
        f"({'every finished run' if all_runs else 'latest finished run per variant'}), one section per "
        "architecture, pretrained weights and data version (the md5 of the processed manifest in dvc.lock): "
        "rows of different sections are never ranked together. "
        "Recall@K in %; mR = mean of the six recalls; steps = the optimizer steps of the variant's own training "
        "run (a variant started from another's checkpoint counts only its own; 0 for evaluation-only methods; a "
        "c2f row shows its variant's) and train time its wall-clock time, blank where not logged (reported rows); "
        "inference = encoding + scoring of the whole test set; "
        "twin acc = % of the synthetic benchmark's planted twin pairs (one attribute changed) told apart, mean of "
        "text-to-image and image-to-text (blank where no twins were measured); EBA precision = % of the captions "
        "EBAKER's Eliminate-Before-Align dropped that were planted weak captions; fine-scored pairs = % of the test "
        "set's image-caption pairs the c2f fine stage re-scored; mR CI = the paired bootstrap interval over the "
        "test images (docs/uncertainty.md), blank where the run stored no per-query ranks. "
        f"Rows labelled **{MEASURED}** were measured by rsitr; rows labelled *{REPORTED}* are copied from papers "
        "(sources below) and are never ranked together with measured rows.",
        "",
    ]
    sections = board.sections()
    if not sections:
        lines += ["No evaluated runs found in MLflow yet: run `dvc repro` (or the Prefect `benchmark` flow).", ""]
    current = None
    for group, test_set, language, measured, reported in sections:
        if group != current:
            arch, pretrained, data = group
            lines += [f"## {arch}, pretrained {pretrained}, data version {data[:12]}", ""]
            current = group
        lines += [f"### {test_set} [{language}]", ""] + _measured_lines(measured, board.confidence) + [""]
        if not reported.empty:
            lines += [f"Reported on {benchmark_of(test_set)} (papers' figures, same benchmark):", ""]
            lines += _reported_lines(reported, citations) + [""]
    lines += claims_lines(board.claims, board.confidence)
    if board.curves:
        lines += ["## Validation curves", "",
                  "Each measured variant's validation mR after every pass over the training captions "
                  "(`paper epoch reached: val mR`: a run is its paper's epochs x `train.budget`; * = the best pass, "
                  "whose checkpoint is evaluated), from its MLflow run's `val_mR` and `paper_epoch` history.", "",
                  "```text", *curve_lines(board.curves, indent=""), "```", ""]
    rest = board.unmatched_reported()
    if not rest.empty:
        lines += ["## Published results (reported, on the real benchmarks — not comparable to synthetic test sets)", "",
                  "The papers' figures on the real benchmarks (ViT-B-32 scale models, official test splits). rsitr did "
                  "not measure these benchmarks in this leaderboard; the synthetic test sets above are different data.",
                  ""]
        for benchmark, rows in rest.groupby("benchmark", sort=True):
            lines += [f"### {benchmark}", ""] + _reported_lines(rows, citations) + [""]
    if citations:
        lines += ["## Sources", ""] + [f"{i}. {c}" for c, i in citations.items()] + [""]
    return "\n".join(lines)


@dataclass(frozen=True)
class LeaderboardFiles:
    markdown: Path
    csv: Path
    measured_rows: int
    reported_rows: int
    models: tuple[str, ...]  # measured row names: variants and "<variant> + c2f"
    claims: Path | None = None  # claims.csv (rsitr.tracking.claims)
    claim_rows: int = 0


def write_leaderboard(params: RsitrParams, folder: str | Path, *, all_runs: bool = False,
                      variants: Iterable[str] = (), reference: str | Path | None = None) -> LeaderboardFiles:
    """Write ``<folder>/leaderboard.md``, ``leaderboard.csv`` and ``claims.csv``."""
    measured, samples = with_uncertainty(params, measured_rows(params, all_runs=all_runs, variants=variants))
    reported = reference_rows(reference)
    board = Leaderboard(measured, reported, claims_table(measured, samples, params.report, reported),
                        params.report.confidence, fetch_curves(params, measured) if not measured.empty else {})
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    markdown, table, claims = folder / "leaderboard.md", folder / "leaderboard.csv", folder / "claims.csv"
    markdown.write_text(render_markdown(board, uri=tracking_uri(params), experiment=params.tracking.experiment,
                                        all_runs=all_runs), encoding="utf-8")
    board.table().to_csv(table, index=False)
    board.claims.to_csv(claims, index=False)
    return LeaderboardFiles(markdown, table, len(board.measured), len(board.reported),
                            tuple(sorted(set(board.measured["model"]))), claims, len(board.claims))
