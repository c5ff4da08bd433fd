"""The lean scorer of fitted action models: the same probabilities without sklearn's per-call overhead.

The live loop scores one pose a frame. Through the fitted model's own ``predict_proba``
that cost 5–6 ms a frame in the live loop on these 2 cores, most of it input and parameter
checks repeated by each layer of wrappers (LightGBM's sklearn ``predict_proba`` alone took
1.75 ms, its booster 0.16 ms). :func:`lean_proba` walks the fitted model
once and returns a function that calls the same fitted parts directly:

- the project's wrappers (:class:`~emotify_ml.actions.estimators.HoldoutCalibrated`,
  ``MirrorAugmented``, ``PoseAugmented``) through their ``_proba_with(inner, X)``, the code
  their ``predict_proba`` runs, with the lean scorer of their fitted estimator as ``inner``;
- a :class:`~sklearn.pipeline.Pipeline`: its transformers' ``transform``, then the last step;
- a soft :class:`~sklearn.ensemble.VotingClassifier`: the weighted mean of its members;
- ``LGBMClassifier``: its booster's ``predict`` (a positive ``n_jobs`` as its thread count, else
  OpenMP's default; threads change the speed, not the result);
- :class:`~emotify_ml.actions.pose_features.PoseFeatures` and
  :class:`~emotify_ml.actions.mlp.MLPPoseClassifier`: their array entry points;
- anything else: its own ``predict_proba`` / ``transform``, so every model can be scored.

The result equals ``predict_proba`` (tests compare them on the shipped model to 1e-12). The
scorer is a snapshot of the fitted parts and their settings when it is built: parameters set
afterwards (``set_params``, :func:`~emotify_ml.actions.threads.set_n_jobs`) do not reach it, so
build it last. :func:`lean_model` wraps it as the :class:`~emotify_ml.models.FittedModel` the
live loop and the server score with.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.utils.validation import check_is_fitted

Proba = Callable[[np.ndarray], np.ndarray]

#: The ``runtime`` of a :class:`~emotify_ml.models.FittedModel` scored by :func:`lean_model`.
LEAN_RUNTIME = "lean"


def lean_proba(estimator) -> Proba:
    """A function ``(N, F) float64 -> (N, n_classes)`` equal to ``estimator.predict_proba``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        When ``estimator`` (or a part of it) is not fitted.
    """
    if not hasattr(estimator, "fit"):  # not an sklearn estimator: only its own method can score it
        return estimator.predict_proba
    check_is_fitted(estimator)
    if hasattr(estimator, "_proba_with") and hasattr(estimator, "estimator_"):
        inner, outer = lean_proba(estimator.estimator_), estimator._proba_with
        return lambda X: outer(inner, X)
    if hasattr(estimator, "steps"):  # a Pipeline
        steps = [step for _, step in estimator.steps]
        transforms = [_lean_transform(step) for step in steps[:-1] if step is not None and step != "passthrough"]
        last = lean_proba(steps[-1])

        def pipeline(X):
            for transform in transforms:
                X = transform(X)
            return last(X)
        return pipeline
    from sklearn.ensemble import VotingClassifier

    if isinstance(estimator, VotingClassifier) and estimator.voting == "soft":
        members = [lean_proba(member) for member in estimator.estimators_]
        weights = None if estimator.weights is None else [
            w for (_, member), w in zip(estimator.estimators, estimator.weights) if member != "drop"]
        return lambda X: np.average(np.asarray([member(X) for member in members]), axis=0, weights=weights)
    if _is_lgbm_classifier(estimator) and estimator.n_classes_ > 2 and not callable(estimator.objective):
        booster, threads = estimator.booster_, _lgbm_threads(estimator.n_jobs)
        return lambda X: booster.predict(X, num_threads=threads)
    from emotify_ml.actions.mlp import MLPPoseClassifier

    if isinstance(estimator, MLPPoseClassifier):
        return lambda X: estimator._proba_array(np.asarray(X, dtype=np.float64))
    return estimator.predict_proba


def _lean_transform(step) -> Proba:
    from emotify_ml.actions.pose_features import N_JOINTS, PoseFeatures

    if isinstance(step, PoseFeatures):
        check_is_fitted(step)

        def features(X):
            if isinstance(X, np.ndarray) and X.dtype == np.float64 and X.ndim == 2 and X.shape[1] == 2 * N_JOINTS:
                return step._transform_array(X)
            return step.transform(X)  # anything else gets the transformer's own checks and errors
        return features
    return step.transform


def _is_lgbm_classifier(estimator) -> bool:
    if not type(estimator).__module__.startswith("lightgbm"):
        return False
    from lightgbm import LGBMClassifier

    return isinstance(estimator, LGBMClassifier)


def _lgbm_threads(n_jobs) -> int:
    """``num_threads`` for an estimator's ``n_jobs``: a positive count as it is, else 0 (OpenMP's default).

    LightGBM's sklearn interface maps None and negative ``n_jobs`` to a share of the physical
    cores instead; only the speed differs (the live loop sets 1).
    """
    return int(n_jobs) if isinstance(n_jobs, (int, np.integer)) and n_jobs > 0 else 0


class LeanClassifier:
    """The lean scorer of a fitted classifier, with a column for every class index.

    Parameters
    ----------
    estimator : fitted classifier with integer ``classes_`` (an action model's estimator)
    n_classes : int
        Columns of the output; classes absent from ``estimator.classes_`` get probability 0
        (as :func:`emotify_ml.evaluation.full_proba` gives them).
    """

    def __init__(self, estimator, n_classes: int):
        self.estimator = estimator
        self.n_classes = n_classes
        self._proba = lean_proba(estimator)

    def predict_proba(self, X) -> np.ndarray:
        """(N, n_classes) probabilities of (N, 32) float64 poses."""
        from emotify_ml.evaluation import full_columns

        return full_columns(self._proba(X), self.estimator.classes_, self.n_classes)


def lean_model(model):
    """The same action model scored by :class:`LeanClassifier` (``runtime == "lean"``; ``estimator`` kept)."""
    from emotify_ml.models.wrapper import FittedModel

    if model.estimator is None:
        raise ValueError(f"{model.source!r} has no fitted estimator to score lean")
    return FittedModel(model.estimator, kind=model.kind, source=model.source, name=model.name,
                       version=model.version, runtime=LEAN_RUNTIME,
                       compiled=LeanClassifier(model.estimator, len(model.classes_)))
