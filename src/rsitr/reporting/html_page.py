"""A self-contained HTML page of retrieval examples (images inlined as base64 PNG).

Layout follows the papers' qualitative figures: one row per query, the query on the left,
its top-k results to the right, correct results framed green and wrong ones red. The page is
the Jinja2 template ``templates/examples.html.j2``, rendered with autoescaping on, so a
caption (user or dataset text) can never inject markup.
"""

from __future__ import annotations

from functools import cache

import jinja2

from rsitr.reporting.examples import RetrievalExamples
from rsitr.reporting.thumbnails import data_url

GREEN = "#1a9b3c"
RED = "#d62728"
THUMB = 128
METRIC_KEYS = ("i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10", "mR")


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("rsitr.reporting", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render_html(examples: RetrievalExamples, *, seed: int) -> str:
    """The examples page: text->image rows, then image->text rows, and the split's recalls."""
    paths, captions = examples.image_paths, examples.captions
    text_rows = [{"query": q, "text": captions[q.index],
                  "hits": [(h, data_url(paths[h.index], THUMB)) for h in q.hits]}
                 for q in examples.text_queries]
    image_rows = [{"query": q, "src": data_url(paths[q.index], THUMB),
                   "hits": [(h, captions[h.index]) for h in q.hits]}
                  for q in examples.image_queries]
    return _environment().get_template("examples.html.j2").render(
        title=f"Retrieval examples: {examples.variant} on {examples.test_set} [{examples.language}]",
        n_images=len(paths), n_captions=len(captions), seed=seed,
        k=len(examples.text_queries[0].hits) if examples.text_queries else 0,
        metrics=[(key, examples.metrics[key]) for key in METRIC_KEYS if key in examples.metrics],
        text_rows=text_rows, image_rows=image_rows, thumb=THUMB, green=GREEN, red=RED)
