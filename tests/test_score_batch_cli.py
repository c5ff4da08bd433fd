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
def model_dir(hog_model_dir):
    return hog_model_dir


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
    proc = cli(f"input={SAMPLE}", f"output={tmp_path / 'out'}", "detector.track_threshold=1.5", f"model={model_dir}",
               tmp=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: track_threshold must be in [0, 1]; got 1.5"
    proc = cli(f"input={SAMPLE}", f"output={tmp_path / 'out'}", "detector.retry_size=10", f"model={model_dir}",
               tmp=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == ("error: retry_size must be an int >= 32 (longest side in "
                                                            "pixels), or 0/None for one look; got 10")
    proc = cli(f"input={SAMPLE}", f"output={tmp_path / 'out'}", "crop_spread=-0.1", f"model={model_dir}", tmp=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == ("error: crop_spread must be a number in [0, 0.25] (a "
                                                            "fraction of the face box; 0: the margin alone); got -0.1")
    proc = cli(f"input={SAMPLE}", f"output={tmp_path / 'out'}", "prior={happy: 2, sad: -1}", f"model={model_dir}",
               tmp=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: a prior gives a share to each of angry")
    proc = cli(f"input={SAMPLE}", f"output={tmp_path / 'out'}", "views_on_crops=maybe", f"model={model_dir}", tmp=tmp_path)
    (line,) = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and line.startswith("error: ") and "views_on_crops" in line and "not a valid bool" in line
    assert not (tmp_path / "out").exists()


def test_cli_without_input_says_so_in_one_line(tmp_path):
    proc = cli(f"output={tmp_path / 'out'}", tmp=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "MissingMandatoryValue" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: input is required: python -m pipelines.score_batch input=")


def test_cli_options_become_the_typed_dataclass(tmp_path):
    """The composed config is BatchOptions itself: every documented spelling lands in its typed field."""
    from hydra import compose, initialize_config_dir

    import pipelines.score_batch as entry
    from emotify_ml.batch import BatchOptions, SparkOptions
    from emotify_ml.scoring import DetectorOptions

    with initialize_config_dir(config_dir=str(REPO / "experiments"), version_base="1.3"):
        cfg = compose("score_batch", overrides=["input=photos/", "output=scores/", "engine=spark", "detect=never",
                                                "detector.kind=haar", "frame_stride=5", "spark.master='local[4]'",
                                                "+spark.conf={spark.executor.memory: 4g}", "tracking.uri=sqlite:///x.db",
                                                "prior={angry: 1, disgust: 1, fear: 1, happy: 4, sad: 1, surprise: 1, "
                                                "neutral: 3}"])
    options = entry.to_options(cfg)
    assert isinstance(options, BatchOptions) and isinstance(options.spark, SparkOptions)
    assert (options.input, options.output, options.engine, options.detect, options.frame_stride) == (
        "photos/", "scores/", "spark", "never", 5)
    assert options.detector == DetectorOptions(kind="haar") and options.margin == BatchOptions().margin
    assert options.spark.master == "local[4]" and options.spark.conf == {"spark.executor.memory": "4g"}
    assert options.tracking_uri == "sqlite:///x.db"
    assert type(options.prior) is dict and options.prior["happy"] == 4 and BatchOptions().prior == "training"
    options.check()


@pytest.mark.slow  # a JVM and a Spark worker from the command line (about a minute); the spark fixture of
# tests/test_batch.py checks the same in the default run, in-process
@pytest.mark.skipif(shutil.which("java") is None, reason="engine=spark needs Java")
def test_spark_engine_runs_this_interpreter_not_the_python3_on_path(tmp_path, model_dir):
    """An unactivated venv: the ``python3`` first on PATH is not this interpreter (here: one that exits 1)."""
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')")
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    for name in ("python3", "python"):
        (decoy / name).write_text("#!/bin/sh\necho 'decoy python: not the interpreter you ran' >&2\nexit 1\n")
        (decoy / name).chmod(0o755)
    folder = tmp_path / "crops"
    folder.mkdir()
    for path in sorted(SAMPLE.glob("*/*.jpg"))[:3]:
        shutil.copy(path, folder / path.name)
    env = {**os.environ, "PYTHONPATH": str(REPO), "EMOTIFY_CACHE_DIR": str(tmp_path / "cache"),
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PATH": f"{decoy}{os.pathsep}{os.environ['PATH']}"}
    for name in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-m", "pipelines.score_batch", f"input={folder}", f"output={tmp_path / 'out'}",
                           f"model={model_dir}", "detect=never", "engine=spark", "spark.master='local[1]'",
                           f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "spark: 3 files scored" in proc.stdout and len(pd.read_parquet(tmp_path / "out")) == 3
