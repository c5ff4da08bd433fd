"""Batch scoring: one row per face, the same rows from the local and Spark engines, idempotent re-runs, error rows."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotify_ml.batch import (COLUMNS, BatchOptions, BatchScorer, SparkOptions, WorkItem, done_keys, list_inputs,
                              plan_work, resolve_model, score_batch)
from emotify_ml.exceptions import DataNotFoundError, ModelNotFoundError
from emotify_ml.labels import EMOTIONS
from emotify_ml.scoring import ScoringOptions


REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "fer2013_sample" / "test"
KEYS = ["path", "frame", "face"]


@pytest.fixture(scope="module")
def model_dir(hog_model_dir):
    """A tiny HOG + logistic regression emotion model folder (``hog_model_dir`` of conftest)."""
    return hog_model_dir


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Four FER-2013 sample crops, a file that is not an image, and an 18-frame 640x480 video of three faces."""
    import cv2

    from emotify_ml.io.synthetic import synthetic_frames, write_video

    folder = tmp_path_factory.mktemp("inputs")
    crops = sorted(SAMPLE.glob("*/*.jpg"))[:4]
    for k, path in enumerate(crops):
        shutil.copy(path, folder / f"face{k}.jpg")
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    faces = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in crops[:3]]
    (folder / "clips").mkdir()
    write_video(folder / "clips" / "clip.avi", synthetic_frames(faces, frames_per_face=6), fps=10)
    return folder


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    """One local[1] SparkSession for the module (the JVM start is the slow part).

    A ``python3`` that exits 1 comes first on PATH, as for an unactivated venv: the workers must
    run this interpreter anyway (``PYSPARK_PYTHON`` pinned by :func:`spark_session`).
    """
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')")
    from emotify_ml.batch import spark_session

    decoy = tmp_path_factory.mktemp("decoy")
    for name in ("python3", "python"):
        (decoy / name).write_text("#!/bin/sh\necho 'decoy python: not the interpreter you ran' >&2\nexit 1\n")
        (decoy / name).chmod(0o755)
    saved = {k: os.environ.get(k) for k in ("PATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    os.environ["PATH"] = f"{decoy}{os.pathsep}{saved['PATH']}"
    os.environ.pop("PYSPARK_PYTHON", None)
    os.environ.pop("PYSPARK_DRIVER_PYTHON", None)
    try:
        session = spark_session("local[1]", local_dir=tmp_path_factory.mktemp("spark"),
                                conf={"spark.sql.shuffle.partitions": "2"})
        yield session
        session.stop()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# images in batches of 2; the 18 frames: ranges [0, 8), [8, 16), [16, end), every 4th frame scored
OPTIONS = dict(frame_stride=4, frames_per_item=8, batch_size=2)


def rows(output) -> pd.DataFrame:
    return pd.read_parquet(output).sort_values(KEYS).reset_index(drop=True)


@pytest.fixture(scope="module")
def local_output(inputs, model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "scores"
    summary = score_batch(inputs, out, engine="local", model=model_dir, progress=False, **OPTIONS)
    return out, summary


def test_local_rows(local_output, inputs, model_dir):
    out, summary = local_output
    table = rows(out)
    assert list(table.columns) == list(COLUMNS)
    assert summary.files == 6 and summary.errors == 1 and summary.rows == len(table)

    (error,) = table[table.error.notna()].itertuples()
    assert error.path == str(inputs / "broken.jpg") and "OpenCV can decode" in error.error
    assert pd.isna(error.face_source) and pd.isna(error.label)

    images = table[(table.kind == "image") & table.error.isna()]
    assert len(images) == 4 and set(images.face_source) <= {"detector", "whole_image"}  # detect=auto: never faceless
    assert images.frame.isna().all()

    video = table[table.kind == "video"]
    assert sorted(set(video.frame)) == [0, 4, 8, 12, 16]  # every 4th frame across the three ranges
    np.testing.assert_allclose(video.time_s.unique(), [0.0, 0.4, 0.8, 1.2, 1.6])
    scored = table[table.face_source.isin(["detector", "whole_image"])]
    np.testing.assert_allclose(scored[list(EMOTIONS)].sum(axis=1), 1.0, atol=1e-6)
    assert (scored.label == scored[list(EMOTIONS)].idxmax(axis=1)).all()
    assert set(table.model_uri) == {str(Path(model_dir).resolve())} and table.model_version.isna().all()
    size, mtime_ns = os.stat(inputs / "face0.jpg")[6], os.stat(inputs / "face0.jpg").st_mtime_ns
    first = table[table.path == str(inputs / "face0.jpg")].iloc[0]
    assert (first["size"], first["mtime_ms"]) == (size, mtime_ns // 1_000_000)


def test_rerun_skips_what_is_done_and_rescores_a_changed_file(local_output, inputs, model_dir, tmp_path):
    out = tmp_path / "scores"
    shutil.copytree(local_output[0], out)
    before = rows(out)
    again = score_batch(inputs, out, engine="local", model=model_dir, progress=False, **OPTIONS)
    assert (again.files, again.skipped, again.rows) == (0, 6, 0)
    pd.testing.assert_frame_equal(rows(out), before)

    changed = inputs / "face1.jpg"
    stat = changed.stat()
    try:
        os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
        third = score_batch(inputs, out, engine="local", model=model_dir, progress=False, **OPTIONS)
    finally:
        os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (third.files, third.skipped) == (1, 5)
    assert (rows(out).path == str(changed)).sum() == 2  # the old version's row and the new one's


def test_detect_modes_on_ready_made_crops(model_dir):
    from emotify_ml.models import load_emotion_model

    data = [(WorkItem(str(p), 0, 0, "image"), None) for p in sorted(SAMPLE.glob("*/*.jpg"))[:6]]
    model = resolve_model(model_dir)
    classifier = load_emotion_model(model_dir)
    never = BatchScorer(classifier, ScoringOptions(detect="never"), model).score_images(data)
    assert (never.face_source == "whole_image").all() and (never[["x", "y", "w", "h"]].to_numpy() == [0, 0, 48, 48]).all()
    assert never.det_score.isna().all()
    always = BatchScorer(classifier, ScoringOptions(detect="always"), model).score_images(data)
    auto = BatchScorer(classifier, ScoringOptions(detect="auto"), model).score_images(data)
    assert set(always.face_source) <= {"detector", "none"} and "none" not in set(auto.face_source)
    faceless = always.face_source == "none"
    assert always[faceless][list(EMOTIONS)].isna().all().all()
    # where the detector finds nothing, auto falls back to exactly what never gives
    fallback = auto.path.isin(always.path[faceless])
    pd.testing.assert_frame_equal(auto[fallback].reset_index(drop=True),
                                  never[never.path.isin(always.path[faceless])].reset_index(drop=True))


def test_inputs_plan_and_bad_arguments(inputs, model_dir, tmp_path):
    assert [p.name for p in list_inputs(str(inputs / "*.jpg"))] == ["broken.jpg", *(f"face{k}.jpg" for k in range(4))]
    assert len(list_inputs(inputs)) == 6  # recursive: the clip too
    plan = plan_work(list_inputs(inputs / "clips"), frame_stride=3, frames_per_item=7)
    assert [(i.start, i.stop) for i in plan] == [(0, 9), (9, None)]  # ranges are whole strides; the last runs to the end
    assert done_keys(tmp_path / "none") == set()
    with pytest.raises(DataNotFoundError, match="matches anything"):
        score_batch(tmp_path / "missing", tmp_path / "out", model=model_dir)
    with pytest.raises(ValueError, match="engine must be"):
        score_batch(inputs, tmp_path / "out", engine="dask", model=model_dir)
    with pytest.raises(ValueError, match="detect must be"):
        score_batch(inputs, tmp_path / "out", detect="sometimes", model=model_dir)
    with pytest.raises(ValueError, match="output is required"):
        score_batch(inputs, model=model_dir)
    options = BatchOptions(input=str(inputs), output=str(tmp_path / "out"), model=model_dir, detect="never")
    with pytest.raises(ValueError, match="frame_stride must be"):
        score_batch(options=options, frame_stride=0)
    with pytest.raises(ModelNotFoundError, match="neither an existing folder"):
        score_batch(inputs, tmp_path / "out", model=str(tmp_path / "no_model"))


def test_nothing_is_left_behind_when_writing_or_starting_spark_fails(inputs, model_dir, tmp_path, monkeypatch):
    """A part that fails to write leaves no ``.tmp``; a Spark session that fails to start leaves no scratch folder."""
    import tempfile

    import pyarrow.parquet as pq

    import emotify_ml.batch as batch
    from emotify_ml.exceptions import OutputError

    def full_disk(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a part")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full_disk)
    with pytest.raises(OutputError, match="No space left"):
        batch.write_part(pd.DataFrame(columns=list(COLUMNS)).astype(COLUMNS), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    monkeypatch.undo()

    made, real_mkdtemp = [], tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):  # tempfile is the one module of everyone: record only the Spark scratch folder
        if kwargs.get("prefix") != "emotify-spark-":
            return real_mkdtemp(*args, **kwargs)
        made.append(Path(real_mkdtemp(dir=tmp_path, prefix="emotify-spark-")))
        return str(made[-1])

    def no_spark(*args, **kwargs):
        raise ModuleNotFoundError("engine=spark needs PySpark")

    monkeypatch.setattr(batch.tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(batch, "spark_session", no_spark)
    with pytest.raises(ModuleNotFoundError, match="PySpark"):
        score_batch(inputs / "face0.jpg", tmp_path / "scores", engine="spark", model=model_dir, progress=False)
    assert len(made) == 1 and not made[0].exists()


def test_champion_alias_is_resolved_to_its_version(model_dir, copied_store_uri):
    import mlflow

    tracking_uri = copied_store_uri  # a migrated store, copied: creating one takes seconds

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    client.create_registered_model("emotify-emotion")
    version = client.create_model_version("emotify-emotion", source=model_dir).version
    client.set_registered_model_alias("emotify-emotion", "champion", version)
    resolved = resolve_model(None, tracking_uri=tracking_uri)
    assert (resolved.uri, resolved.version) == (f"models:/emotify-emotion/{version}", str(version))
    assert (Path(resolved.local_dir) / "MLmodel").is_file()


def test_a_failed_spark_job_leaves_no_staging_folder(spark, inputs, model_dir, tmp_path, monkeypatch):
    from pyspark.sql import DataFrameWriter

    def lost(self, path, *args, **kwargs):  # the job dies after writing part of its staging folder
        Path(path).mkdir(parents=True)
        (Path(path) / "part-00000.parquet").write_bytes(b"half a part")
        raise RuntimeError("executor lost")

    monkeypatch.setattr(DataFrameWriter, "parquet", lost)
    out = tmp_path / "scores"
    with pytest.raises(RuntimeError, match="executor lost"):
        score_batch(inputs / "face0.jpg", out, engine="spark", model=model_dir, session=spark, progress=False)
    assert list(out.iterdir()) == []


def test_spark_gives_the_same_rows_as_local(spark, local_output, inputs, model_dir, tmp_path):
    out = tmp_path / "spark_scores"
    summary = score_batch(inputs, out, engine="spark", session=spark, model=model_dir, spark=SparkOptions(partitions=2),
                          **OPTIONS)
    assert summary.rows == local_output[1].rows and summary.errors == 1
    assert len(summary.extra["model_load_s_per_worker"]) >= 1  # loaded once per Python worker, not per batch
    pd.testing.assert_frame_equal(rows(out), rows(local_output[0]))
    assert not list(out.glob("_staging-*"))

    again = score_batch(inputs, out, engine="spark", session=spark, model=model_dir, **OPTIONS)
    assert (again.files, again.skipped, again.rows) == (0, 6, 0)
