"""The visual retrieval report: ranked hits, the self-contained HTML page, the PNG, Chromium rendering."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsitr.app.steps.reports import score_split
from rsitr.config import load_params
from rsitr.reporting.examples import build_examples, sample_queries, top_k_examples
from rsitr.reporting.figure import GREEN, RED, render_png
from rsitr.reporting.html_page import render_html

HTML_GREEN, HTML_RED = (0x1A, 0x9B, 0x3C), (0xD6, 0x27, 0x28)


def test_top_k_examples_rank_both_directions_and_mark_correct_hits() -> None:
    caption_image = np.array([0, 0, 1, 1, 2, 2])
    scores = np.array([
        [0.1, 0.9, 0.8, 0.2, 0.0, 0.3],  # image 0: its caption 1 is first
        [0.5, 0.4, 0.1, 0.2, 0.6, 0.0],  # image 1: its best caption (3) is only 4th
        [0.3, 0.3, 0.3, 0.3, 0.3, 0.3],  # image 2: all tied -> index order, its captions 4, 5 are last
    ])
    i2t, t2i = top_k_examples(scores, caption_image, [0, 1, 2], [2, 5], k=3)
    assert [h.index for h in i2t[0].hits] == [1, 2, 5] and [h.correct for h in i2t[0].hits] == [True, False, False]
    assert i2t[1].first_correct_rank == 4 and not any(h.correct for h in i2t[1].hits)
    assert [h.index for h in i2t[2].hits] == [0, 1, 2] and i2t[2].first_correct_rank == 5
    assert [h.index for h in t2i[0].hits] == [0, 2, 1]  # caption 2 (image 1): 0.8, 0.3, 0.1
    assert [h.correct for h in t2i[0].hits] == [False, False, True] and t2i[0].first_correct_rank == 3
    assert t2i[1].hits[0].index == 0 and t2i[1].hits[0].score == pytest.approx(0.3)


def test_sample_queries_are_distinct_and_reproducible() -> None:
    first = sample_queries(40, 200, 6, seed=3)
    assert first == sample_queries(40, 200, 6, seed=3) != sample_queries(40, 200, 6, seed=4)
    images, captions = first
    assert len(set(images)) == 6 and len(set(captions)) == 6 and max(images) < 40 and max(captions) < 200
    assert sample_queries(3, 15, 6, seed=0)[0] == [0, 1, 2]


@pytest.fixture(scope="module")
def report(zeroshot_toy: Path, tmp_path_factory: pytest.TempPathFactory):
    """The report files written through the CLI handler, and the examples they show."""
    from rsitr.cli.tracking import register

    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["report", "--params", str(zeroshot_toy), "--variant", "zeroshot", "--test-set", "toy",
                              "--queries", "3", "--seed", "1", "--no-track"])
    assert args.handler(args) == 0
    params = load_params(zeroshot_toy)
    examples = build_examples(*score_split(params, "zeroshot", "toy", "en"), "zeroshot", "toy", queries=3, k=5, seed=1)
    folder = Path(params.paths.reports) / "retrieval" / "zeroshot"
    return folder / "toy.html", folder / "toy.png", examples


def test_html_page_is_self_contained_and_frames_match_the_ground_truth(report) -> None:
    html_path, _, examples = report
    html = html_path.read_text()
    assert html == render_html(examples, seed=1)  # the CLI page shows these very examples
    sources = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert len(sources) == 3 * 5 + 3  # t2i hits + image queries
    assert all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert "http://" not in html and "https://" not in html and "file:" not in html
    for query in examples.text_queries:
        assert all(h.correct == (h.index == examples.caption_image[query.index]) for h in query.hits)
    for query in examples.image_queries:
        assert all(h.correct == (examples.caption_image[h.index] == query.index) for h in query.hits)
    hits = [h for q in examples.text_queries + examples.image_queries for h in q.hits]
    frames = re.findall(r'<img class="(correct|wrong)"|<div class="caption (correct|wrong)"', html)
    assert [a or b for a, b in frames] == ["correct" if h.correct else "wrong" for h in hits]
    assert "Text &rarr; image" in html and "Image &rarr; text" in html


def _pixels(path: Path, colour: tuple[int, int, int]) -> int:
    array = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(array - np.array(colour)).max(axis=-1) == 0).sum())


def test_png_figure_frames_hits_green_and_red(report, tmp_path: Path) -> None:
    _, png, examples = report
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 1000 and image.height > 6 * 112
    hits = [h for q in examples.text_queries + examples.image_queries for h in q.hits]
    frame = 4 * 112  # at least one side of one frame
    assert _pixels(png, RED) >= frame * sum(not h.correct for h in hits)
    assert (_pixels(png, GREEN) >= frame) == any(h.correct for h in hits)
    assert render_png(examples, tmp_path / "again.png").read_bytes() == png.read_bytes()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_html_renders_in_headless_chromium(report, tmp_path: Path) -> None:
    html, _, examples = report
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1200,1600",
         html.resolve().as_uri()], capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    # the legend alone frames one box in each colour; every wrong hit adds a red frame
    assert _pixels(shot, HTML_GREEN) >= 500
    assert _pixels(shot, HTML_RED) >= 500 + 400 * sum(not h.correct for q in examples.text_queries for h in q.hits)


def test_html_page_escapes_captions_and_names(tmp_path: Path) -> None:
    from rsitr.reporting.examples import Hit, Query, RetrievalExamples

    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(image)
    hostile = '<script>alert("x")</script> & a "quoted" river'
    examples = RetrievalExamples(
        variant="<b>v</b>", test_set="toy", language="en", image_paths=[str(image)], captions=[hostile],
        caption_image=np.array([0]),
        image_queries=[Query(0, (Hit(0, 0.5, True),), 1)], text_queries=[Query(0, (Hit(0, 0.5, True),), 1)],
        metrics={"mR": 12.345})
    html = render_html(examples, seed=0)
    assert "<script>" not in html and "<b>v</b>" not in html
    assert html.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; a &#34;quoted&#34; river") == 2
    assert "<td>12.35</td>" in html and "&#10003; correct" in html
