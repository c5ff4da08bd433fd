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


@pytest.fixture
def server(monkeypatch, tmp_path):
    """The real server (shipped model) in a thread, on a free loopback port; yields its base URL."""
    import uvicorn

    from emotify_ml.serve.__main__ import bind
    from emotify_ml.serve.app import LOOPBACK_HOSTS, ServeSettings, create_app
    from emotify_ml.serve.engine import load_engine

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'no-registry.db'}")  # no champion: shipped
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


def _start_chromium(binary: str, profile: Path, camera: Path) -> tuple[subprocess.Popen, str]:
    profile.mkdir()
    proc = subprocess.Popen([
        binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--no-default-browser-check", "--disable-sync",
        "--disable-extensions", "--mute-audio", f"--user-data-dir={profile}", "--remote-debugging-port=0",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}", "--window-size=1360,1000", "about:blank"],
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


async def _drive(devtools_url: str, page_url: str, shot: Path) -> dict:
    from websockets.asyncio.client import connect

    async with connect(devtools_url, max_size=None, proxy=None, open_timeout=20) as ws:
        cdp = DevTools(ws)
        target = (await cdp.call("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        await cdp.call("Page.enable", session=session)
        await cdp.call("Runtime.enable", session=session)
        await cdp.call("Emulation.setDeviceMetricsOverride", {"width": 1360, "height": 1000, "deviceScaleFactor": 1,
                                                              "mobile": False}, session)
        await cdp.call("Page.navigate", {"url": page_url}, session)
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
        later = await cdp.evaluate(session, "({points: window.emotify.timelinePoints(), frames: window.emotify.frames})")
        png = await cdp.call("Page.captureScreenshot", {"format": "png"}, session)
        shot.write_bytes(base64.b64decode(png["data"]))
        await cdp.call("Target.closeTarget", {"targetId": target})
        return {"first": seen, "later": later, "first_face_s": first_face_s}


def test_webcam_page_shows_faces_labels_and_a_growing_timeline(server, fake_camera, tmp_path):
    binary = _chromium()
    proc, devtools_url = _start_chromium(binary, tmp_path / "profile", fake_camera)
    shot = tmp_path / "artifacts" / "serve_page.png"
    shot.parent.mkdir()
    try:
        result = asyncio.run(_drive(devtools_url, f"{server}/?autostart=1", shot))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    from emotify_ml.labels import EMOTIONS

    first, later = result["first"], result["later"]
    face = first["faces"][0]
    assert face["label"] in EMOTIONS and first["label"] == face["label"] and len(face["box"]) == 4
    assert face["box"][2] > 100  # the 200 px face, in a 640x480 frame
    assert "emotify-emotion" in first["model"]
    assert later["points"] > first["points"] and later["frames"] > first["frames"]  # the timeline grows
    assert shot.stat().st_size > 10_000
    copy_to = os.environ.get("EMOTIFY_SCREENSHOT")
    if copy_to:  # for the docs: a 256-colour PNG is a third of the size and looks the same
        from PIL import Image

        with Image.open(shot) as image:
            image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                                          dither=Image.Dither.NONE).save(copy_to, optimize=True)
