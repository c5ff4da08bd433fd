"""The webcam page in a real browser: Debian's headless chromium, its fake camera playing bundled faces.

The server runs the shipped model on a free loopback port; chromium (never downloaded by the
test: ``apt-get install chromium``) is driven over the Chrome DevTools Protocol with the
``websockets`` package. The fake camera plays a ``.y4m`` clip made from bundled FER-2013 sample
faces. The test loads the page, waits for a face box and its label, checks that the emotion
timeline grows, and saves a screenshot in its tmp dir (``EMOTIFY_SCREENSHOT=<file>`` also writes
a 256-colour copy there, e.g. ``docs/serve_page.png``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .serve_support import clear_faces, write_y4m

pytestmark = pytest.mark.browser

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium on PATH: install Debian's (apt-get install -y chromium) to run the browser test")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The real server (shipped model) in a thread, on a free loopback port; yields its base URL."""
    import uvicorn

    from emotify_ml.serve.__main__ import bind
    from emotify_ml.serve.app import LOOPBACK_HOSTS, ServeSettings, create_app
    from emotify_ml.serve.engine import load_engine

    _chromium()  # skip before loading the model
    with pytest.MonkeyPatch.context() as patch:  # no champion in this store: the shipped model
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.mktemp('store') / 'none.db'}")
        engine = load_engine()
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = create_app(engine, ServeSettings(allowed_hosts=[*LOOPBACK_HOSTS], workers=2))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(20)
    sock.close()


@pytest.fixture
def fake_camera(tmp_path):
    """A 640x480, 10 FPS .y4m clip (Chrome loops it): two bundled sample faces, 20 frames each."""
    from emotify_ml.io.synthetic import synthetic_frames

    path = tmp_path / "faces.y4m"
    write_y4m(path, synthetic_frames(clear_faces()[:2], frames_per_face=20, noise=2.0), fps=10)
    return path


class DevTools:
    """The few Chrome DevTools Protocol calls the test needs, over one websocket (flat sessions)."""

    def __init__(self, ws):
        self.ws = ws
        self.n = 0

    async def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30):
        self.n += 1
        message = {"id": self.n, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        await self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.recv(), max(0.1, deadline - time.monotonic())))
            if reply.get("id") == self.n:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    async def evaluate(self, session: str, expression: str):
        result = await self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        return result.get("result", {}).get("value")


def _start_chromium(binary: str, profile: Path, camera: Path | None) -> tuple[subprocess.Popen, str]:
    """Headless chromium; ``camera``: a .y4m its fake camera plays (None: no camera at all)."""
    profile.mkdir()
    fake = (["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera}"]
            if camera is not None else [])
    proc = subprocess.Popen([
        binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--no-default-browser-check", "--disable-sync",
        "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio", f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "--use-fake-ui-for-media-stream", *fake, "--window-size=1360,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if active.is_file() and len(active.read_text().splitlines()) >= 2:
            port, path = active.read_text().splitlines()[:2]
            return proc, f"ws://127.0.0.1:{port}{path}"
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"chromium did not open its DevTools port (exit code {proc.poll()})")


async def _open_page(cdp: DevTools, page_url: str) -> tuple[str, str]:
    """A new tab at ``page_url``: (target id, session id)."""
    target = (await cdp.call("Target.createTarget", {"url": "about:blank"}))["targetId"]
    session = (await cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
    for method in ("Page.enable", "Runtime.enable", "DOM.enable"):
        await cdp.call(method, session=session)
    await cdp.call("Emulation.setDeviceMetricsOverride", {"width": 1360, "height": 1000, "deviceScaleFactor": 1,
                                                          "mobile": False}, session)
    await cdp.call("Page.navigate", {"url": page_url}, session)
    return target, session


async def _wait_for(cdp: DevTools, session: str, expression: str, seconds: float):
    """Evaluate ``expression`` until it is truthy (its value) or ``seconds`` pass (None)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = await cdp.evaluate(session, expression)
        if value:
            return value
        await asyncio.sleep(0.2)
    return None


async def _choose_file(cdp: DevTools, session: str, path: Path) -> None:
    """Pick a file in the page's file input, as a user would."""
    root = (await cdp.call("DOM.getDocument", session=session))["root"]["nodeId"]
    node = (await cdp.call("DOM.querySelector", {"nodeId": root, "selector": "#file"}, session))["nodeId"]
    await cdp.call("DOM.setFileInputFiles", {"files": [str(path)], "nodeId": node}, session)


async def _drive(devtools_url: str, page_url: str, shot: Path, image: Path, video: Path) -> dict:
    from websockets.asyncio.client import connect

    async with connect(devtools_url, max_size=None, proxy=None, open_timeout=20) as ws:
        cdp = DevTools(ws)
        target, session = await _open_page(cdp, page_url)
        start = time.monotonic()
        seen = None
        while time.monotonic() - start < 15:
            seen = await cdp.evaluate(session, """(() => {
                const s = window.emotify;
                if (!s || !s.lastFaces || !s.lastFaces.length) return null;
                const label = document.querySelector('#faces .face-label');
                return {faces: s.lastFaces, label: label && label.textContent, points: s.timelinePoints(),
                        model: document.getElementById('model').textContent, frames: s.frames};
            })()""")
            if seen and seen["label"]:
                break
            await asyncio.sleep(0.2)
        first_face_s = time.monotonic() - start
        message = await cdp.evaluate(session, "document.getElementById('message').textContent")
        assert seen and seen["label"], f"no face box and label within 15 s (page message: {message!r})"
        await asyncio.sleep(2.0)
        if os.environ.get("EMOTIFY_SCREENSHOT"):  # a docs screenshot: let the timeline fill a while
            await asyncio.sleep(25.0)
        later = await cdp.evaluate(session, "({points: window.emotify.timelinePoints(), "
                                            "frames: window.emotify.frames})")
        png = await cdp.call("Page.captureScreenshot", {"format": "png"}, session)
        shot.write_bytes(base64.b64decode(png["data"]))
        before = later["frames"]  # the page's prior: the webcam reconnects under it, and files are scored under it
        await cdp.evaluate(session, """(() => { const select = document.getElementById('prior');
            select.value = 'web'; select.dispatchEvent(new Event('change')); })()""")
        reprior = await _wait_for(cdp, session, f"""window.emotify.streamPrior === 'web' &&
            window.emotify.frames > {before} + 2 && {{frames: window.emotify.frames}}""", 15)
        await _choose_file(cdp, session, image)  # an image: annotated, with its faces listed
        dropped = await _wait_for(cdp, session, """window.emotify.lastImage && {
            faces: window.emotify.lastImage.faces.length, prior: window.emotify.lastImage.prior,
            label: (document.querySelector('#image-faces .face-label') || {}).textContent}""", 30)
        await _choose_file(cdp, session, video)  # a video: its timeline, and CSV/JSON downloads
        video_done = await _wait_for(cdp, session, """!document.getElementById('download-csv').disabled && {
            lines: window.emotify.videoLines.length,
            summary: window.emotify.videoLines[window.emotify.videoLines.length - 1].type,
            progress: document.getElementById('video-progress').textContent}""", 60)
        await cdp.call("Target.closeTarget", {"targetId": target})
        return {"first": seen, "later": later, "first_face_s": first_face_s, "reprior": reprior, "image": dropped,
                "video": video_done}


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_webcam_page_shows_faces_labels_and_a_growing_timeline(server, fake_camera, tmp_path):
    """Webcam: a box and a label within 15 s, a growing timeline; the webcam goes on under the prior chosen in the
    page's header; then an image (scored under that prior) and a video picked in the page."""
    import cv2

    from emotify_ml.io.synthetic import synthetic_frames, write_video

    from .serve_support import face_frame

    image = tmp_path / "face.jpg"
    cv2.imwrite(str(image), face_frame(k=1))
    video = write_video(tmp_path / "clip.avi", synthetic_frames(clear_faces()[:2], frames_per_face=6,
                                                                size=(320, 240), face_px=150), fps=10)
    proc, devtools_url = _start_chromium(_chromium(), tmp_path / "profile", fake_camera)
    shot = tmp_path / "artifacts" / "serve_page.png"
    shot.parent.mkdir()
    try:
        result = asyncio.run(_drive(devtools_url, f"{server}/?autostart=1", shot, image, video))
    finally:
        _stop(proc)
    from emotify_ml.labels import EMOTIONS

    first, later = result["first"], result["later"]
    face = first["faces"][0]
    assert face["label"] in EMOTIONS and first["label"] == face["label"] and len(face["box"]) == 4
    assert face["box"][2] > 100  # the 200 px face, in a 640x480 frame
    assert "emotify-emotion" in first["model"]
    assert later["points"] > first["points"] and later["frames"] > first["frames"]  # the timeline grows
    assert shot.stat().st_size > 10_000
    assert result["reprior"], "the webcam did not go on under the prior chosen in the page"
    assert result["image"] and result["image"]["faces"] == 1 and result["image"]["label"] in EMOTIONS
    assert result["image"]["prior"] == "web"
    assert result["video"], "the dropped video was not scored within 60 s"
    assert result["video"]["summary"] == "summary"
    assert result["video"]["lines"] == 7  # 12 frames, of which the page asks for every 2nd, and the summary
    copy_to = os.environ.get("EMOTIFY_SCREENSHOT")
    if copy_to:  # for the docs: a 256-colour PNG is a third of the size and looks the same
        from PIL import Image

        with Image.open(shot) as image:
            image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                                          dither=Image.Dither.NONE).save(copy_to, optimize=True)


def test_page_without_a_camera_says_so_and_the_api_reference_renders(server, tmp_path):
    """No camera at all: a clear message instead of the video, and the rest of the page still works;
    ``/docs`` renders every route from ``/openapi.json`` with the package's own script."""
    async def run(devtools_url):
        from websockets.asyncio.client import connect

        async with connect(devtools_url, max_size=None, proxy=None, open_timeout=20) as ws:
            cdp = DevTools(ws)
            _, session = await _open_page(cdp, f"{server}/?autostart=1")
            message = await _wait_for(cdp, session, """(() => {
                const box = document.getElementById('message');
                return !box.hidden && box.textContent;
            })()""", 15)
            model = await cdp.evaluate(session, "document.getElementById('model').textContent")
            _, docs = await _open_page(cdp, f"{server}/docs")  # the offline API reference
            routes = await _wait_for(cdp, docs, "document.querySelectorAll('.operation').length >= 5 && "
                                     "[...document.querySelectorAll('.operation code')].map(c => c.textContent)", 15)
            png = await cdp.call("Page.captureScreenshot", {"format": "png"}, docs)
            (tmp_path / "docs_page.png").write_bytes(base64.b64decode(png["data"]))
            return message, model, routes

    proc, devtools_url = _start_chromium(_chromium(), tmp_path / "profile", camera=None)
    try:
        message, model, routes = asyncio.run(run(devtools_url))
    finally:
        _stop(proc)
    assert message and ("No camera was found" in message or "could not be started" in message
                        or "denied" in message), message
    assert "emotify-emotion" in model
    assert routes and {"/v1/analyze", "/v1/analyze/video", "/v1/model", "/healthz", "/v1/stream"} <= set(routes)
