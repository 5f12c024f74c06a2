"""A self-contained HTML page of retrieval examples (images inlined as base64 PNG).

Layout follows the papers' qualitative figures: one row per query, the query on the left,
its top-k results to the right, correct results framed green and wrong ones red.
"""

from __future__ import annotations

from html import escape

from rsitr.reporting.examples import Query, RetrievalExamples
from rsitr.reporting.thumbnails import data_url

GREEN = "#1a9b3c"
RED = "#d62728"
THUMB = 128

_CSS = f"""
body {{ font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #222; background: #fafafa; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }}
h2 {{ font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }}
.meta {{ color: #555; font-size: 13px; margin-bottom: 6px; }}
.legend span {{ display: inline-block; padding: 2px 8px; margin-right: 8px; border: 4px solid #888; font-size: 13px; }}
.row {{ display: flex; flex-wrap: wrap; align-items: flex-start; gap: 10px; margin: 10px 0; padding: 8px; background: #fff;
        border: 1px solid #e2e2e2; }}
.query {{ width: 200px; flex: none; font-size: 13px; }}
.query img {{ width: {THUMB}px; height: {THUMB}px; border: 4px solid #888; display: block; }}
.query .text {{ border: 4px solid #888; padding: 6px; background: #f3f3f3; }}
.label {{ font-size: 11px; color: #666; text-transform: uppercase; margin-bottom: 3px; }}
.hit {{ width: {THUMB + 8}px; flex: none; font-size: 11px; color: #444; text-align: center; }}
.hit img {{ width: {THUMB}px; height: {THUMB}px; border: 4px solid #888; display: block; }}
.caption {{ width: 150px; flex: none; border: 4px solid #888; padding: 6px; font-size: 12px; background: #fff;
            min-height: 60px; }}
/* two-class selectors: they must outrank ".hit img" and ".legend span" */
.row .correct, .legend .correct {{ border-color: {GREEN}; }}
.row .wrong, .legend .wrong {{ border-color: {RED}; }}
.rank {{ font-weight: bold; }}
table.metrics {{ border-collapse: collapse; font-size: 13px; margin: 8px 0; }}
table.metrics td, table.metrics th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
"""


def _frame(correct: bool) -> str:
    return "correct" if correct else "wrong"


def _mark(correct: bool) -> str:
    return "&#10003; correct" if correct else "&#10007; wrong"


def _text_to_image(examples: RetrievalExamples, query: Query) -> str:
    caption = escape(examples.captions[query.index])
    cells = [f'<div class="query"><div class="label">text query #{query.index}</div>'
             f'<div class="text" dir="auto">{caption}</div>'
             f'<div class="meta">true image at rank {query.first_correct_rank}</div></div>']
    for rank, hit in enumerate(query.hits, 1):
        cells.append(
            f'<div class="hit"><img class="{_frame(hit.correct)}" alt="rank {rank}" '
            f'src="{data_url(examples.image_paths[hit.index], THUMB)}">'
            f'<span class="rank">#{rank}</span> {hit.score:.3f}<br>{_mark(hit.correct)}</div>')
    return '<div class="row t2i">' + "".join(cells) + "</div>"


def _image_to_text(examples: RetrievalExamples, query: Query) -> str:
    cells = [f'<div class="query"><div class="label">image query #{query.index}</div>'
             f'<img alt="query image" src="{data_url(examples.image_paths[query.index], THUMB)}">'
             f'<div class="meta">first correct caption at rank {query.first_correct_rank}</div></div>']
    for rank, hit in enumerate(query.hits, 1):
        cells.append(
            f'<div class="caption {_frame(hit.correct)}"><span class="rank">#{rank}</span> {hit.score:.3f} '
            f'{_mark(hit.correct)}<br><span dir="auto">{escape(examples.captions[hit.index])}</span></div>')
    return '<div class="row i2t">' + "".join(cells) + "</div>"


def _metrics_table(metrics: dict[str, float]) -> str:
    keys = [k for k in ("i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10", "mR") if k in metrics]
    if not keys:
        return ""
    head = "".join(f"<th>{escape(k)}</th>" for k in keys)
    body = "".join(f"<td>{metrics[k]:.2f}</td>" for k in keys)
    return f'<table class="metrics"><tr>{head}</tr><tr>{body}</tr></table>'


def render_html(examples: RetrievalExamples, *, seed: int) -> str:
    k = len(examples.text_queries[0].hits) if examples.text_queries else 0
    title = f"Retrieval examples: {examples.variant} on {examples.test_set} [{examples.language}]"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<div class="meta">{len(examples.image_paths)} test images, {len(examples.captions)} captions; '
        f"top-{k} results of {len(examples.text_queries)} text and {len(examples.image_queries)} image queries "
        f"sampled with seed {seed}. Recall@K in % on the whole split:</div>",
        _metrics_table(examples.metrics),
        f'<div class="legend"><span class="correct">correct result</span><span class="wrong">wrong result</span></div>',
        "<h2>Text &rarr; image</h2>",
        *[_text_to_image(examples, q) for q in examples.text_queries],
        "<h2>Image &rarr; text</h2>",
        *[_image_to_text(examples, q) for q in examples.image_queries],
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
