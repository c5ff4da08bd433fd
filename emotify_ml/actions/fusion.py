"""Emotion fusion: an explicit prior P(category | emotion), combined with the pose model's probabilities.

No public data set labels both facial emotion and activity, so the prior is hand-set
and kept as data (``emotify_ml/assets/action_prior.csv``, provenance in
``action_prior.md`` beside it), never as a dict in code.

Fusion, for a face whose emotion probabilities are ``q`` (7,):

    P(a | emotion) = sum_e q_e P(a | e)
    P(a | pose, emotion) ∝ P(a | pose) · (P(a | emotion) / P̄(a))^λ

where P̄(a) is the prior's average over the 7 emotions. Dividing by P̄ keeps the
category base rate from being counted twice (the pose model already learnt it), so a
uniform emotion changes nothing, whatever λ. λ = 0 is pose only; λ = 1 is Bayes' rule
if pose and emotion were independent given the action and the emotions equally likely a
priori (P̄ is their unweighted mean); λ > 1 trusts the prior more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotify_ml.exceptions import DataError, DataNotFoundError, InputError
from emotify_ml.labels import EMOTIONS, MPII_CATEGORIES

DEFAULT_PRIOR_PATH = Path(__file__).resolve().parents[1] / "assets" / "action_prior.csv"
UNCERTAIN = "uncertain"


def load_action_prior(path=None) -> np.ndarray:
    """P(category | emotion) as a (7, 20) array, rows in :data:`~emotify_ml.labels.EMOTIONS` order.

    The csv has an ``emotion`` column and one column per category name; each row is
    normalised to sum to 1.

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    DataError
        Columns or emotions are not the expected ones, or a value is negative or not a number.

    Examples
    --------
    >>> load_action_prior().shape
    (7, 20)
    """
    import pandas as pd

    path = Path(path) if path is not None else DEFAULT_PRIOR_PATH
    if not path.is_file():
        raise DataNotFoundError(f"action prior {str(path)!r} does not exist")
    frame = pd.read_csv(path)
    expected = ["emotion", *MPII_CATEGORIES]
    if list(frame.columns) != expected:
        raise DataError(f"{path}: columns must be emotion, then the 20 MPII categories in labels order; "
                        f"got {list(frame.columns)}")
    if sorted(frame["emotion"]) != sorted(EMOTIONS):
        raise DataError(f"{path}: rows must be the 7 emotions {EMOTIONS}; got {list(frame['emotion'])}")
    frame = frame.set_index("emotion").loc[list(EMOTIONS)]
    try:
        prior = frame.to_numpy(dtype=np.float64)
    except ValueError:
        raise DataError(f"{path}: every probability must be a number") from None
    if not np.isfinite(prior).all() or (prior < 0).any() or (prior.sum(1) <= 0).any():
        raise DataError(f"{path}: probabilities must be finite, non-negative, with a positive sum per emotion")
    return prior / prior.sum(1, keepdims=True)


def emotion_likelihood_ratio(emotion_proba, prior) -> np.ndarray:
    """(N, 20) ratio P(a | emotion) / P̄(a) for emotion probabilities (N, 7); exactly 1 for a uniform emotion."""
    q = np.asarray(emotion_proba, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != len(EMOTIONS):
        raise InputError(f"emotion_proba must be (N, {len(EMOTIONS)}); got shape {q.shape}")
    q = q / np.maximum(q.sum(1, keepdims=True), 1e-12)
    prior = np.asarray(prior, dtype=np.float64)
    return (q @ prior) / prior.mean(0)


def fuse(pose_proba, emotion_proba=None, prior=None, weight: float = 1.0) -> np.ndarray:
    """P(a | pose, emotion) ∝ P(a | pose) · (P(a | emotion) / P̄(a))^weight, rows summing to 1.

    Parameters
    ----------
    pose_proba : (N, 20)
    emotion_proba : (N, 7) or None
        None (or ``weight == 0``) returns the pose probabilities (renormalised).
    prior : (7, 20), optional
        Default :func:`load_action_prior`.
    weight : float
        λ >= 0.

    Examples
    --------
    >>> pose = np.full((1, 20), 0.05)
    >>> bool(np.allclose(fuse(pose, np.full((1, 7), 1 / 7)), pose))
    True
    """
    p = np.asarray(pose_proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(MPII_CATEGORIES):
        raise InputError(f"pose_proba must be (N, {len(MPII_CATEGORIES)}); got shape {p.shape}")
    if weight < 0:
        raise ValueError(f"weight (λ) must be >= 0; got {weight}")
    if emotion_proba is not None and weight != 0:
        if len(emotion_proba) != len(p):
            raise InputError(f"emotion_proba has {len(emotion_proba)} rows, pose_proba {len(p)}")
        p = p * emotion_likelihood_ratio(emotion_proba, load_action_prior() if prior is None else prior) ** weight
    return p / np.maximum(p.sum(1, keepdims=True), 1e-300)


def top_actions(proba, class_names=MPII_CATEGORIES, *, k: int = 3, min_confidence: float = 0.3) -> list[dict]:
    """For each row: ``{"actions": [[name, prob], ...] (top k), "label": top name or "uncertain"}``.

    ``label`` is ``"uncertain"`` when the top probability is below ``min_confidence``.
    """
    proba = np.asarray(proba, dtype=np.float64)
    out = []
    for row in proba:
        order = np.argsort(-row)[:k]
        out.append({"actions": [[str(class_names[i]), float(row[i])] for i in order],
                    "label": str(class_names[order[0]]) if row[order[0]] >= min_confidence else UNCERTAIN})
    return out
