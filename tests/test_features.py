"""Feature transformers: preprocessing and HOG obey the estimator contract.

sklearn's ``parametrize_with_checks`` skips every check for estimators tagged as
taking (N, H, W) images, so the contract (clone, not-fitted error, shapes,
feature names, pickling, parameter validation in fit) is tested here directly.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from emotify_ml.exceptions import InputError
from emotify_ml.features.hog import HOGTransformer
from emotify_ml.features.preprocessing import FacePreprocessor, crop_face, crop_faces, square_box, to_model_input


def test_to_model_input_accepts_grey_bgr_any_size():
    grey = np.random.default_rng(0).integers(0, 255, (3, 48, 48), dtype=np.uint8)
    assert np.array_equal(to_model_input(grey), grey)
    bgr = np.repeat(grey[..., None], 3, axis=3)
    np.testing.assert_array_equal(to_model_input(bgr), grey)
    assert to_model_input(np.zeros((2, 120, 90, 3), np.uint8)).shape == (2, 48, 48)
    ragged = [np.zeros((30, 30), np.uint8), np.zeros((100, 90, 3), np.uint8)]
    assert to_model_input(ragged).shape == (2, 48, 48)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((48, 48), np.uint8), r"\(N, H, W\) grey or \(N, H, W, 3\) BGR uint8; got shape \(48, 48\)"),
        (np.zeros((1, 48, 48, 2), np.uint8), "got shape"),
        (np.zeros((0, 48, 48), np.uint8), "empty"),
        (np.full((1, 48, 48), 300.0), r"values in \[300, 300\]"),
        (np.full((1, 48, 48), 0.5), "scaled to \\[0, 1\\]"),
        (np.zeros((1, 4, 4), np.uint8), "at least 8x8"),
        (np.array([["a"] * 48] * 48)[None], "dtype"),
    ],
)
def test_to_model_input_errors_are_actionable(bad, message):
    with pytest.raises(InputError, match=message):
        to_model_input(bad)


def test_crop_face_squares_and_pads_at_the_border():
    frame = np.arange(100 * 120, dtype=np.uint32).reshape(100, 120).astype(np.uint8)
    assert square_box((10, 20, 30, 40), margin=0.0) == (5, 20, 40, 40)
    crop = crop_face(frame, (-10, -10, 40, 40), margin=0.0)
    assert crop.shape == (40, 40)
    np.testing.assert_array_equal(crop[10:, 10:], frame[:30, :30])
    assert crop_faces(np.zeros((100, 120, 3), np.uint8), [(10, 10, 30, 30), (50, 50, 20, 30)]).shape == (2, 48, 48)
    with pytest.raises(InputError, match="outside"):
        crop_face(frame, (500, 500, 10, 10))


def test_hog_transformer_contract(faces):
    X, y = faces
    hog = HOGTransformer(orientations=8, pixels_per_cell=(12, 12), cells_per_block=2)
    with pytest.raises(NotFittedError):
        hog.transform(X)
    assert clone(hog).get_params() == hog.get_params()
    out = hog.fit(X, y).transform(X)
    assert out.shape == (len(X), hog.n_features_out_) and out.dtype == np.float32
    names = hog.get_feature_names_out()
    assert len(names) == out.shape[1] and names[0] == "hog0"
    again = pickle.loads(pickle.dumps(hog)).transform(X)
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(out, HOGTransformer(orientations=8, pixels_per_cell=12,
                                                      cells_per_block=(2, 2)).fit(X).transform(X))


def test_hog_transformer_rejects_bad_input_and_params(faces):
    X, _ = faces
    with pytest.raises(InputError, match=r"\(N, H, W\) grey images; got shape \(14, 2304\)"):
        HOGTransformer().fit(X.reshape(len(X), -1))
    with pytest.raises(InputError, match="fitted on"):
        HOGTransformer().fit(X).transform(np.zeros((1, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="pixels_per_cell"):
        HOGTransformer(pixels_per_cell=(0, 8)).fit(X)
    with pytest.raises(ValueError, match="fewer than one block"):
        HOGTransformer(pixels_per_cell=40, cells_per_block=3).fit(X)


def test_face_preprocessor_contract(faces):
    X, _ = faces
    prep = FacePreprocessor(size=32)
    with pytest.raises(NotFittedError):
        prep.transform(X)
    assert prep.fit(X).transform(np.zeros((2, 60, 60, 3), np.uint8)).shape == (2, 32, 32)
    with pytest.raises(ValueError, match="size must be an int >= 8"):
        FacePreprocessor(size=2).fit(X)
