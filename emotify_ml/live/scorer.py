"""Scoring of one frame: detect → crop → embed → classify → track → smooth (→ actions), batched per frame.

:class:`FrameScorer` holds no window, file or thread: the live loop, the benchmark
and tests all drive it the same way, one frame at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from emotify_ml.evaluation import full_proba
from emotify_ml.exceptions import ModelNotFoundError
from emotify_ml.features.preprocessing import DEFAULT_MARGIN, FACE_SIZE, crop_faces
from emotify_ml.labels import EMOTIONS
from emotify_ml.scoring.smoothing import FlickerMeter, ProbabilitySmoother
from emotify_ml.scoring.face_tracks import IoUTracker

STAGES = ("detect", "crop", "embed", "classify", "track", "actions", "draw")
"""Stages timed per frame, in order (``draw`` is timed by the loop that renders)."""


@dataclass
class FaceResult:
    """One face in one frame.

    Attributes
    ----------
    track_id : int
    box : (4,) float, ``x, y, w, h`` in frame pixels
    score : float, detector confidence
    proba : (7,) float, this frame's probabilities (columns in :data:`emotify_ml.labels.EMOTIONS` order)
    smoothed : (7,) float, the track's smoothed probabilities
    label : str, arg-max of ``smoothed``
    raw_label : str, arg-max of ``proba``
    actions : dict or None, the action predictor's result for this face (``--actions``)
    """

    track_id: int
    box: np.ndarray
    score: float
    proba: np.ndarray
    smoothed: np.ndarray
    label: str
    raw_label: str
    actions: dict | None = None

    @property
    def confidence(self) -> float:
        """Smoothed probability of :attr:`label`."""
        return float(self.smoothed.max())


@dataclass
class FrameResult:
    """Everything scored in one frame, with the time each stage took in milliseconds."""

    index: int
    timestamp: float
    faces: list[FaceResult]
    timings: dict[str, float] = field(default_factory=dict)
    name: str | None = None


def load_action_predictor():
    """The action predictor of ``--actions`` (imported only when asked for).

    Raises
    ------
    ModelNotFoundError
        ``emotify_ml.actions.live`` cannot be imported in this install.
    """
    try:
        from emotify_ml.actions.live import load_action_predictor as load
    except ImportError as exc:
        raise ModelNotFoundError(f"--actions needs the action predictor (emotify_ml.actions.live), which cannot be "
                                 f"imported here: {exc}") from None
    return load()


class FrameScorer:
    """Score the faces of successive frames.

    Parameters
    ----------
    detector : object with ``detect(frame) -> Detections``
        See :func:`emotify_ml.detection.make_detector`.
    classifier : :class:`emotify_ml.model.EmotionClassifier` or object with ``predict_proba(faces) -> (N, 7)``
        An ``EmotionClassifier`` whose pipeline has a feature step is run as two timed stages
        (``embed`` then ``classify``), with exactly the arithmetic of its ``predict_proba``.
    smoother : ProbabilitySmoother, optional
        Default: EMA with alpha 0.3.
    tracker : IoUTracker, optional
    margin : float
        Crop margin (see :func:`emotify_ml.features.preprocessing.crop_face`).
    align : bool, default=True
        Rotate each face so the eyes are level, when the detector gives eye landmarks.
    independent_frames : bool, default=False
        Frames are unrelated pictures (an image folder): no tracking or smoothing across them.
    action_predictor : object, optional
        ``predict(frame_bgr, face_boxes (K, 4), emotion_proba (K, 7), track_ids=(K,)) -> list of K (dict or None)``
        with a ``last_timings`` dict of milliseconds, and optionally ``forget(track_ids)`` and
        ``reset()``; see :func:`load_action_predictor`. It gets each face's raw emotion
        probabilities and its track id; a ``smoothing`` attribute it has is replaced by a
        smoother with this scorer's settings, so actions are smoothed like the emotions.
    """

    def __init__(self, detector, classifier, *, smoother: ProbabilitySmoother | None = None,
                 tracker: IoUTracker | None = None, margin: float = DEFAULT_MARGIN, align: bool = True,
                 independent_frames: bool = False, action_predictor=None, class_names=EMOTIONS):
        self.detector = detector
        self.classifier = classifier
        self.smoother = smoother if smoother is not None else ProbabilitySmoother()
        self.tracker = tracker if tracker is not None else IoUTracker()
        self.margin = margin
        self.align = align
        self.independent_frames = independent_frames
        self.action_predictor = action_predictor
        if action_predictor is not None and hasattr(action_predictor, "smoothing"):
            action_predictor.smoothing = ProbabilitySmoother(method=self.smoother.method, alpha=self.smoother.alpha,
                                                             window=self.smoother.window)
        self.class_names = tuple(class_names)
        self.flicker = FlickerMeter()
        self._features, self._head, self.face_size = _split_pipeline(classifier)

    def classify(self, crops: np.ndarray, timings: dict | None = None) -> np.ndarray:
        """(K, 7) probabilities of (K, S, S) grey crops, timing ``embed`` and ``classify`` into ``timings``."""
        timings = {} if timings is None else timings
        if len(crops) == 0:
            timings["embed"] = timings["classify"] = 0.0
            return np.zeros((0, len(self.class_names)))
        t0 = time.perf_counter()
        if self._head is None:
            proba = np.asarray(self.classifier.predict_proba(crops), np.float64)
            timings["embed"], timings["classify"] = 0.0, _ms(t0)
            return proba
        features = self._features.transform(crops)
        t1 = time.perf_counter()
        proba = full_proba(self._head, features, len(self.class_names))
        timings["embed"], timings["classify"] = _ms(t0, t1), _ms(t1)
        return proba

    def warm_up(self, frame_shape=(480, 640, 3)) -> None:
        """Run every stage once on a blank frame, so the first real frame is not slow (graph tracing, allocations)."""
        self.detector.detect(np.zeros(frame_shape, np.uint8))
        self.classify(np.full((1, self.face_size, self.face_size), 128, np.uint8))

    def score(self, frame: np.ndarray, index: int = 0, timestamp: float = 0.0, name: str | None = None) -> FrameResult:
        """Detect, classify, track and smooth the faces of one BGR frame."""
        timings: dict[str, float] = {}
        t = time.perf_counter()
        found = self.detector.detect(frame)
        timings["detect"] = _ms(t)

        t = time.perf_counter()
        eyes = found.eyes if self.align else None
        crops = crop_faces(frame, found.boxes, self.margin, self.face_size, eyes=eyes)
        timings["crop"] = _ms(t)

        proba = self.classify(crops, timings)

        t = time.perf_counter()
        if self.independent_frames:
            self.tracker.reset()
            self.smoother.reset()
            if self.action_predictor is not None and hasattr(self.action_predictor, "reset"):
                self.action_predictor.reset()
        ids = self.tracker.update(found.boxes)
        self.smoother.forget(self.tracker.dropped)
        self.flicker.forget(self.tracker.dropped)
        names = np.asarray(self.class_names, dtype=object)
        faces = []
        for k, track_id in enumerate(ids):
            smoothed = self.smoother.update(int(track_id), proba[k])
            face = FaceResult(int(track_id), found.boxes[k].astype(np.float64), float(found.scores[k]), proba[k],
                              smoothed, str(names[np.argmax(smoothed)]), str(names[np.argmax(proba[k])]))
            if not self.independent_frames:
                self.flicker.update(face.track_id, face.raw_label, face.label, timestamp)
            faces.append(face)
        timings["track"] = _ms(t)

        if self.action_predictor is not None:
            t = time.perf_counter()
            raw = np.stack([f.proba for f in faces]) if faces else np.zeros((0, len(self.class_names)))
            forget = getattr(self.action_predictor, "forget", None)
            if forget is not None:
                forget(self.tracker.dropped)
            results = self.action_predictor.predict(frame, found.boxes.reshape(-1, 4), raw,
                                                    track_ids=np.asarray(ids, dtype=int))
            if results is None or len(results) != len(faces):
                raise ValueError(f"the action predictor returned {0 if results is None else len(results)} results "
                                 f"for {len(faces)} faces")
            for face, result in zip(faces, results):
                face.actions = result
            timings["actions"] = _ms(t)
            for stage, ms in (getattr(self.action_predictor, "last_timings", None) or {}).items():
                timings[f"actions.{stage}"] = float(ms)
        return FrameResult(index, timestamp, faces, timings, name)


def _split_pipeline(classifier):
    """(feature steps, final classifier, face size) of an EmotionClassifier's sklearn Pipeline, else (None, None, 48)."""
    from sklearn.pipeline import Pipeline

    pipeline = getattr(classifier, "pipeline", None)
    if not isinstance(pipeline, Pipeline) or len(pipeline) < 2:
        return None, None, FACE_SIZE
    face_step = pipeline.steps[0][1]
    size = int(getattr(face_step, "size", FACE_SIZE))
    return pipeline[:-1], pipeline[-1], size


def _ms(start: float, end: float | None = None) -> float:
    return ((time.perf_counter() if end is None else end) - start) * 1000.0
