"""The class prior a face is scored under: how often the model should expect each emotion.

An emotion model's probabilities carry the class frequencies of the faces it was fitted on, FER-2013
Training's (:data:`FER2013_TRAIN_COUNTS`: angry 14 %, fear 14 %, sad 17 %, neutral 17 %, happy 25 %).
Where faces come from decides how often each emotion really occurs: in front of webcams and in photos
on the web most faces are neutral or happy. Under another prior the same model's probabilities are
re-weighted by the ratio of the two priors and renormalised (Saerens, Latinne and Decaestecker, 2002),
which needs no training. It moves every face toward the emotions the new prior makes more common, by as
much as the ratio says: under ``"web"`` fear is weighed 0.16 times as much as under FER-2013's prior and
neutral 1.5 times, so a face must look about ten times as fearful as neutral to be called fearful.

Measured on validation (``benchmarks/scoring_variants.py``, docs/accuracy.md, "Scoring without
training"), the shipped model under :data:`PRIORS` ``"web"``: muxspace_dev's web photos 68.1 % /
macro-F1 0.428 and neutral faces called angry 17.5 %, against 60.5 % / 0.401 and 23.3 % under its own;
FER-2013's PublicTest, which has FER-2013's prior, 63.6 % against 67.1 %. The default stays the
model's own prior (``"training"``): the rule that chooses the product weighs both sets alike.

>>> import numpy as np
>>> w = prior_weights("uniform")
>>> bool(w[1] > w[3])   # disgust is rare in FER-2013, happy common: a uniform prior raises disgust
True
>>> prior_weights("training") is None
True
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from emotify_ml.labels import EMOTIONS

FER2013_TRAIN_COUNTS: dict[str, int] = {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "sad": 4830,
                                        "surprise": 3171, "neutral": 4965}
"""Faces of each emotion in FER-2013 Training (28,709), the prior every Emotify emotion model is fitted under."""

WEB_COUNTS: dict[str, int] = {"angry": 24882, "disgust": 3803, "fear": 6378, "happy": 134415, "sad": 25459,
                              "surprise": 14090, "neutral": 74874}
"""Faces of each emotion in AffectNet's training set (Mollahosseini et al., 2017; contempt left out): faces
found on the web by emotion keywords and labelled by hand, an estimate of how often each emotion occurs among
faces in photos (happy 47 %, neutral 26 %, sad 9 %, angry 9 %, surprise 5 %, fear 2 %, disgust 1 %) made
without this project's validation photos. The same per-class counts are listed by a public AffectNet loader
(Gera and Balasubramanian, 2020, "no of samples in the manually annotated set"); the paper's own table was
not at hand to check them against."""

PRIORS: dict[str, Mapping[str, float] | None] = {
    "training": None,
    "web": WEB_COUNTS,
    "uniform": dict.fromkeys(EMOTIONS, 1.0),
}
"""Named priors of :attr:`~emotify_ml.scoring.options.ScoringOptions.prior`: ``training`` (the model's own:
its probabilities as they are), ``web`` (:data:`WEB_COUNTS`) and ``uniform`` (every emotion alike)."""


def check_prior(prior) -> None:
    """Raise ``ValueError`` unless ``prior`` is a name in :data:`PRIORS` or a mapping of every emotion to a share > 0."""
    if isinstance(prior, str):
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)} or a mapping of each emotion to its share; "
                             f"got {prior!r}")
        return
    if not isinstance(prior, Mapping):
        raise ValueError(f"prior must be one of {', '.join(PRIORS)} or a mapping of each emotion to its share; "
                         f"got {type(prior).__name__} {prior!r}")
    missing, unknown = sorted(set(EMOTIONS) - set(prior)), sorted(set(prior) - set(EMOTIONS))
    wrong = [f"{what} {names}" for what, names in (("missing", missing), ("unknown", unknown)) if names]
    if wrong:
        raise ValueError(f"a prior gives a share to each of {', '.join(EMOTIONS)}; {'; '.join(wrong)}")
    bad = {k: v for k, v in prior.items()
           if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0}
    if bad:
        raise ValueError(f"each emotion's share in a prior must be a number > 0 (counts or fractions); got {bad}")


def prior_weights(prior, source: Mapping[str, float] = FER2013_TRAIN_COUNTS, strength: float = 1.0):
    """(7,) weights, in :data:`~emotify_ml.labels.EMOTIONS` order, that move probabilities from ``source`` to ``prior``.

    ``(prior / source) ** strength``, both as shares; None for ``"training"`` (nothing to move). ``prior``
    is a name in :data:`PRIORS` or a mapping of each emotion to a count or share; ``strength`` 0 moves
    nothing, 1 all the way.
    """
    check_prior(prior)
    target = PRIORS[prior] if isinstance(prior, str) else prior
    if target is None:
        return None
    to = np.array([float(target[c]) for c in EMOTIONS])
    fro = np.array([float(source[c]) for c in EMOTIONS])
    return ((to / to.sum()) / (fro / fro.sum())) ** float(strength)


def reweight(proba, weights) -> np.ndarray:
    """(N, K) probabilities multiplied by ``weights`` (K,) and renormalised; ``proba`` itself for None weights."""
    if weights is None:
        return proba
    out = np.asarray(proba, np.float64) * np.asarray(weights, np.float64)
    return out / out.sum(axis=1, keepdims=True)
