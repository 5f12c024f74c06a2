"""The typed shape of ``params.yaml``: one frozen dataclass per section.

``params.yaml`` is the single source of values; these classes give every value its
type and default, and reject anything else. Method-specific options live in one
dataclass per training method (named by its ``MethodSpec``, ``rsitr.config.methods``).

Faithful by default (``docs/methods.md``): the defaults of every method's options are its
paper's (or, where paper and released code disagree, the behaviour docs/methods.md names);
each rsitr improvement is a named option that a variant turns on in ``params.yaml``. These
classes' defaults are params.yaml's values (``tests/config/test_defaults.py`` checks every
one), so a section params.yaml omits behaves as if it were copied from params.yaml; a variant's
``options`` in params.yaml set only what differs on purpose from its paper's defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rsitr.config.methods import method_spec
from rsitr.errors import ConfigError, unknown_name

DATASET_FORMATS = ("precomp", "karpathy", "nwpu", "csv")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def at_least(section: Any, path: str, minimum: float, *names: str) -> None:
    """Each named field of ``section`` must be >= ``minimum`` (weights, steps, counts)."""
    for name in names:
        value = getattr(section, name)
        if value < minimum:
            raise ConfigError(f"{path}.{name}: expected a value >= {minimum:g}, got {value}")


@dataclass(frozen=True)
class SynthParams:
    """The embedded synthetic benchmark (``rsitr synth``)."""

    out: str = "data/raw/synth"
    images: int = 3200
    seed: int = 0
    image_size: tuple[int, int] = (64, 96)
    twin_rate: float = 0.1
    weak_caption_rate: float = 0.02
    near_duplicate_rate: float = 0.05
    karpathy_share: float = 0.3
    test_share: float = 0.45
    arabic: bool = True

    def validate(self, path: str) -> None:
        if self.images < 10:
            raise ConfigError(f"{path}.images: need at least 10 images, got {self.images}")
        low, high = self.image_size
        if not 16 <= low <= high:
            raise ConfigError(f"{path}.image_size: expected [min, max] with 16 <= min <= max, got {list(self.image_size)}")
        for name in ("twin_rate", "weak_caption_rate", "near_duplicate_rate", "karpathy_share", "test_share"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{path}.{name}: expected a fraction in [0, 1), got {value}")


@dataclass(frozen=True)
class DatasetParams:
    """One benchmark on disk: its reader format, annotation root and images folder."""

    name: str
    format: str
    root: str
    images: str | None = None
    language: str = "en"
    languages: tuple[str, ...] = ()  # extra parallel caption languages to read (e.g. ["ar"])
    evaluate: bool = True  # evaluate on its official test split when it has one

    def validate(self, path: str) -> None:
        if self.format not in DATASET_FORMATS:
            raise ConfigError(f"{path}.format: " + unknown_name("dataset format", self.format, DATASET_FORMATS))


@dataclass(frozen=True)
class IngestParams:
    strict: bool = False
    workers: int = 2


@dataclass(frozen=True)
class DedupParams:
    max_distance: int = 2
    workers: int = 2
    cache: str = ".cache/rsitr/phash.json"

    def validate(self, path: str) -> None:
        if not 0 <= self.max_distance <= 16:
            raise ConfigError(f"{path}.max_distance: expected 0..16, got {self.max_distance}")


@dataclass(frozen=True)
class SplitParams:
    seed: int = 0
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)

    def validate(self, path: str) -> None:
        if abs(sum(self.ratios) - 1.0) > 1e-6 or min(self.ratios) < 0:
            raise ConfigError(f"{path}.ratios: train/val/test fractions must be >= 0 and sum to 1, got {list(self.ratios)}")


@dataclass(frozen=True)
class KeywordParams:
    top_k: int = 512
    min_length: int = 2
    normalize_arabic: bool = True


@dataclass(frozen=True)
class TextParams:
    """Caption text handling before tokenising (training, evaluation, search)."""

    normalize_arabic: bool = True  # strip tashkeel and tatweel, unify alef/yeh (rsitr.data.arabic)


@dataclass(frozen=True)
class ModelParams:
    """An open_clip architecture plus where its weights come from.

    ``pretrained`` is empty (random init), an open_clip tag (``openai``) or a local
    checkpoint file (open_clip, RemoteCLIP or GeoRSCLIP state dict).
    """

    arch: str = "rsitr-tiny"
    pretrained: str = ""
    cache_dir: str = ""


@dataclass(frozen=True)
class AugmentParams:
    """Remote-sensing images have no canonical orientation: flips and 90 degree turns."""

    hflip: bool = True
    vflip: bool = True
    rot90: bool = True


@dataclass(frozen=True)
class TrainParams:
    # A variant's schedule is its paper's, in paper epochs at the paper's batch size; ``budget`` (one
    # factor for every variant, never per variant) scales every epoch-denominated quantity, so the
    # ratio of optimizer steps between methods is the papers' (rsitr.training.schedule, docs/schedules.md).
    epochs: int = 7  # CLIP fine-tune as EBAKER's baseline: 7 epochs at batch 100
    batch_size: int = 100
    budget: float = 0.07  # data passes per paper epoch: 1 = the papers' length
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = 5.0e-4
    weight_decay: float = 0.1
    warmup_share: float = 0.015  # linear warm-up, a share of the run's optimizer steps (EBAKER's 200 of its
    # 13,080 released steps; CFITR / ViLT 0.1; PE-RSITR none)
    grad_clip: float = 1.0
    accumulation_steps: int = 1  # must stay 1: see validate()
    schedule: Literal["cosine", "step", "linear"] = "cosine"  # warm-up then cosine (open_clip) | x gamma every
    # step_epochs (PE-RSITR) | warm-up then linear decay (ViLT / CFITR's release: warmup_share 0.1)
    step_epochs: int = 20  # schedule "step": PE-RSITR's released StepLR (lr x 0.7 every 20 scaled epochs)
    gamma: float = 0.7
    amp: bool = True  # bf16 autocast on CUDA; fp32 on CPU regardless
    device: str = "auto"
    num_workers: int = 0
    seed: int = 0
    languages: tuple[str, ...] = ("en",)
    datasets: tuple[str, ...] = ()  # empty: every dataset with a train split
    init_from: str = ""  # start from a checkpoint file
    init_from_variant: str = ""  # start from another variant's best checkpoint (English first, then Arabic)
    log_every: int = 10
    augment: AugmentParams = field(default_factory=AugmentParams)

    def validate(self, path: str) -> None:
        at_least(self, path, 1, "epochs", "batch_size", "accumulation_steps", "log_every", "step_epochs")
        at_least(self, path, 0, "weight_decay", "warmup_share", "grad_clip", "num_workers")
        if not 0.0 < self.budget <= 1000.0:
            raise ConfigError(f"{path}.budget: expected a positive factor of the papers' epochs (1 = as released), "
                              f"got {self.budget}")
        if self.warmup_share >= 1.0:
            raise ConfigError(f"{path}.warmup_share: expected a share of the run's steps below 1, got {self.warmup_share}")
        if self.accumulation_steps != 1:
            raise ConfigError(
                f"{path}.accumulation_steps: gradient accumulation is not supported (per-micro-batch losses would "
                "shrink the contrastive negatives to a micro-batch); set it to 1 and use a smaller batch_size or more "
                f"GPUs (torchrun keeps the global batch as the negative set), got {self.accumulation_steps}"
            )
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"{path}.gamma: expected a decay factor in (0, 1], got {self.gamma}")
        if self.lr <= 0:
            raise ConfigError(f"{path}.lr: expected a positive learning rate, got {self.lr}")
        if not DEVICE_PATTERN.match(self.device):
            raise ConfigError(f"{path}.device: {self.device!r} is not a device; valid: auto, cpu, cuda, cuda:<index>, mps")


@dataclass(frozen=True)
class EvalParams:
    test_sets: tuple[str, ...] = ()  # empty: every dataset with ``evaluate: true`` and a test split
    languages: tuple[str, ...] = ("en", "ar")  # each caption language of a test set, on the same images
    batch_size: int = 256

    def validate(self, path: str) -> None:
        at_least(self, path, 1, "batch_size")


@dataclass(frozen=True)
class TrackingParams:
    uri: str = "sqlite:///mlflow.db"  # MLFLOW_TRACKING_URI, when set, wins
    experiment: str = "rsitr"
    model_prefix: str = "rsitr"
    connect_timeout_s: float = 5.0


@dataclass(frozen=True)
class PromotionParams:
    metric: str = "mR"
    test_set: str = "synth_rsicd"
    language: str = "en"
    margin: float = 0.5


@dataclass(frozen=True)
class ReportParams:
    """The leaderboard's uncertainty and the claims table (``rsitr.retrieval.bootstrap``,
    ``rsitr.tracking.claims``): a seeded paired bootstrap over test images, recomputed from the
    stored per-query ranks of every evaluation."""

    bootstrap_samples: int = 1000  # resamples of the test images (and of the twin pairs)
    bootstrap_seed: int = 0  # numpy default_rng seed: the same resamples for every row of a test set
    confidence: float = 0.95  # percentile interval
    noninferiority_margin: float = 2.0  # mR points: "without sacrifice" / "close to" claims allow this much loss
    fine_share_limit: float = 7.0  # CFITR: percent of image-caption pairs the fine stage may score

    def validate(self, path: str) -> None:
        at_least(self, path, 1, "bootstrap_samples")
        at_least(self, path, 0, "bootstrap_seed", "noninferiority_margin", "fine_share_limit")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"{path}.confidence: expected a level in (0, 1), e.g. 0.95, got {self.confidence}")


C2F_CODES = ("auto", "learned", "simhash", "sign")


@dataclass(frozen=True)
class CoarseToFineParams:
    """CFITR-style retrieval (Zhou, Wu, Deng, GRSL 2024): hash codes, PPSR, re-ranking."""

    enabled: bool = True
    bits: int = 128
    hidden: int = 256
    epochs: int = 20
    lr: float = 1.0e-3
    batch_size: int = 128
    margin: float = 0.2
    quantization_weight: float = 0.001
    balance_weight: float = 0.01
    regulariser_reduction: Literal["sum", "mean"] = "sum"  # over the batch: sum as released; mean: rsitr option
    candidates: int = 70  # fine-scored candidates per query (CFITR's top 70 on RSICD's 1,093 test images: 6.4%)
    candidate_share: float = 0.055  # > 0: each query re-scores this share of its gallery (rounded up); 0: candidates
    ppsr: bool = True
    ppsr_k: int = 10
    coarse_only: bool = False
    min_candidates: int = 10  # K per direction is at least this (R@10 reachable), capped by the gallery
    codes: str = "auto"  # auto: the model's own hash codes (CFITR), else simhash | learned: own, else fitted heads
    # | simhash (seeded random hyperplanes over the global embeddings) | sign (of the embedding; bits = dim)
    simhash_seed: int = 0  # the random hyperplanes of simhash codes (and of the SimHash baseline reported)
    exhaustive_sample: tuple[int, int] = (20, 100)  # (image, caption) queries of the sampled exhaustive SSM; 0 = all
    languages: tuple[str, ...] = ("en",)  # caption languages c2f evaluates (of each variant's eval.languages); () = all

    def validate(self, path: str) -> None:
        at_least(self, path, 1, "bits", "hidden", "epochs", "batch_size", "candidates", "ppsr_k", "min_candidates")
        if self.codes not in C2F_CODES:
            raise ConfigError(f"{path}.codes: " + unknown_name("code kind", self.codes, C2F_CODES))
        if len(self.exhaustive_sample) != 2 or min(self.exhaustive_sample) < 0:
            raise ConfigError(f"{path}.exhaustive_sample: expected [image queries, caption queries] >= 0 "
                              f"(0 = all), got {list(self.exhaustive_sample)}")
        at_least(self, path, 0, "margin", "quantization_weight", "balance_weight")
        if self.lr <= 0:
            raise ConfigError(f"{path}.lr: expected a positive learning rate, got {self.lr}")
        if not 0.0 <= self.candidate_share <= 1.0:
            raise ConfigError(f"{path}.candidate_share: expected a share in [0, 1] (0: use candidates), "
                              f"got {self.candidate_share}")


SERVE_COARSE = ("hnsw", "ivf", "exact", "hash")
SERVE_FINE = ("model", "dense", "ssm", "none")  # ssm: a model with pair_scores (cfitr) only


@dataclass(frozen=True)
class ServeParams:
    """Served search (``rsitr serve``, ``rsitr index build``): the coarse and fine stages.

    ``coarse``: ``hnsw`` (default; FAISS HNSW over the float embeddings, fastest at equal
    recall in benchmarks/bench_search_results.md), ``ivf``, ``exact`` or ``hash`` (CFITR
    codes of the model's hash heads, + PPSR). ``fine``: ``model`` (the variant's own
    scorer, EBAKER global + local), ``dense`` (cosine of the global embeddings), ``ssm`` (the
    single-stream module, ``pair_scores``, of a cfitr model) or ``none``.
    """

    coarse: str = "hnsw"
    fine: str = "model"
    candidates: int = 70
    hnsw_m: int = 32
    hnsw_ef_construction: int = 40
    hnsw_ef_search: int = 128
    ivf_nprobe: int = 16
    threads: int = 2
    poll_s: float = 5.0
    max_top_k: int = 100
    max_upload_mb: float = 8.0
    max_query_chars: int = 1000  # longer text queries: 413, never tokenised or echoed
    max_image_pixels: int = 16_000_000  # checked from the header, before any decode (4000 x 4000)
    body_timeout_s: float = 5.0  # a request body not received in full by then: 408 (slow-loris)
    max_connections: int = 64  # uvicorn limit_concurrency: over it, 503
    backlog: int = 128  # uvicorn's listen backlog of not-yet-accepted connections
    host: str = "127.0.0.1"
    port: int = 8000

    def validate(self, path: str) -> None:
        if self.coarse not in SERVE_COARSE:
            raise ConfigError(f"{path}.coarse: " + unknown_name("coarse stage", self.coarse, SERVE_COARSE))
        if self.fine not in SERVE_FINE:
            raise ConfigError(f"{path}.fine: " + unknown_name("fine stage", self.fine, SERVE_FINE))
        at_least(self, path, 1, "candidates", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_nprobe",
                 "threads", "max_top_k", "port", "max_query_chars", "max_image_pixels", "max_connections", "backlog")
        if self.poll_s <= 0 or self.max_upload_mb <= 0 or self.body_timeout_s <= 0:
            raise ConfigError(f"{path}: poll_s, max_upload_mb and body_timeout_s must be positive, got "
                              f"{self.poll_s}, {self.max_upload_mb}, {self.body_timeout_s}")
        if self.port > 65535:
            raise ConfigError(f"{path}.port: expected a TCP port <= 65535, got {self.port}")


# ---------------------------------------------------------------------------------------
# Method options: one dataclass per training method, selected by ``variants.<v>.method``.


@dataclass(frozen=True)
class ZeroshotOptions:
    """CLIP zero-shot: evaluation only (Radford et al., ICML 2021).

    ``weights``: "pretrained" evaluates ``model.pretrained`` (the foundation on the default
    run); "random" evaluates the architecture's seeded random initialisation, the chance
    reference a pretrained model is measured against (``zeroshot_random``).
    """

    weights: Literal["pretrained", "random"] = "pretrained"


@dataclass(frozen=True)
class FinetuneOptions:
    """Full fine-tune with symmetric InfoNCE and CLIP's learnable temperature (Radford et al., ICML 2021)."""

    init_temperature: float = 0.07
    learnable_temperature: bool = True


@dataclass(frozen=True)
class HmmcWeights:
    cross: float = 1.0
    intra_image: float = 1.0
    intra_text: float = 1.0

    def validate(self, path: str) -> None:
        at_least(self, path, 0, "cross", "intra_image", "intra_text")


@dataclass(frozen=True)
class PetlOptions:
    """PE-RSITR: shared MRS-Adapter on a frozen CLIP + HMMC loss (Yuan, Zhan, Xiong, TGRS 2023)."""

    bottleneck: int = 64
    shared_dims: int = 64
    dropout: float = 0.5
    token_dropout: float = 0.2
    share_across_modalities: bool = True
    blocks: tuple[int, ...] = ()  # empty: every residual block of both towers
    margin: float = 0.2
    weights: HmmcWeights = field(default_factory=HmmcWeights)


@dataclass(frozen=True)
class EbakerOptions:
    """EBAKER: global + local alignment, Eliminate-Before-Align, Keyword Explicit Reasoning (ACM MM 2024)."""

    local: bool = True
    eba: bool = True
    ker: bool = True
    global_weight: float = 0.6
    local_weight: float = 0.4
    # paper-exact (released code): the local score is the RAW Frobenius norm over every context position
    text_positions: Literal["real", "all"] = "all"  # "real": word tokens only (rsitr option)
    local_normalize: bool = False  # True: divide by sqrt(n_text * P), the RMS token cosine (rsitr option)
    direction_reduction: Literal["sum", "mean"] = "sum"  # InfoNCE = CE(i2t) + CE(t2i) (Eq. 13); "mean": option
    temperature: float = 0.05
    learnable_temperature: bool = False
    bank_size: int = 200_000
    drop_ratio: float = 0.01
    drop_epoch: int = 4  # 0-indexed epoch (in caption epochs) from which weak anchors are eliminated
    scope: Literal["bank", "epoch"] = "bank"  # threshold over the whole FIFO bank (released) | last epoch's pairs
    mlm_weight: float = 0.5
    ker_layers: int = 4
    ker_heads: int = 8
    eval_block_size: int = 400

    def validate(self, path: str) -> None:
        at_least(self, path, 0, "global_weight", "local_weight", "mlm_weight", "drop_epoch", "drop_ratio")
        at_least(self, path, 1, "bank_size", "ker_layers", "ker_heads", "eval_block_size")
        if self.temperature <= 0 or self.drop_ratio >= 1:
            raise ConfigError(f"{path}: temperature must be > 0 and drop_ratio < 1, got {self.temperature} and "
                              f"{self.drop_ratio}")


def base_weights(variant: Any, model: ModelParams) -> str:
    """The base weights a variant starts from: ``model.pretrained``, or "" (random init)."""
    options = getattr(variant, "options", None)
    return "" if isinstance(options, ZeroshotOptions) and options.weights == "random" else model.pretrained


def method_options(variant: Any, cls: type) -> Any:
    """``variant.options`` when it is a ``cls``; the schema defaults when no variant is given.

    A variant whose options are of another type is a wiring error, never silently replaced
    by defaults: it raises ``ConfigError`` naming the variant and the expected class.
    """
    if variant is None:
        return cls()
    options = getattr(variant, "options", None)
    if not isinstance(options, cls):
        name = getattr(variant, "name", "?")
        raise ConfigError(
            f"variant {name}: options must be {cls.__name__} (method {getattr(variant, 'method', '?')!r}), "
            f"got {type(options).__name__}; build variants with rsitr.config.load_params"
        )
    return options


@dataclass(frozen=True)
class VariantParams:
    """One trainable/evaluable variant: a method, its options, and its resolved training values.

    In params.yaml ``train`` holds only the overrides of the global ``train`` section;
    here it is the fully resolved ``TrainParams``. ``benchmark`` says which run trains it:
    ``default`` (``make run``, ``rsitr benchmark``), ``ablations`` (``make ablations``,
    ``rsitr benchmark --ablations``) or ``off``; ``c2f`` adds its coarse-to-fine evaluation.
    """

    name: str
    method: str
    train: TrainParams
    options: Any
    eval: EvalParams
    benchmark: Literal["default", "ablations", "off"] = "default"  # run by `make run` | `make ablations` | neither
    c2f: bool = False  # also evaluated coarse-to-fine ("<variant> + c2f") when c2f.enabled

    @property
    def trains(self) -> bool:
        """Whether the variant's method has a loss (an evaluation-only method does not)."""
        return method_spec(self.method).trains


@dataclass(frozen=True)
class PathsParams:
    data: str = "data"
    models: str = "models"
    metrics: str = "metrics"
    reports: str = "reports"


@dataclass(frozen=True)
class RsitrParams:
    """The whole resolved configuration (``rsitr config show`` prints it)."""

    seed: int
    paths: PathsParams
    synth: SynthParams
    datasets: tuple[DatasetParams, ...]
    ingest: IngestParams
    dedup: DedupParams
    split: SplitParams
    keywords: KeywordParams
    text: TextParams
    model: ModelParams
    train: TrainParams
    eval: EvalParams
    tracking: TrackingParams
    promotion: PromotionParams
    c2f: CoarseToFineParams
    serve: ServeParams
    variants: Mapping[str, VariantParams]
    synth_corpus: SynthCorpusParams = field(default_factory=lambda: SynthCorpusParams())
    pretrain: PretrainParams = field(default_factory=lambda: PretrainParams())
    report: ReportParams = field(default_factory=lambda: ReportParams())

    def variant(self, name: str) -> VariantParams:
        """The variant called ``name``; an unknown name lists the valid ones."""
        if name not in self.variants:
            raise ConfigError(unknown_name("variant", name, list(self.variants)))
        return self.variants[name]

    def dataset(self, name: str) -> DatasetParams:
        for dataset in self.datasets:
            if dataset.name == name:
                return dataset
        raise ConfigError(unknown_name("dataset", name, [d.name for d in self.datasets]))


# ---------------------------------------------------------------------------------------
# Continual CLIP pretraining on an image-caption corpus (RemoteCLIP / GeoRSCLIP style).

@dataclass(frozen=True)
class SynthCorpusParams:
    """The synthetic web-style caption corpus (``rsitr synth-corpus``), seeded apart from ``synth``."""

    out: str = "data/corpus/synth"
    images: int = 10_000
    seed: int = 1
    image_size: tuple[int, int] = (64, 96)
    wrong_caption_rate: float = 0.05
    noise_word_rate: float = 0.25
    shard_size: int = 1000
    workers: int = 2

    def validate(self, path: str) -> None:
        at_least(self, path, 1, "images", "shard_size", "workers")
        low, high = self.image_size
        if not 16 <= low <= high:
            raise ConfigError(f"{path}.image_size: expected [min, max] with 16 <= min <= max, got {list(self.image_size)}")
        for name in ("wrong_caption_rate", "noise_word_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{path}.{name}: expected a fraction in [0, 1], got {value}")


@dataclass(frozen=True)
class PretrainParams:
    """Continual CLIP pretraining (``rsitr pretrain``): a corpus and open_clip_train's values."""

    enabled: bool = True  # the benchmark flow pretrains first and every variant starts from the foundation
    corpus: str = "data/corpus/synth/corpus.csv"  # a CSV, or WebDataset shards (file, glob, {000..009}, folder)
    format: Literal["auto", "csv", "webdataset"] = "auto"
    csv_img_key: str = "filepath"
    csv_caption_key: str = "title"
    csv_separator: str = ","
    samples_per_epoch: int = 0  # 0: count the corpus once (sets the cosine schedule's length)
    epochs: int = 1
    batch_size: int = 256
    lr: float = 5.0e-4
    weight_decay: float = 0.2
    warmup_steps: int = 20
    grad_clip: float = 1.0
    shuffle_buffer: int = 1000  # 0 or 1: corpus order
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    checkpoint_every: int = 50  # optimizer steps between mid-epoch checkpoints (and one at each epoch end)

    def validate(self, path: str) -> None:
        at_least(self, path, 1, "epochs", "batch_size", "log_every", "checkpoint_every")
        at_least(self, path, 0, "samples_per_epoch", "weight_decay", "warmup_steps", "grad_clip", "shuffle_buffer")
        if self.lr <= 0:
            raise ConfigError(f"{path}.lr: expected a positive learning rate, got {self.lr}")
        if not self.corpus:
            raise ConfigError(f"{path}.corpus: empty; set a corpus CSV or WebDataset shards")
        if len(self.csv_separator) != 1:
            raise ConfigError(f"{path}.csv_separator: expected one character (',' or '\\t'), got {self.csv_separator!r}")
        if not DEVICE_PATTERN.match(self.device):
            raise ConfigError(f"{path}.device: {self.device!r} is not a device; valid: auto, cpu, cuda, cuda:<index>, mps")
