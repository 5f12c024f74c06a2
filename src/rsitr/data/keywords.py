"""Keywords: the most frequent content words of the training captions, per dataset and language.

EBAKER's Keyword Explicit Reasoning (ACM MM 2024) masks and predicts keywords of the
captions; its vocabulary is the top-k most frequent words of the *training* captions
after removing stopwords. Only train captions are counted, so no test text leaks into
the vocabulary.

Tokenising (:func:`tokenize`): case-folding, then maximal runs of letters (Unicode, with
Arabic combining marks kept inside a word), so punctuation and digits (Latin and
Arabic-Indic) never form or join a token. Tokens shorter than ``min_length`` and
stopwords of the caption's language (``ENGLISH_STOPWORDS``, ``ARABIC_STOPWORDS``) are
dropped. Arabic captions are first normalised with :func:`rsitr.data.arabic.normalize_caption`
when ``normalize_arabic`` is set, so spelling variants (alef forms, diacritics, tatweel,
alef maqsura) count as one word.

Per dataset and language the ``top_k`` words are kept (count descending, then word). The
per-language and merged lists are the union of those top-k lists, ordered by the word's
total count over all train captions, then the word.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rsitr.data.arabic import is_arabic, normalize_caption
from rsitr.data.arabic import normalize_arabic as arabic_spelling

# A word: a letter, then letters or combining marks (Latin accents, Arabic tashkeel).
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|[\u0300-\u036f\u064b-\u065f\u0670])*")

ENGLISH_STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each either few for
    from further had has have having he her here hers herself him himself his how i if in into is
    it its itself just let me more most my myself neither no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their theirs
    them themselves then there these they this those through to too under until up upon very was
    we were what when where which while who whom whose why will with within without would you
    your yours yourself yourselves
    """.split()
)

ARABIC_STOPWORDS = frozenset(
    """
    في من إلى الى على عن مع و أو او ثم أن ان إن لا ما لم لن قد كل بعض هذا هذه ذلك تلك هؤلاء
    هناك هنا التي الذي الذين اللذان اللتان اللواتي هو هي هم هن نحن أنا انا أنت انت كان كانت
    يكون تكون يوجد توجد به بها فيه فيها منه منها عليه عليها إليه اليه له لها لهم بين حول عند
    فوق تحت أمام امام خلف بجانب بالقرب قرب مثل كما حيث أي اي أيضا ايضا غير بعد قبل حتى إذا
    اذا لكن بل ذات ذو وهو وهي وفي ومن وعلى مع ومع يتم تم عدة عدد واحد واحدة اثنان اثنين
    """.split()
)


def _stopword_set(words: Iterable[str]) -> frozenset[str]:
    """Stopwords plus their normalised Arabic spellings, so both forms are caught."""
    words = list(words)
    return frozenset(words) | frozenset(arabic_spelling(word) for word in words)


_STOPWORDS = {"en": ENGLISH_STOPWORDS, "ar": _stopword_set(ARABIC_STOPWORDS)}


def stopwords(language: str) -> frozenset[str]:
    """The built-in stopword list of ``language`` (English or Arabic; empty for others)."""
    if is_arabic(language):
        return _STOPWORDS["ar"]
    return _STOPWORDS.get(language.split("-")[0].split("_")[0].lower(), frozenset())


def tokenize(text: str, language: str, *, min_length: int = 2, normalize_arabic: bool = True) -> list[str]:
    """Content words of one caption, in order (see the module docstring for the rules)."""
    if normalize_arabic:
        text = normalize_caption(text, language)
    stop = stopwords(language)
    return [word for word in _WORD.findall(text.casefold()) if len(word) >= min_length and word not in stop]


def count_words(captions: Iterable[str], language: str, *, min_length: int = 2, normalize_arabic: bool = True) -> Counter[str]:
    """Word counts over ``captions`` (every occurrence counts)."""
    counts: Counter[str] = Counter()
    for caption in captions:
        counts.update(tokenize(caption, language, min_length=min_length, normalize_arabic=normalize_arabic))
    return counts


def top_words(counts: Mapping[str, int], k: int) -> dict[str, int]:
    """The ``k`` most frequent words, count descending then word ascending (deterministic)."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return dict(ranked[: max(0, k)])


def merge_ranked(selected: Iterable[str], totals: Mapping[str, int]) -> list[str]:
    """``selected`` words, distinct, ordered by ``totals`` descending then word."""
    return sorted(set(selected), key=lambda word: (-totals.get(word, 0), word))


@dataclass
class KeywordResult:
    """Top-k words per (dataset, language), the per-language and merged lists, a report."""

    per_dataset: dict[str, dict[str, dict[str, int]]]
    per_language: dict[str, list[str]]
    merged: list[str]
    top_k: int
    report: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"merged": self.merged, "per_dataset": self.per_dataset, "top_k": self.top_k, "per_language": self.per_language}


def extract_keywords(
    manifest: pd.DataFrame, *, top_k: int = 512, min_length: int = 2, normalize_arabic: bool = True, split: str = "train"
) -> KeywordResult:
    """Keywords of the ``split`` captions of a processed manifest (columns dataset, language, caption, split)."""
    rows = manifest[manifest["split"] == split]
    per_dataset: dict[str, dict[str, dict[str, int]]] = {}
    totals: dict[str, Counter[str]] = {}
    captions_used: dict[str, dict[str, int]] = {}
    for (dataset, language), part in rows.groupby(["dataset", "language"], sort=True):
        counts = count_words(part["caption"], str(language), min_length=min_length, normalize_arabic=normalize_arabic)
        per_dataset.setdefault(str(dataset), {})[str(language)] = top_words(counts, top_k)
        totals.setdefault(str(language), Counter()).update(counts)
        captions_used.setdefault(str(dataset), {})[str(language)] = int(len(part))
    per_language = {
        language: merge_ranked((w for tables in per_dataset.values() for w in tables.get(language, {})), totals[language])
        for language in sorted(totals)
    }
    overall: Counter[str] = Counter()
    for counts in totals.values():
        overall.update(counts)
    merged = merge_ranked((w for words in per_language.values() for w in words), overall)
    report = {
        "top_k": int(top_k),
        "merged": len(merged),
        "per_language": {language: len(words) for language, words in per_language.items()},
        "train_captions": captions_used,
    }
    return KeywordResult(per_dataset, per_language, merged, int(top_k), report)
