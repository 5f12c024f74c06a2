"""A multipart upload sent chunked (no Content-Length) is held to ``serve.max_upload_mb`` like any other body."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rsitr.config import load_params


@pytest.fixture(scope="module")
def client(trained_toy: Path, tmp_path_factory: pytest.TempPathFactory, make_gallery_index):
    from fastapi.testclient import TestClient

    from rsitr.app.serving.serve import SearchService, create_app

    params = load_params(trained_toy, ["serve.max_upload_mb=1"])
    root = tmp_path_factory.mktemp("upload-limit")
    make_gallery_index(params, root, 4)
    service = SearchService(params, root / "index", poll_s=60)
    with TestClient(create_app(service, start_polling=False), raise_server_exceptions=False) as test_client:
        yield test_client, root / "gallery"


def _chunked_form(payload: bytes, repeat: int) -> Iterator[bytes]:
    """A multipart body with one ``image`` file part of ``payload * repeat``, as a generator (sent chunked)."""
    yield (b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
           b"Content-Type: image/png\r\n\r\n")
    for _ in range(repeat):
        yield payload
    yield b'\r\n--XyZ\r\nContent-Disposition: form-data; name="top_k"\r\n\r\n2\r\n--XyZ--\r\n'


FORM = {"content-type": "multipart/form-data; boundary=XyZ"}


def test_a_chunked_multipart_upload_over_the_limit_is_a_413(client) -> None:
    test_client, _ = client
    answer = test_client.post("/search/image", content=_chunked_form(b"\0" * (1 << 20), 20), headers=FORM)
    assert answer.status_code == 413 and "serve.max_upload_mb" in answer.json()["error"], answer.text
    page = test_client.post("/", content=_chunked_form(b"\0" * (1 << 20), 20), headers=FORM)
    assert page.status_code == 413 and "serve.max_upload_mb" in page.text


def test_a_chunked_multipart_upload_under_the_limit_still_searches(client) -> None:
    test_client, gallery = client
    answer = test_client.post("/search/image", content=_chunked_form((gallery / "202.png").read_bytes(), 1),
                              headers=FORM)
    assert answer.status_code == 200, answer.text
    assert [r["id"] for r in answer.json()["results"]][:1] == ["202.png"] and len(answer.json()["results"]) == 2
