"""``python -m pipelines.score_batch``: config to library call, a summary line, and one-line errors with exit code 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "fer2013_sample" / "test"


def cli(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    """``python -m pipelines.score_batch args`` run from ``tmp`` (nothing lands in the checkout)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "EMOTIFY_CACHE_DIR": str(tmp / "cache"),
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    return subprocess.run([sys.executable, "-m", "pipelines.score_batch", *args], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def model_dir(tmp_path, faces):
    from sklearn.linear_model import LogisticRegression

    from emotify_ml.features.hog import HOGTransformer
    from emotify_ml.model import save_pyfunc
    from emotify_ml.pipeline import build_pipeline

    X, y = faces
    pipe = build_pipeline(features={"hog": HOGTransformer(pixels_per_cell=12)},
                          classifier=LogisticRegression(max_iter=200)).fit(X, y)
    return str(save_pyfunc(pipe, tmp_path / "model"))


def test_cli_scores_crops_then_skips_them(tmp_path, model_dir):
    folder = tmp_path / "crops"
    folder.mkdir()
    for path in sorted(SAMPLE.glob("*/*.jpg"))[:3]:
        shutil.copy(path, folder / path.name)
    args = [f"input={folder}/*.jpg", f"output={tmp_path / 'out'}", f"model={model_dir}", "detect=never",
            "progress=false", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    proc = cli(*args, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "local: 3 files scored (0 already done)" in proc.stdout and "3 faces" in proc.stdout
    table = pd.read_parquet(tmp_path / "out")
    assert len(table) == 3 and (table.face_source == "whole_image").all()
    again = cli(*args, tmp=tmp_path)
    assert again.returncode == 0 and "0 files scored (3 already done)" in again.stdout
    assert not {"mlflow.db", ".hydra", "spark-warehouse", "metastore_db"} & {p.name for p in tmp_path.iterdir()}


def test_cli_user_errors_are_one_line_exit_2(tmp_path, model_dir):
    proc = cli(f"input={tmp_path / 'nowhere'}", f"output={tmp_path / 'out'}", f"model={model_dir}", tmp=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: input") and "Traceback" not in proc.stderr
    proc = cli(f"input={SAMPLE}", f"output={tmp_path / 'out'}", "engine=ray", f"model={model_dir}", tmp=tmp_path)
    assert proc.returncode == 2 and "engine must be one of local, spark; got 'ray'" in proc.stderr
