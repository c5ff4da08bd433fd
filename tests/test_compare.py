"""The comparison table: one row per run, best first on validation, written as CSV and markdown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from emotify_ml.mlflow_runs import comparison_table, markdown_table, search_runs, tracked_run, write_table

REPO = Path(__file__).resolve().parents[1]
RUNS = [  # name, C, val, test, status
    ("low-C", 0.1, 0.40, 0.70, "FINISHED"),
    ("high-C", 10.0, 0.55, 0.35, "FINISHED"),
    ("broken", 1.0, None, None, "FAILED"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Three svm_hog runs in experiment ``cmp``: two finished with metrics, one failed."""
    tracking_uri = f"sqlite:///{tmp_path_factory.mktemp('cmp') / 'mlflow.db'}"
    for name, C, val, test, status in RUNS:
        try:
            with tracked_run(tracking_uri=tracking_uri, experiment="cmp", run_name=name,
                             config={"classifier": {"_target_": "emotify_ml.pipeline.make_svm", "C": C},
                                     "features": {"hog": {"orientations": 9}}, "seed": 0},
                             tags={"experiment_name": "svm_hog"}):
                mlflow.log_params({"dataset.hash": "f" * 64})
                if status == "FAILED":
                    raise ValueError("C must be positive")
                mlflow.log_metrics({"val_accuracy": val, "val_macro_f1": val - 0.1, "test_accuracy": test,
                                    "test_macro_f1": test - 0.1, "train_seconds": 2.0, "items_per_s_batch": 900.0,
                                    "ms_per_item_batch1": 1.5})
        except ValueError:
            pass
    return tracking_uri


def test_table_is_best_first_on_validation_with_varying_params(store, tmp_path):
    table = comparison_table(search_runs(tracking_uri=store, experiment="cmp"))
    assert list(table["run"]) == ["high-C", "low-C", "broken"]  # test accuracy does not order the rows
    assert list(table["status"]) == ["FINISHED", "FINISHED", "FAILED"]
    assert list(table["classifier.C"]) == ["10.0", "0.1", "1.0"]  # the param that differs is a column
    assert "seed" not in table.columns  # the same in every run: not a column
    assert set(table.iloc[0][["experiment", "features", "classifier"]]) == {"svm_hog", "hog", "make_svm"}
    for column in ("val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1", "train_s", "faces_per_s",
                   "ms_per_face", "data_hash", "run_id"):
        assert column in table.columns, column

    csv_path, md_path = write_table(table, tmp_path / "out", "cmp")
    assert pd.read_csv(csv_path)["run"].tolist() == ["high-C", "low-C", "broken"]
    lines = md_path.read_text().splitlines()
    assert lines[0].startswith("| run | experiment |") and len(lines) == 2 + len(RUNS)
    assert "| 0.5500 |" in lines[2] and md_path.read_text() == markdown_table(table)


def test_table_refuses_a_test_metric_for_ordering(store):
    with pytest.raises(ValueError, match="validation"):
        comparison_table(search_runs(tracking_uri=store, experiment="cmp"), metric="test_accuracy")


def test_compare_cli_prints_the_table_and_writes_csv_and_markdown(store, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "pipelines.compare", f"tracking.uri={store}",
                           "tracking.experiment=cmp", f"out_dir={tmp_path / 'out'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    header, first = proc.stdout.splitlines()[:2]
    assert "val_accuracy" in header and "faces_per_s" in header and first.split()[0] == "high-C"
    assert (tmp_path / "out" / "cmp.csv").is_file() and (tmp_path / "out" / "cmp.md").is_file()


def test_an_unknown_experiment_is_a_clear_error(store):
    with pytest.raises(ValueError, match="experiment 'nope' does not exist"):
        search_runs(tracking_uri=store, experiment="nope")


def test_flattened_params_keep_an_empty_mapping_as_a_value():
    """``camera={}`` (the augmentation on, with its defaults) is logged, not dropped as an empty dict would be."""
    from emotify_ml.mlflow_runs import flatten

    assert flatten({"camera": {}, "train": {"epochs": 60, "init_from": None}}) == {
        "camera": "{}", "train.epochs": 60, "train.init_from": None}
