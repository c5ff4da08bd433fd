"""Evaluate an emotion model on labelled photos through the product's own frame scoring.

Each photo goes through the frame step that live and batch scoring run on every frame
(:class:`emotify_ml.scoring.FrameStep`: detect -> align -> crop -> classify); the biggest face
found is the photo's answer. Photos where no
face is found are listed and left out of the face metrics; ``accuracy_all`` counts them as
errors. With ``detect="never"`` each photo is taken as an already cropped face (as FER-2013's
48x48 files), exactly as batch scoring takes such files.

Library code: plain arguments in, plain results out; :mod:`pipelines.evaluate` adds Hydra and MLflow.

>>> from emotify_ml.data.photos import load_photos                        # doctest: +SKIP
>>> from emotify_ml.models import load_emotion_model                       # doctest: +SKIP
>>> scores = score_photos(load_photos("photos/"), load_emotion_model())  # doctest: +SKIP
>>> photo_report(scores)["accuracy"]                                      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

from emotify_ml.evaluation import evaluate
from emotify_ml.features.preprocessing import DEFAULT_MARGIN
from emotify_ml.labels import EMOTION_TO_INDEX, EMOTIONS
from emotify_ml.scoring.options import DetectorOptions, ScoringOptions

log = logging.getLogger(__name__)

_DETECTOR, _SCORING = DetectorOptions(), ScoringOptions()
"""The detector and scoring defaults (their one home: :mod:`emotify_ml.scoring.options`)."""

@dataclass(frozen=True)
class PhotoScores:
    """What the frame scoring found in each photo.

    Attributes
    ----------
    photos : :class:`emotify_ml.data.photos.PhotoSet`
    proba : (N, 7) float, the chosen face's probabilities; NaN rows where no face was found
    boxes : (N, 4) float, the chosen face's box ``x, y, w, h`` (NaN where none)
    n_faces : (N,) int, faces found in each photo
    seconds : float, wall-clock time of the scoring
    settings : dict, how the photos were scored (the frame step's checked ``ScoringOptions``, as a dict)
    """

    photos: object
    proba: np.ndarray
    boxes: np.ndarray
    n_faces: np.ndarray
    seconds: float
    settings: dict

    @property
    def found(self) -> np.ndarray:
        """(N,) bool: a face was found."""
        return self.n_faces > 0


def scoring_options(*, detect: str = "always", margin: float = DEFAULT_MARGIN, align: bool = True,
                    crop_spread: float = _SCORING.crop_spread, mirror: bool = _SCORING.mirror,
                    views_on_crops: bool = _SCORING.views_on_crops, prior=_SCORING.prior,
                    detector: str = _DETECTOR.kind,
                    det_size: int | None = _DETECTOR.det_size,
                    score_threshold: float = _DETECTOR.score_threshold, retry_size: int | None = _DETECTOR.retry_size):
    """The checked :class:`~emotify_ml.scoring.ScoringOptions` of these settings (``ValueError`` for a bad one).

    ``detect``: ``always`` (the detector finds the faces: the live path), ``never`` (the photo is one
    face crop, as batch scoring takes FER-2013's files) or ``auto`` (the detector, else the whole photo).
    The detector keywords are :class:`~emotify_ml.scoring.options.DetectorOptions`' (``detector`` is its ``kind``).
    Cheap (no detector is made), so a caller can check settings before it starts anything.
    """
    return ScoringOptions(detect=detect, margin=margin, align=bool(align), crop_spread=crop_spread, mirror=mirror,
                          views_on_crops=views_on_crops, prior=prior,
                          detector=DetectorOptions(kind=detector, det_size=det_size,
                                                   score_threshold=float(score_threshold),
                                                   retry_size=retry_size)).check()


def make_frame_step(model, **settings):
    """The product's frame step (:class:`emotify_ml.scoring.FrameStep`) with the settings of :func:`scoring_options`."""
    from emotify_ml.scoring import FrameStep

    return FrameStep(model, options=scoring_options(**settings))


def score_photos(photos, model, *, progress: bool = False, **settings) -> PhotoScores:
    """Score every photo of ``photos`` with ``model`` through :func:`make_frame_step`.

    Parameters
    ----------
    photos : :class:`emotify_ml.data.photos.PhotoSet`
    model : object with ``predict_proba(faces) -> (N, 7)``
        E.g. :func:`emotify_ml.load_emotion_model`'s result.
    progress : bool
        Show a progress bar (tqdm) on stderr.
    **settings
        The keywords of :func:`scoring_options` (``detect``, ``margin``, ``crop_spread``, the detector's ...),
        as live and batch scoring take them; their defaults are the product path's.
    """
    step = make_frame_step(model, **settings)
    n = len(photos)
    proba = np.full((n, len(EMOTIONS)), np.nan)
    boxes = np.full((n, 4), np.nan)
    n_faces = np.zeros(n, np.int64)
    indices = range(n)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"scoring {getattr(photos, 'name', 'photos')}", unit="photo")
    t0 = time.perf_counter()
    for i in indices:
        faces = step.score(photos.read(i), picture=True)
        n_faces[i] = len(faces.boxes)
        if len(faces.boxes):
            k = int(np.argmax(faces.boxes[:, 2] * faces.boxes[:, 3]))  # the biggest face is the photo's subject
            proba[i], boxes[i] = faces.probabilities[k], faces.boxes[k]
    return PhotoScores(photos, proba, boxes, n_faces, time.perf_counter() - t0, asdict(step.options))


def photo_report(scores: PhotoScores) -> dict:
    """Metrics of scored photos.

    Returns
    -------
    dict
        :func:`emotify_ml.evaluation.evaluate`'s metrics over the photos with a face
        (``accuracy``, ``macro_f1``, ``recall_<class>``, ``precision_<class>``, ``confusion_matrix``...),
        plus ``accuracy_all`` (photos without a face count as wrong), ``n_photos``,
        ``n_no_face``, ``no_face_rate``, ``neutral_as_angry`` (share of neutral faces called
        angry), ``photos_per_s`` and ``no_face`` (the photos' paths relative to the set's root).
    """
    photos, found = scores.photos, scores.found
    y = np.asarray(photos.labels)
    out: dict = {}
    if found.any():
        out = evaluate(y[found], scores.proba[found], EMOTIONS)
        pred = scores.proba[found].argmax(1)
        out["neutral_as_angry"] = called_as(y[found], pred, "neutral", "angry")
        out["accuracy_all"] = float(np.sum(pred == y[found]) / len(y))
    else:
        out = {"accuracy": float("nan"), "macro_f1": float("nan"), "accuracy_all": 0.0, "n": 0}
    rel = photos.relative_paths()
    out.update({"n_photos": int(len(y)), "n_no_face": int((~found).sum()), "no_face_rate": float((~found).mean()),
                "photos_per_s": float(len(y) / scores.seconds) if scores.seconds > 0 else float("nan"),
                "no_face": [rel[i] for i in np.flatnonzero(~found)]})
    return out


def called_as(y_true, y_pred, true: str, predicted: str) -> float:
    """Share of the ``true`` faces predicted as ``predicted`` (e.g. neutral called angry); NaN without ``true`` faces."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    mask = y_true == EMOTION_TO_INDEX[true]
    return float(np.mean(y_pred[mask] == EMOTION_TO_INDEX[predicted])) if mask.any() else float("nan")


def predictions_frame(scores: PhotoScores):
    """One row per photo: image, true label, predicted label (empty without a face), faces found, box, probabilities."""
    import pandas as pd

    names = np.asarray(EMOTIONS, dtype=object)
    found = scores.found
    pred = np.where(found, names[np.nan_to_num(scores.proba, nan=0.0).argmax(1)], "")
    frame = pd.DataFrame({"image": scores.photos.relative_paths(), "label": names[scores.photos.labels],
                          "predicted": pred, "n_faces": scores.n_faces})
    for j, c in enumerate("xywh"):
        frame[c] = scores.boxes[:, j]
    for j, name in enumerate(EMOTIONS):
        frame[name] = scores.proba[:, j]
    return frame
