"""Builders of the action models: the pipeline (features -> [scale] -> classifier, mirrored and calibrated),
LightGBM, and the soft-voting ensemble. Hydra configs name these as ``_target_``.

Every action model has the same shape, built by :func:`build_action_pipeline`::

    HoldoutCalibrated(                      # temperature scaling on a held-out part of train
        MirrorAugmented(                    # trains on each pose and its mirror image, averages both at predict
            [PoseAugmented(]                # optional: rotated copies with missing joints, for live keypoints
                Pipeline(features → [scale] → classifier)[)]))

Mirroring sits inside the calibration, so a pose and its mirror never land on both
sides of the calibration split.
"""

from __future__ import annotations

from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from emotify_ml.actions.estimators import HoldoutCalibrated, MirrorAugmented, PoseAugmented
from emotify_ml.pipeline import features_step


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
