"""The model contract: one Pipeline, logged as an MLflow pyfunc, scoring any face crops."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from emotify_ml.exceptions import InputError, ModelNotFoundError
from emotify_ml.features.hog import HOGTransformer
from emotify_ml.labels import EMOTIONS
from emotify_ml.model import EmotionClassifier, load_emotion_model, save_pyfunc
from emotify_ml.pipeline import build_pipeline


@pytest.fixture
def fitted(faces):
    X, y = faces
    pipe = build_pipeline(features={"hog": HOGTransformer(pixels_per_cell=12)}, classifier=LogisticRegression(max_iter=200))
    return pipe.fit(X, y)


def test_pyfunc_contract_grey_bgr_any_size(fitted, faces, tmp_path):
    X, _ = faces
    path = save_pyfunc(fitted, tmp_path / "model", input_example=X[:2])
    model = mlflow.pyfunc.load_model(str(path))
    out = model.predict(X)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == [*EMOTIONS, "label"]
    np.testing.assert_allclose(out[list(EMOTIONS)].sum(axis=1), 1.0, atol=1e-6)
    assert set(out["label"]) <= set(EMOTIONS)
    bgr = np.ascontiguousarray(np.repeat(X[..., None], 3, axis=3))
    pd.testing.assert_frame_equal(model.predict(bgr), out)
    big = np.stack([np.kron(x, np.ones((2, 2), np.uint8)) for x in X])  # 96x96: resized as in training
    assert model.predict(big).shape == (len(X), 8)
    local = load_emotion_model(path)
    np.testing.assert_allclose(local.predict_proba(X), out[list(EMOTIONS)].to_numpy())
    assert model.metadata.signature is not None


def test_missing_class_gets_zero_column(faces):
    X, y = faces
    keep = y != 1
    pipe = build_pipeline(features={"hog": HOGTransformer(pixels_per_cell=12)},
                          classifier=LogisticRegression(max_iter=200)).fit(X[keep], y[keep])
    proba = EmotionClassifier(pipe).predict_proba(X)
    assert proba.shape == (len(X), 7) and np.all(proba[:, 1] == 0)


def test_bad_input_and_bad_uri(fitted, tmp_path):
    clf = EmotionClassifier(fitted)
    with pytest.raises(InputError, match="got shape"):
        clf.predict_proba(np.zeros((48, 48), np.uint8))
    assert clf.predict_proba(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    with pytest.raises(ModelNotFoundError, match="neither an existing folder"):
        load_emotion_model(str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFoundError):
        load_emotion_model("runs:/0123456789abcdef/model", tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")


def test_export_model_copies_a_complete_model_with_provenance(fitted, faces, tmp_path):
    import json

    from emotify_ml.model import export_model

    X, _ = faces
    source = save_pyfunc(fitted, tmp_path / "source", input_example=X[:2])
    dest = export_model(source, tmp_path / "shipped", provenance={"run_id": "abc"})
    assert json.loads((dest / "provenance.json").read_text()) == {"source": str(source), "run_id": "abc"}
    np.testing.assert_allclose(load_emotion_model(dest).predict_proba(X), EmotionClassifier(fitted).predict_proba(X))
    with pytest.raises(ModelNotFoundError):
        export_model(tmp_path / "nothing", tmp_path / "other")
    assert not (tmp_path / "other").exists()
