"""End to end: the Hydra entry point trains, evaluates and tracks a pipeline on the bundled sample."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from emotify_ml.data import load_fer2013
from emotify_ml.labels import EMOTIONS

REPO = Path(__file__).resolve().parents[1]


def run_cli(*overrides, cwd=REPO, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "pipelines.run", *overrides, f"hydra.run.dir={tmp_path}/hydra"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_svm_hog_on_sample_is_tracked_and_reloads(tmp_path, tracking_uri):
    proc = run_cli("experiment=svm_hog", f"tracking.uri={tracking_uri}", "tracking.experiment=e2e", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("e2e")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    m, p, t = run.data.metrics, run.data.params, run.data.tags
    for key in ("val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1", "train_seconds",
                "test_f1_happy", "test_recall_disgust", "items_per_s_batch"):
        assert key in m, key
    assert p["features.hog.orientations"] == "9" and p["classifier.kernel"] == "rbf"
    assert len(p["dataset.hash"]) == 64 and p["dataset.n_PrivateTest"] == "84"
    assert "git_commit" in t
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "metrics.json", "plots", "reports"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} >= {"plots/confusion_test.png"}

    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    test = load_fer2013().split("PrivateTest")
    pred = model.predict(test.images)
    assert list(pred.columns) == [*EMOTIONS, "label"]
    accuracy = np.mean(pred["label"].map(EMOTIONS.index).to_numpy() == test.labels)
    assert accuracy == m["test_accuracy"]  # the logged model is the one that was evaluated


def test_action_ensemble_final_refit_without_validation(tmp_path, tracking_uri):
    """The shipped action model's recipe on the MPII sample: the soft-vote config composes, and a run with
    ``data.val_size=0`` (train + validation) reports test only and logs a loadable action model."""
    from emotify_ml.models import load_action_model
    from emotify_ml.data.mpii import load_mpii_splits, sample_mpii_path

    proc = run_cli("experiment=action_pose_ensemble", f"data.path={sample_mpii_path()}", "data.val_size=0",
                   "classifier.members.gbm.n_estimators=5", "classifier.members.mlp.epochs=2",
                   "classifier.members.mlp.hidden=[16]", "classifier.members.mlp.n_networks=2",
                   f"tracking.uri={tracking_uri}", "tracking.experiment=actions", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("actions").experiment_id])
    m = run.data.metrics
    assert "test_accuracy" in m and "test_ece" in m and not any(k.startswith("val_") for k in m)
    assert run.data.params["dataset.n_val"] == "0"
    mlflow.set_tracking_uri(tracking_uri)
    model = load_action_model(f"runs:/{run.info.run_id}/model")
    splits = load_mpii_splits(sample_mpii_path(), val_size=0)
    assert len(splits.y_train) == int(run.data.params["dataset.n_train"])
    accuracy = np.mean(model.predict_proba(splits.X_test).argmax(1) == splits.y_test)
    assert np.isclose(accuracy, m["test_accuracy"])  # the logged model is the one that was evaluated
