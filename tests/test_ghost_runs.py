"""No ghosts: a killed runner or promote never leaves a run RUNNING or a half-made champion.

Each test kills a real subprocess at a named point (``EMOTIFY_FAULT_PAUSE=<point>:<seconds>``
makes it sleep there; see :func:`emotify_ml.mlflow_runs.fault_point`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from emotify_ml.mlflow_runs import HOST_TAG, PID_TAG, end_ghost_runs, is_ghost, process_tags, tracked_run

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "emotify-emotion"


@pytest.fixture
def tracking_uri(copied_store_uri):
    return copied_store_uri


def start(module, *overrides, pause, tmp_path):
    """``python -m <module> <overrides>`` paused at ``pause``; returns once it is sleeping there."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "EMOTIFY_FAULT_PAUSE": f"{pause}:60"}
    proc = subprocess.Popen([sys.executable, "-m", module, *overrides, f"hydra.run.dir={tmp_path}/hydra"],
                            cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if f"fault point {pause}" in line:
            return proc
    proc.wait(10)
    pytest.fail(f"{module} ended (rc {proc.returncode}) before {pause}: {''.join(seen)[-2000:]}")


def only_run(tracking_uri, experiment="ghosts"):
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run


def runner(tracking_uri, tmp_path):
    return start("pipelines.run", "experiment=svm_hog", f"tracking.uri={tracking_uri}", "tracking.experiment=ghosts",
                 pause="run_started", tmp_path=tmp_path)


def test_sigterm_ends_the_run_killed_with_exit_code_130(tracking_uri, tmp_path):
    proc = runner(tracking_uri, tmp_path)
    assert only_run(tracking_uri).info.status == "RUNNING"
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.wait(30) == 130, err
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    run = only_run(tracking_uri)
    assert run.info.status == "KILLED" and "SIGTERM" in run.data.tags["error"]
    artifacts = {a.path for a in MlflowClient(tracking_uri).list_artifacts(run.info.run_id)}
    assert {"config.json", "environment"} <= artifacts


def test_a_killed_sweep_is_failed_by_the_next_command_and_never_listed_running(tracking_uri, tmp_path, hydra_main,
                                                                               capsys):
    """kill -9 of a 2-job sweep leaves its parent and first child RUNNING; the next compare ends both FAILED."""
    proc = start("pipelines.run", "-m", "experiment=svm_hog", "classifier.C=0.1,1", f"tracking.uri={tracking_uri}",
                 "tracking.experiment=ghosts", f"hydra.sweep.dir={tmp_path}/sweep", pause="run_started",
                 tmp_path=tmp_path)
    proc.kill()
    proc.wait(10)
    client = MlflowClient(tracking_uri)
    exp_id = client.get_experiment_by_name("ghosts").experiment_id
    ghosts = client.search_runs([exp_id])
    assert len(ghosts) == 2 and all(r.info.status == "RUNNING" and is_ghost(r) for r in ghosts)
    assert {r.data.tags[PID_TAG] for r in ghosts} == {str(proc.pid)} and all(r.data.tags[HOST_TAG] for r in ghosts)

    hydra_main("pipelines.compare", f"tracking.uri={tracking_uri}", "tracking.experiment=ghosts",
               f"out_dir={tmp_path}/compare")
    table = capsys.readouterr().out.split("status", 1)[1]
    assert "RUNNING" not in table and "FAILED" in table
    ended = {(r.info.status, r.data.tags["error_type"]) for r in client.search_runs([exp_id])}
    assert ended == {("FAILED", "ProcessGone")}


def test_runs_of_live_processes_and_other_hosts_are_left_alone(tracking_uri):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    client = MlflowClient(tracking_uri)
    exp = client.create_experiment("ghosts")
    ids = {name: client.create_run(exp, tags={**process_tags(), **tags}).info.run_id
           for name, tags in {"mine": {}, "dead": {PID_TAG: str(dead.pid)},
                              "elsewhere": {PID_TAG: str(dead.pid), HOST_TAG: "another-host"}}.items()}
    assert end_ghost_runs(tracking_uri=tracking_uri) == [ids["dead"]]
    assert client.get_run(ids["dead"]).info.status == "FAILED"
    assert client.get_run(ids["mine"]).info.status == "RUNNING"  # this process is alive
    assert client.get_run(ids["elsewhere"]).info.status == "RUNNING"  # cannot tell: another host


def test_the_next_run_and_promote_end_ghosts(tracking_uri):
    from emotify_ml.registry import promote

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    client = MlflowClient(tracking_uri)
    exp = client.create_experiment("ghosts")
    ghost = lambda: client.create_run(exp, tags={**process_tags(), PID_TAG: str(dead.pid)}).info.run_id  # noqa: E731
    first, second = ghost(), None
    with tracked_run(tracking_uri=tracking_uri, experiment="ghosts", run_name="next"):
        assert client.get_run(first).info.status == "FAILED"
        second = ghost()
    with pytest.raises(ValueError, match="no FINISHED run"):
        promote(tracking_uri=tracking_uri, experiment="ghosts")
    assert client.get_run(second).info.status == "FAILED"


@pytest.fixture
def finished_run(tracking_uri):
    """A FINISHED run with val_accuracy and a (tiny) logged model."""
    from sklearn.dummy import DummyClassifier

    with tracked_run(tracking_uri=tracking_uri, experiment="ghosts", run_name="candidate") as run:
        mlflow.log_metrics({"val_accuracy": 0.5})
        mlflow.sklearn.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), name="model",
                                 pip_requirements=["scikit-learn"])  # no slow inference of the requirements
    return run.info.run_id


def test_a_promote_killed_between_register_and_alias_is_rolled_back_and_rerun_once(tracking_uri, tmp_path,
                                                                                  finished_run):
    args = ("pipelines.promote", f"tracking.uri={tracking_uri}", "tracking.experiment=ghosts")
    proc = start(*args, pause="promote_registered", tmp_path=tmp_path)
    proc.kill()
    proc.wait(10)
    client = MlflowClient(tracking_uri)
    (half,) = client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert half.tags["emotify.promotion"] == "pending" and not half.aliases  # the half-made state a kill leaves

    from emotify_ml.registry import promote

    result = promote(tracking_uri=tracking_uri, experiment="ghosts")  # the re-run
    (version,) = client.search_model_versions(f"name = '{MODEL_NAME}'")  # the half-made one was rolled back
    assert result.promoted and version.run_id == finished_run and version.tags["emotify.promotion"] == "done"
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == version.version
    assert "already is @champion" in promote(tracking_uri=tracking_uri, experiment="ghosts").reason
    assert len(client.search_model_versions(f"name = '{MODEL_NAME}'")) == 1  # a re-run never duplicates


def test_an_error_between_register_and_alias_rolls_the_version_back(tracking_uri, finished_run, monkeypatch):
    from emotify_ml import registry

    def broken(self, *args, **kwargs):
        raise RuntimeError("store went away")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", broken)
    with pytest.raises(RuntimeError):
        registry.promote(tracking_uri=tracking_uri, experiment="ghosts")
    assert MlflowClient(tracking_uri).search_model_versions(f"name = '{MODEL_NAME}'") == []
