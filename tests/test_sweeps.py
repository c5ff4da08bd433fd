"""A Hydra multirun is one MLflow parent run with a child per job; its best child can be promoted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from emotify_ml.registry import current_champion, promote
from emotify_ml.mlflow_runs import end_sweep, start_sweep, tracked_run

REPO = Path(__file__).resolve().parents[1]
TINY = ["experiment=svm_hog", "classifier.kernel=linear", "tracking.experiment=sweeps"]


def cli(module: str, *args: str, tmp: Path) -> subprocess.CompletedProcess:
    """``python -m <module> args`` run from ``tmp`` (so nothing lands in the checkout), on the repo's code."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "EMOTIFY_CACHE_DIR": str(tmp / "cache"),
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=300)


def runs_of(tracking_uri: str, experiment: str = "sweeps") -> list:
    client = MlflowClient(tracking_uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                              order_by=["attributes.start_time ASC"])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two tiny jobs (linear SVM, C = 0.0001 and 0.001) on the bundled sample, in a temporary store."""
    tmp = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    proc = cli("pipelines.run", "-m", *TINY, "classifier.C=0.0001,0.001", f"tracking.uri={uri}",
               f"hydra.sweep.dir={tmp / 'multirun'}", tmp=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return uri, tmp


def test_a_multirun_is_one_parent_with_a_child_per_job(sweep):
    uri, tmp = sweep
    runs = runs_of(uri)
    (parent,) = [r for r in runs if r.data.tags.get("emotify.sweep") == "parent"]
    children = [r for r in runs if r is not parent]
    assert parent.info.status == "FINISHED" and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert {r.info.experiment_id for r in runs} == {parent.info.experiment_id}
    assert sorted(r.data.params["classifier.C"] for r in children) == ["0.0001", "0.001"]
    assert [r.info.status for r in children] == ["FINISHED", "FINISHED"]
    assert {r.info.run_name for r in children} == {"svm_hog-0", "svm_hog-1"}
    assert json.loads((tmp / "multirun" / "mlflow_sweep.json").read_text())["parent_run_id"] == parent.info.run_id

    best = max(children, key=lambda r: r.data.metrics["val_accuracy"])  # chosen on validation, test only reported
    assert parent.data.tags["best_run_id"] == best.info.run_id
    assert parent.data.metrics["best_val_accuracy"] == best.data.metrics["val_accuracy"]
    assert parent.data.metrics["best_test_accuracy"] == best.data.metrics["test_accuracy"]
    assert parent.data.metrics["n_failed"] == 0


def test_promote_cli_registers_the_sweeps_best_child_and_refuses_a_worse_one(sweep):
    uri, tmp = sweep
    proc = cli("pipelines.promote", f"tracking.uri={uri}", "tracking.experiment=sweeps", "parent_run_id=latest", tmp=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    children = [r for r in runs_of(uri) if "mlflow.parentRunId" in r.data.tags]
    best, worse = sorted(children, key=lambda r: -r.data.metrics["val_accuracy"])
    assert f"candidate: run {best.info.run_id}" in proc.stdout and "champion:  none" in proc.stdout
    assert "promoted: emotify-emotion v1 is now @champion" in proc.stdout
    assert current_champion(tracking_uri=uri).run_id == best.info.run_id

    refused = promote(tracking_uri=uri, experiment="sweeps", run_id=worse.info.run_id)
    assert not refused.promoted and current_champion(tracking_uri=uri).run_id == best.info.run_id


def test_failing_jobs_fail_the_sweep_with_one_line_each_and_register_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = cli("pipelines.run", "-m", *TINY, f"data.root={tmp_path / 'gone'},{tmp_path / 'lost'}",
               f"tracking.uri={uri}", f"hydra.sweep.dir={tmp_path / 'multirun'}", tmp=tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 3 and errors[0].startswith("error in job 0") and "2 of 2 jobs failed" in errors[2]
    assert "Traceback" not in proc.stderr

    runs = runs_of(uri)
    (parent,) = [r for r in runs if r.data.tags.get("emotify.sweep") == "parent"]
    children = [r for r in runs if r is not parent]
    assert parent.info.status == "FAILED" and "2 of 2 jobs failed" in parent.data.tags["error"]
    assert [r.info.status for r in children] == ["FAILED", "FAILED"]
    assert all(r.data.tags["error_type"] == "DataNotFoundError" for r in children)
    assert not any(r.outputs.model_outputs for r in children)
    with pytest.raises(ValueError, match="no FINISHED run"):
        promote(tracking_uri=uri, experiment="sweeps", parent_run_id=parent.info.run_id)


def test_end_sweep_fails_the_parent_when_a_child_failed(tracking_uri):
    parent = start_sweep(tracking_uri=tracking_uri, experiment="lib", run_name="sweep")
    with tracked_run(tracking_uri=tracking_uri, experiment="lib", run_name="ok", parent_run_id=parent) as ok:
        import mlflow

        mlflow.log_metric("val_accuracy", 0.5)
    with pytest.raises(KeyError), tracked_run(tracking_uri=tracking_uri, experiment="lib", parent_run_id=parent):
        raise KeyError("boom")
    summary = end_sweep(parent, tracking_uri=tracking_uri)
    assert (summary["status"], summary["n_jobs"], summary["n_failed"]) == ("FAILED", 2, 1)
    assert summary["best_run_id"] == ok.info.run_id
    run = MlflowClient(tracking_uri).get_run(parent)
    assert run.info.status == "FAILED" and run.data.tags["best_run_id"] == ok.info.run_id
    assert end_sweep(parent, tracking_uri=tracking_uri)["already_ended"]  # ending twice changes nothing


def test_a_child_must_share_its_parents_experiment(tracking_uri):
    parent = start_sweep(tracking_uri=tracking_uri, experiment="one")
    with pytest.raises(ValueError, match="share"):
        with tracked_run(tracking_uri=tracking_uri, experiment="two", parent_run_id=parent):
            pass
