"""No calls home: every entry point runs with outbound network attempts recorded, and none is made.

Each command runs in a subprocess whose Python (and every Python it starts) loads a
``sitecustomize`` that records, then refuses, any DNS lookup or connection to a host that is
not loopback. The environment is cleaned of what would switch MLflow's telemetry off by itself
(pytest's and CI variables, ``MLFLOW_DISABLE_TELEMETRY``, ``DO_NOT_TRACK``), so only the entry
points' own switch (:func:`emotify_ml.mlflow_runs.disable_telemetry`) keeps them quiet. The
controls show the guard catches a real attempt, and MLflow's telemetry when the user opts in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

GUARD = '''
import os, socket

_LOG = os.environ.get("EMOTIFY_NET_GUARD_LOG")
if _LOG:
    import ipaddress

    def _local(host):
        if host in (None, "", "localhost", "localhost.localdomain"):
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def _refuse(what, host):
        with open(_LOG, "a") as fh:
            fh.write(f"{os.getpid()} {what} {host}\\n")
        raise OSError(f"outbound network refused by the test: {what} {host}")

    def _wrap_lookup(original, what):
        def lookup(host, *args, **kwargs):
            name = host.decode() if isinstance(host, bytes) else host
            if not _local(name):
                _refuse(what, name)
            return original(host, *args, **kwargs)
        return lookup

    socket.getaddrinfo = _wrap_lookup(socket.getaddrinfo, "getaddrinfo")
    socket.gethostbyname = _wrap_lookup(socket.gethostbyname, "gethostbyname")
    socket.gethostbyname_ex = _wrap_lookup(socket.gethostbyname_ex, "gethostbyname_ex")

    def _wrap_connect(original, what):
        def connect(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
                _refuse(what, address[0])
            return original(self, address)
        return connect

    socket.socket.connect = _wrap_connect(socket.socket.connect, "connect")
    socket.socket.connect_ex = _wrap_connect(socket.socket.connect_ex, "connect_ex")
'''

QUIETING = ("PYTEST_CURRENT_TEST", "PYTEST_VERSION", "CI", "GITHUB_ACTIONS", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK",
            "HF_HUB_DISABLE_TELEMETRY", "EMOTIFY_ALLOW_TELEMETRY")


@pytest.fixture(scope="module")
def guard_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("net_guard")
    (folder / "sitecustomize.py").write_text(GUARD)
    return folder


def guarded(args, tmp_path, guard_dir, **env_extra):
    """Run ``python <args>`` with the network guard; returns (completed process, recorded attempts)."""
    log = tmp_path / f"net_{len(list(tmp_path.glob('net_*')))}.log"
    env = {k: v for k, v in os.environ.items() if k not in QUIETING}
    env.update({"PYTHONPATH": os.pathsep.join([str(guard_dir), str(REPO), env.get("PYTHONPATH", "")]),
                "EMOTIFY_NET_GUARD_LOG": str(log), "TF_CPP_MIN_LOG_LEVEL": "3", **env_extra})
    proc = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return proc, (log.read_text().splitlines() if log.exists() else [])


DRIVER = """
import json, os, runpy, sys, time

commands, quieting = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name, argv in commands:
    for key in quieting:
        os.environ.pop(key, None)
    telemetry = sys.modules.get("mlflow.telemetry.client")
    if telemetry is not None:  # MLflow on again, as a fresh `import mlflow` would leave it
        telemetry.set_telemetry_client()
        assert telemetry.get_telemetry_client() is not None
    if "hydra.core.global_hydra" in sys.modules:
        sys.modules["hydra.core.global_hydra"].GlobalHydra.instance().clear()
    with open(os.environ["EMOTIFY_NET_GUARD_LOG"], "a") as fh:
        fh.write(f"# {name}\\n")
    sys.argv = [name, *argv]
    try:
        runpy.run_module(name, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    print("EXIT", name, code, flush=True)
time.sleep(3)  # time for a telemetry thread to try
"""


def test_the_guard_records_an_outbound_attempt(tmp_path, guard_dir):
    """Control: the guard sees (and stops) a connection to a public address and a DNS lookup."""
    code = ("import socket\nfor call in (lambda: socket.socket().connect(('203.0.113.7', 443)),\n"
            "             lambda: socket.getaddrinfo('example.org', 443)):\n"
            "    try:\n        call()\n    except OSError:\n        pass\n"
            "socket.getaddrinfo('localhost', 80)\n")
    proc, attempts = guarded(["-c", code], tmp_path, guard_dir)
    assert proc.returncode == 0, proc.stderr
    assert [a.split(" ", 1)[1] for a in attempts] == ["connect 203.0.113.7", "getaddrinfo example.org"]


def test_opting_in_lets_mlflow_telemetry_try_to_call_home(tmp_path, guard_dir):
    """Control: with ``EMOTIFY_ALLOW_TELEMETRY=1`` the runner's tracking calls make MLflow's telemetry try to call
    home, so the guard would catch an entry point that forgot to switch it off."""
    code = ("import time\nfrom pipelines._common import exit_on_error\n"
            "from emotify_ml.mlflow_runs import set_tracking\n"
            "exit_on_error(lambda: (set_tracking('sqlite:///:memory:', 'x'), time.sleep(3)))()\n")
    proc, attempts = guarded(["-c", code], tmp_path, guard_dir, EMOTIFY_ALLOW_TELEMETRY="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert any("mlflow-telemetry" in a for a in attempts), attempts


def test_entry_points_call_nobody(tmp_path, guard_dir):
    """The runner on the sample, promote, compare, live on an image and score_batch: no attempt at all.

    They run one after another in one guarded process (imports are paid once); before each,
    MLflow's telemetry is switched back on as a fresh process would have it."""
    import json

    import cv2

    from emotify_ml.data import load_fer2013

    image = tmp_path / "face.png"
    cv2.imwrite(str(image), cv2.resize(load_fer2013(cache=False).images[0], (144, 144)))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    commands = [
        ("pipelines.run", ["experiment=svm_hog", "classifier.kernel=linear", f"tracking.uri={uri}",
                           f"hydra.run.dir={tmp_path}/hydra"]),
        ("pipelines.promote", [f"tracking.uri={uri}"]),
        ("pipelines.compare", [f"tracking.uri={uri}", f"out_dir={tmp_path}/compare"]),
        ("emotify_ml.live", ["--source", str(image), "--no-display", "--jsonl", f"{tmp_path}/faces.jsonl",
                             "--tracking-uri", uri, "-q"]),
        ("pipelines.score_batch", [f"input={image}", f"output={tmp_path}/scores", f"tracking.uri={uri}",
                                   "progress=false"]),
    ]
    proc, attempts = guarded(["-c", DRIVER, json.dumps(commands), json.dumps(QUIETING)], tmp_path, guard_dir)
    exits = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("EXIT ")]
    assert exits == [[name, "0"] for name, _ in commands], proc.stdout[-2000:] + proc.stderr[-3000:]
    assert [a for a in attempts if not a.startswith("#")] == [], attempts
