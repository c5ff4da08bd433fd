"""The lean action scorer gives the fitted model's own probabilities, for the shipped model and for any structure."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import VotingClassifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from emotify_ml.actions.estimators import HoldoutCalibrated, MirrorAugmented, PoseAugmented
from emotify_ml.actions.lean import LEAN_RUNTIME, LeanClassifier, lean_model, lean_proba
from emotify_ml.actions.pose_features import (ANGLES, BONES, HEAD_ANGLE, HEAD_BONES, HEAD_JOINTS, N_JOINTS,
                                              PoseFeatures, _signed_angle, _unit, normalise_poses, pose_features)
from emotify_ml.data.mpii import load_mpii, sample_mpii_path
from emotify_ml.labels import MPII_CATEGORIES


def random_poses(n, seed=0):
    """Poses in pixels with missing joints both ways (NaN and the MPII marker (-1, -1))."""
    rng = np.random.default_rng(seed)
    joints = rng.uniform(50, 450, (n, N_JOINTS, 2))
    joints[rng.random((n, N_JOINTS)) < 0.2] = np.nan
    joints[rng.random((n, N_JOINTS)) < 0.05] = -1.0
    return joints


@pytest.fixture(scope="module")
def sample():
    data = load_mpii(sample_mpii_path())
    return data.flat_joints(), data.labels


def test_shipped_model_scores_the_same(sample):
    from emotify_ml.models import load_action_model

    model = load_action_model()
    lean = lean_model(model)
    assert lean.runtime == LEAN_RUNTIME and lean.estimator is model.estimator and lean.classes_ == model.classes_
    for X in (sample[0], random_poses(300), random_poses(1, seed=3)):
        np.testing.assert_allclose(lean.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-12)
    assert lean.predict_proba(np.zeros((0, 32))).shape == (0, len(MPII_CATEGORIES))


def test_live_predictor_scores_lean():
    from emotify_ml.actions.live import load_action_predictor

    assert load_action_predictor().action_model.runtime == LEAN_RUNTIME


def _lgbm(n_jobs=1):
    lightgbm = pytest.importorskip("lightgbm")
    return lightgbm.LGBMClassifier(n_estimators=15, num_leaves=7, min_child_samples=5, n_jobs=n_jobs, verbose=-1,
                                   random_state=0)


def _structures():
    """Fitted-model shapes the lean scorer walks, and parts it must hand back to their own methods."""
    logistic = make_pipeline(PoseFeatures(fill_value=0.0), StandardScaler(), LogisticRegression(max_iter=2000))
    vote = VotingClassifier([("gbm", _lgbm()), ("off", "drop"), ("lr", LogisticRegression(max_iter=300))],
                            voting="soft", weights=[2.0, 5.0, 1.0])
    return {
        "pipeline of unknown steps": logistic,
        "weighted soft vote with a dropped member": make_pipeline(PoseFeatures(fill_value=0.0), StandardScaler(), vote),
        "lightgbm on its default threads (n_jobs=None)": make_pipeline(PoseFeatures(), _lgbm(n_jobs=None)),
        "the wrappers of the shipped model": HoldoutCalibrated(
            estimator=MirrorAugmented(estimator=PoseAugmented(estimator=make_pipeline(PoseFeatures(), _lgbm()))),
            holdout=0.3, refit=True),
        "mirror averaging off": MirrorAugmented(estimator=logistic, tta=False),
    }


@pytest.mark.parametrize("name", list(_structures()))
def test_any_structure_scores_the_same(sample, name):
    X, y = sample
    estimator = _structures()[name]
    with pytest.raises(NotFittedError):
        lean_proba(estimator)
    estimator.fit(X, y)
    poses = np.concatenate([X, random_poses(40).reshape(40, -1)])
    np.testing.assert_allclose(lean_proba(estimator)(poses), estimator.predict_proba(poses), rtol=0, atol=1e-12)


def test_binary_lightgbm_and_missing_classes(sample):
    X, y = sample
    pair = np.isin(y, np.unique(y)[:2])
    binary = make_pipeline(PoseFeatures(), _lgbm()).fit(X[pair], y[pair])  # booster gives one column: handed back
    lean = LeanClassifier(binary, len(MPII_CATEGORIES))
    full = lean.predict_proba(X)
    assert full.shape == (len(X), len(MPII_CATEGORIES))
    np.testing.assert_allclose(full[:, binary.classes_], binary.predict_proba(X), rtol=0, atol=1e-12)
    assert not np.delete(full, binary.classes_, axis=1).any()


def test_a_model_that_is_not_an_sklearn_estimator_is_scored_by_its_own_method(sample):
    class Constant:
        classes_ = np.arange(len(MPII_CATEGORIES))

        def predict_proba(self, X):
            return np.full((len(X), len(MPII_CATEGORIES)), 1 / len(MPII_CATEGORIES))

    np.testing.assert_array_equal(LeanClassifier(Constant(), len(MPII_CATEGORIES)).predict_proba(sample[0]),
                                  Constant().predict_proba(sample[0]))


def test_features_other_than_float_poses_get_the_transformers_checks(sample):
    X, y = sample
    model = make_pipeline(PoseFeatures(fill_value=0.0), StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y)
    score = lean_proba(model)
    np.testing.assert_allclose(score(X.astype(np.float32)), model.predict_proba(X.astype(np.float32)), atol=1e-12)
    with pytest.raises(ValueError, match="expecting 32 features"):
        score(X[:, :30])


def _features_one_part_at_a_time(X, head="direction"):
    """The features as first written, one bone and one angle at a time: the oracle of the vectorised code."""
    joints = normalise_poses(X)
    coords = [i for i in range(N_JOINTS) if head == "exact" or i not in HEAD_JOINTS]
    cols = [joints[:, coords].reshape(len(joints), -1)]
    for a, b in list(BONES) + (list(HEAD_BONES) if head == "exact" else []):
        direction, length = _unit(joints[:, b] - joints[:, a])
        cols += [direction, length[:, None]]
    for a, b, c in list(ANGLES) + ([HEAD_ANGLE] if head != "drop" else []):
        cols.append(np.stack(_signed_angle(joints, a, b, c), axis=1))
    return np.concatenate(cols, axis=1)


@pytest.mark.parametrize("head", ["direction", "exact", "drop"])
def test_vectorised_features_match_one_part_at_a_time(sample, head):
    poses = np.concatenate([sample[0], random_poses(50).reshape(50, -1)])
    expected = _features_one_part_at_a_time(poses, head)
    assert np.array_equal(pose_features(poses, head, pairwise=False)[:, : expected.shape[1]], expected,
                          equal_nan=True)
