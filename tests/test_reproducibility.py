"""Every run logs what it takes to reproduce it, and the same config gives the same metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

TIMING = ("train_seconds", "val_predict_seconds", "test_predict_seconds", "items_per_s_batch", "ms_per_item_batch1")
OVERRIDES = ["experiment=svm_hog", "classifier.kernel=linear", "classifier.C=0.001", "tracking.experiment=repro"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same config run twice in this process: both metrics dicts and both MLflow runs."""
    from pipelines.run import compose, run

    tmp = tmp_path_factory.mktemp("repro")
    tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EMOTIFY_CACHE_DIR", str(tmp / "cache"))
        metrics = [run(compose([*OVERRIDES, f"tracking.uri={tracking_uri}"])) for _ in range(2)]
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("repro").experiment_id],
                              order_by=["attributes.start_time ASC"])
    return metrics, runs, client


def test_same_config_gives_the_same_metrics(two_runs):
    (first, second), runs, _ = two_runs
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    quality = {k: v for k, v in first.items() if k not in TIMING}
    assert "val_accuracy" in quality and "test_macro_f1" in quality
    assert quality == {k: v for k, v in second.items() if k not in TIMING}
    assert runs[0].data.params == runs[1].data.params


def test_a_run_logs_config_provenance_data_hash_and_seeds(two_runs):
    _, (run, _), client = two_runs
    params, tags = run.data.params, run.data.tags
    assert len(params["dataset.hash"]) == 64
    assert params["seed"] == "0" and params["classifier.random_state"] == "0" and tags["seed"] == "0"
    assert len(tags["git_commit"]) == 40 and tags["git_dirty"] in ("true", "false")
    assert tags["reproduce"] == "python -m pipelines.run " + " ".join(OVERRIDES) + f" tracking.uri={params['tracking.uri']}"
    config = artifact_json(client, run.info.run_id, "config.json")
    assert config["classifier"]["C"] == 0.001 and config["seed"] == 0 and config["selection"]["metric"] == "val_accuracy"
    packages = artifact_json(client, run.info.run_id, "environment/packages.json")
    assert {"python", "numpy", "scikit-learn", "mlflow", "hydra-core"} <= set(packages)
    if tags["git_dirty"] == "true":  # the uncommitted changes travel with the run
        assert "environment/git_diff.patch" in {a.path for a in client.list_artifacts(run.info.run_id, "environment")}


def artifact_json(client, run_id: str, path: str):
    return json.loads(Path(client.download_artifacts(run_id, path)).read_text())
