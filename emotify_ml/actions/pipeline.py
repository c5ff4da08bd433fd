"""Action Pipelines (poses → calibrated category probabilities) and their MLflow pyfunc model.

Every action model has the same shape, built by :func:`build_action_pipeline`::

    HoldoutCalibrated(                      # temperature scaling on a held-out part of train
        MirrorAugmented(                    # trains on each pose and its mirror image, averages both at predict
            [PoseAugmented(]                # optional: rotated copies with missing joints, for live keypoints
                Pipeline(features → [scale] → classifier)[)]))

Mirroring sits inside the calibration, so a pose and its mirror never land on both
sides of the calibration split. The model takes the (N, 32) joint table of
:mod:`emotify_ml.data.mpii` (pixels, NaN or -1 for missing joints).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from emotify_ml.actions.pose_features import N_JOINTS, _mean_of, as_joints, mirror_poses
from emotify_ml.evaluation import full_proba
from emotify_ml.exceptions import ModelNotFoundError
from emotify_ml.labels import MPII_CATEGORIES, MPII_JOINTS
from emotify_ml.model import PIPELINE_ARTIFACT
from emotify_ml.pipeline import features_step

log = logging.getLogger(__name__)

SHIPPED_ACTION_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "shipped" / "action"
"""The default action model, an MLflow pyfunc directory shipped with the package."""

INPUT_COLUMNS: tuple[str, ...] = tuple(f"{j.replace(' ', '_')}_{ax}" for j in MPII_JOINTS for ax in "xy")
LEG_JOINTS: tuple[int, ...] = tuple(MPII_JOINTS.index(name) for name in ("r ankle", "r knee", "l knee", "l ankle"))


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
        X, y = _flat(X), np.asarray(y)
        if len(X) != len(y):
            raise ValueError(f"X and y must have the same length; got {len(X)} and {len(y)}")
        if self.train:
            X, y = np.concatenate([X, _flat(mirror_poses(X))]), np.concatenate([y, y])
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.estimator_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X):
        """Class probabilities (columns ``classes_``), averaged with the mirror image's when ``tta``."""
        check_is_fitted(self)
        X = _flat(X)
        if not (self.tta and len(X)):
            return self.estimator_.predict_proba(X)
        both = self.estimator_.predict_proba(np.concatenate([X, _flat(mirror_poses(X))]))  # one call: half the overhead
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
        X, y = _flat(X), np.asarray(y)
        if len(X) != len(y):
            raise ValueError(f"X and y must have the same length; got {len(X)} and {len(y)}")
        rng = np.random.default_rng(self.random_state)
        Xs = [X] + [_flat(perturb_poses(X, rng, rotation=self.rotation, joint_dropout=self.joint_dropout,
                                        legs_dropout=self.legs_dropout)) for _ in range(self.copies)]
        self.estimator_ = clone(self.estimator).fit(np.concatenate(Xs), np.tile(y, self.copies + 1))
        self.classes_ = self.estimator_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X):
        """The estimator's class probabilities (columns ``classes_``)."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(_flat(X))


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
        return apply_temperature(self.estimator_.predict_proba(X), self.temperature_)


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


def _flat(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X.reshape(len(X), -1) if X.ndim == 3 else X


def build_action_pipeline(*, features, classifier, scale: bool = False, mirror: bool = True, mirror_tta: bool = True,
                          calibration: str = "temperature", calibration_holdout: float = 0.15,
                          calibration_refit: bool = False, augment=None, random_state: int = 0, feature_weights=None):
    """Assemble the action model: ``features → [scale] → classifier``, mirrored and calibrated.

    Parameters
    ----------
    features : transformer or dict of name → transformer
        Pose features (e.g. :class:`~emotify_ml.actions.pose_features.PoseFeatures`);
        several become a FeatureUnion.
    classifier : sklearn classifier with ``predict_proba``
    scale : bool
        Standardise the features before the classifier (for SVMs; trees do not need it).
    mirror, mirror_tta : bool
        Train on mirror images too; average each pose with its mirror at predict time.
    calibration : {"temperature", "none"}
    calibration_holdout : float
        Share of training rows kept to fit the calibration.
    calibration_refit : bool
        Fit the model again on all training rows once the temperature is known.
    augment : dict, optional
        Train on perturbed copies too: the parameters of :class:`PoseAugmented`
        (``copies``, ``rotation``, ``joint_dropout``, ``legs_dropout``); None for none.
    random_state : int
    feature_weights : dict of name → float, optional
        Weights of the FeatureUnion parts.

    Returns
    -------
    HoldoutCalibrated (or MirrorAugmented / Pipeline when those are switched off)
    """
    features = features_step(features, feature_weights)
    if features is None:
        raise ValueError("the action pipeline needs at least one pose feature transformer")
    steps = [("features", features)] + ([("scale", StandardScaler())] if scale else []) + [("classifier", classifier)]
    model = Pipeline(steps)
    if augment:
        model = PoseAugmented(estimator=model, **{"random_state": random_state, **dict(augment)})
    if mirror:
        model = MirrorAugmented(estimator=model, train=True, tta=mirror_tta)
    if calibration != "none":
        model = HoldoutCalibrated(estimator=model, holdout=calibration_holdout, method=calibration,
                                  random_state=random_state, refit=calibration_refit)
    return model


def make_lgbm(*, n_estimators: int = 150, learning_rate: float = 0.1, num_leaves: int = 15, min_child_samples: int = 20,
              subsample: float = 0.8, colsample_bytree: float = 0.3, reg_lambda: float = 1.0, class_weight=None,
              n_jobs: int = 2, random_state: int = 0):
    """LightGBM gradient boosting: row and column subsampling, small trees (NaN = missing, handled natively)."""
    import lightgbm as lgb

    return lgb.LGBMClassifier(n_estimators=n_estimators, learning_rate=learning_rate, num_leaves=num_leaves,
                              min_child_samples=min_child_samples, subsample=subsample, subsample_freq=1,
                              colsample_bytree=colsample_bytree, reg_lambda=reg_lambda, class_weight=class_weight,
                              n_jobs=n_jobs, random_state=random_state, verbose=-1)


def make_soft_vote(*, members, weights=None):
    """Soft-voting ensemble: the (weighted) mean of the members' probabilities.

    Parameters
    ----------
    members : dict of name → classifier with ``predict_proba``
        E.g. ``{"gbm": make_lgbm(), "mlp": MLPPoseClassifier()}``: models with different
        biases (trees split single features; the network mixes all of them) err on
        different poses, so their mean is better than either.
    weights : sequence of float, optional
        One per member, in order; equal by default.

    Returns
    -------
    sklearn.ensemble.VotingClassifier
    """
    from sklearn.ensemble import VotingClassifier

    members = dict(members)
    if not members:
        raise ValueError("make_soft_vote needs at least one member classifier")
    return VotingClassifier(list(members.items()), voting="soft", weights=None if weights is None else list(weights))


def set_n_jobs(model, n_jobs: int = 1):
    """Set ``n_jobs`` of every fitted estimator inside ``model`` (wrappers, Pipelines, FeatureUnions); returns it.

    Scoring one pose per frame is faster on one thread: LightGBM's thread start-up
    costs more than the trees when the live loop already keeps the cores busy.
    """
    seen = set()

    def visit(obj):
        if obj is None or id(obj) in seen:
            return
        seen.add(id(obj))
        if hasattr(obj, "get_params") and "n_jobs" in obj.get_params(deep=False):
            obj.set_params(n_jobs=n_jobs)
        for child in (getattr(obj, "estimator_", None), getattr(obj, "estimators_", None), getattr(obj, "steps", None),
                      getattr(obj, "transformer_list", None), getattr(obj, "calibrated_classifiers_", None)):
            if isinstance(child, list):
                for item in child:
                    visit(item[1] if isinstance(item, tuple) else item)
            else:
                visit(child)

    visit(model)
    return model


# ---------------------------------------------------------------- the pyfunc model

class ActionClassifier:
    """A fitted action model with the product's calling convention.

    Parameters
    ----------
    model : fitted classifier over (N, 32) poses, classes indexing ``class_names``
    source : str
    class_names : sequence of str, default :data:`~emotify_ml.labels.MPII_CATEGORIES`
    """

    def __init__(self, model, source: str = "<in memory>", class_names=MPII_CATEGORIES):
        self.model = model
        self.source = source
        self.class_names = tuple(class_names)

    def predict_proba(self, poses) -> np.ndarray:
        """(N, 20) category probabilities of (N, 32) or (N, 16, 2) poses; an empty batch gives (0, 20)."""
        poses = _flat(poses)
        if len(poses) == 0:
            return np.zeros((0, len(self.class_names)))
        return full_proba(self.model, poses, len(self.class_names))

    def predict(self, poses) -> pd.DataFrame:
        """One probability column per category and the arg-max ``label``."""
        from emotify_ml.model import probabilities_frame

        return probabilities_frame(self.predict_proba(poses), self.class_names)

    def __repr__(self) -> str:
        return f"ActionClassifier(source={self.source!r})"


def _pyfunc_class():
    import mlflow.pyfunc

    class ActionPyfunc(mlflow.pyfunc.PythonModel):
        """MLflow wrapper: loads the joblib model artifact; input (N, 32) poses, output probabilities + label."""

        def load_context(self, context):
            import joblib

            self.classifier = ActionClassifier(joblib.load(context.artifacts["pipeline"]), "mlflow")

        def predict(self, context, model_input, params=None):
            if isinstance(model_input, pd.DataFrame):
                model_input = model_input.to_numpy(dtype=np.float64)
            return self.classifier.predict(model_input)

    return ActionPyfunc


def action_signature():
    """Input: 32 float columns (x, y of the MPII joints, -1 or NaN = missing); output: 20 probabilities + label."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("double", c) for c in INPUT_COLUMNS]),
                          outputs=Schema([*(ColSpec("double", n) for n in MPII_CATEGORIES), ColSpec("string", "label")]))


def _example(input_example):
    if input_example is None:
        return None
    X = _flat(input_example)
    return pd.DataFrame(np.where(np.isnan(X), -1.0, X), columns=list(INPUT_COLUMNS))


def _save_or_log(model, *, path=None, name=None, input_example=None):
    from emotify_ml.model import write_pyfunc

    return write_pyfunc(model, python_model=_pyfunc_class()(), signature=action_signature(), path=path, name=name,
                        input_example=_example(input_example))


def log_action_pyfunc(model, *, name: str = "model", input_example=None):
    """Log a fitted action model to the active MLflow run as a pyfunc model; returns the ModelInfo."""
    return _save_or_log(model, name=name, input_example=input_example)


def save_action_pyfunc(model, path, *, input_example=None) -> Path:
    """Write a fitted action model as an MLflow pyfunc directory (used for the shipped model)."""
    return _save_or_log(model, path=path, input_example=input_example)


def load_action_model(uri=None) -> ActionClassifier:
    """Load an action model: an MLflow URI (``runs:/<id>/model``, ``models:/<name>@champion``), a local
    MLflow model directory, or None for the model shipped in ``emotify_ml/models/shipped/action``.

    Raises
    ------
    ModelNotFoundError
        The URI does not resolve to an action model.
    """
    import joblib

    uri = str(uri) if uri is not None else str(SHIPPED_ACTION_MODEL_DIR)
    local = Path(uri).expanduser()
    if local.exists():
        model_dir = local
    elif uri.startswith(("models:", "runs:")) or "://" in uri:
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        except MlflowException as exc:
            raise ModelNotFoundError(f"cannot load action model {uri!r}: {exc.message.splitlines()[0]}") from None
    else:
        raise ModelNotFoundError(f"action model {uri!r} is neither an existing folder nor an MLflow model URI")
    artifact = model_dir / "artifacts" / PIPELINE_ARTIFACT
    if not artifact.is_file():
        raise ModelNotFoundError(f"{uri!r} is not an Emotify action model (no artifacts/{PIPELINE_ARTIFACT})")
    return ActionClassifier(joblib.load(artifact), uri)
