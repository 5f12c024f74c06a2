"""Hostile and clumsy requests to ``rsitr serve`` (issue 25): a 4xx with one message, never a 500 or a hang."""

from __future__ import annotations

import io
import socket
from contextlib import contextmanager
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from rsitr.config import load_params


@pytest.fixture(scope="module")
def index_dir(trained_toy: Path, tmp_path_factory: pytest.TempPathFactory, make_gallery_index) -> Path:
    return make_gallery_index(load_params(trained_toy), tmp_path_factory.mktemp("hostile"), 12)


def _service(trained_toy: Path, index_dir: Path, *overrides: str, model: str | None = None):
    from rsitr.app.serving.serve import SearchService

    return SearchService(load_params(trained_toy, list(overrides)), index_dir, model=model, poll_s=60)


@pytest.fixture(scope="module")
def client(trained_toy: Path, index_dir: Path):
    from fastapi.testclient import TestClient

    from rsitr.app.serving.serve import create_app

    with TestClient(create_app(_service(trained_toy, index_dir), start_polling=False),
                    raise_server_exceptions=False) as test_client:
        yield test_client


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, rows: int) -> bytes:
    """An RGB PNG whose header says ``width`` x ``height`` but whose pixel data holds ``rows`` rows."""
    pixels = zlib.compress((b"\x00" + b"\x80" * (3 * width)) * rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


def _bad_crc_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(out, format="PNG")
    data = bytearray(out.getvalue())
    at = data.index(b"IDAT")
    length = struct.unpack(">I", data[at - 4:at])[0]
    data[at + 4 + length] ^= 0xFF  # the IDAT chunk's CRC
    return bytes(data)


def test_a_lone_surrogate_in_the_query_is_a_400(client) -> None:
    answer = client.post("/search/text", content=b'{"query": "\\ud800", "top_k": 3}',
                         headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "surrogate" in answer.json()["error"]


def test_an_infinite_or_nan_top_k_is_a_400(client) -> None:  # found by the fuzz test
    for value in (b"Infinity", b"-Infinity", b"NaN"):
        answer = client.post("/search/text", content=b'{"query": "a red field", "top_k": ' + value + b"}",
                             headers={"content-type": "application/json"})
        assert answer.status_code == 400 and "top_k must be an integer" in answer.json()["error"]


def test_a_body_nested_100000_deep_is_a_400(client) -> None:
    answer = client.post("/search/text", content=b"[" * 100_000 + b"]" * 100_000,
                         headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "JSON" in answer.json()["error"]


def test_a_png_with_a_bad_idat_crc_is_a_415(client) -> None:
    answer = client.post("/search/image", files={"image": ("bad.png", _bad_crc_png(), "image/png")})
    assert answer.status_code == 415 and "not a readable image" in answer.json()["error"]


def test_a_huge_png_header_with_truncated_data_is_refused_not_searched(client) -> None:
    answer = client.post("/search/image", files={"image": ("big.png", _png(6000, 6600, 1), "image/png")})
    assert answer.status_code == 413 and "6000x6600" in answer.json()["error"] and "results" not in answer.json()
    cut = _png(64, 64, 64)
    answer = client.post("/search/image", files={"image": ("cut.png", cut[: len(cut) // 2], "image/png")})
    assert answer.status_code == 415 and "results" not in answer.json()


def test_a_1_mb_query_is_a_413_that_does_not_echo_it(client) -> None:
    query = " ".join(f"w{i}" for i in range(200_000))[:1_000_000]
    started = time.monotonic()
    answer = client.post("/search/text", json={"query": query, "top_k": 3})
    assert answer.status_code == 413 and "serve.max_query_chars" in answer.json()["error"]
    assert len(answer.content) < 1000 and time.monotonic() - started < 2.0
    assert client.get("/", params={"q": query[:5000]}).status_code == 413


def test_healthz_tells_ready_from_degraded(client, trained_toy: Path, index_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from rsitr.app.serving.serve import create_app

    ready = client.get("/healthz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok" and ready.json()["reason"] is None
    service = _service(trained_toy, index_dir, model="models:/no-such-model@champion")  # the alias check fails
    with TestClient(create_app(service, start_polling=False)) as degraded_client:
        degraded = degraded_client.get("/healthz")
    assert degraded.status_code == 503 and degraded.json()["status"] == "degraded"
    assert "alias check failed" in degraded.json()["reason"]


def test_uvicorn_gets_the_connection_bounds(trained_toy: Path, index_dir: Path, monkeypatch) -> None:
    import uvicorn

    from rsitr.app.serving.serve import run_server

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    params = load_params(trained_toy, ["serve.max_connections=7", "serve.backlog=9"])
    run_server(params, index_dir)
    assert seen["limit_concurrency"] == 7 and seen["backlog"] == 9


@contextmanager
def _real_server(service, seconds: float, max_connections: int):
    """``rsitr serve``'s uvicorn settings (connection_bounds) on a free port, in a thread."""
    import uvicorn

    from rsitr.app.serving.serve import connection_bounds, create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(service, start_polling=False), host="127.0.0.1", port=port, log_level="warning",
                            **connection_bounds(max_connections, 128, seconds))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _closed_within(conn: socket.socket, seconds: float) -> tuple[bytes, float]:
    """Read until the server closes the connection (or ``seconds`` pass); what came and when it ended."""
    started, received = time.monotonic(), b""
    while time.monotonic() - started < seconds:
        try:
            conn.sendall(b" ")  # one byte a second: the slow sender
        except OSError:
            return received, time.monotonic() - started
        conn.settimeout(1.0)
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return received, time.monotonic() - started
        if not chunk:
            return received, time.monotonic() - started
        received += chunk
    return received, float("inf")


def test_a_body_sent_at_1_byte_per_second_is_answered_and_the_connection_closed(trained_toy: Path,
                                                                                index_dir: Path) -> None:
    service = _service(trained_toy, index_dir)
    assert service.params.serve.body_timeout_s <= 5.0  # the default cuts a slow body off well before 15 s
    with _real_server(service, service.params.serve.body_timeout_s, 64) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        conn.sendall(b"POST /search/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n")
        reply, ended = _closed_within(conn, 15)
    assert reply.startswith(b"HTTP/1.1 408") and ended < 8.0, (reply[:200], ended)  # was: open past 15 s


def test_half_open_connections_are_closed_and_do_not_starve_the_server(trained_toy: Path, index_dir: Path) -> None:
    service = _service(trained_toy, index_dir)
    with _real_server(service, 1.0, 4) as port:
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(12)]
        for conn in held:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        time.sleep(2.5)
        still_open = 0
        for conn in held:
            conn.settimeout(0.5)
            try:
                still_open += conn.recv(1) != b""
            except TimeoutError:
                still_open += 1
            except OSError:
                pass
            conn.close()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as fresh:
            fresh.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = fresh.recv(64)
    assert still_open == 0  # was: every half-open connection held (and everyone else got 503)
    assert answer.startswith(b"HTTP/1.1 200"), answer


def test_openapi_describes_the_search_bodies_and_gallery_files_stream(client) -> None:
    spec = client.get("/openapi.json").json()
    text = spec["paths"]["/search/text"]["post"]
    assert "query" in text["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert "multipart/form-data" in spec["paths"]["/search/image"]["post"]["requestBody"]["content"]
    for route in ("/search/text", "/search/image"):
        answer = spec["paths"][route]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer["$ref"].endswith("/SearchAnswer")
    assert "results" in spec["components"]["schemas"]["SearchAnswer"]["properties"]
    image = client.get("/gallery/" + client.app.state.service.current.searcher.index.ids[0])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


def test_the_page_escapes_the_query_it_echoes(client) -> None:
    page = client.get("/", params={"q": '<script>alert(1)</script> "river"', "k": 3})
    assert page.status_code == 200
    assert "<script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt; &#34;river&#34;" in page.text
    assert page.text.count('class="result"') == 3
