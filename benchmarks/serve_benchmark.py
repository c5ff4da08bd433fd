"""Server benchmark: requests/s and latency of ``POST /v1/analyze`` at 1, 4 and 16 concurrent clients, and frames/s
over the ``/v1/stream`` websocket, against ``python -m emotify_ml.serve`` running in its own process.

Usage::

    python benchmarks/serve_benchmark.py                          # default model, 10 s per level
    python benchmarks/serve_benchmark.py --seconds 20 --ws-seconds 300 --model runs:/<id>/model
    python benchmarks/serve_benchmark.py --url http://127.0.0.1:8000 --token s3cret   # a server already running

The image is a 640x480 JPEG with one bundled FER-2013 sample face (200 px), the first frame of
``live_benchmark.py``'s generated clip. Each client sends a request as soon as the last one is
answered. The websocket client does the same with frames (the page's pace: one frame in flight).
The server's resident memory is sampled at the start and end of the websocket session (use
``--ws-seconds 300`` for the 5-minute check). It prints a table and writes JSON (``--json``,
default ``benchmarks/results/serve.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing


def one_face_jpeg() -> bytes:
    """A 640x480 JPEG of one sample face: the first frame of the live benchmark's clip."""
    import cv2

    from benchmarks.live_benchmark import make_clip

    with tempfile.TemporaryDirectory() as tmp:
        cap = cv2.VideoCapture(str(make_clip(Path(tmp) / "one.avi", n_faces=1, frames_per_face=1)))
        ok, frame = cap.read()
        cap.release()
    if not ok:
        raise RuntimeError("could not read the generated clip")
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def start_server(args) -> tuple[subprocess.Popen, str]:
    """``python -m emotify_ml.serve`` on a free loopback port; returns (process, base URL) once it answers."""
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "emotify_ml.serve", "--port", str(port)]
    for flag, value in (("--model", args.model), ("--tracking-uri", args.tracking_uri), ("--workers", args.workers)):
        if value is not None:
            command += [flag, str(value)]
    log = tempfile.TemporaryFile(mode="w+")  # a pipe nobody reads could fill up and stall the server
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the server exited ({proc.returncode}): {log.read().strip()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("the server did not answer /healthz within 180 s")


def _stats(latencies_ms, n, seconds, errors) -> dict:
    lat = np.asarray(latencies_ms) if latencies_ms else np.zeros(1)
    return {"requests": n, "errors": errors, "seconds": round(seconds, 2), "req_per_s": round(n / seconds, 2),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p95_ms": round(float(np.percentile(lat, 95)), 2),
            "mean_ms": round(float(lat.mean()), 2)}


async def rest_level(url, headers, image, clients: int, seconds: float) -> dict:
    """``clients`` concurrent loops posting the image for ``seconds``."""
    import httpx

    latencies, errors, faces = [], 0, []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as http:
        stop = time.perf_counter() + seconds

        async def loop():
            nonlocal errors
            while time.perf_counter() < stop:
                t = time.perf_counter()
                response = await http.post("/v1/analyze", content=image, headers={"content-type": "image/jpeg"})
                latencies.append((time.perf_counter() - t) * 1000)
                if response.status_code != 200:
                    errors += 1
                else:
                    faces.append(len(response.json()["faces"]))

        start = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(clients)))
        wall = time.perf_counter() - start
    return {"clients": clients, **_stats(latencies, len(latencies), wall, errors),
            "faces_per_image": float(np.mean(faces)) if faces else 0.0}


async def ws_session(url, token, image, seconds: float, server_pid: int | None) -> dict:
    """One websocket connection sending the frame as soon as the last reply arrives."""
    from websockets.asyncio.client import connect

    rss = []

    def sample():
        if server_pid is not None:
            import psutil

            rss.append(psutil.Process(server_pid).memory_info().rss / 2**20)

    ws_url = url.replace("http", "ws", 1) + "/v1/stream" + (f"?token={token}" if token else "")
    latencies = []
    async with connect(ws_url, max_size=None, proxy=None) as ws:
        json.loads(await ws.recv())  # hello
        for _ in range(5):  # warm-up
            await ws.send(image)
            await ws.recv()
        sample()
        start = time.perf_counter()
        next_sample = start + 10
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            await ws.send(image)
            reply = json.loads(await ws.recv())
            latencies.append((time.perf_counter() - t) * 1000)
            if reply.get("type") != "faces":
                raise RuntimeError(f"unexpected reply: {reply}")
            if time.perf_counter() >= next_sample:
                sample()
                next_sample += 10
        wall = time.perf_counter() - start
        sample()
    lat = np.asarray(latencies)
    return {"frames": len(latencies), "seconds": round(wall, 2), "frames_per_s": round(len(latencies) / wall, 2),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p95_ms": round(float(np.percentile(lat, 95)), 2),
            "server_rss_mb": {"start": round(rss[0], 1), "end": round(rss[-1], 1), "max": round(max(rss), 1),
                              "samples": [round(v, 1) for v in rss]} if rss else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="benchmark a server already running here instead of starting one")
    p.add_argument("--token", default=os.environ.get("EMOTIFY_TOKEN"), help="bearer token of that server")
    p.add_argument("--model", help="model of the started server (default: as python -m emotify_ml.serve)")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--workers", type=int, default=None, help="scoring threads of the started server (default: cores)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrency levels (default: 1 4 16)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per concurrency level (default: 10)")
    p.add_argument("--ws-seconds", type=float, default=10.0, help="seconds of the websocket session (default: 10)")
    p.add_argument("--json", default=str(Path(__file__).resolve().parent / "results" / "serve.json"),
                   help="where to write the results (default: benchmarks/results/serve.json)")
    args = p.parse_args(argv)

    import httpx

    image = one_face_jpeg()
    proc = None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    try:
        if args.url:
            url = args.url.rstrip("/")
        else:
            proc, url = start_server(args)
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        model = httpx.get(f"{url}/v1/model", headers=headers, timeout=30).json()
        for _ in range(5):  # warm-up
            httpx.post(f"{url}/v1/analyze", content=image, headers=headers, timeout=60)
        levels = [asyncio.run(rest_level(url, headers, image, n, args.seconds)) for n in args.clients]
        ws = asyncio.run(ws_session(url, args.token, image, args.ws_seconds, proc.pid if proc else None))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

    import cv2

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    report = {
        "image": "640x480 JPEG, one bundled sample face of 200 px (live_benchmark.make_clip's first frame)",
        "image_bytes": len(image), "model": model, "server": args.url or "python -m emotify_ml.serve (own process)",
        "rest": levels, "websocket": ws,
        "machine": {"cpu_cores": cores, "load_average_1min_at_start": load, "platform": platform.platform(),
                    "python": platform.python_version(), "opencv": cv2.__version__},
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"model: {model.get('name')} v{model.get('version')} ({model.get('runtime')}); "
          f"{cores} cores, load average {load}")
    print(f"{'clients':>8} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'requests':>9} {'errors':>7}")
    for row in levels:
        print(f"{row['clients']:>8} {row['req_per_s']:>8.1f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
              f"{row['requests']:>9} {row['errors']:>7}")
    print(f"websocket: {ws['frames_per_s']:.1f} frames/s (p50 {ws['p50_ms']:.1f} ms, p95 {ws['p95_ms']:.1f} ms), "
          f"server RSS {ws['server_rss_mb']}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
