"""The NumPy-scored MLP classifier (sklearn contract, fidelity to its Keras network, determinism), ensembles,
and the pose augmentation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from emotify_ml.actions.mlp import MLPPoseClassifier, _fold_layers
from emotify_ml.actions.builders import build_action_pipeline, make_soft_vote
from emotify_ml.actions.estimators import HoldoutCalibrated, PoseAugmented, perturb_poses
from emotify_ml.actions.threads import set_n_jobs
from emotify_ml.actions.pose_features import PoseFeatures

_TINY = {"hidden": (32,), "epochs": 8, "batch_size": 32, "learning_rate": 0.03}


@parametrize_with_checks([MLPPoseClassifier(**_TINY)])
def test_sklearn_contract(estimator, check):
    check(estimator)


def _blobs(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 5)) + 2.0 * np.eye(3, 5)[y]
    return X, y


def test_learns_and_handles_nan():
    X, y = _blobs()
    X[::7, 0] = np.nan  # an informative feature, sometimes missing: imputed with its training mean
    X = np.column_stack([X, np.full(len(X), np.nan)])  # never seen in training: always 0 after standardising
    clf = MLPPoseClassifier(hidden=(16,), epochs=30, batch_size=32).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3) and np.allclose(proba.sum(1), 1)
    assert (clf.predict(X) == y).mean() > 0.8
    assert clf.loss_curves_[0][-1] < clf.loss_curves_[0][0]
    unseen = X.copy()
    unseen[:, -1] = 1e6  # the never-seen column has no say, whatever its value
    assert np.allclose(clf.predict_proba(unseen), proba)
    empty = clf.predict_proba(np.full((2, X.shape[1]), np.nan))  # nothing known: a finite, valid guess
    assert np.isfinite(empty).all() and np.allclose(empty.sum(1), 1)


def test_one_class_and_int_hidden():
    X, _ = _blobs(20)
    clf = MLPPoseClassifier(hidden=8, epochs=2).fit(X, np.full(20, "sports"))
    assert clf.networks_ == [] and clf.predict(X[:3]).tolist() == ["sports"] * 3


def test_numpy_forward_matches_keras():
    import keras

    X, y = _blobs(80)
    clf = MLPPoseClassifier(hidden=(16, 8), epochs=3, batch_size=16)
    clf.fit(X, y)
    Z = clf._standardise(X)
    net = clf._build(keras, Z.shape[1], 3, (16, 8), len(Z), 5)
    # give the batch norms non-trivial statistics so folding them is really tested
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            rng = np.random.default_rng(1)
            layer.set_weights([rng.uniform(0.5, 2, w.shape).astype("float32") for w in layer.get_weights()])
    expected = keras.ops.convert_to_numpy(net(Z, training=False))
    clf.networks_ = [_fold_layers(net)]
    logits = np.log(clf.predict_proba(X))
    assert np.allclose(logits - logits.max(1, keepdims=True), expected - expected.max(1, keepdims=True), atol=1e-4)


def test_deterministic_picklable_and_ensembles():
    X, y = _blobs(120)
    a = MLPPoseClassifier(hidden=(8,), epochs=3, n_networks=2).fit(X, y)
    b = MLPPoseClassifier(hidden=(8,), epochs=3, n_networks=2).fit(X, y)
    assert len(a.networks_) == 2
    assert np.allclose(a.predict_proba(X), b.predict_proba(X))
    assert np.array_equal(pickle.loads(pickle.dumps(a)).predict_proba(X), a.predict_proba(X))
    one = MLPPoseClassifier(hidden=(8,), epochs=3).fit(X, y)
    assert not np.allclose(a.predict_proba(X), one.predict_proba(X))


@pytest.mark.parametrize("params, message", [({"hidden": (0,)}, "hidden"), ({"hidden": "wide"}, "hidden"),
                                              ({"epochs": 0}, "epochs"), ({"dropout": 1.0}, "dropout"),
                                              ({"noise": -1}, "noise"), ({"label_smoothing": 1.0}, "label_smoothing"),
                                              ({"n_networks": 0}, "n_networks"),
                                              ({"random_state": 0.5}, "random_state")])
def test_bad_params(params, message):
    X, y = _blobs(30)
    with pytest.raises(ValueError, match=message):
        MLPPoseClassifier(**params).fit(X, y)


def test_soft_vote_and_refit():
    from sklearn.linear_model import LogisticRegression

    X, y = _blobs(200)
    vote = make_soft_vote(members={"lr": LogisticRegression(), "mlp": MLPPoseClassifier(hidden=(8,), epochs=3)})
    model = HoldoutCalibrated(estimator=vote, refit=True).fit(X, y)
    on_all_rows = clone(vote).fit(X, y)  # refit: the final model saw every row, the temperature only the hold-out
    assert np.allclose(model.estimator_.predict_proba(X), on_all_rows.predict_proba(X))
    assert np.allclose(model.predict_proba(X).sum(1), 1)
    assert model.temperature_ == HoldoutCalibrated(estimator=vote).fit(X, y).temperature_  # from the same hold-out
    set_n_jobs(model, 1)  # live scoring reaches the members inside the vote
    assert model.estimator_.estimators_[0].n_jobs == 1
    with pytest.raises(ValueError, match="at least one"):
        make_soft_vote(members={})


class _Recorder(ClassifierMixin, BaseEstimator):
    """Remembers what it was fitted on; predicts the class prior."""

    def fit(self, X, y):
        self.X_, self.classes_ = np.asarray(X), np.unique(y)
        return self

    def predict_proba(self, X):
        return np.full((len(X), len(self.classes_)), 1 / len(self.classes_))


def test_pose_augmentation():
    from emotify_ml.actions.pose_features import as_joints, pose_features
    from emotify_ml.data.mpii import load_mpii, sample_mpii_path
    from emotify_ml.labels import MPII_JOINTS

    data = load_mpii(sample_mpii_path())
    X, y = data.flat_joints()[:50], data.labels[:50]
    rng = np.random.default_rng(0)
    same = perturb_poses(X, rng, rotation=0.0, joint_dropout=0.0, legs_dropout=0.0)
    assert np.allclose(same, as_joints(X), equal_nan=True)
    turned = perturb_poses(X, rng, rotation=30.0, joint_dropout=0.0, legs_dropout=0.0)
    assert not np.allclose(turned, as_joints(X), equal_nan=True)
    names = PoseFeatures().fit(X).get_feature_names_out()
    dist = [i for i, n in enumerate(names) if n.startswith("dist_")]
    assert np.allclose(pose_features(turned)[:, dist], pose_features(X)[:, dist], equal_nan=True)  # rigid
    legless = perturb_poses(X, rng, rotation=0.0, joint_dropout=0.0, legs_dropout=1.0)
    legs = [MPII_JOINTS.index(n) for n in ("r ankle", "r knee", "l knee", "l ankle")]
    assert np.isnan(legless[:, legs]).all() and np.allclose(np.delete(legless, legs, 1),
                                                              np.delete(as_joints(X), legs, 1), equal_nan=True)

    model = PoseAugmented(estimator=_Recorder(), copies=2).fit(X, y)
    seen = model.estimator_.X_
    assert seen.shape == (150, 32) and np.allclose(seen[:50], X, equal_nan=True)
    assert np.isnan(seen[50:]).sum() > np.isnan(X).sum() * 2  # the copies lost joints
    assert np.allclose(PoseAugmented(estimator=_Recorder(), copies=2).fit(X, y).estimator_.X_, seen, equal_nan=True)
    with pytest.raises(ValueError, match="joint_dropout"):
        PoseAugmented(estimator=_Recorder(), joint_dropout=1.5).fit(X, y)
    with pytest.raises(ValueError, match="rotation"):
        PoseAugmented(estimator=_Recorder(), rotation=-5).fit(X, y)
    other_seed = PoseAugmented(estimator=_Recorder(), copies=2, random_state=1).fit(X, y).estimator_.X_
    assert not np.allclose(other_seed, seen, equal_nan=True)
    before = X.copy()
    built = build_action_pipeline(features=PoseFeatures(fill_value=0.0), classifier=_Recorder(), mirror=False,
                                  calibration="none", augment={"copies": 1, "rotation": 5.0}).fit(X, y)
    assert isinstance(built, PoseAugmented) and built.rotation == 5.0 and len(built.estimator_[-1].X_) == 100
    assert np.array_equal(X, before, equal_nan=True)  # the caller's poses are not touched
