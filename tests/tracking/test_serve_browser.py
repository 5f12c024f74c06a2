"""Slow: the web page in a real browser. Debian's headless chromium opens ``/?q=...`` on a real
uvicorn server, the result thumbnails load (``--dump-dom``) and show in the screenshot."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsitr.app.serving.gallery import GalleryBuild, build_gallery_index
from rsitr.config import load_params

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOP_K = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _chromium(profile: Path, *argv: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1000,700", "--hide-scrollbars"]
    return subprocess.run([CHROMIUM, *flags, *argv], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_page_shows_the_result_thumbnails_in_chromium(trained_toy: Path, tmp_path: Path) -> None:
    import uvicorn

    from rsitr.app.serving.serve import SearchService, create_app

    params = load_params(trained_toy)
    images = tmp_path / "gallery"
    images.mkdir()
    for i in range(200, 240):  # colour = i % 6: 0 red, 1 green, 2 blue, 3 yellow, 4 white, 5 black
        shutil.copy(Path(params.paths.data) / "img" / f"{i}.png", images / f"{i}.png")
    build_gallery_index(params, "finetune", images, tmp_path / "index", build=GalleryBuild(progress=False))
    service = SearchService(params, tmp_path / "index")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/?q=a+plain+red+field&k={TOP_K}"
        expected = service.search_text("a plain red field", TOP_K)["results"]
        dom = _chromium(tmp_path / "profile-dom", "--dump-dom", url)
        shot = tmp_path / "results.png"
        done = _chromium(tmp_path / "profile-shot", f"--screenshot={shot}", url)
    finally:
        server.should_exit = True
        thread.join(timeout=30)

    assert dom.returncode == 0, dom.stderr[-2000:]
    thumbs = re.findall(r'<img class="thumb" src="/gallery/([^"?]+)\?size=160"[^>]*data-loaded="(\d+)"', dom.stdout)
    assert [name for name, _ in thumbs] == [r["id"] for r in expected]  # the ranking, in order
    assert all(int(width) == 160 for _, width in thumbs), thumbs  # every thumbnail loaded (naturalWidth)

    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)  # [H, W, 3]
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    reds = sum(int(r["id"].split(".")[0]) % 6 == 0 for r in expected)
    assert reds >= 3  # the toy model ranks the red fields first
    # the page itself has no red: red pixels come from the rendered thumbnails (160 x 160 each)
    assert red.sum() > 0.6 * reds * 160 * 160, (red.sum(), reds, str(shot))
    print(f"screenshot: {shot} ({red.sum()} red pixels, {reds} red results of {TOP_K})")
