"""Meta-estimators of the action models: mirroring, pose perturbation, hold-out temperature calibration.

Each wraps an sklearn classifier over (N, 32) poses (the joint table of
:mod:`emotify_ml.data.mpii`: pixels, NaN or -1 for missing joints) and keeps the
sklearn contract: ``__init__`` stores, ``fit`` learns and returns ``self``,
``predict`` is the arg-max of ``predict_proba``. :mod:`emotify_ml.actions.builders`
assembles them into the action model.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from emotify_ml.actions.pose_features import N_JOINTS, _mean_of, as_joints, mirror_poses
from emotify_ml.labels import MPII_JOINTS

LEG_JOINTS: tuple[int, ...] = tuple(MPII_JOINTS.index(name) for name in ("r ankle", "r knee", "l knee", "l ankle"))


def flat_poses(X) -> np.ndarray:
    """Poses as the (N, 32) float64 table the action models take ((N, 16, 2) joints are flattened)."""
    X = np.asarray(X, dtype=np.float64)
    return X.reshape(len(X), -1) if X.ndim == 3 else X


class _WrappedClassifier(ClassifierMixin, BaseEstimator):
    """Base of the wrappers below: ``predict`` is the arg-max of their ``predict_proba``."""

    def predict(self, X):
        """The most probable class."""
        proba = self.predict_proba(X)  # first: an unfitted wrapper raises NotFittedError, not a missing classes_
        return self.classes_[np.argmax(proba, axis=1)]


class MirrorAugmented(_WrappedClassifier):
    """Fit ``estimator`` on every pose and its left/right mirror image; optionally average both at predict time.

    Parameters
    ----------
    estimator : sklearn classifier taking (N, 32) poses
    train : bool, default True
        Add the mirrored poses (same labels) to the training set.
    tta : bool, default True
        Average the probabilities of each pose and its mirror at predict time.

    Attributes
    ----------
    estimator_ : the fitted clone
    classes_ : ndarray
    """

    def __init__(self, *, estimator, train: bool = True, tta: bool = True):
        self.estimator = estimator
        self.train = train
        self.tta = tta

    def fit(self, X, y):
        """Fit a clone of ``estimator`` on ``X`` (and its mirror images)."""
        X, y = flat_poses(X), np.asarray(y)
        if len(X) != len(y):
            raise ValueError(f"X and y must have the same length; got {len(X)} and {len(y)}")
        if self.train:
            X, y = np.concatenate([X, flat_poses(mirror_poses(X))]), np.concatenate([y, y])
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.estimator_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X):
        """Class probabilities (columns ``classes_``), averaged with the mirror image's when ``tta``."""
        check_is_fitted(self)
        return self._proba_with(self.estimator_.predict_proba, X)

    def _proba_with(self, inner, X):
        """``predict_proba`` with ``inner`` in place of the fitted estimator's (see :mod:`emotify_ml.actions.lean`)."""
        X = flat_poses(X)
        if not (self.tta and len(X)):
            return inner(X)
        both = inner(np.concatenate([X, flat_poses(mirror_poses(X))]))  # one call: half the overhead
        return 0.5 * (both[: len(X)] + both[len(X):])


class PoseAugmented(_WrappedClassifier):
    """Fit ``estimator`` on the poses plus perturbed copies: small rotations and missing joints.

    Live keypoints differ from MPII's hand annotations: the camera is tilted, joints
    are missed, and a webcam often sees no legs at all. Each copy of a pose is rotated
    about its centre by a random angle, loses each joint with probability
    ``joint_dropout``, and loses both knees and ankles with probability ``legs_dropout``.
    Predictions pass straight through (no test-time augmentation).

    Parameters
    ----------
    estimator : sklearn classifier taking (N, 32) poses
    copies : int, default 1
        Perturbed copies per pose (0: the estimator alone).
    rotation : float, default 10.0
        Largest rotation, in degrees (uniform in ± this).
    joint_dropout, legs_dropout : float, default 0.15 and 0.2
    random_state : int, default 0

    Attributes
    ----------
    estimator_ : the fitted clone
    classes_ : ndarray
    """

    def __init__(self, *, estimator, copies: int = 1, rotation: float = 10.0, joint_dropout: float = 0.15,
                 legs_dropout: float = 0.2, random_state: int = 0):
        self.estimator = estimator
        self.copies = copies
        self.rotation = rotation
        self.joint_dropout = joint_dropout
        self.legs_dropout = legs_dropout
        self.random_state = random_state

    def fit(self, X, y):
        """Fit a clone of ``estimator`` on ``X``, its perturbed copies, and ``y`` repeated."""
        if isinstance(self.copies, bool) or not isinstance(self.copies, (int, np.integer)) or self.copies < 0:
            raise ValueError(f"copies must be a non-negative int; got {self.copies!r}")
        if not 0 <= self.rotation <= 180:
            raise ValueError(f"rotation must be in [0, 180] degrees; got {self.rotation!r}")
        for name in ("joint_dropout", "legs_dropout"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]; got {getattr(self, name)!r}")
        X, y = flat_poses(X), np.asarray(y)
        if len(X) != len(y):
            raise ValueError(f"X and y must have the same length; got {len(X)} and {len(y)}")
        rng = np.random.default_rng(self.random_state)
        Xs = [X] + [flat_poses(perturb_poses(X, rng, rotation=self.rotation, joint_dropout=self.joint_dropout,
                                        legs_dropout=self.legs_dropout)) for _ in range(self.copies)]
        self.estimator_ = clone(self.estimator).fit(np.concatenate(Xs), np.tile(y, self.copies + 1))
        self.classes_ = self.estimator_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X):
        """The estimator's class probabilities (columns ``classes_``)."""
        check_is_fitted(self)
        return self._proba_with(self.estimator_.predict_proba, X)

    def _proba_with(self, inner, X):
        """``predict_proba`` with ``inner`` in place of the fitted estimator's (see :mod:`emotify_ml.actions.lean`)."""
        return inner(flat_poses(X))


def perturb_poses(X, rng, *, rotation: float = 10.0, joint_dropout: float = 0.15, legs_dropout: float = 0.2):
    """Randomly rotated copies of poses (about their visible joints' mean) with joints dropped to NaN.

    Parameters
    ----------
    X : (N, 32) or (N, 16, 2) poses
    rng : numpy Generator
    rotation : float
        Largest rotation in degrees.
    joint_dropout : float
        Probability that each joint goes missing.
    legs_dropout : float
        Probability that both knees and ankles go missing together (a webcam's framing).

    Returns
    -------
    (N, 16, 2) float64
    """
    joints = as_joints(X)
    centre = _mean_of(joints, range(N_JOINTS))[:, None]  # NaN for a pose with no visible joint: it stays NaN
    angle = np.deg2rad(rng.uniform(-rotation, rotation, len(joints)))
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    d = joints - centre
    out = centre + np.stack([cos * d[..., 0] - sin * d[..., 1], sin * d[..., 0] + cos * d[..., 1]], axis=-1)
    drop = rng.random(out.shape[:2]) < joint_dropout
    drop[:, list(LEG_JOINTS)] |= (rng.random(len(out)) < legs_dropout)[:, None]
    out[drop] = np.nan
    return out


class HoldoutCalibrated(_WrappedClassifier):
    """Fit ``estimator`` on part of the training data and temperature-scale its probabilities on the rest.

    One or two fits (unlike k-fold ``CalibratedClassifierCV``), which matters for boosted
    trees and networks over 20 classes on 2 cores. Temperature scaling divides the
    log-probabilities by one scalar ``T`` fitted by minimising the log-loss on the
    held-out rows: it keeps the ranking (accuracy, top-3 unchanged) and fixes over-
    (T > 1) or under-confidence (T < 1). With ``refit`` the estimator is then fitted
    again on all rows, so no training data is lost to calibration; the temperature of
    the smaller fit carries over (a model trained on slightly more data is, if anything,
    slightly better, so the scaled probabilities stay close to calibrated: the runner
    logs the validation ECE to check it).

    Parameters
    ----------
    estimator : sklearn classifier
    holdout : float, default 0.15
        Share of the training rows (stratified when possible, seeded) kept for calibration.
    method : {"temperature", "none"}, default "temperature"
        "none" fits on all rows and returns the estimator's own probabilities.
    random_state : int, default 0
    refit : bool, default False
        After fitting the temperature, fit ``estimator`` again on all rows.

    Attributes
    ----------
    estimator_ : fitted clone of ``estimator`` (on all rows with ``refit``, else on 1 - ``holdout`` of them)
    temperature_ : float
    classes_ : ndarray
    """

    def __init__(self, *, estimator, holdout: float = 0.15, method: str = "temperature", random_state: int = 0,
                 refit: bool = False):
        self.estimator = estimator
        self.holdout = holdout
        self.method = method
        self.random_state = random_state
        self.refit = refit

    def fit(self, X, y):
        """Fit on the training part, then the temperature on the held-out part (then on all rows with ``refit``)."""
        from sklearn.model_selection import train_test_split

        if self.method not in ("temperature", "none"):
            raise ValueError(f"method must be 'temperature' or 'none'; got {self.method!r}")
        X, y = np.asarray(X), np.asarray(y)
        self.n_features_in_ = X.shape[1] if X.ndim > 1 else 1
        if self.method == "none":
            self.estimator_, self.temperature_ = clone(self.estimator).fit(X, y), 1.0
            self.classes_ = self.estimator_.classes_
            return self
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout must be in (0, 1); got {self.holdout}")
        _, counts = np.unique(y, return_counts=True)
        strat = y if counts.min() >= 2 and len(counts) <= self.holdout * len(y) else None
        fit_idx, cal_idx = train_test_split(np.arange(len(y)), test_size=self.holdout,
                                            random_state=self.random_state, stratify=strat)
        self.estimator_ = clone(self.estimator).fit(X[fit_idx], y[fit_idx])
        self.classes_ = self.estimator_.classes_
        cal_idx = cal_idx[np.isin(y[cal_idx], self.classes_)]  # a class seen only in the hold-out cannot be scored
        self.temperature_ = fit_temperature(self.estimator_.predict_proba(X[cal_idx]),
                                            np.searchsorted(self.classes_, y[cal_idx]))
        if self.refit:
            self.estimator_ = clone(self.estimator).fit(X, y)
            self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X):
        """Calibrated class probabilities (columns ``classes_``)."""
        check_is_fitted(self)
        return self._proba_with(self.estimator_.predict_proba, X)

    def _proba_with(self, inner, X):
        """``predict_proba`` with ``inner`` in place of the fitted estimator's (see :mod:`emotify_ml.actions.lean`)."""
        return apply_temperature(inner(X), self.temperature_)


def apply_temperature(proba, temperature: float) -> np.ndarray:
    """Probabilities softened (T > 1) or sharpened (T < 1): softmax(log(proba) / T)."""
    logits = np.log(np.clip(np.asarray(proba, dtype=np.float64), 1e-12, 1.0)) / float(temperature)
    logits -= logits.max(1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(1, keepdims=True)


def fit_temperature(proba, y, bounds=(0.05, 20.0)) -> float:
    """The temperature minimising the log-loss of ``apply_temperature(proba, T)`` for labels ``y`` (column indices)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y)
    if len(y) == 0:
        return 1.0

    def nll(log_t):
        p = apply_temperature(proba, np.exp(log_t))[np.arange(len(y)), y]
        return -np.mean(np.log(np.clip(p, 1e-12, 1.0)))

    res = minimize_scalar(nll, bounds=np.log(bounds), method="bounded")
    return float(np.exp(res.x))
