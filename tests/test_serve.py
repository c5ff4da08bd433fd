"""The server (``emotify_ml.serve``): REST routes, websocket, guards, limits, load, and the CLI.

Most tests use the real YuNet detector with a stub emotion model (no training, no TensorFlow);
one CLI test starts ``python -m emotify_ml.serve`` with the shipped model.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from emotify_ml.exceptions import ModelNotFoundError
from emotify_ml.labels import EMOTIONS
from emotify_ml.serve.__main__ import EXIT_ADDRESS, EXIT_USAGE, main
from emotify_ml.serve.app import ServeSettings, create_app
from emotify_ml.serve.engine import Engine, ModelInfo

from .serve_support import StubActions, StubModel, encode, face_frame, free_port

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def make_engine(**kwargs) -> Engine:
    return Engine(StubModel(), info=ModelInfo("stub", "7"), **kwargs)


@pytest.fixture
def make_client(tmp_path):
    """``make_client(**settings)`` -> a started TestClient (lifespan run) of a stub-model app."""
    clients = []

    def make(engine=None, base_url="http://testserver", **settings):
        settings.setdefault("tmp_dir", str(tmp_path / "uploads"))
        Path(settings["tmp_dir"]).mkdir(exist_ok=True)
        client = TestClient(create_app(engine or make_engine(), ServeSettings(**settings)), base_url=base_url)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture(scope="module")
def jpeg():
    return encode(face_frame(size=(320, 240), face_px=150))


def assert_clean_error(response, status, kind=None):
    """A JSON error with a message: no traceback, no server path."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"} and body["message"]
    if kind:
        assert body["error"] == kind
    assert "Traceback" not in response.text and str(REPO) not in response.text and "/tmp" not in response.text


# -- REST -----------------------------------------------------------------------------------------------------
def test_health_and_model(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    model = client.get("/v1/model").json()
    assert model == {"name": "stub", "version": "7", "classes": list(EMOTIONS), "runtime": "sklearn",
                     "source": "given", "prior": "training", "priors": ["training", "web", "uniform"]}


def test_the_prior_is_reported_and_applied(make_client, jpeg):
    from emotify_ml.scoring import ScoringOptions
    from emotify_ml.scoring.prior import prior_weights, reweight

    plain = make_client().post("/v1/analyze", content=jpeg, headers={"Content-Type": "image/jpeg"}).json()
    client = make_client(make_engine(scoring=ScoringOptions(detect="always", prior="web")))
    assert client.get("/v1/model").json()["prior"] == "web"
    web = client.post("/v1/analyze", content=jpeg, headers={"Content-Type": "image/jpeg"}).json()
    (before,), (after,) = plain["faces"], web["faces"]
    expected = reweight(np.array([probabilities_of(before)]), prior_weights("web"))[0]
    np.testing.assert_allclose(probabilities_of(after), expected, atol=1e-4)
    assert np.abs(expected - probabilities_of(before)).max() > 0.01  # the prior moved it
    custom = make_client(make_engine(scoring=ScoringOptions(detect="always", prior=dict.fromkeys(EMOTIONS, 1))))
    assert custom.get("/v1/model").json()["prior"] == "custom"
    assert plain["prior"] == "training" and web["prior"] == "web"


def probabilities_of(face) -> list[float]:
    return [face["probabilities"][c] for c in EMOTIONS]


def test_a_request_chooses_its_prior(make_client, jpeg, video):
    from emotify_ml.scoring import ScoringOptions

    image = {"content": jpeg, "headers": {"Content-Type": "image/jpeg"}}
    web_server = make_client(make_engine(scoring=ScoringOptions(detect="always", prior="web")))
    client = make_client()
    by_request = client.post("/v1/analyze?prior=web", **image).json()
    by_server = web_server.post("/v1/analyze", **image).json()
    assert by_request["prior"] == by_server["prior"] == "web"
    assert probabilities_of(by_request["faces"][0]) == probabilities_of(by_server["faces"][0])
    # and back: a web server asked for the model's own prior answers as a server of the model's own prior
    own = web_server.post("/v1/analyze?prior=training", **image).json()
    assert own["prior"] == "training"
    assert probabilities_of(own["faces"][0]) == probabilities_of(client.post("/v1/analyze", **image).json()["faces"][0])
    with client.websocket_connect("/v1/stream?prior=web") as ws:
        assert ws.receive_json()["prior"] == "web"
        ws.send_bytes(jpeg)
        streamed = ws.receive_json()["faces"][0]  # a track's first frame: this frame's probabilities
    assert probabilities_of(streamed) == probabilities_of(by_request["faces"][0])
    summary = [json.loads(line) for line in client.post("/v1/analyze/video?prior=uniform&stride=5",
                                                        content=video).text.splitlines()][-1]
    assert summary["type"] == "summary" and summary["prior"] == "uniform"
    bad = client.post("/v1/analyze?prior=camera", **image)
    assert_clean_error(bad, 422, "invalid_request")
    assert "prior" in bad.json()["message"] and "'training', 'web' or 'uniform'" in bad.json()["message"]
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/v1/stream?prior=camera") as ws:
        ws.receive_json()
    assert refused.value.code == 1008
    assert refused.value.reason == "query parameter 'prior': Input should be 'training', 'web' or 'uniform'"
    engine = make_engine()  # the engine checks a prior when it first makes its step, and every time after
    for _ in range(2):
        with pytest.raises(ValueError, match="prior must be one of training, web, uniform; got 'camera'"):
            engine.analyze(face_frame(), prior="camera")


@pytest.mark.parametrize("ext,media", [(".jpg", "image/jpeg"), (".png", "image/png"), (".webp", "image/webp")])
def test_analyze_multipart_and_raw_body(client, ext, media):
    data = encode(face_frame(size=(320, 240), face_px=150), ext)
    for response in (client.post("/v1/analyze", files={"image": (f"face{ext}", data, media)}),
                     client.post("/v1/analyze", content=data, headers={"content-type": media})):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == {"name": "stub", "version": "7"}
        assert (body["width"], body["height"]) == (320, 240) and body["ms"] > 0
        (face,) = body["faces"]
        x, y, w, h = face["box"]
        assert 60 < x + w / 2 < 260 and w > 80
        assert set(face["probabilities"]) == set(EMOTIONS) and face["label"] in EMOTIONS
        assert abs(sum(face["probabilities"].values()) - 1) < 1e-5
        assert 0 < face["score"] <= 1 and len(face["landmarks"]) == 5
        assert "actions" not in face and "track_id" not in face


def test_raw_body_with_any_content_type(client, jpeg):
    """``curl --data-binary @face.jpg`` sends application/x-www-form-urlencoded: still the raw image."""
    for media in ("application/x-www-form-urlencoded", "application/octet-stream", "text/plain"):
        response = client.post("/v1/analyze", content=jpeg, headers={"content-type": media})
        assert response.status_code == 200 and len(response.json()["faces"]) == 1, media


def test_no_face_is_200_with_no_faces(client):
    blank = np.full((120, 160, 3), 128, np.uint8)
    response = client.post("/v1/analyze", content=encode(blank, ".png"))
    assert response.status_code == 200 and response.json()["faces"] == []


def test_actions_on_request(make_client, jpeg):
    client = make_client(make_engine(action_loader=StubActions))
    (face,) = client.post("/v1/analyze?actions=true", content=jpeg).json()["faces"]
    assert face["actions"]["label"] == "dancing" and face["actions"]["actions"] == [["dancing", 0.9]]
    assert "actions" not in client.post("/v1/analyze", content=jpeg).json()["faces"][0]


def test_websocket_actions_and_an_engine_made_by_the_lifespan(make_client, jpeg):
    client = make_client(lambda: make_engine(action_loader=StubActions))  # a factory: made when the app starts
    with client.websocket_connect("/v1/stream?actions=true") as ws:
        ws.receive_json()
        ws.send_bytes(jpeg)
        (face,) = ws.receive_json()["faces"]
    assert face["actions"]["label"] == "dancing" and face["track_id"] == 1
    with client.websocket_connect("/v1/stream") as ws:
        ws.receive_json()
        ws.send_bytes(jpeg)
        assert "actions" not in ws.receive_json()["faces"][0]


def test_pose_every_holds_per_connection(jpeg):
    """One action predictor per stream: ``pose_every=3`` estimates poses on frames 0 and 3 of 5, per connection."""
    import cv2

    from emotify_ml.actions.live import ActionPredictor

    calls = []

    def pose(frame):
        calls.append(1)
        return []

    engine = make_engine(action_loader=lambda: ActionPredictor(pose, None, np.zeros((7, 20)), pose_every=3))
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    for _ in range(2):  # a second connection starts its own count
        stream = engine.open_stream(actions=True)
        for _ in range(5):
            stream.update(frame)
    assert len(calls) == 4


def test_actions_unavailable_is_503_without_paths(make_client, jpeg):
    def broken():
        raise ModelNotFoundError(f"no action model in {REPO}/emotify_ml/models/shipped/action")

    client = make_client(make_engine(action_loader=broken))
    assert_clean_error(client.post("/v1/analyze?actions=true", content=jpeg), 503, "unavailable")


def _png_header(width, height):
    """A PNG that declares ``width`` x ``height`` pixels (a decompression bomb's header) and holds almost nothing."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("body,status,kind", [
    (b"", 415, "unsupported_media_type"),
    (b"hello, this is text", 415, "unsupported_media_type"),
    (b"GIF89a\x01\x00\x01\x00\x80\x00\x00", 415, "unsupported_media_type"),
    (b"%PDF-1.4\n", 415, "unsupported_media_type"),
    (b"\xff\xd8\xff\xe0" + b"\x00garbage" * 20, 422, "corrupt_image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 422, "corrupt_image"),
    (b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 10, 422, "corrupt_image"),
    (_png_header(60000, 60000), 413, "too_large"),
])
def test_bad_images_are_clean_4xx(client, body, status, kind):
    assert_clean_error(client.post("/v1/analyze", content=body), status, kind)
    if body:
        assert_clean_error(client.post("/v1/analyze", files={"image": ("x.bin", body, "image/jpeg")}), status, kind)


def test_truncated_and_tiny_images(client, jpeg):
    assert_clean_error(client.post("/v1/analyze", content=jpeg[:200]), 422, "corrupt_image")
    tiny = encode(np.zeros((8, 8, 3), np.uint8), ".png")
    assert_clean_error(client.post("/v1/analyze", content=tiny), 422, "corrupt_image")


def test_bad_requests_are_clean_4xx(client, jpeg):
    assert_clean_error(client.post("/v1/analyze", files={"photo": ("a.jpg", jpeg, "image/jpeg")}), 422)
    assert_clean_error(client.post("/v1/analyze", data={"image": "not a file"}, files={"x": ("a", b"1")}), 422)
    broken = {"content-type": "multipart/form-data; boundary=xyz"}
    assert client.post("/v1/analyze", content=b"--xyz\r\nbroken", headers=broken).status_code in (400, 422)
    assert_clean_error(client.post("/v1/analyze", content=b"x", headers={"content-type": "multipart/form-data"}), 400)
    response = client.post("/v1/analyze?actions=maybe", content=jpeg)
    assert_clean_error(response, 422, "invalid_request")
    assert "actions" in response.json()["message"]
    assert_clean_error(client.get("/v1/nothing"), 404, "not_found")
    assert_clean_error(client.get("/v1/analyze"), 405, "method_not_allowed")
    assert_clean_error(client.post("/v1/analyze/video?stride=0", content=b"x"), 422, "invalid_request")


def test_size_limits_are_413(make_client, jpeg):
    client = make_client(max_image_bytes=len(jpeg) - 1)
    assert_clean_error(client.post("/v1/analyze", content=jpeg), 413, "too_large")  # Content-Length
    assert_clean_error(client.post("/v1/analyze", files={"image": ("a.jpg", jpeg, "image/jpeg")}), 413, "too_large")

    def chunks():  # no Content-Length: counted as it streams in
        for i in range(0, len(jpeg), 1000):
            yield jpeg[i:i + 1000]
    assert_clean_error(client.post("/v1/analyze", content=chunks()), 413, "too_large")
    assert_clean_error(client.post("/v1/model", content=b"x" * 100_000), 413, "too_large")
    assert make_client(max_image_bytes=len(jpeg)).post("/v1/analyze", content=jpeg).status_code == 200


def test_nothing_a_client_sends_names_a_server_path(client):
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static//etc/passwd", "/../../etc/passwd"):
        response = client.get(path)
        assert response.status_code in (400, 404), path
        assert "import" not in response.text and "root:" not in response.text


# -- guards --------------------------------------------------------------------------------------------------
def test_token_guards_every_route_but_healthz(make_client, jpeg):
    client = make_client(token="s3cret")
    assert client.get("/healthz").status_code == 200
    for method, path in (("get", "/v1/model"), ("post", "/v1/analyze"), ("post", "/v1/analyze/video"),
                         ("get", "/"), ("get", "/static/app.js"), ("get", "/docs"), ("get", "/openapi.json")):
        response = getattr(client, method)(path)
        assert_clean_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    assert_clean_error(client.get("/v1/model", headers={"Authorization": "Bearer wrong"}), 401)
    assert_clean_error(client.get("/v1/model?token=s3cret"), 401)  # query tokens only for the page and the socket
    auth = {"Authorization": "Bearer s3cret"}
    assert client.get("/v1/model", headers=auth).status_code == 200
    assert client.post("/v1/analyze", content=jpeg, headers=auth).status_code == 200
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/v1/stream") as ws:
            ws.receive_json()
    with client.websocket_connect("/v1/stream", headers=auth) as ws:
        assert ws.receive_json()["type"] == "hello"


def test_page_token_sets_a_strict_cookie_for_the_page(make_client):
    client = make_client(token="s3cret")
    page = client.get("/?token=s3cret")
    assert page.status_code == 200 and "<canvas" in page.text
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/v1/model").status_code == 200  # the cookie now authenticates the page's calls
    assert client.get("/static/app.js").status_code == 200
    # a wrong ?token= is refused, even with a good cookie, and never replaces it
    assert_clean_error(client.get("/?token=wrong"), 401, "unauthorized")
    assert client.get("/v1/model").status_code == 200
    with client.websocket_connect("/v1/stream") as ws:
        assert ws.receive_json()["type"] == "hello"
    # a stale cookie (the server restarted with a new token) gives way to the token given explicitly
    client.cookies.set("emotify_token", "old-token")
    assert_clean_error(client.get("/v1/model"), 401)
    page = client.get("/?token=s3cret")
    assert page.status_code == 200 and "emotify_token=s3cret" in page.headers["set-cookie"]
    client.cookies.set("emotify_token", "old-token")
    with client.websocket_connect("/v1/stream?token=s3cret") as ws:
        assert ws.receive_json()["type"] == "hello"


def test_cors_is_closed_unless_configured(make_client):
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    closed = make_client()
    for response in (closed.options("/v1/analyze", headers=preflight),
                     closed.get("/v1/model", headers={"Origin": "https://evil.example"})):
        assert "access-control-allow-origin" not in response.headers
    opened = make_client(cors_origins=["https://app.example"])
    allowed = opened.options("/v1/analyze", headers={**preflight, "Origin": "https://app.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    other = opened.get("/v1/model", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    guarded = make_client(cors_origins=["https://app.example"], token="s3cret")  # preflights carry no token
    allowed = guarded.options("/v1/analyze", headers={**preflight, "Origin": "https://app.example",
                                                      "Access-Control-Request-Headers": "authorization"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://app.example"
    denied = guarded.get("/v1/model", headers={"Origin": "https://app.example"})
    assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == "https://app.example"


def test_host_header_check(make_client):
    client = make_client(allowed_hosts=["127.0.0.1", "localhost"], base_url="http://127.0.0.1:8000")
    assert client.get("/v1/model").status_code == 200
    assert_clean_error(client.get("/v1/model", headers={"Host": "rebound.evil.example"}), 400, "bad_host")


def test_websocket_origin_check(client):
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/v1/stream", headers={"Origin": "https://evil.example"}) as ws:
            ws.receive_json()
    with client.websocket_connect("/v1/stream", headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "hello"


def test_page_and_assets_are_served_by_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css", "/static/chart.js", "/static/docs.js"):
        response = client.get(asset)
        assert response.status_code == 200 and len(response.text) > 100, asset
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/static/docs.js" in docs.text
    assets = ("/static/app.js", "/static/style.css", "/static/chart.js", "/static/docs.js")
    everything = page.text + docs.text + "".join(client.get(a).text for a in assets)
    import re

    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import|https://""",
                         everything), "the page must load nothing from elsewhere"
    assert "/static/app.js" in page.text and "Content-Security-Policy" in page.headers
    assert client.get("/docs/swagger").status_code == 200  # FastAPI's Swagger UI, for those online
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"AnalyzeResponse", "Face", "ModelResponse", "VideoFrameLine", "VideoSummaryLine", "StreamReply",
            "ErrorBody"} <= set(schemas)


# -- websocket -------------------------------------------------------------------------------------------------
def test_websocket_tracks_smooths_and_each_connection_starts_clean(client, jpeg):
    def session(n):
        with client.websocket_connect("/v1/stream") as ws:
            hello = ws.receive_json()
            assert hello["type"] == "hello" and hello["model"]["name"] == "stub"
            replies = []
            for _ in range(n):
                ws.send_bytes(jpeg)
                replies.append(ws.receive_json())
            return replies

    first = session(3)
    assert [r["frame"] for r in first] == [0, 1, 2]
    assert [r["faces"][0]["track_id"] for r in first] == [1, 1, 1]
    faces = [r["faces"][0] for r in first]
    assert faces[0]["smoothed"] == faces[0]["probabilities"]
    assert faces[1]["smoothed"] != faces[1]["probabilities"]  # smoothed across frames of the connection
    second = session(1)[0]["faces"][0]
    assert second["track_id"] == 1 and second["smoothed"] == second["probabilities"]  # a clean start


def test_websocket_bad_frames_commands_and_oversized_frame(make_client, jpeg):
    client = make_client(max_image_bytes=len(jpeg) + 10)
    with client.websocket_connect("/v1/stream") as ws:
        ws.receive_json()
        ws.send_bytes(b"not an image")
        error = ws.receive_json()
        assert error["type"] == "error" and error["error"] == "unsupported_media_type"
        ws.send_text(json.dumps({"type": "ping"}))
        assert ws.receive_json() == {"type": "pong"}
        ws.send_bytes(jpeg)
        assert ws.receive_json()["faces"][0]["track_id"] == 1
        ws.send_text(json.dumps({"type": "reset"}))
        assert ws.receive_json() == {"type": "reset"}
        ws.send_bytes(jpeg)
        assert ws.receive_json()["faces"][0]["track_id"] == 2  # tracks forgotten (ids never reused)
        ws.send_text("hello")
        assert ws.receive_json()["error"] == "bad_command"
        ws.send_bytes(jpeg + b"\x00" * 100)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1009 and "over the limit" in closed.value.reason


# -- video -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 20-frame, 10 FPS, 320x240 MJPG clip: one face in frames 0-9, another in 10-19."""
    from emotify_ml.io.synthetic import synthetic_frames, write_video

    from .serve_support import clear_faces

    path = tmp_path_factory.mktemp("video") / "faces.avi"
    return write_video(path, synthetic_frames(clear_faces()[:2], frames_per_face=10, size=(320, 240), face_px=150),
                       fps=10).read_bytes()


def _lines(response):
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def test_video_ndjson_stride_and_summary(client, video, tmp_path):
    lines = _lines(client.post("/v1/analyze/video?stride=2", content=video))
    frames, summary = lines[:-1], lines[-1]
    assert [line["frame"] for line in frames] == list(range(0, 20, 2))
    assert all(line["type"] == "frame" and len(line["faces"]) == 1 for line in frames)
    assert frames[1]["timestamp"] == pytest.approx(0.2)
    assert summary["type"] == "summary" and summary["frames_scored"] == 10 and summary["stopped_by"] == "end"
    assert summary["stride"] == 2 and summary["fps"] == pytest.approx(10) and summary["duration"] == pytest.approx(2)
    assert summary["model"] == {"name": "stub", "version": "7"}
    assert sum(track["frames"] for track in summary["tracks"]) == 10
    assert all(track["label"] in EMOTIONS for track in summary["tracks"])
    assert list((tmp_path / "uploads").iterdir()) == []  # the staged upload is gone


def test_video_multipart_and_max_seconds(client, video, tmp_path):
    lines = _lines(client.post("/v1/analyze/video?max_seconds=0.5",
                               files={"video": ("clip.avi", video, "video/x-msvideo")}))
    assert [line["frame"] for line in lines[:-1]] == [0, 1, 2, 3, 4]
    assert lines[-1]["stopped_by"] == "max_seconds"
    assert list((tmp_path / "uploads").iterdir()) == []


def test_bad_videos_are_clean_4xx_and_leave_no_file(make_client, video, tmp_path):
    client = make_client(max_video_bytes=len(video) - 1)
    assert_clean_error(client.post("/v1/analyze/video", content=video), 413, "too_large")

    def chunks():
        for i in range(0, len(video), 4096):
            yield video[i:i + 4096]
    assert_clean_error(client.post("/v1/analyze/video", content=chunks()), 413, "too_large")
    client = make_client()
    assert_clean_error(client.post("/v1/analyze/video", content=b"this is not a video" * 100), 415)
    assert_clean_error(client.post("/v1/analyze/video", content=b""), 415)
    assert_clean_error(client.post("/v1/analyze/video", files={"clip": ("a.avi", video, "video/x-msvideo")}), 422)
    assert list((tmp_path / "uploads").iterdir()) == []


def test_video_upload_is_deleted_when_the_client_goes_away(tmp_path, video):
    """The NDJSON generator deletes its file when closed early (a client that disconnects mid-answer)."""
    from emotify_ml.io.frames import VideoFile
    from emotify_ml.serve.app import _video_lines

    path = tmp_path / "upload.video"
    path.write_bytes(video)
    app = create_app(make_engine())

    async def first_line_then_leave():
        app.state.executor = ThreadPoolExecutor(1)
        lines = _video_lines(app, make_engine(), VideoFile(path), str(path), 1, None, time.perf_counter())
        first = json.loads(await lines.__anext__())
        await lines.aclose()
        app.state.executor.shutdown()
        return first

    assert asyncio.run(first_line_then_leave())["frame"] == 0
    assert not path.exists()


# -- concurrency ------------------------------------------------------------------------------------------------
class BlockingEngine:
    """An engine whose ``analyze`` waits until released (to show the event loop stays free)."""

    def __init__(self):
        from emotify_ml.scoring import ScoringOptions

        self.info, self.scoring = ModelInfo("blocking", None), ScoringOptions(detect="always")
        self.prior = self.scoring.prior
        self.started, self.release = threading.Event(), threading.Event()

    def warm_up(self):
        pass

    def analyze(self, frame, actions=False, prior=None):
        self.started.set()
        self.release.wait(10)
        return [], {}


class FailingEngine(BlockingEngine):
    """An engine that fails inside, as a bug would."""

    def analyze(self, frame, actions=False, prior=None):
        raise RuntimeError("/srv/emotify/secret/path exploded")


def test_an_unexpected_failure_is_a_json_500_that_names_no_server_detail(jpeg, caplog):
    with TestClient(create_app(FailingEngine()), raise_server_exceptions=False) as client:
        response = client.post("/v1/analyze", content=jpeg)
    assert_clean_error(response, 500, "internal_error")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert "RuntimeError" in caplog.text  # the server's log says what failed


def test_healthz_answers_while_inference_runs(make_client, jpeg):
    engine = BlockingEngine()
    client = make_client(engine, workers=1)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.post, "/v1/analyze", content=jpeg)
        assert engine.started.wait(5)
        t = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/model").status_code == 200
        assert time.perf_counter() - t < 1.0
        assert not pending.done()
        engine.release.set()
        assert pending.result(10).status_code == 200


def test_16_parallel_clients_50_requests_each():
    """800 requests from 16 concurrent clients on one event loop (as a server sees them): no error."""
    import httpx

    app = create_app(make_engine(), ServeSettings(workers=2))
    small = encode(face_frame(size=(160, 120), face_px=90))
    blank = encode(np.full((120, 160, 3), 90, np.uint8))

    async def run():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                async def one_client(k):
                    out = []
                    for i in range(50):
                        response = await http.post("/v1/analyze", content=blank if (k + i) % 5 == 0 else small)
                        out.append((response.status_code, len(response.json()["faces"])))
                    return out

                async def health():
                    await asyncio.sleep(0.05)
                    t = time.perf_counter()
                    assert (await http.get("/healthz")).status_code == 200
                    return time.perf_counter() - t

                return await asyncio.gather(health(), *(one_client(k) for k in range(16)))

    health_s, *results = asyncio.run(run())
    codes = [code for r in results for code, _ in r]
    faces = [n for r in results for _, n in r]
    assert codes == [200] * 800
    assert faces.count(0) == 160 and faces.count(1) == 640
    assert health_s < 1.5  # answered while 16 clients kept the pool busy (800 queued requests take seconds)


# -- command line ---------------------------------------------------------------------------------------------------
def test_cli_bad_arguments_and_taken_port(capsys):
    with pytest.raises(SystemExit) as bad:
        main(["--port", "70000"])
    assert bad.value.code == EXIT_USAGE
    with pytest.raises(SystemExit) as bad:
        main(["--prior", "camera"])
    assert bad.value.code == EXIT_USAGE and "argument --prior: invalid choice: 'camera'" in capsys.readouterr().err
    for flag in ("--max-image-mb", "--max-video-mb", "--max-video-seconds"):
        for value in ("nan", "inf", "0"):
            with pytest.raises(SystemExit) as bad:
                main([flag, value])
            assert bad.value.code == EXIT_USAGE
            assert f"{flag} must be a finite number > 0" in capsys.readouterr().err
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["--port", str(port)]) == EXIT_ADDRESS
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"python -m emotify_ml.serve: error: port {port} on 127.0.0.1 is already in use; "
                       "stop what uses it or pass --port")


def test_cli_missing_model_is_exit_3(tmp_path, capsys):
    from emotify_ml.serve.__main__ import EXIT_MODEL

    assert main(["--model", str(tmp_path / "no-model"), "--port", "0"]) == EXIT_MODEL
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("python -m emotify_ml.serve: error: model ") and "Traceback" not in line


def test_cli_prints_the_model_and_guards_loopback(monkeypatch, capsys):
    """``main`` loads the model, says which, and serves loopback with a Host check and the env token."""
    import uvicorn

    import emotify_ml.serve.engine as engine_module

    served = {}
    monkeypatch.setattr(engine_module, "load_engine", lambda uri, **kwargs: make_engine())
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: served.update(
        app=self.config.app, port=sockets[0].getsockname()[1]))
    monkeypatch.setenv("EMOTIFY_TOKEN", "from-env")
    port = free_port()
    assert main(["--port", str(port), "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "model: given model <in memory> (stub v7, sklearn)" in err
    assert f"serving on http://127.0.0.1:{port}" in err and "warning" not in err
    assert served["port"] == port
    settings = served["app"].state.settings
    assert settings.token == "from-env" and "localhost" in settings.allowed_hosts and settings.n_workers == 1


def test_cli_warns_when_binding_beyond_localhost(monkeypatch, capsys):
    import uvicorn

    import emotify_ml.serve.engine as engine_module

    monkeypatch.setattr(engine_module, "load_engine", lambda uri, **kwargs: make_engine())
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: None)
    monkeypatch.delenv("EMOTIFY_TOKEN", raising=False)
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert "warning: binding 0.0.0.0 makes the server reachable from other machines" in err and "--token" in err


@pytest.mark.slow
def test_cli_serves_the_shipped_model(tmp_path):
    """``python -m emotify_ml.serve`` with no champion in the store: the shipped model, on a free port."""
    import httpx

    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'none.db'}", "EMOTIFY_TOKEN": "tok"}
    proc = subprocess.Popen([sys.executable, "-m", "emotify_ml.serve", "--port", str(port), "--workers", "1"],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("serving on"):
                break
        assert any(line.startswith("model: shipped model") for line in lines), lines
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):  # the lifespan warms the model up before the first request is answered
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        auth = {"Authorization": "Bearer tok"}
        model = httpx.get(f"{base}/v1/model", headers=auth, timeout=10).json()
        assert model["source"] == "shipped" and model["name"] == "emotify-emotion" and model["version"]
        response = httpx.post(f"{base}/v1/analyze", content=encode(face_frame()), headers=auth, timeout=30)
        (face,) = response.json()["faces"]
        assert face["label"] in EMOTIONS
        assert httpx.get(f"{base}/v1/model", headers={"Host": "evil.example"}, timeout=5).status_code == 400
    finally:
        proc.terminate()
        proc.wait(20)


def test_cli_remote_model_is_refused_exit_3(capsys):
    from emotify_ml.serve.__main__ import EXIT_MODEL

    assert main(["--model", "https://example.invalid/mlflow-artifacts/m", "--port", "0"]) == EXIT_MODEL
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert "refusing to load a model from the remote location" in line and "--allow-remote-model" in line
