"""Builders of the emotion Pipelines that experiments compose (via Hydra ``_target_``).

Every emotion Pipeline has the same outer shape, so one object is trained,
logged, and loaded by live and batch scoring::

    faces (FacePreprocessor) → features (one transformer, or a FeatureUnion) → scale → classifier
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler

from emotify_ml.features.preprocessing import FACE_SIZE, FacePreprocessor


def features_step(features, feature_weights=None):
    """One feature transformer from a transformer or a dict of them (a FeatureUnion when several, None when none).

    The union's output names are prefixed by the dict's names (``cnn__cnn7``, ``hog__hog12``);
    ``feature_weights`` (name → float) multiplies each part.
    """
    if not isinstance(features, dict):
        return features
    parts = [(name, t) for name, t in features.items() if t is not None]
    if not parts:
        return None
    if len(parts) == 1 and not feature_weights:
        return parts[0][1]
    return FeatureUnion(parts, transformer_weights=feature_weights)


def build_pipeline(*, features=None, classifier, scale: bool = True, face_size: int = FACE_SIZE,
                   feature_weights=None) -> Pipeline:
    """Assemble ``faces → features → scale → classifier``.

    Parameters
    ----------
    features : transformer, dict of name → transformer, or None
        Several named transformers become a FeatureUnion whose output names are
        prefixed by the names (``cnn__cnn7``, ``hog__hog12``). None (or an empty dict)
        passes the faces straight to the classifier (e.g. the backbone's own head).
    classifier : sklearn classifier with ``predict_proba``
    scale : bool
        Standardise the features (every column, after the union) before the classifier.
    face_size : int
        Side of the grey square faces fed to the features.
    feature_weights : dict of name → float, optional
        Multiplies each union part (e.g. to balance 900 HOG columns against 256 CNN ones).
    """
    steps = [("faces", FacePreprocessor(size=face_size))]
    step = features_step(features, feature_weights)
    if step is not None:
        steps.append(("features", step))
    if scale and len(steps) > 1:
        steps.append(("scale", StandardScaler()))
    steps.append(("classifier", classifier))
    return Pipeline(steps)


def make_svm(*, C: float = 1.0, kernel: str = "linear", n_components: int = 2000, gamma=None,
             class_weight=None, calibration_cv: int = 3, calibration_ensemble: bool = False, max_iter: int = 5000,
             logit_adjust: float = 0.0, random_state: int = 0):
    """A linear SVM, or an RBF SVM approximated with Nystroem features, calibrated to give probabilities.

    An exact RBF ``SVC`` over 28k faces costs minutes to fit and ~13 ms per face to
    score; the Nystroem approximation keeps most of its accuracy at a fraction of both.

    Parameters
    ----------
    C : float
        Inverse regularisation of the SVM.
    kernel : {"linear", "rbf"}
        "rbf" maps the features with ``Nystroem(n_components, gamma)`` first.
    gamma : float or None
        RBF width; None is 1 / n_features (like ``SVC(gamma="scale")`` on the standardised features).
    class_weight : None or "balanced"
    calibration_cv : int
        Folds of the sigmoid calibration that turns margins into probabilities.
    calibration_ensemble : bool
        Keep one SVM per fold (True) or, as by default, calibrate on out-of-fold margins and
        keep a single SVM fitted on all data: the same calibration at a third of the scoring cost.
    logit_adjust : float
        Post-hoc logit adjustment (:class:`LogitAdjusted`) with this ``tau``; 0 leaves the
        calibrated probabilities as they are.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    if kernel not in ("linear", "rbf"):
        raise ValueError(f"kernel must be 'linear' or 'rbf'; got {kernel!r}")
    svm = LinearSVC(C=C, class_weight=class_weight, max_iter=max_iter, random_state=random_state, dual="auto")
    clf = CalibratedClassifierCV(svm, cv=calibration_cv, method="sigmoid", ensemble=calibration_ensemble)
    if logit_adjust:
        clf = LogitAdjusted(clf, tau=logit_adjust)
    if kernel == "linear":
        return clf
    from sklearn.kernel_approximation import Nystroem

    kernel_map = Nystroem(kernel="rbf", gamma=gamma, n_components=n_components, random_state=random_state)
    return Pipeline([("kernel", kernel_map), ("svm", clf)])


class LogitAdjusted(ClassifierMixin, BaseEstimator):
    """A probabilistic classifier whose probabilities are divided by the training class prior to the power ``tau``.

    Post-hoc logit adjustment (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021):
    ``p'(c | x) ∝ p(c | x) / prior(c) ** tau``. With ``tau=1`` a calibrated ``p(c | x)`` becomes the
    posterior under balanced classes, so rare classes (disgust: 1.5 % of FER-2013's training faces)
    are predicted as often as their evidence warrants, not as rarely as the training set holds them.

    Parameters
    ----------
    estimator : classifier with ``predict_proba``
        Fitted on a clone in :meth:`fit`.
    tau : float, default=1.0
        Strength of the adjustment; 0 leaves the probabilities unchanged.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = np.r_[np.zeros((9, 1)), np.ones((1, 1))], np.r_[np.zeros(9), np.ones(1)]
    >>> model = LogitAdjusted(LogisticRegression(), tau=1.0).fit(X, y)
    >>> model.prior_.round(2).tolist()
    [0.9, 0.1]
    """

    def __init__(self, estimator=None, *, tau: float = 1.0):
        self.estimator = estimator
        self.tau = tau

    def fit(self, X, y, **fit_params):
        if self.estimator is None or not hasattr(self.estimator, "predict_proba"):
            raise ValueError(f"estimator must be a classifier with predict_proba; got {self.estimator!r}")
        if not float(self.tau) >= 0.0:
            raise ValueError(f"tau must be >= 0; got {self.tau!r}")
        self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        self.classes_ = self.estimator_.classes_
        y = np.asarray(y)
        counts = np.array([np.sum(y == c) for c in self.classes_], dtype=np.float64)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, X):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "prior_")
        proba = np.asarray(self.estimator_.predict_proba(X), np.float64) / self.prior_ ** float(self.tau)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def make_gbm(*, learning_rate: float = 0.1, max_iter: int = 300, max_leaf_nodes: int = 31,
             l2_regularization: float = 0.0, class_weight=None, early_stopping: bool = True,
             random_state: int = 0):
    """Histogram gradient boosting (sklearn), with early stopping on an internal 10 % split."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=learning_rate, max_iter=max_iter, max_leaf_nodes=max_leaf_nodes,
        l2_regularization=l2_regularization, class_weight=class_weight, early_stopping=early_stopping,
        validation_fraction=0.1, n_iter_no_change=15, random_state=random_state)
