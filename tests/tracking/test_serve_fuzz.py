"""Property-based fuzzing of every ``rsitr serve`` route (hypothesis, in-process TestClient).

Each example is one generated request; no answer may be a 5xx, and any exception escaping a
handler (what the server log would show as a traceback) fails the test, because the client
re-raises server exceptions. The default run sends well over 1,000 requests in seconds;
``-m slow`` sends ten times as many.
"""

from __future__ import annotations

import io
import json
from urllib.parse import quote
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from test_serve_hostile import _service, index_dir  # noqa: F401 - the module-scoped toy index

PER_ROUTE = 180  # x 7 strategies = 1,260 requests by default
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)
TOP_K = st.one_of(st.integers(-5, 500), st.floats(allow_nan=True), st.text(max_size=6), st.none(), st.booleans())


def _tiny_png(width: int, height: int, colour: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (colour, 255 - colour, 90)).save(out, format="PNG")
    return out.getvalue()


IMAGES = st.one_of(st.binary(max_size=300),
                   st.builds(_tiny_png, st.integers(1, 40), st.integers(1, 40), st.integers(0, 255)),
                   st.builds(lambda png, cut: png[:cut], st.builds(_tiny_png, st.just(32), st.just(32), st.just(9)),
                             st.integers(0, 200)))


@pytest.fixture(scope="module")
def fuzz_client(trained_toy: Path, index_dir: Path):  # noqa: F811
    from fastapi.testclient import TestClient

    from rsitr.app.serving.serve import create_app

    with TestClient(create_app(_service(trained_toy, index_dir), start_polling=False),
                    raise_server_exceptions=True) as client:  # an escaping exception fails the example
        yield client


def _ok(answer) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])


def _fuzz(strategy, send, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,  # the same cases each run
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(strategy)
    def run(case) -> None:
        _ok(send(case))

    run()


def _routes(client) -> list[tuple[object, object]]:
    def text_json(case):
        return client.post("/search/text", content=json.dumps({"query": case[0], "top_k": case[1]}).encode(),
                           headers={"content-type": "application/json"})  # json.dumps: NaN / Infinity too

    return [
        (st.tuples(st.text(max_size=60), TOP_K), text_json),
        (JSON_VALUES, lambda v: client.post("/search/text", content=json.dumps(v).encode(),
                                            headers={"content-type": "application/json"})),
        (st.binary(max_size=200), lambda b: client.post("/search/text", content=b,
                                                        headers={"content-type": "application/json"})),
        (st.tuples(IMAGES, TOP_K), lambda c: client.post("/search/image", files={"image": ("x.png", c[0])},
                                                         params={"top_k": str(c[1])})),
        (st.tuples(IMAGES, st.text(max_size=5)), lambda c: client.post("/", files={"image": ("x.png", c[0])},
                                                                      data={"top_k": c[1]})),
        (st.tuples(st.text(max_size=40), st.one_of(st.none(), st.integers(-3, 600), st.text(max_size=4))),
         lambda c: client.get("/gallery/" + quote(c[0], safe=""), params={} if c[1] is None else {"size": c[1]})),
        (st.tuples(st.text(max_size=40), st.text(max_size=5)), lambda c: client.get("/", params={"q": c[0], "k": c[1]})),
    ]


def _run_all(client, per_route: int) -> None:
    for strategy, send in _routes(client):
        _fuzz(strategy, send, per_route)
    _ok(client.get("/healthz"))
    _ok(client.get("/openapi.json"))


def test_fuzzed_requests_to_every_route_get_no_5xx(fuzz_client) -> None:
    _run_all(fuzz_client, PER_ROUTE)


@pytest.mark.slow
def test_many_more_fuzzed_requests_get_no_5xx(fuzz_client) -> None:
    _run_all(fuzz_client, PER_ROUTE * 10)
