"""The PNG figure of retrieval examples, drawn with Pillow (no browser needed).

Same content as the HTML page: for each text query its top-k images, for each image query
its top-k captions; correct results framed green, wrong ones red.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from rsitr.reporting.examples import RetrievalExamples
from rsitr.reporting.thumbnails import thumbnail

GREEN = (26, 155, 60)
RED = (214, 39, 40)
GREY = (136, 136, 136)
INK = (34, 34, 34)
THUMB = 112
FRAME = 5
PAD = 12
QUERY_WIDTH = 250
CAPTION_WIDTH = 180
ROW_HEIGHT = THUMB + 2 * FRAME + 34


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in ("DejaVuSans.ttf", "LiberationSans-Regular.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int, max_lines: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if draw.textlength(candidate, font=font) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(".") + "..."
    return lines


def _framed(canvas: Image.Image, image: Image.Image, x: int, y: int, colour: tuple[int, int, int]) -> None:
    ImageDraw.Draw(canvas).rectangle([x, y, x + THUMB + 2 * FRAME - 1, y + THUMB + 2 * FRAME - 1], fill=colour)
    canvas.paste(image, (x + FRAME, y + FRAME))


def _text_box(canvas: Image.Image, text: str, x: int, y: int, width: int, colour, font, header: str = "") -> None:
    draw = ImageDraw.Draw(canvas)
    height = THUMB + 2 * FRAME
    draw.rectangle([x, y, x + width - 1, y + height - 1], fill=colour)
    draw.rectangle([x + FRAME, y + FRAME, x + width - FRAME - 1, y + height - FRAME - 1], fill=(255, 255, 255))
    line_y = y + FRAME + 4
    if header:
        draw.text((x + FRAME + 5, line_y), header, fill=colour, font=font)
        line_y += 17
    for line in _wrap(draw, text, font, width - 2 * FRAME - 10, 6 if not header else 5):
        draw.text((x + FRAME + 5, line_y), line, fill=INK, font=font)
        line_y += 16


def _status(hit_correct: bool) -> tuple[tuple[int, int, int], str]:
    return (GREEN, "correct") if hit_correct else (RED, "wrong")


def render_png(examples: RetrievalExamples, path: str | Path) -> Path:
    k = max([len(q.hits) for q in examples.text_queries + examples.image_queries] or [0])
    width = PAD + QUERY_WIDTH + k * (CAPTION_WIDTH + PAD) + PAD
    rows = len(examples.text_queries) + len(examples.image_queries)
    height = 70 + 2 * 34 + rows * (ROW_HEIGHT + PAD) + PAD
    canvas = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(canvas)
    title, small, body = _font(20), _font(12), _font(13)
    draw.text((PAD, PAD), f"{examples.variant} on {examples.test_set} [{examples.language}]: top-{k} results",
              fill=INK, font=title)
    summary = "  ".join(f"{key} {value:.1f}" for key, value in examples.metrics.items())
    draw.text((PAD, PAD + 28), f"{summary}    green frame = correct, red frame = wrong", fill=GREY, font=small)
    y = 70

    def section(name: str) -> None:
        nonlocal y
        draw.text((PAD, y + 6), name, fill=INK, font=_font(16))
        draw.line([PAD, y + 28, width - PAD, y + 28], fill=(200, 200, 200))
        y += 34

    section("Text -> image")
    for query in examples.text_queries:
        _text_box(canvas, examples.captions[query.index], PAD, y, QUERY_WIDTH - PAD, GREY, body,
                  header=f"query #{query.index} (true image: rank {query.first_correct_rank})")
        for rank, hit in enumerate(query.hits):
            x = PAD + QUERY_WIDTH + rank * (CAPTION_WIDTH + PAD)
            colour, word = _status(hit.correct)
            _framed(canvas, thumbnail(examples.image_paths[hit.index], THUMB), x, y, colour)
            draw.text((x, y + THUMB + 2 * FRAME + 3), f"#{rank + 1} {hit.score:.3f} {word}", fill=colour, font=small)
        y += ROW_HEIGHT + PAD
    section("Image -> text")
    for query in examples.image_queries:
        _framed(canvas, thumbnail(examples.image_paths[query.index], THUMB), PAD, y, GREY)
        draw.text((PAD, y + THUMB + 2 * FRAME + 3), f"query #{query.index} (first correct: rank "
                  f"{query.first_correct_rank})", fill=GREY, font=small)
        for rank, hit in enumerate(query.hits):
            x = PAD + QUERY_WIDTH + rank * (CAPTION_WIDTH + PAD)
            colour, word = _status(hit.correct)
            _text_box(canvas, examples.captions[hit.index], x, y, CAPTION_WIDTH, colour, body,
                      header=f"#{rank + 1} {hit.score:.3f} {word}")
        y += ROW_HEIGHT + PAD
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG", optimize=True)
    return path
