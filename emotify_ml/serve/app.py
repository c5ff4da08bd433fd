"""The FastAPI application: REST routes, the websocket, the page, and the guards in front of them.

``create_app(engine, settings)`` builds it; nothing is loaded at import. The engine (the
model) is handed in, or a zero-argument factory that the lifespan calls, and reaches the
routes through a dependency. Inference runs in a thread pool sized to the cores (created by
the lifespan), never on the event loop, so ``/healthz`` answers while frames are scored.

Guards (an ASGI middleware, so they also cover the websocket, the static files and ``/docs``):

* Host header: only the names in ``settings.allowed_hosts`` (when set; the CLI sets the
  loopback names when it binds to loopback), against DNS rebinding;
* bearer token: every route but ``/healthz`` when ``settings.token`` is set, from the
  ``Authorization: Bearer`` header, else a ``?token=`` query on the page and the websocket,
  else the ``emotify_token`` cookie that ``GET /?token=...`` sets (SameSite=Strict; a token
  given explicitly wins over the remembered one, so a restarted server's new token works);
* request size: ``Content-Length`` and the streamed body are counted against the route's limit
  (413 as soon as it is passed);
* websocket origin: a browser's ``Origin`` must be this server or a configured CORS origin.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from emotify_ml.exceptions import EmotifyError, ModelNotFoundError
from emotify_ml.serve.decode import (IMAGE_TYPES, RequestInputError, TooLargeError, UnsupportedMediaError,
                                     decode_image)
from emotify_ml.serve.schemas import (PRIOR_HELP, AnalyzeResponse, ErrorBody, Health, ModelResponse, ModelSummary,
                                      PriorName, StreamReply, VideoErrorLine, VideoFrameLine, VideoSummaryLine)

log = logging.getLogger("emotify_ml.serve")

STATIC_DIR = Path(__file__).resolve().parent / "static"
TOKEN_COOKIE = "emotify_token"
MULTIPART_SLACK = 64 * 1024
"""Bytes a multipart body may carry beyond the file itself (boundaries, headers)."""
SMALL_BODY = 64 * 1024
"""Body limit of routes that take no upload."""
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
                               "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
"""The page may load only what the package serves (no CDN, no fonts from elsewhere)."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
CHUNK = 1 << 20
WS_CLOSE_TOO_BIG = 1009
WS_CLOSE_POLICY = 1008


@dataclass
class ServeSettings:
    """What the server enforces (the CLI's flags).

    Attributes
    ----------
    token : str or None
        Bearer token required by every route but ``/healthz``; None: no token.
    cors_origins : list of str
        Origins allowed to call the API from a browser page; empty: CORS closed.
    allowed_hosts : list of str or None
        ``Host`` header values accepted (``host`` or ``host:port``); None: any.
    max_image_bytes : int
        Largest image upload and websocket frame.
    max_video_bytes : int
        Largest video upload.
    max_video_seconds : float
        Most media time of a video that is scored (a request may ask for less).
    max_pixels : int
        Most pixels of a decoded image.
    workers : int or None
        Threads scoring frames; None: the CPU cores.
    tmp_dir : str or None
        Where uploads are staged (always deleted); None: the system temp folder.
    """

    token: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    allowed_hosts: list[str] | None = None
    max_image_bytes: int = 10_000_000
    max_video_bytes: int = 200_000_000
    max_video_seconds: float = 600.0
    max_pixels: int = 40_000_000
    workers: int | None = None
    tmp_dir: str | None = None

    @property
    def n_workers(self) -> int:
        """Scoring threads: ``workers``, else the cores this process may run on."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, int(self.workers or cores or 1))


def create_app(engine, settings: ServeSettings | None = None) -> FastAPI:
    """The Emotify FastAPI app.

    Parameters
    ----------
    engine : :class:`emotify_ml.serve.engine.Engine` or callable
        The scoring engine, or a zero-argument callable that makes it (called by the lifespan,
        in a worker thread, when the app starts).
    settings : ServeSettings, optional
    """
    settings = settings if settings is not None else ServeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        executor = ThreadPoolExecutor(max_workers=settings.n_workers, thread_name_prefix="emotify-infer")
        app.state.executor = executor
        try:
            loop = asyncio.get_running_loop()
            made = engine if hasattr(engine, "analyze") else await loop.run_in_executor(executor, engine)
            app.state.engine = made
            await loop.run_in_executor(executor, made.warm_up)
            yield
        finally:
            app.state.engine = None
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="Emotify", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Facial emotions over HTTP: faces, their boxes and the probability of each of the 7 "
                  "FER-2013 emotions, for images, videos (NDJSON) and a websocket of webcam frames. "
                  "Errors are JSON `{\"error\": ..., \"message\": ...}`. When the server has a token, send "
                  "`Authorization: Bearer <token>` (every route but `/healthz`).")
    app.state.settings = settings
    app.state.engine = None
    _add_error_handlers(app)
    app.add_middleware(Guard, settings=settings)
    if settings.cors_origins:  # outside the guard: it answers preflights (which carry no token) itself
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)
    _add_routes(app, settings)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("emotify")
    except metadata.PackageNotFoundError:
        return "0"


# -- dependencies -----------------------------------------------------------------------------------------------
def get_engine(request: Request):
    engine = request.app.state.engine
    if engine is None:
        raise StarletteHTTPException(503, "the model is still loading")
    return engine


EngineDep = Annotated[object, Depends(get_engine)]


async def run_blocking(app, fn, *args, **kwargs):
    """Run ``fn`` in the app's inference thread pool (never on the event loop)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(app.state.executor, lambda: fn(*args, **kwargs))


def _decode_then(score, data: bytes, settings: ServeSettings, *args, **kwargs):
    """Decode an image and score it in one trip to the pool: (face records, (height, width))."""
    frame = decode_image(data, max_bytes=settings.max_image_bytes, max_pixels=settings.max_pixels)
    records, _ = score(frame, *args, **kwargs)
    return records, frame.shape[:2]


def _summary(engine) -> ModelSummary:
    return ModelSummary(name=engine.info.name, version=engine.info.version)


# -- routes -------------------------------------------------------------------------------------------------------
_IMAGE_BODY = {"requestBody": {"content": {
    **{media: {"schema": {"type": "string", "format": "binary"}} for media in IMAGE_TYPES.values()},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "image": {"type": "string", "format": "binary", "description": "a JPEG, PNG or WebP image"}},
        "required": ["image"]}}}, "required": True}}
_VIDEO_BODY = {"requestBody": {"content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "video/mp4": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "video": {"type": "string", "format": "binary", "description": "a video file (MP4, WebM, AVI, MOV)"}},
        "required": ["video"]}}}, "required": True}}
_AUTH = {401: {"model": ErrorBody, "description": "missing or wrong token (when the server has one)"}}
_ERRORS = {**_AUTH, **{status: {"model": ErrorBody, "description": text} for status, text in (
    (413, "over the size limit"), (415, "not a supported media type"), (422, "corrupt input or a bad parameter"))}}


def _add_routes(app: FastAPI, settings: ServeSettings) -> None:
    @app.get("/healthz", response_model=Health, tags=["service"], summary="Liveness (no token needed)")
    async def healthz():
        return Health()

    @app.get("/v1/model", response_model=ModelResponse, tags=["service"], summary="The model in use",
             responses=_AUTH)
    async def model(engine: EngineDep):
        from emotify_ml.scoring.prior import PRIORS

        info = engine.info
        return ModelResponse(name=info.name, version=info.version, classes=list(info.classes), runtime=info.runtime,
                             source=info.source, prior=engine.prior, priors=list(PRIORS))

    @app.post("/v1/analyze", response_model=AnalyzeResponse, response_model_exclude_unset=True, tags=["analyze"],
              summary="Faces and emotions of one image", openapi_extra=_IMAGE_BODY, responses=_ERRORS)
    async def analyze(request: Request, engine: EngineDep,
                      actions: Annotated[bool, Query(description="also predict each person's action from the body "
                                                     "pose")] = False,
                      prior: Annotated[PriorName | None, Query(description=PRIOR_HELP)] = None):
        """Send the image as the multipart field `image` or as the raw body (`Content-Type: image/jpeg`,
        `image/png`, `image/webp` or `application/octet-stream`). An image without a face gives `"faces": []`."""
        start = time.perf_counter()
        data = await _upload_bytes(request, "image", settings.max_image_bytes)
        records, (height, width) = await run_blocking(app, _decode_then, engine.analyze, data, settings,
                                                      actions=actions, prior=prior)
        body = {"faces": records, "model": _summary(engine).model_dump(), "prior": prior or engine.prior,
                "width": width, "height": height, "ms": round((time.perf_counter() - start) * 1000.0, 2)}
        return AnalyzeResponse.model_validate(body)

    @app.post("/v1/analyze/video", tags=["analyze"], summary="Emotions of the faces of a video, as NDJSON",
              openapi_extra=_VIDEO_BODY, responses={200: {"content": {"application/x-ndjson": {}}, "description":
                                                          "one `VideoFrameLine` per scored frame, then one "
                                                          "`VideoSummaryLine` (see the schemas)"}, **_ERRORS})
    async def analyze_video(request: Request, engine: EngineDep,
                            stride: Annotated[int, Query(ge=1, le=10_000, description="score every n-th frame")] = 1,
                            max_seconds: Annotated[float | None, Query(gt=0, description="score at most this much "
                                                                       "media time (capped by the server's limit)")]
                            = None,
                            prior: Annotated[PriorName | None, Query(description=PRIOR_HELP)] = None):
        """Send the video as the multipart field `video` or as the raw body. The answer streams one JSON line
        per scored frame (faces with track ids and smoothed probabilities), then a summary line. The upload
        is staged in a temporary file that is deleted when the answer ends, however it ends."""
        from emotify_ml.io.frames import VideoFile

        start = time.perf_counter()
        path = await _stage_upload(request, settings)
        limit = settings.max_video_seconds if max_seconds is None else min(max_seconds, settings.max_video_seconds)
        try:
            reader = await run_blocking(app, VideoFile, path, stride=stride, max_seconds=limit)
        except EmotifyError as exc:
            _delete(path)
            raise UnsupportedMediaError(f"not a video this server can decode ({exc}; try MP4, WebM, AVI or MOV)") \
                from None
        except BaseException:
            _delete(path)
            raise
        lines = _video_lines(app, engine, reader, path, stride, limit, start, prior)
        return StreamingResponse(lines, media_type="application/x-ndjson", background=BackgroundTask(_delete, path))

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket, actions: bool = False,
                     prior: Annotated[PriorName | None, Query(description=PRIOR_HELP)] = None):
        await _serve_stream(app, websocket, settings, actions, prior)

    @app.get("/docs", include_in_schema=False)
    async def docs():
        """The API reference, rendered from /openapi.json by the package's own script (works offline)."""
        return FileResponse(STATIC_DIR / "docs.html", media_type="text/html", headers=PAGE_HEADERS)

    @app.get("/docs/swagger", include_in_schema=False)
    async def swagger():
        """FastAPI's Swagger UI (interactive; its scripts come from a CDN, so it needs the internet)."""
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(openapi_url="/openapi.json", title="Emotify API (Swagger UI)")

    @app.get("/", include_in_schema=False)
    async def page(request: Request):
        response = FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)
        token = request.query_params.get("token")
        if _is_token(token, settings.token):  # remember it for the page's own calls (never an unchecked one)
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    _document_models(app, (VideoFrameLine, VideoSummaryLine, VideoErrorLine, StreamReply))


def _document_models(app: FastAPI, models) -> None:
    """Add the NDJSON line and websocket message models, which no route returns directly, to the OpenAPI schemas."""
    make = app.openapi

    def openapi():
        if app.openapi_schema is None:
            schema = make()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                spec = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(spec.pop("$defs", {}))
                components[model.__name__] = spec
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


async def _multipart_file(request: Request, field_name: str):
    """(form, the UploadFile of ``field_name``) of a multipart body."""
    try:
        form = await request.form(max_files=4, max_fields=20)
    except MultiPartException as exc:
        raise RequestInputError(f"malformed multipart body: {exc.message}") from None
    upload = form.get(field_name)
    if not isinstance(upload, StarletteUploadFile):
        await form.close()
        raise RequestInputError(f"the multipart body has no file field {field_name!r}")
    return form, upload


async def _upload_bytes(request: Request, field_name: str, limit: int) -> bytes:
    """The file of a multipart field, else the raw body whatever its content type (the guard bounds the size)."""
    if _is_multipart(request):
        form, upload = await _multipart_file(request, field_name)
        try:
            data = await upload.read(limit + 1)
        finally:
            await form.close()
    else:
        data = await request.body()
    if len(data) > limit:
        raise TooLargeError(f"the upload is over the limit of {limit / 1e6:.1f} MB")
    return data


def _is_multipart(request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/")


async def _stage_upload(request: Request, settings: ServeSettings) -> str:
    """Write the uploaded video to a fresh temporary file (deleted again on any failure)."""
    too_big = f"the video is over the limit of {settings.max_video_bytes / 1e6:.1f} MB"
    fd, path = tempfile.mkstemp(prefix="emotify-upload-", suffix=".video", dir=settings.tmp_dir)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            if _is_multipart(request):
                form, upload = await _multipart_file(request, "video")
                try:
                    while chunk := await upload.read(CHUNK):
                        size += len(chunk)
                        if size > settings.max_video_bytes:
                            raise TooLargeError(too_big)
                        out.write(chunk)
                finally:
                    await form.close()
            else:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > settings.max_video_bytes:
                        raise TooLargeError(too_big)
                    out.write(chunk)
        if size == 0:
            raise UnsupportedMediaError("empty body: send a video (multipart field 'video' or the raw body)")
    except BaseException:
        _delete(path)
        raise
    return path


def _delete(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


async def _video_lines(app, engine, reader, path, stride, max_seconds, start, prior=None):
    """NDJSON lines of a video; the staged file is deleted when this ends, however it ends."""
    import numpy as np

    from emotify_ml.labels import EMOTIONS

    frames = reader.frames()  # every stride-th frame up to max_seconds (the reader was opened with them)
    tracks: dict[int, dict] = {}
    n_frames = n_faces = 0
    last_t = 0.0
    stopped_by = "end"
    try:
        stream = await run_blocking(app, engine.open_stream, prior=prior)

        def step():
            frame = next(frames, None)
            if frame is None:
                return None
            faces, _ = stream.update(frame.image, frame.timestamp)
            return frame.index, frame.timestamp, faces

        while True:
            try:
                item = await run_blocking(app, step)
            except EmotifyError as exc:
                stopped_by = "error"
                yield json.dumps({"type": "error", "message": str(exc)}) + "\n"
                break
            if item is None:
                break
            index, timestamp, faces = item
            n_frames += 1
            n_faces += len(faces)
            last_t = timestamp
            for face in faces:
                track = tracks.setdefault(face["track_id"], {"frames": 0, "first": timestamp,
                                                             "sum": np.zeros(len(EMOTIONS))})
                track["frames"] += 1
                track["last"] = timestamp
                track["sum"] += np.array([face["probabilities"][k] for k in EMOTIONS])
            yield json.dumps({"type": "frame", "frame": index, "timestamp": round(timestamp, 4), "faces": faces}) + "\n"
        if stopped_by == "end" and max_seconds is not None and last_t + stride / reader.fps >= max_seconds and \
                (reader.duration is None or reader.duration > max_seconds):
            stopped_by = "max_seconds"
        summary = {"type": "summary", "frames_scored": n_frames, "faces": n_faces, "stride": stride,
                   "fps": round(reader.fps, 3),
                   "duration": None if reader.duration is None else round(reader.duration, 3),
                   "scored_until": round(last_t, 4), "stopped_by": stopped_by,
                   "tracks": [_track_summary(track_id, t) for track_id, t in sorted(tracks.items())],
                   "model": _summary(engine).model_dump(), "prior": prior or engine.prior,
                   "ms": round((time.perf_counter() - start) * 1000.0, 1)}
        yield json.dumps(summary) + "\n"
    finally:
        _delete(path)  # first, with no await before it: a cancelled generator may not await again
        try:
            app.state.executor.submit(reader.close)  # after any frame still being read in a worker
        except RuntimeError:  # the pool is shut down: the server is stopping
            reader.close()


def _track_summary(track_id: int, track: dict) -> dict:
    from emotify_ml.labels import EMOTIONS

    mean = track["sum"] / max(1, track["frames"])
    return {"track_id": int(track_id), "frames": track["frames"], "first": round(track["first"], 4),
            "last": round(track["last"], 4), "label": EMOTIONS[int(mean.argmax())],
            "mean_probabilities": {k: round(float(p), 6) for k, p in zip(EMOTIONS, mean)}}


async def _serve_stream(app, websocket: WebSocket, settings: ServeSettings, actions: bool, prior=None) -> None:
    """One websocket connection: a fresh stream; binary frames in, JSON faces out."""
    engine = app.state.engine
    await websocket.accept()
    if engine is None:
        await websocket.close(code=1013, reason="the model is still loading")
        return
    try:
        stream = await run_blocking(app, engine.open_stream, actions=actions, prior=prior)
    except ModelNotFoundError as exc:
        log.error("a model this connection needs cannot be loaded: %s", exc)
        await websocket.close(code=1011, reason="a model this connection needs is not available on this server")
        return
    info = engine.info
    await websocket.send_json({"type": "hello", "model": {"name": info.name, "version": info.version},
                               "classes": list(info.classes), "prior": prior or engine.prior,
                               "max_frame_bytes": settings.max_image_bytes})
    n = 0
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                await _stream_command(websocket, stream, message.get("text") or "")
                continue
            if len(data) > settings.max_image_bytes:
                await websocket.close(code=WS_CLOSE_TOO_BIG, reason=_reason(
                    f"frame of {len(data):,} bytes is over the limit of {settings.max_image_bytes:,} bytes"))
                return
            start = time.perf_counter()
            try:
                faces, (height, width) = await run_blocking(app, _decode_then, stream.update, data, settings,
                                                            time.monotonic())
            except RequestInputError as exc:
                await websocket.send_json({"type": "error", "frame": n, "error": exc.code, "message": str(exc)})
                n += 1
                continue
            await websocket.send_json({"type": "faces", "frame": n, "faces": faces, "width": width, "height": height,
                                       "ms": round((time.perf_counter() - start) * 1000.0, 2)})
            n += 1
    except WebSocketDisconnect:
        return


async def _stream_command(websocket: WebSocket, stream, text: str) -> None:
    """Text messages are JSON commands: ``{"type": "reset"}`` forgets every track; ``{"type": "ping"}``."""
    try:
        kind = json.loads(text).get("type")
    except (ValueError, AttributeError):
        kind = None
    if kind == "reset":
        stream.reset()
        await websocket.send_json({"type": "reset"})
    elif kind == "ping":
        await websocket.send_json({"type": "pong"})
    else:
        await websocket.send_json({"type": "error", "error": "bad_command", "message":
                                   "send frames as binary JPEG/PNG/WebP messages; text messages are JSON commands "
                                   "{\"type\": \"reset\"} or {\"type\": \"ping\"}"})


def _reason(text: str) -> str:
    """A websocket close reason (at most 123 bytes)."""
    encoded = text.encode("utf-8")
    return text if len(encoded) <= 123 else encoded[:120].decode("utf-8", "ignore") + "..."


# -- errors -------------------------------------------------------------------------------------------------------
def _error(status: int, kind: str, message: str, headers=None) -> JSONResponse:
    return JSONResponse({"error": kind, "message": message}, status_code=status, headers=headers)


_HTTP_KINDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type", 503: "unavailable"}


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestInputError)
    async def input_error(request, exc: RequestInputError):
        return _error(exc.status, exc.code, str(exc))

    @app.exception_handler(ModelNotFoundError)
    async def missing_model(request, exc: ModelNotFoundError):  # its message names server paths: log it only
        log.error("a model this request needs cannot be loaded: %s", exc)
        return _error(503, "unavailable", "a model this request needs (e.g. the action model) is not available "
                      "on this server")

    @app.exception_handler(EmotifyError)
    async def emotify_error(request, exc: EmotifyError):  # e.g. the detector refusing a frame
        return _error(422, "invalid_input", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        kind = _HTTP_KINDS.get(exc.status_code, "error")
        return _error(exc.status_code, kind, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        return _error(422, "invalid_request", _validation_message(exc.errors()))

    @app.exception_handler(WebSocketRequestValidationError)
    async def websocket_validation_error(websocket: WebSocket, exc: WebSocketRequestValidationError):
        await websocket.close(code=WS_CLOSE_POLICY, reason=_reason(_validation_message(exc.errors())))

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):
        log.error("unexpected error on %s: %s: %s", request.url.path, type(exc).__name__, exc)
        return _error(500, "internal_error", "the server failed on this request; see its log")


def _validation_message(errors) -> str:
    """One line of what was wrong with a request's parameters, e.g. ``query parameter 'prior': Input should be ...``."""
    parts = []
    for err in errors:
        where = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        place = f"{where[0]} parameter {'.'.join(where[1:])!r}" if len(where) > 1 else ".".join(where) or "request"
        parts.append(f"{place}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


# -- the guard ---------------------------------------------------------------------------------------------------
class Guard:
    """Host check, bearer token, body-size limits and websocket origin check, as one ASGI middleware."""

    def __init__(self, app, settings: ServeSettings):
        self.app = app
        self.settings = settings

    def _limit(self, path: str) -> int:
        if path == "/v1/analyze":
            return self.settings.max_image_bytes + MULTIPART_SLACK
        if path == "/v1/analyze/video":
            return self.settings.max_video_bytes + MULTIPART_SLACK
        return SMALL_BODY

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        problem = self._host_problem(headers) or self._auth_problem(scope, headers, path) or \
            (self._origin_problem(headers) if scope["type"] == "websocket" else None)
        if problem is not None:
            status, kind, message = problem
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": WS_CLOSE_POLICY, "reason": _reason(message)})
                return
            extra = {"www-authenticate": "Bearer"} if status == 401 else None
            return await _error(status, kind, message, extra)(scope, receive, send)
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        limit = self._limit(path)
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await _error(413, "too_large", f"the request body of {int(length):,} bytes is over the limit of "
                                f"{limit:,} bytes")(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(413, f"the request body is over the limit of {limit:,} bytes")
            return message

        await self.app(scope, limited_receive, send)

    def _host_problem(self, headers):
        allowed = self.settings.allowed_hosts
        if not allowed:
            return None
        host = headers.get("host", "")
        name = host[:host.index("]") + 1] if host.startswith("[") and "]" in host else host.split(":")[0]
        if host in allowed or name in allowed:
            return None
        return 400, "bad_host", f"Host {host!r} is not served here (allowed: {', '.join(allowed)})"

    def _auth_problem(self, scope, headers, path):
        token = self.settings.token
        if not token or path == "/healthz":
            return None
        given = None
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if given is None and (path == "/" or scope["type"] == "websocket"):  # explicit: before a remembered cookie
            given = _query_token(scope)
        if given is None and "cookie" in headers:
            for part in headers["cookie"].split(";"):
                key, _, value = part.strip().partition("=")
                if key == TOKEN_COOKIE:
                    given = value
        if _is_token(given, token):
            return None
        hint = " (open the page as /?token=<token>)" if path == "/" else ""
        return 401, "unauthorized", ("a bearer token is required: send 'Authorization: Bearer <token>'" + hint
                                     if given is None else "wrong token")

    def _origin_problem(self, headers):
        origin = headers.get("origin")
        if not origin or origin in self.settings.cors_origins:
            return None
        if urlsplit(origin).netloc == headers.get("host"):
            return None
        return 403, "forbidden", f"websocket from origin {origin!r} refused (not this server, not a CORS origin)"


def _query_token(scope) -> str | None:
    """The ``?token=`` of a request (the page's and the websocket's way to pass it), else None."""
    return (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [None])[0]


def _is_token(given: str | None, token: str | None) -> bool:
    return bool(given and token) and hmac.compare_digest(given.encode(), token.encode())


class _BodyTooLarge(StarletteHTTPException):
    """Raised by the guard's ``receive`` while the body streams in; answered as a JSON 413."""
