"""Making one corpus image: sample its scene, render it, encode it, caption it.

A pure function of (seed, planned item), so images can be made in any order or
in worker processes and still come out byte-identical. Unlike the benchmark, the
corpus does not redraw renders that come within a pHash distance of an earlier
image (that check costs a decode and a hash per image and a search over all
previous hashes): web corpora hold near-duplicates too, and dedup is a separate
stage (``rsitr.data.dedup``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rsitr.data.synth.encoding import encode_jpeg
from rsitr.data.synth.render import render_scene
from rsitr.data.synth.scene import sample_scene
from rsitr.data.synth_corpus.captions import web_caption
from rsitr.data.synth_corpus.plan import CorpusItem
from rsitr.data.synth_corpus.streams import CORPUS_TAG, STREAM_CAPTION, STREAM_NOISE, STREAM_SCENE, corpus_rng


@dataclass(frozen=True)
class MadeItem:
    """An encoded corpus image with its caption."""

    item: CorpusItem
    jpeg: bytes
    caption: str
    style: str


def make_item(seed: int, item: CorpusItem) -> MadeItem:
    """Render, encode and caption ``item``."""
    scene = sample_scene(item.scene_class, corpus_rng(seed, STREAM_SCENE, item.index))
    picture = render_scene(scene, item.size_px, [CORPUS_TAG, seed, STREAM_NOISE, item.index])
    caption, style = web_caption(scene, item.wrong, item.noisy, corpus_rng(seed, STREAM_CAPTION, item.index))
    return MadeItem(item, encode_jpeg(picture), caption, style)


def make_item_star(arguments: tuple[int, CorpusItem]) -> MadeItem:
    """``make_item`` taking one tuple, for ``multiprocessing.Pool.imap``."""
    return make_item(*arguments)
