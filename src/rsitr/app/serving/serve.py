"""``rsitr serve``: gallery search over HTTP (FastAPI + uvicorn) that follows a registry alias.

The service loads the model ONCE per model version (``GallerySearcher``) and keeps serving it
while it checks, every ``serve.poll_s`` seconds, where the alias it follows
(``models:/<name>@<alias>``, by default the one its index was built from) points. When the
alias moves to another version and an index built with that version exists beside the
served one (the index folder's parent, or the folder of indexes given), the new version is
loaded in the background and swapped in without a restart; until then ``/healthz`` names the
version served and what is pending::

    {"status": "ok", "serving": {"name": "rsitr-finetune", "version": "1", ...},
     "follows": "models:/rsitr-finetune@champion", "alias_points_to": "2",
     "pending": "no index for rsitr-finetune v2 yet: rsitr index build --model models:/rsitr-finetune/2 ..."}

Endpoints: ``POST /search/text`` (JSON ``{"query", "top_k"}``), ``POST /search/image``
(multipart upload, field ``image``, or the raw image bytes; ``?top_k=``): image -> image, the
index holds images only; ``GET /healthz``; ``GET /gallery/<id>`` (the gallery image, or a
thumbnail with ``?size=``); ``GET /`` a web page (``/?q=...`` renders results server-side,
an upload form searches by image). Bad requests get a 4xx with a message, never a 500.
/openapi.json (and /docs) describes both search routes' request and response bodies.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import mimetypes
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from starlette.datastructures import UploadFile  # what request.form() yields (fastapi.UploadFile's base)
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from rsitr.app.serving.gallery import SearchChoice, check_query, index_model, load_index_model, make_searcher
from rsitr.config import RsitrParams
from rsitr.errors import ConfigError, DataError, RsitrError
from rsitr.retrieval.gallery_index import INDEX_FILE, GalleryIndex
from rsitr.retrieval.searcher import GallerySearcher
from rsitr.tracking.registry import parse_model_uri, resolve_model_version

THUMB_SIZES = (64, 128, 160, 256, 512)
log = logging.getLogger(__name__)


class TextQuery(BaseModel):
    """The body of ``POST /search/text`` (documented in /openapi.json; parsed by hand, see ``create_app``)."""

    query: str = Field(examples=["two white storage tanks next to a road"], description="at most serve.max_query_chars")
    top_k: int = Field(10, ge=1, examples=[10])


class Hit(BaseModel):
    rank: int
    id: str
    score: float
    coarse: float


class SearchAnswer(BaseModel):
    """The answer of both search routes."""

    query: str
    mode: str
    results: list[Hit]
    candidates: int
    coarse: str
    fine: str
    timings_ms: dict[str, float]
    model: dict[str, Any]


class ErrorAnswer(BaseModel):
    error: str


SEARCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": SearchAnswer}, 400: {"model": ErrorAnswer}, 408: {"model": ErrorAnswer},
    413: {"model": ErrorAnswer}, 415: {"model": ErrorAnswer}}
IMAGE_BODY = {"requestBody": {"content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary"}, "top_k": {"type": "integer"}}}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}}


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class BodyDeadline:
    """ASGI middleware: a request body not received in full within ``seconds`` gets a 408 (slow-loris)."""

    def __init__(self, app: Any, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds

        async def bounded_receive() -> dict[str, Any]:
            try:
                return await asyncio.wait_for(receive(), timeout=max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise BadRequest(408, f"the request body was not received within {self.seconds:g} s "
                                      "(serve.body_timeout_s)") from None

        await self.app(scope, bounded_receive, send)


@dataclass
class Served:
    """One loaded model version with its index."""

    searcher: GallerySearcher
    model: dict[str, Any]  # the index's model record
    index_dir: Path
    loaded_at: str

    def describe(self) -> dict[str, Any]:
        keys = ("name", "version", "alias", "model_id", "run_id", "variant", "uri")
        return {k: self.model.get(k) for k in keys if self.model.get(k) is not None} | {
            "index": str(self.index_dir), "items": len(self.searcher), "coarse": self.searcher.coarse_kind,
            "fine": self.searcher.fine, "loaded_at": self.loaded_at}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_model_record(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / INDEX_FILE).read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("model") or None


class SearchService:
    """The served version, the alias it follows, and the swap when the alias moves."""

    def __init__(self, params: RsitrParams, index: str | Path, *, model: str | None = None,
                 device: str | None = None, poll_s: float | None = None):
        self.params, self.device = params, device
        self.poll_s = float(poll_s if poll_s is not None else params.serve.poll_s)
        path = Path(index)
        if (path / INDEX_FILE).is_file():
            first, self.index_root = path, path.parent
        elif path.is_dir():
            first, self.index_root = None, path
        else:
            raise DataError(f"no gallery index or folder of indexes at {str(path)!r}; build one with "
                            "`rsitr index build --model models:/<name>@<alias> --images DIR --out INDEX`")
        record = _read_model_record(first) if first is not None else None
        self.follows = model or (record.get("uri") if record and record.get("alias") else None)
        if self.follows is not None:
            name, alias, _ = parse_model_uri(self.follows)
            if alias is None:
                raise ConfigError(f"--model {self.follows!r} names a fixed version; give an alias to follow, "
                                  f"e.g. models:/{name}@champion")
            self.name, self.alias = name, alias
        self.alias_points_to: str | None = None
        self.pending: str | None = None
        self.last_check: str | None = None
        self.check_error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: Served | None = None
        if self.follows is not None:
            self.refresh()
        if self.current is None:
            if first is None:
                raise DataError(f"no index under {str(path)!r} was built with the version {self.follows} points to "
                                f"({self.alias_points_to}); {self.pending or ''}")
            self.current = self._load(first)
            if self.follows is not None:
                self.refresh()

    # -------------------------------------------------------------------- versions
    def _load(self, index_dir: Path) -> Served:
        index = GalleryIndex.load(index_dir)
        searcher = make_searcher(self.params, index, load_index_model(self.params, index),
                                 SearchChoice(device=self.device))
        return Served(searcher=searcher, model=index_model(index), index_dir=index_dir, loaded_at=_now())

    def find_index(self, version: str) -> Path | None:
        """The newest complete index under the index folder built with ``<name>`` version ``version``."""
        found = []
        for folder in [self.index_root, *sorted(p for p in self.index_root.iterdir() if p.is_dir())]:
            record = _read_model_record(folder)
            if record and record.get("name") == self.name and str(record.get("version")) == str(version):
                found.append(((folder / INDEX_FILE).stat().st_mtime, folder))
        return max(found)[1] if found else None

    def refresh(self) -> None:
        """Resolve the alias; load and swap in its version when an index for it exists."""
        if self.follows is None:
            return
        with self._lock:
            try:
                target = resolve_model_version(self.params, self.follows).version
            except RsitrError as exc:  # registry unreachable or alias removed: keep serving
                self.check_error = str(exc)
                self.last_check = _now()
                return
            # health() reads without the lock, current first, then alias_points_to, then pending: each
            # branch writes pending before the fields a reader checks first, so no reader sees a new
            # version or alias beside a stale pending message.
            self.check_error, self.last_check = None, _now()
            if self.current is not None and str(self.current.model.get("version")) == target:
                self.pending, self.alias_points_to = None, target
                return
            folder = self.find_index(target)
            if folder is None:
                self.pending = (f"no index for {self.name} v{target} yet: rsitr index build --model "
                                f"models:/{self.name}/{target} --images DIR --out {self.index_root}/{self.name}-v{target}")
                self.alias_points_to = target
                return
            try:
                loaded = self._load(folder)
            except Exception as exc:  # noqa: BLE001 - a broken new version must not stop the served one
                self.pending = f"{self.name} v{target} failed to load from {folder}: {type(exc).__name__}: {exc}"
                self.alias_points_to = target
                return
            self.pending = None
            self.current = loaded  # one reference swap: requests see old or new, never half
            self.alias_points_to = target
            log.warning("rsitr serve: now serving %s v%s (%s)", self.name, target, folder)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.refresh()

    def start(self) -> None:
        if self.follows is not None and self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="rsitr-alias-poll", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def health(self) -> dict[str, Any]:
        """``status`` "ok" when serving with a working alias check, else "degraded" with the ``reason``."""
        served = self.current
        reason = ("no model loaded" if served is None else
                  f"alias check failed: {self.check_error}" if self.check_error else None)
        return {"status": "degraded" if reason else "ok", "reason": reason, "serving": served.describe() if served else None, "follows": self.follows,
                "alias_points_to": self.alias_points_to, "pending": self.pending, "last_check": self.last_check,
                "check_error": self.check_error, "poll_s": self.poll_s if self.follows else None}

    # -------------------------------------------------------------------- queries
    def search_text(self, query: Any, top_k: Any) -> dict[str, Any]:
        if not isinstance(query, str):
            raise BadRequest(400, "'query' must be a string, e.g. {\"query\": \"two white storage tanks\", \"top_k\": 10}")
        limit = self.params.serve.max_query_chars
        if len(query) > limit:
            raise BadRequest(413, f"'query' has {len(query):,} characters; at most {limit:,} (serve.max_query_chars)")
        try:
            query.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(400, "'query' is not valid Unicode text (a lone surrogate such as \\ud800); "
                                  "send UTF-8 text") from None
        top_k = _int(top_k, "top_k")
        try:
            check_query(query, None, top_k, None, max_top_k=self.params.serve.max_top_k)
        except ConfigError as exc:
            raise BadRequest(400, str(exc).replace("--top-k", "top_k")) from None
        served = self.current
        return served.searcher.search_text(query, top_k) | {"model": served.describe()}

    def search_image(self, data: bytes, top_k: Any, label: str = "upload") -> dict[str, Any]:
        top_k = _int(top_k, "top_k")
        try:
            check_query(None, label, top_k, None, max_top_k=self.params.serve.max_top_k)
        except ConfigError as exc:
            raise BadRequest(400, str(exc).replace("--top-k", "top_k")) from None
        check_image(data, self.params.serve.max_image_pixels)
        served = self.current
        try:
            result = served.searcher.search_image(io.BytesIO(data), top_k, label)
        except DataError as exc:
            raise BadRequest(415, f"the upload is not a readable image ({exc})") from None
        return result | {"model": served.describe()}

    def gallery_path(self, item_id: str) -> str:
        served = self.current
        position = _positions(served.searcher.index).get(item_id)
        if position is None:
            raise BadRequest(404, f"no gallery item {item_id!r} in the served index")
        return served.searcher.index.paths[position]


def _positions(index: GalleryIndex) -> dict[str, int]:
    cached = getattr(index, "_positions", None)
    if cached is None:
        cached = {item: i for i, item in enumerate(index.ids)}
        index._positions = cached  # type: ignore[attr-defined]
    return cached


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise BadRequest(400, f"{name} must be an integer, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON Infinity
        raise BadRequest(400, f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, float) and value != number:
        raise BadRequest(400, f"{name} must be an integer, got {value!r}")
    return number


def check_image(data: bytes, max_pixels: int) -> None:
    """4xx unless ``data`` is a whole image of at most ``max_pixels`` (size from the header, before decoding)."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadRequest(400, "no image in the request: upload a PNG/JPEG as multipart field 'image' (or as the body)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise BadRequest(413, f"image is {width}x{height} pixels; at most {max_pixels:,} "
                                      "(serve.max_image_pixels)")
            image.verify()  # chunk checksums
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # the whole pixel data: a truncated file is refused, not searched in part
    except BadRequest:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadRequest(415, f"the upload is not a readable image ({type(exc).__name__}); send a PNG or JPEG") from None


# ------------------------------------------------------------------------ the web page

@lru_cache(maxsize=1)
def _page_template() -> jinja2.Template:
    """``templates/search.html.j2``, autoescaped: queries, ids and messages can never inject markup."""
    environment = jinja2.Environment(loader=jinja2.PackageLoader("rsitr.app.serving", "templates"), autoescape=True,
                                     undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return environment.get_template("search.html.j2")


def render_page(service: SearchService, *, q: str = "", k: int = 12, result: dict[str, Any] | None = None,
                error: str | None = None) -> str:
    """The search page: the query forms, then an error, the results as thumbnails, or nothing."""
    described = service.current.describe()
    label = (f"{described['name']} v{described['version']}" if described.get("version")
             else f"{described.get('variant')} (this project's models/{described.get('variant')}/best.pt)")
    return _page_template().render(
        serving=label, items=described["items"], coarse=described["coarse"], fine=described["fine"],
        pending=service.pending or "", q=q, k=k, max_k=service.params.serve.max_top_k, error=error,
        result=None if result is None else {**result, "query": str(result["query"])})


# ------------------------------------------------------------------------ the app


class BodyReader:
    """Request bodies up to ``max_bytes``: JSON/raw bodies streamed with the cap, multipart via python-multipart."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes

    async def body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise BadRequest(413, f"upload of {int(declared):,} bytes is over the limit of {self.max_bytes:,} "
                                  "(serve.max_upload_mb)")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_bytes:
                raise BadRequest(413, f"upload is over the limit of {self.max_bytes:,} bytes (serve.max_upload_mb)")
            chunks.append(chunk)
        return b"".join(chunks)

    async def upload(self, request: Request) -> tuple[bytes, dict[str, str]]:
        """``(image bytes, other form fields)`` of a multipart form (python-multipart, via Starlette), or the body."""
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return await self.body(request), {}
        data = await self.body(request)  # capped first: a chunked upload has no Content-Length to check
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}

        form = await Request(request.scope, replay).form(max_files=1, max_fields=16, max_part_size=self.max_bytes)
        image = form.get("image")
        if not isinstance(image, UploadFile):
            raise BadRequest(400, "no 'image' file field in the multipart form")
        fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        return await image.read(), fields


def create_app(service: SearchService, *, start_polling: bool = True) -> FastAPI:
    """The FastAPI app over ``service`` (polling starts with the app's lifespan)."""
    reader = BodyReader(int(service.params.serve.max_upload_mb * 1024 * 1024))

    @asynccontextmanager
    async def lifespan(_app: Any):
        if start_polling:
            service.start()
        yield
        service.stop()

    app = FastAPI(title="rsitr search", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(BadRequest)
    async def bad_request(_request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=_closing(exc.status))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid request", "detail": exc.errors()}, status_code=422)

    app.add_middleware(BodyDeadline, seconds=service.params.serve.body_timeout_s)
    _add_search_routes(app, service, reader)
    _add_page_routes(app, service, reader)
    return app


def _add_search_routes(app: FastAPI, service: SearchService, reader: BodyReader) -> None:
    """/healthz, /search/text, /search/image."""
    @app.get("/healthz", responses={200: {"description": 'ready: {"status": "ok", ...}'},
                                    503: {"description": 'degraded: {"status": "degraded", "reason": ...}'}})
    async def healthz() -> JSONResponse:
        health = service.health()
        return JSONResponse(health, status_code=200 if health["status"] == "ok" else 503)

    # The request bodies are documented (TextQuery, IMAGE_BODY) but read by hand: the hand-read body keeps its
    # size cap, its deadline and its one-line 400s for JSON that FastAPI's parser would answer with a 500
    # (a body nested 100,000 deep raises RecursionError there).
    text_body = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": TextQuery.model_json_schema(ref_template="#/components/schemas/{model}")}}}}

    @app.post("/search/text", responses=SEARCH_RESPONSES, openapi_extra=text_body)
    async def search_text(request: Request) -> JSONResponse:
        try:
            payload = json.loads(await reader.body(request) or b"null")
        except (ValueError, RecursionError):  # RecursionError: a body nested thousands deep
            raise BadRequest(400, 'the body must be JSON: {"query": "...", "top_k": 10}') from None
        if not isinstance(payload, dict) or "query" not in payload:
            raise BadRequest(400, 'the body must be a JSON object with "query" (and optionally "top_k")')
        result = await run_in_threadpool(service.search_text, payload["query"], payload.get("top_k", 10))
        return JSONResponse(result)

    @app.post("/search/image", responses=SEARCH_RESPONSES, openapi_extra=IMAGE_BODY)
    async def search_image(request: Request, top_k: int | None = None) -> JSONResponse:
        data, fields = await reader.upload(request)
        chosen = top_k if top_k is not None else fields.get("top_k", 10)
        return JSONResponse(await run_in_threadpool(service.search_image, data, chosen))


def _add_page_routes(app: FastAPI, service: SearchService, reader: BodyReader) -> None:
    """/gallery/<id> and the web page."""
    @app.get("/gallery/{item_id:path}")
    async def gallery(item_id: str, size: int | None = None) -> Response:
        path = service.gallery_path(item_id)
        if size is None:  # streamed from disk by Starlette, MIME type from the mimetypes registry
            return FileResponse(path, media_type=mimetypes.guess_type(path)[0] or "application/octet-stream")
        if size not in THUMB_SIZES:
            raise BadRequest(400, f"size must be one of {', '.join(map(str, THUMB_SIZES))}")
        return Response(await run_in_threadpool(thumbnail, path, size), media_type="image/jpeg")

    @app.get("/", response_class=HTMLResponse)
    async def page(q: str = "", k: str = "12") -> HTMLResponse:
        if not q:
            return HTMLResponse(render_page(service, k=12))
        try:
            result = await run_in_threadpool(service.search_text, q, k)
            return HTMLResponse(render_page(service, q=q, k=int(k), result=result))
        except BadRequest as exc:
            return HTMLResponse(render_page(service, q=q, error=exc.message), status_code=exc.status,
                                headers=_closing(exc.status))

    @app.post("/", response_class=HTMLResponse)
    async def page_upload(request: Request) -> HTMLResponse:
        try:
            data, fields = await reader.upload(request)
            result = await run_in_threadpool(service.search_image, data, fields.get("top_k", 12))
            return HTMLResponse(render_page(service, result=result))
        except BadRequest as exc:
            return HTMLResponse(render_page(service, error=exc.message), status_code=exc.status,
                                headers=_closing(exc.status))


@lru_cache(maxsize=4096)
def thumbnail(path: str, size: int) -> bytes:
    """JPEG bytes of the image at ``path`` fitted in ``size`` x ``size`` (cached)."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((size, size))
        if min(image.size) < size:  # small gallery images are scaled up for the page
            scale = size / max(image.size)
            image = image.resize((max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale))))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=85)
        return out.getvalue()


def run_server(params: RsitrParams, index: str | Path, *, model: str | None = None, host: str | None = None,
               port: int | None = None, device: str | None = None) -> None:
    """Load the served version once, then serve until interrupted (``rsitr serve``)."""
    import uvicorn

    service = SearchService(params, index, model=model, device=device)
    health = service.health()
    log.warning("rsitr serve: %s; follows %s%s", json.dumps(health["serving"]), service.follows or "(a fixed model)",
                "; pending: " + service.pending if service.pending else "")
    uvicorn.run(create_app(service), host=host or params.serve.host, port=port or params.serve.port,
                log_level="info", access_log=True,  # uvicorn.access: one line per request, via logging
                **connection_bounds(params.serve.max_connections, params.serve.backlog, params.serve.body_timeout_s))


def connection_bounds(max_connections: int, backlog: int, seconds: float) -> dict[str, Any]:
    """uvicorn settings that bound what idle or slow clients can hold (serve.max_connections, ...)."""
    return {"limit_concurrency": max_connections, "backlog": backlog, "timeout_keep_alive": 5,
            "http": header_deadline_protocol(seconds)}


def _closing(status: int) -> dict[str, str] | None:
    """408 / 413 leave the rest of the body unread: close the connection instead of draining it."""
    return {"connection": "close"} if status in (408, 413) else None


def header_deadline_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol, closing a connection whose first request headers are not in within ``seconds``.

    uvicorn times out idle keep-alive connections but not one that never finishes its headers
    (half-open or slow-header clients), which would hold a ``limit_concurrency`` slot forever.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.loop.call_later(seconds, self._headers_overdue)

        def _headers_overdue(self) -> None:
            if self.cycle is None and not self.transport.is_closing():  # no request got its headers in
                self.transport.close()

    return HeaderDeadline
