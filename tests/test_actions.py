"""Pose features (contract, invariances), the action pipeline on a slice, and the emotion fusion maths."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from emotify_ml.actions.fusion import fuse, load_action_prior, top_actions
from emotify_ml.actions.builders import build_action_pipeline
from emotify_ml.actions.estimators import fit_temperature
from emotify_ml.actions.pose_features import (MIRROR_PERMUTATION, PoseFeatures, as_joints, mirror_poses,
                                              pose_features)
from emotify_ml.data.mpii import load_mpii, load_mpii_splits, sample_mpii_path
from emotify_ml.exceptions import DataError, InputError
from emotify_ml.labels import MPII_CATEGORIES, MPII_JOINTS
from emotify_ml.models import ACTION_INPUT_COLUMNS, FittedModel, load_action_model, write_pyfunc


@pytest.fixture(scope="module")
def poses():
    data = load_mpii(sample_mpii_path())
    return data.flat_joints(), data.labels


def test_transformer_contract(poses):
    X, _ = poses
    est = PoseFeatures()
    with pytest.raises(NotFittedError):
        est.transform(X)
    assert est.get_params() == {"head": "direction", "pairwise": True, "fill_value": None}
    fitted = clone(est).fit(X)
    out = fitted.transform(X)
    names = fitted.get_feature_names_out()
    assert out.shape == (len(X), len(names)) and len(set(names)) == len(names)
    assert fitted.n_features_in_ == 32
    assert np.array_equal(pickle.loads(pickle.dumps(fitted)).transform(X), out, equal_nan=True)
    assert not np.isnan(PoseFeatures(fill_value=0.0).fit(X).transform(X)).any()
    assert np.array_equal(fitted.transform(X.reshape(-1, 16, 2)), out, equal_nan=True)  # (N, 16, 2) too
    with pytest.raises(InputError, match="32 columns"):
        PoseFeatures().fit(X[:, :30])
    with pytest.raises(ValueError, match="head must be"):
        PoseFeatures(head="guess").fit(X)
    with pytest.raises(ValueError):
        PoseFeatures().fit(np.full((2, 32), np.inf))
    for head in ("exact", "drop"):
        f = PoseFeatures(head=head, pairwise=False).fit(X)
        assert f.transform(X).shape[1] == len(f.get_feature_names_out())


def test_invariant_to_translation_and_scale(poses):
    X, _ = poses
    j = as_joints(X)
    moved = j * 2.5 + np.array([130.0, -40.0])
    assert np.allclose(pose_features(j), pose_features(moved), equal_nan=True)
    assert not np.allclose(pose_features(j), pose_features(j[:, :, ::-1]), equal_nan=True)  # shape matters


def test_missing_markers_and_mirror(poses):
    X, _ = poses
    j = as_joints(X)
    assert np.isnan(as_joints(np.full((1, 32), -1.0))).all()
    m = mirror_poses(j)
    assert np.allclose(m[:, MIRROR_PERMUTATION, 0], -j[:, :, 0], equal_nan=True)
    assert np.allclose(mirror_poses(m), j, equal_nan=True)
    r, l = MPII_JOINTS.index("r wrist"), MPII_JOINTS.index("l wrist")
    assert MIRROR_PERMUTATION[r] == l and MIRROR_PERMUTATION[MPII_JOINTS.index("pelvis")] == MPII_JOINTS.index("pelvis")


def test_head_direction_ignores_head_length(poses):
    X, _ = poses
    j = as_joints(X)
    stretched = j.copy()
    thorax, top = MPII_JOINTS.index("thorax"), MPII_JOINTS.index("head top")
    stretched[:, top] = j[:, thorax] + 1.7 * (j[:, top] - j[:, thorax])  # a cruder head-top estimate
    assert np.allclose(pose_features(j), pose_features(stretched), equal_nan=True)


def test_tiny_training_run_and_pyfunc(poses, tmp_path):
    from sklearn.linear_model import LogisticRegression

    splits = load_mpii_splits(sample_mpii_path())
    model = build_action_pipeline(features={"pose": PoseFeatures(fill_value=0.0, pairwise=False)},
                                  classifier=LogisticRegression(max_iter=300), scale=True)
    model.fit(splits.X_train, splits.y_train)
    proba = FittedModel(model, kind="action").predict_proba(splits.X_test)
    assert proba.shape == (len(splits.y_test), 20) and np.allclose(proba.sum(1), 1)
    assert 0.05 < model.temperature_ < 20
    path = write_pyfunc(model, kind="action", path=tmp_path / "model", input_example=splits.X_val[:2])
    loaded = load_action_model(path)
    assert np.allclose(loaded.predict_proba(splits.X_test), proba)
    frame = loaded.predict(splits.X_test[:3])
    assert list(frame.columns) == [*MPII_CATEGORIES, "label"]
    import mlflow.pyfunc

    import pandas as pd

    table = pd.DataFrame(np.nan_to_num(splits.X_test[:2], nan=-1.0), columns=list(ACTION_INPUT_COLUMNS))
    assert np.allclose(mlflow.pyfunc.load_model(str(path)).predict(table)[list(MPII_CATEGORIES)], proba[:2])


def test_temperature_fixes_overconfidence():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2000)
    logits = rng.normal(size=(2000, 4))
    logits[np.arange(2000), y] += 1.0
    p = np.exp(3 * logits)
    p /= p.sum(1, keepdims=True)  # 3x too sharp
    assert 2.5 < fit_temperature(p, y) < 3.5


def test_fusion_maths():
    prior = load_action_prior()
    assert prior.shape == (7, 20) and np.allclose(prior.sum(1), 1)
    rng = np.random.default_rng(0)
    pose = rng.dirichlet(np.ones(20), size=50)
    emo = rng.dirichlet(np.ones(7), size=50)
    assert np.allclose(fuse(pose, emo, prior, weight=0.0), pose)  # λ = 0: pose only
    assert np.allclose(fuse(pose, None, prior), pose)
    assert np.allclose(fuse(pose, np.full((50, 7), 1 / 7), prior, weight=3.0), pose)  # uniform emotion
    for w in (0.5, 1.0, 2.0):
        fused = fuse(pose, emo, prior, weight=w)
        assert np.allclose(fused.sum(1), 1) and (fused >= 0).all()
    happy = np.eye(7)[[3]]
    dancing = MPII_CATEGORIES.index("dancing")
    flat = np.full((1, 20), 0.05)
    assert fuse(flat, happy, prior, 1.0)[0, dancing] > 0.05
    assert fuse(flat, happy, prior, 2.0)[0, dancing] > fuse(flat, happy, prior, 1.0)[0, dancing]  # λ sharpens
    with pytest.raises(ValueError):
        fuse(pose, emo, prior, weight=-1)
    with pytest.raises(InputError):
        fuse(pose, emo[:, :6], prior)


def test_uniform_emotion_keeps_pose_accuracy_on_mpii_sample(poses):
    from emotify_ml.evaluation import evaluate

    X, y = poses
    model = load_action_model()
    pose = model.predict_proba(X)
    fused = fuse(pose, np.full((len(X), 7), 1 / 7), weight=1.0)
    assert evaluate(y, fused, MPII_CATEGORIES)["accuracy"] == evaluate(y, pose, MPII_CATEGORIES)["accuracy"]


def test_top_actions_and_uncertain():
    p = np.zeros((2, 20))
    p[0, 14], p[0, 2], p[0, 0] = 0.6, 0.3, 0.1
    p[1] = 0.05
    out = top_actions(p, min_confidence=0.3)
    assert out[0]["label"] == "sports" and out[0]["actions"][0] == ["sports", 0.6] and len(out[0]["actions"]) == 3
    assert out[1]["label"] == "uncertain"


def test_prior_file_errors(tmp_path):
    bad = tmp_path / "prior.csv"
    bad.write_text("emotion,a\nhappy,1\n")
    with pytest.raises(DataError, match="columns"):
        load_action_prior(bad)
