"""``rsitr serve`` as FastAPI users expect it (issue 26): typed bodies in /openapi.json, UploadFile, FileResponse, access log."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsitr.config import load_params


@pytest.fixture(scope="module")
def served(trained_toy: Path, tmp_path_factory: pytest.TempPathFactory, make_gallery_index):
    """``(TestClient, gallery folder)`` over a 6-image index of the toy project's finetune model."""
    from fastapi.testclient import TestClient

    from rsitr.app.serving.serve import SearchService, create_app

    params = load_params(trained_toy)
    root = tmp_path_factory.mktemp("openapi")
    make_gallery_index(params, root, 6)
    service = SearchService(params, root / "index", poll_s=60)
    with TestClient(create_app(service, start_polling=False), raise_server_exceptions=False) as client:
        yield client, root / "gallery"


def _schema(spec: dict, node: dict) -> dict:
    """``node`` with a top-level ``$ref`` resolved against ``spec``'s components."""
    ref = node.get("$ref")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else node


def test_openapi_describes_the_search_bodies(served) -> None:
    client, _ = served
    spec = client.get("/openapi.json").json()
    text = spec["paths"]["/search/text"]["post"]
    request = _schema(spec, text["requestBody"]["content"]["application/json"]["schema"])
    assert {"query", "top_k"} <= set(request["properties"]) and "query" in request["required"]
    for route in ("/search/text", "/search/image"):
        response = spec["paths"][route]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        body = _schema(spec, response)
        assert {"results", "mode", "query", "model"} <= set(body["properties"]), (route, body)
        hit = _schema(spec, body["properties"]["results"]["items"])
        assert {"rank", "id", "score"} <= set(hit["properties"])
    upload = _schema(spec, spec["paths"]["/search/image"]["post"]["requestBody"]["content"]
                     ["multipart/form-data"]["schema"])
    assert "image" in upload["properties"]  # an UploadFile field, documented as a binary upload
    health = spec["paths"]["/healthz"]["get"]["responses"]
    assert {"200", "503"} <= set(health)


def test_uploads_and_raw_bodies_still_search(served) -> None:
    client, gallery = served
    data = (gallery / "203.png").read_bytes()
    multipart = client.post("/search/image", data={"top_k": "2"}, files={"image": ("q.png", data, "image/png")})
    assert multipart.status_code == 200, multipart.text
    assert multipart.json()["results"][0]["id"] == "203.png" and len(multipart.json()["results"]) == 2
    raw = client.post("/search/image?top_k=1", content=data, headers={"content-type": "image/png"})
    assert raw.status_code == 200 and raw.json()["results"][0]["id"] == "203.png"
    page = client.post("/", files={"image": ("q.png", data, "image/png")}, data={"top_k": "3"})
    assert page.status_code == 200 and page.text.count('class="result"') == 3


def test_gallery_files_are_served_as_files(served) -> None:
    client, gallery = served
    answer = client.get("/gallery/201.png")
    assert answer.status_code == 200 and answer.content == (gallery / "201.png").read_bytes()
    assert answer.headers["content-type"] == "image/png"
    assert answer.headers.get("etag") and answer.headers.get("last-modified")  # starlette FileResponse
    part = client.get("/gallery/201.png", headers={"range": "bytes=0-7"})
    assert part.status_code == 206 and part.content == b"\x89PNG\r\n\x1a\n"  # range requests, as FileResponse does


def test_run_server_keeps_uvicorns_access_log(trained_toy: Path, served, monkeypatch) -> None:
    import uvicorn

    from rsitr.app.serving.serve import run_server

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    index = Path(served[1]).parent / "index"
    run_server(load_params(trained_toy), index)
    assert seen.get("access_log", True) is True and seen.get("log_level", "info") == "info"
