"""Sweeps fan out: ``hydra/launcher=parallel`` (joblib, separate processes) keeps one MLflow parent with a child per job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

# importorskip, not find_spec: find_spec("hydra_plugins.x") itself raises when no Hydra plugin is installed at all
pytest.importorskip("hydra_plugins.hydra_joblib_launcher",
                    reason="hydra-joblib-launcher is not installed (pip install hydra-joblib-launcher)")

REPO = Path(__file__).resolve().parents[1]


def test_parallel_launcher_jobs_are_child_runs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "EMOTIFY_CACHE_DIR": str(tmp_path / "cache"),
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    proc = subprocess.run([sys.executable, "-m", "pipelines.run", "-m", "hydra/launcher=parallel", "experiment=svm_hog",
                           "classifier.kernel=linear", "tracking.experiment=sweeps", "classifier.C=0.0001,0.001",
                           f"tracking.uri={uri}", f"hydra.sweep.dir={tmp_path / 'multirun'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("emotify.sweep") == "parent"]
    children = [r for r in runs if r is not parent]
    assert parent.data.tags["launcher"] == "parallel" and parent.info.status == "FINISHED"
    assert len(children) == 2 and {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert {r.info.status for r in children} == {"FINISHED"}
