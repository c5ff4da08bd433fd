"""One tilted face, every way in: live (Stream), batch (local engine), analyze() and the MLflow pyfunc agree exactly,
under the model's own class prior and under another (the pyfunc's probabilities re-weighted alike).

No patching: each path runs as its users run it. (The Spark engine's rows equal the local
engine's row for row: ``tests/test_batch.py::test_spark_gives_the_same_rows_as_local``.)
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

import emotify_ml
from emotify_ml.labels import EMOTIONS


@pytest.fixture(scope="module")
def model_dir(hog_model_dir):
    """A tiny HOG + logistic regression emotion model folder (``hog_model_dir`` of conftest)."""
    return hog_model_dir


@pytest.mark.parametrize("prior", ["training", "web"])
def test_live_batch_api_and_pyfunc_give_the_same_probabilities(model_dir, person_photo, tmp_path, prior):
    import mlflow.pyfunc

    from emotify_ml.batch import score_batch
    from emotify_ml.features.preprocessing import crop_faces, eye_angle
    from emotify_ml.models import load_emotion_model
    from emotify_ml.scoring import FrameStep, ScoringOptions, Stream
    from emotify_ml.scoring.prior import prior_weights, reweight

    # a tilted head: the photo turned about the face, so alignment has work to do
    frame = cv2.warpAffine(person_photo, cv2.getRotationMatrix2D((220, 130), -30, 1.0), (512, 512),
                           borderMode=cv2.BORDER_REFLECT)
    picture = tmp_path / "pictures" / "tilted.png"  # lossless: batch and analyze() read back these very pixels
    picture.parent.mkdir()
    cv2.imwrite(str(picture), frame)
    options = ScoringOptions(prior=prior)

    # live: the stream the live app drives (first frame: smoothed = raw)
    step = FrameStep(load_emotion_model(model_dir), options=options)
    live = Stream(step).update(frame)
    assert len(live) == 1 and live.sources == ("detector",)
    assert abs(eye_angle(live.landmarks[0, :2])) > 2  # the eyes are not level: the aligned crop differs

    # batch, local engine
    summary = score_batch(picture.parent, tmp_path / "scores", model=model_dir, progress=False, options=None,
                          prior=prior)
    (row,) = pd.read_parquet(tmp_path / "scores").itertuples(index=False)
    batch = np.array([getattr(row, name) for name in EMOTIONS])

    # the Python API
    (api,) = emotify_ml.analyze(picture, model=model_dir, options=options)
    api_proba = np.array([api.probabilities[name] for name in EMOTIONS])

    # the MLflow pyfunc, on the views the frame step cuts (margin and margin -/+ crop_spread, each mirrored), averaged
    assert step.n_views == 6
    margins = [options.margin + offset for offset in step.view_offsets]
    views = crop_faces(frame, live.boxes[:1], margins, eyes=live.landmarks[:1, :2])[0]
    pyfunc = mlflow.pyfunc.load_model(model_dir).predict(np.concatenate([views, views[..., ::-1]]))
    pyfunc = pyfunc[list(EMOTIONS)].to_numpy(np.float64)
    pyfunc_proba = reweight(pyfunc.mean(axis=0, keepdims=True), prior_weights(prior))[0]
    if prior != "training":  # the prior moved the answer: the paths agree on the moved one
        assert np.abs(pyfunc_proba - pyfunc.mean(axis=0)).max() > 1e-3
    assert np.ptp(pyfunc, axis=0).max() > 1e-3  # the views differ: the average is not one crop's answer

    for proba in (batch, api_proba, pyfunc_proba):
        np.testing.assert_allclose(proba, live.probabilities[0], rtol=0, atol=1e-12)
    assert live.labels[0] == row.label == api.label == EMOTIONS[int(np.argmax(pyfunc_proba))]
    np.testing.assert_allclose([row.x, row.y, row.w, row.h], live.boxes[0], rtol=0, atol=1e-4)
