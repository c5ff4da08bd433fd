"""The model shipped in the package: loads with no registry, scores faces, reaches its README accuracy."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest

from emotify_ml.labels import EMOTIONS
from emotify_ml.models import KINDS, load_emotion_model

SHIPPED_MODEL_DIR = KINDS["emotion"].shipped_dir



@pytest.fixture(scope="module")
def provenance():
    path = SHIPPED_MODEL_DIR / "provenance.json"
    if not path.is_file():
        pytest.fail(f"no shipped model in {SHIPPED_MODEL_DIR}; run python -m pipelines.ship_model")
    return json.loads(path.read_text())


def test_shipped_model_is_the_fallback_and_scores_the_sample(tmp_path, sample_data, provenance):
    model = load_emotion_model(tracking_uri=f"sqlite:///{tmp_path / 'absent.db'}")  # no store: the shipped model
    assert str(model.source) == str(SHIPPED_MODEL_DIR)
    assert not (tmp_path / "absent.db").exists()
    test = sample_data.split("PrivateTest")
    proba = model.predict_proba(test.images)
    assert proba.shape == (len(test), len(EMOTIONS))
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    # 84 balanced sample faces: far above chance (1/7), a sanity floor rather than the benchmark
    assert np.mean(proba.argmax(1) == test.labels) >= 0.45


def test_shipped_model_loads_through_mlflow_pyfunc(sample_data):
    out = mlflow.pyfunc.load_model(str(SHIPPED_MODEL_DIR)).predict(sample_data.images[:3])
    assert list(out.columns) == [*EMOTIONS, "label"]
    # the pyfunc runs the compiled graph, as load_model's runtime="auto" does: same numbers
    from emotify_ml.models import load_model

    expected = load_model(SHIPPED_MODEL_DIR).predict_proba(sample_data.images[:3])
    np.testing.assert_allclose(out[list(EMOTIONS)].to_numpy(), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", ["emotion", "action"])
def test_shipped_models_hold_no_pickle(kind):
    """skops + .keras (trusted types, safe_mode); a model re-saved from a pickle records identical probabilities."""
    folder = KINDS[kind].shipped_dir
    assert not [p for p in folder.rglob("*") if p.suffix in (".pkl", ".joblib", ".pickle")]
    assert (folder / "artifacts" / "pipeline.skops").is_file()
    assert "file://" not in (folder / "MLmodel").read_text()  # no path of the machine that built it
    resaved = json.loads((folder / "provenance.json").read_text()).get("format")
    if resaved is not None:
        check = resaved["check"]
        assert check["identical"] and check["probabilities_sha256_before"] == check["probabilities_sha256_after"]


@pytest.mark.slow
def test_shipped_model_reaches_its_recorded_privatetest_accuracy(full_fer_root, provenance):
    """The committed backbone + head reach, on the full PrivateTest split, the accuracy recorded when shipped."""
    from emotify_ml.data import load_fer2013

    test = load_fer2013(full_fer_root).split("PrivateTest")
    assert len(test) == 3589
    proba = load_emotion_model(SHIPPED_MODEL_DIR).predict_proba(test.images)
    accuracy = float(np.mean(proba.argmax(1) == test.labels))
    recorded = provenance["metrics"]["test_accuracy"]
    assert accuracy >= recorded - 0.002, (accuracy, recorded)  # float32 round-off across machines, no more
