"""Keyword masks for EBAKER's Keyword Explicit Reasoning, aligned with CLIP's BPE tokens.

EBAKER (Eliminate Before Align: A Remote Sensing Image-Text Retrieval Framework with
Keyword Explicit Reasoning, ACM MM 2024), Sec. 2.1.3: every word of a caption that is in
the keyword list (top-k frequent content words per dataset, ``data/processed/keywords.txt``
written by ``rsitr data keywords``) is replaced by a mask token, and the model predicts the
original tokens from the masked text and the image.

Alignment with the tokenizer: a caption is tokenized exactly as open_clip's
``SimpleTokenizer`` does (clean + lower-case, split into pre-tokens by its regex, byte-level
BPE per pre-token, SOT/EOT, truncation to the context length with EOT last), and each
pre-token remembers its BPE pieces. A pre-token that is a keyword has ALL its pieces masked
(``"storagetank"`` -> ``stor ag et ank``: four masked positions), which the released code
gets wrong for multi-piece words. Matching is case-insensitive (both sides case-folded)
and on whole pre-tokens, i.e. word boundaries: the keyword ``tree`` never masks a piece of
``street``. The token ids produced here are checked against the tokenizer's own output, so
the mask can never drift from the tokens the model sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from rsitr.errors import DataError, ModelError

try:  # open_clip's tokenizer pattern needs the ``regex`` module (\p{L})
    import regex as _re
except ImportError:  # pragma: no cover - open_clip depends on regex
    import re as _re


def read_keywords(path: str | Path) -> list[str]:
    """The keyword list (one word per line, blank lines ignored); a clear error if absent."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"EBAKER's Keyword Explicit Reasoning needs the keyword list {str(path)!r}, which does not exist; "
            "create it with `rsitr keywords` (or the benchmark flow), or switch KER off with "
            "--set variants.<variant>.options.ker=false"
        )
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class KeywordMasker:
    """Finds the BPE positions of keyword occurrences in captions (open_clip ``SimpleTokenizer``)."""

    def __init__(self, tokenizer, keywords: Iterable[str], context_length: int | None = None):
        for attribute in ("encoder", "bpe", "byte_encoder", "pat", "clean_fn", "sot_token_id", "eot_token_id"):
            if not hasattr(tokenizer, attribute):
                raise ModelError(
                    f"Keyword Explicit Reasoning needs open_clip's BPE SimpleTokenizer; {type(tokenizer).__name__} "
                    f"has no {attribute!r}. Use a CLIP architecture with the BPE tokenizer or set options.ker=false"
                )
        if getattr(tokenizer, "reduction_fn", None) is not None:
            raise ModelError("Keyword Explicit Reasoning needs a truncating tokenizer (no reduction_mask)")
        self.tokenizer = tokenizer
        self.keywords = frozenset(word.casefold() for word in keywords if word.strip())
        self.context_length = int(context_length or tokenizer.context_length)

    def word_pieces(self, text: str) -> list[tuple[str, list[int], bool]]:
        """``(pre-token, its BPE ids, is_keyword)`` in caption order, as the tokenizer splits it."""
        tok = self.tokenizer
        pieces = []
        for word in _re.findall(tok.pat, tok.clean_fn(text)):
            encoded = "".join(tok.byte_encoder[b] for b in word.encode("utf-8"))
            ids = [tok.encoder[piece] for piece in tok.bpe(encoded).split(" ")]
            pieces.append((word, ids, word.casefold() in self.keywords))
        return pieces

    def encode(self, text: str) -> tuple[list[int], list[bool]]:
        """Token ids of one caption (SOT ... EOT, truncated) and the keyword flag of each."""
        tok = self.tokenizer
        ids, flags = [tok.sot_token_id], [False]
        for _, word_ids, is_keyword in self.word_pieces(text):
            ids += word_ids
            flags += [is_keyword] * len(word_ids)
        ids.append(tok.eot_token_id)
        flags.append(False)
        if len(ids) > self.context_length:  # truncate as open_clip does: EOT replaces the last kept token
            ids, flags = ids[: self.context_length], flags[: self.context_length]
            ids[-1], flags[-1] = tok.eot_token_id, False
        return ids, flags

    def __call__(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids ``[B, L]`` (as the tokenizer) and the keyword mask ``bool [B, L]``."""
        tokens = torch.zeros(len(captions), self.context_length, dtype=torch.long)
        mask = torch.zeros(len(captions), self.context_length, dtype=torch.bool)
        for row, caption in enumerate(captions):
            ids, flags = self.encode(caption)
            tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(flags)] = torch.tensor(flags, dtype=torch.bool)
        return tokens, mask

    def mask_for(self, captions: Sequence[str], tokens: torch.Tensor) -> torch.Tensor:
        """The keyword mask ``bool [B, L]`` for ``tokens`` (the batch's ids), verified to align."""
        own, mask = self(captions)
        if own.shape != tokens.shape or not torch.equal(own, tokens.detach().cpu()):
            raise ModelError(
                "keyword masking: the caption tokens differ from the tokenizer's; the KER mask would be "
                "misaligned (was the batch tokenized with another tokenizer or context length?)"
            )
        return mask.to(tokens.device)
