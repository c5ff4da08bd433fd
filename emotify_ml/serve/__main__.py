"""``python -m emotify_ml.serve``: the Emotify REST API, websocket and page.

Examples::

    python -m emotify_ml.serve                                  # http://127.0.0.1:8000; champion, else shipped model
    python -m emotify_ml.serve --port 8080 --token s3cret       # every route but /healthz needs the token
    EMOTIFY_TOKEN=s3cret python -m emotify_ml.serve --host 0.0.0.0 --allowed-host emotify.lan

Exit codes: 0 stopped (Ctrl-C, SIGTERM), 1 other error, 2 bad arguments, 3 model not found,
6 the address is taken or cannot be bound.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import math
import os
import socket
import sys

PROG = "python -m emotify_ml.serve"
TOKEN_ENV = "EMOTIFY_TOKEN"

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_MODEL, EXIT_ADDRESS = 0, 1, 2, 3, 6


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    from emotify_ml.scoring.options import ScoringOptions
    from emotify_ml.scoring.prior import PRIORS

    p = argparse.ArgumentParser(
        prog=PROG, description="Serve Emotify over HTTP: REST (/v1/analyze, /v1/analyze/video, /v1/model), a "
        "websocket of webcam frames (/v1/stream), the webcam page (/) and the API docs (/docs).",
        epilog=f"The token may also come from the {TOKEN_ENV} environment variable. Exit codes: 0 stopped, "
        "1 error, 2 bad arguments, 3 model not found, 6 address taken or not bindable.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1, this machine only; anything else is reachable from "
                   "the network and prints a warning)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    p.add_argument("--model", default=None,
                   help="MLflow model URI or model folder (default: models:/emotify-emotion@champion from the "
                   "tracking store, else the shipped model)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking store to resolve --model in")
    p.add_argument("--allow-remote-model", action="store_true",
                   help="allow --model or --tracking-uri to be remote (http(s)://, s3://, ...); refused by default")
    p.add_argument("--token", default=None,
                   help=f"bearer token every route but /healthz requires (default: ${TOKEN_ENV}, else none)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="a browser origin allowed to call the API (repeatable; default: none, CORS closed)")
    p.add_argument("--allowed-host", action="append", default=None, metavar="HOST",
                   help="a Host header value to accept (repeatable; default: the loopback names when bound to "
                   "loopback, else any)")
    p.add_argument("--max-image-mb", type=float, default=10.0,
                   help="largest image upload or websocket frame, in MB (default: 10)")
    p.add_argument("--max-video-mb", type=float, default=200.0, help="largest video upload, in MB (default: 200)")
    p.add_argument("--max-video-seconds", type=float, default=600.0,
                   help="most media time of a video that is scored, in seconds (default: 600)")
    p.add_argument("--workers", type=int, default=None,
                   help="threads scoring frames (default: the CPU cores)")
    p.add_argument("--prior", choices=tuple(PRIORS), default=ScoringOptions.prior,
                   help="how often to expect each emotion: training (FER-2013's shares, the model as it is), web "
                   "(faces in photos: mostly neutral and happy) or uniform (default: %(default)s; "
                   "emotify_ml.scoring.prior)")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="server log level (default: warning)")
    return p


def _check(args, parser) -> None:
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535; got {args.port}")
    for name in ("max_image_mb", "max_video_mb", "max_video_seconds"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):  # nan passes `<= 0`, and int(nan * 1e6) raises later
            parser.error(f"--{name.replace('_', '-')} must be a finite number > 0; got {value}")
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be >= 1; got {args.workers}")


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``.

    Raises
    ------
    OSError
        The address is taken (``errno.EADDRINUSE``) or cannot be bound.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def main(argv=None) -> int:
    """Run the server until Ctrl-C/SIGTERM; returns the exit code (errors are one line, no traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(args, parser)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="emotify-serve: %(levelname)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from emotify_ml.mlflow_runs import disable_telemetry

    disable_telemetry()  # no calls home (EMOTIFY_ALLOW_TELEMETRY=1 opts in), as every entry point

    def say(message):
        print(message, file=sys.stderr, flush=True)

    loopback = is_loopback(args.host)
    if not loopback:
        say(f"{PROG}: warning: binding {args.host} makes the server reachable from other machines"
            + ("" if (args.token or os.environ.get(TOKEN_ENV)) else "; anyone who can reach it can use it "
               "(set --token)"))
    try:
        sock = bind(args.host, args.port)  # before the model loads: a taken port fails in a second
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return _fail(f"port {args.port} on {args.host} is already in use; stop what uses it or pass --port",
                         EXIT_ADDRESS)
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", EXIT_ADDRESS)
    try:
        return _serve(args, sock, loopback, say)
    finally:
        sock.close()


def _serve(args, sock, loopback, say) -> int:
    from emotify_ml.exceptions import EmotifyError, ModelError
    from emotify_ml.scoring.options import ScoringOptions
    from emotify_ml.serve.app import LOOPBACK_HOSTS, ServeSettings, create_app
    from emotify_ml.serve.engine import load_engine

    try:
        engine = load_engine(args.model, tracking_uri=args.tracking_uri, allow_remote=args.allow_remote_model,
                             scoring=ScoringOptions(detect="always", prior=args.prior))
    except ModelError as exc:  # not found, of the wrong kind, or refused (remote, pickled)
        return _fail(str(exc), EXIT_MODEL)
    except EmotifyError as exc:
        return _fail(str(exc), EXIT_ERROR)
    say(f"model: {engine.info.describe()}")
    port = sock.getsockname()[1]
    allowed = args.allowed_host
    if allowed is None and loopback:
        allowed = [*LOOPBACK_HOSTS, args.host]
    settings = ServeSettings(token=args.token or os.environ.get(TOKEN_ENV) or None, cors_origins=args.cors_origin,
                             allowed_hosts=allowed, max_image_bytes=int(args.max_image_mb * 1e6),
                             max_video_bytes=int(args.max_video_mb * 1e6), max_video_seconds=args.max_video_seconds,
                             workers=args.workers)
    app = create_app(engine, settings)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    say(f"serving on http://{shown}:{port}  (page: /, API docs: /docs; token: "
        f"{'required' if settings.token else 'none'}; {settings.n_workers} scoring threads); Ctrl-C stops")
    import uvicorn

    config = uvicorn.Config(app, log_level=args.log_level, ws_max_size=max(2 * settings.max_image_bytes, 1 << 20),
                            server_header=False, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
