"""The stateless frame step: detect → align/crop → classify, one BGR frame at a time.

Every app scores frames through :class:`FrameStep`: the live loop (through a
:class:`~emotify_ml.scoring.stream.Stream`), batch scoring (both engines), the Python API
(:func:`emotify_ml.analyze`) and the server. It holds a model, a detector and
:class:`~emotify_ml.scoring.options.ScoringOptions`, and no state between frames, so one step
can serve many callers (one at a time: detectors are not thread-safe).

>>> step = FrameStep.load()                                  # doctest: +SKIP
>>> faces = step.score(frame_bgr)                            # doctest: +SKIP
>>> faces.boxes, faces.probabilities, faces.labels, faces.timings   # doctest: +SKIP

Batch scoring classifies the crops of many pictures in one call: :meth:`FrameStep.locate`
(detect and crop) and :meth:`FrameStep.classify` are the two halves of :meth:`FrameStep.score`.

In a detecting step (``detect`` auto or always) every face is scored in several views
(:attr:`FrameStep.n_views`): cropped at its margin and at that margin -/+ ``crop_spread``, each also
mirrored; ``classify`` averages the model's probabilities over a face's views. Face crops given as
pictures (``detect="never"``) are scored once, unless ``views_on_crops``. Every face's probabilities are
then re-weighted to the options' ``prior`` (none for the default, ``"training"``).
"""

from __future__ import annotations

import inspect
import time

import numpy as np

from emotify_ml.features.preprocessing import FACE_SIZE, crop_faces
from emotify_ml.labels import EMOTIONS
from emotify_ml.scoring.faces import Faces
from emotify_ml.scoring.options import ScoringOptions
from emotify_ml.scoring.prior import prior_weights, reweight

STAGES = ("detect", "crop", "embed", "classify", "track", "actions", "draw")
"""Stages timed per frame, in order (``track`` and ``actions`` by the stream, ``draw`` by the live loop)."""


class FrameStep:
    """Score the faces of one frame: detect → align/crop → classify.

    Parameters
    ----------
    model : object with ``predict_proba(faces) -> (N, 7)``
        An emotion model (:class:`emotify_ml.models.FittedModel`, from :func:`emotify_ml.load_emotion_model`),
        whose ``predict_proba(X, timings=...)`` reports ``embed`` and ``classify`` from the same call
        (a model without ``timings`` is timed as a whole, as ``classify``).
    detector : object with ``detect(frame) -> Detections``, optional
        None: made from ``options.detector`` (none at all for ``detect="never"``), so YuNet reports
        faces down to ``options.detector.track_threshold`` and those below its ``score_threshold``
        are kept only where they continue a track. A detector given is taken at its word, unless
        it is a YuNet whose ``score_threshold`` is the options' ``detect_threshold`` (as
        ``options.detector.make()`` builds it): then its faint faces are treated the same way.
    options : ScoringOptions, optional
        Default: :class:`~emotify_ml.scoring.options.ScoringOptions` ().

    Attributes
    ----------
    face_size : int
        Side of the grey square crops the model takes.
    class_names : tuple of str
        :data:`emotify_ml.labels.EMOTIONS`, the columns of the probabilities.
    new_face_threshold : float or None
        Least detector score of a face that starts a track; fainter faces only continue one
        (None: every face the detector reports counts).
    view_offsets : tuple of float
        Each face is cropped at its margin plus each of these: ``(0, -crop_spread, +crop_spread)``
        (``(0,)`` for ``crop_spread`` 0, and under ``detect="never"``, where each picture is already a
        face crop, unless ``options.views_on_crops``). A detected face's margin is ``options.margin``;
        a whole picture's (``detect="never"``, or ``"auto"`` finding no face in a picture) is 0.
    mirror : bool
        Each crop is also scored mirrored (``options.mirror``; False under ``detect="never"`` unless
        ``options.views_on_crops``).
    n_views : int
        Crops per face: ``len(view_offsets)``, doubled by ``mirror``.
    prior_weights : ndarray of shape (7,) or None
        What each emotion's probability is multiplied by before renormalising, for ``options.prior``
        (:func:`emotify_ml.scoring.prior.prior_weights`); None under the model's own prior.
    """

    def __init__(self, model, detector=None, options: ScoringOptions | None = None):
        self.options = (options if options is not None else ScoringOptions()).check()
        self.model = model
        det = self.options.detector
        reports_faint = detector is None or getattr(detector, "score_threshold", None) == det.detect_threshold
        if detector is None and self.options.detect != "never":
            detector = self.options.detector.make()
        self.detector = detector
        # a detector made from the options reports faces down to the track threshold: new faces need the score
        # threshold, fainter ones must continue a track (any other detector's faces are taken as they come)
        filters = det.kind == "yunet" and reports_faint and det.detect_threshold < det.score_threshold
        self.new_face_threshold = float(det.score_threshold) if filters else None
        self.class_names = EMOTIONS
        crops_given = self.options.detect == "never" and not self.options.views_on_crops
        spread = 0.0 if crops_given else float(self.options.crop_spread)
        self.view_offsets = (0.0, -spread, spread) if spread else (0.0,)
        self.mirror = bool(self.options.mirror) and not crops_given
        self.n_views = len(self.view_offsets) * (2 if self.mirror else 1)
        self.prior_weights = prior_weights(self.options.prior)
        self.face_size = _face_size(model)
        self._reports_timings = _takes_timings(model)

    @classmethod
    def load(cls, model=None, options: ScoringOptions | None = None, *, tracking_uri=None) -> "FrameStep":
        """A step with the model ``model`` (URI or folder; None: the champion, else the shipped model)."""
        from emotify_ml.models.loading import load_emotion_model

        runtime = options.runtime if options is not None else "auto"
        return cls(load_emotion_model(model, tracking_uri=tracking_uri, runtime=runtime), options=options)

    def locate(self, frame: np.ndarray, *, picture: bool = True, timings: dict | None = None, detections=None,
               track_boxes=None, track_iou: float = 0.3):
        """Find and crop the faces of a BGR frame, without classifying them.

        Parameters
        ----------
        frame : (H, W, 3) uint8 BGR
        picture : bool
            The frame is a still picture: under ``detect="auto"`` a picture in which the detector
            finds nothing is one whole-picture face. Video and camera frames (False) stay faceless.
        timings : dict, optional
            Receives ``detect`` and ``crop`` milliseconds.
        detections : :class:`~emotify_ml.detection.Detections`, optional
            Faces already known (a :class:`~emotify_ml.scoring.stream.Stream` carrying its tracks'
            boxes between detections): cropped as they are, the detector is not run (``detect`` 0 ms),
            and their source is ``"tracked"``.
        track_boxes : (T, 4) array-like, optional
            Boxes of the faces a stream is tracking. A face the detector scores below
            ``options.detector.score_threshold`` (down to its ``track_threshold``) is kept only when it
            is matched one to one, by ``track_iou`` or more, to a box no confident face took
            (:func:`~emotify_ml.scoring.face_tracks.match_boxes`); without them, only faces at
            ``score_threshold`` or above are.
        track_iou : float
            Least overlap (IoU) with a tracked box (the tracker's own matching threshold).

        Returns
        -------
        (Faces, crops)
            The faces (probabilities still zero) and their (N, V, S, S) grey uint8 crops: the
            :attr:`n_views` views of each face, the first one cut at ``options.margin``
            (whole-picture faces at margin 0), unmirrored.
        """
        timings = {} if timings is None else timings
        mode = self.options.detect
        n_classes = len(self.class_names)
        if detections is not None or mode != "never":
            t = time.perf_counter()
            found = self._detect(frame, track_boxes, track_iou) if detections is None else detections
            timings["detect"] = _ms(t) if detections is None else 0.0
            if len(found) or not (picture and mode == "auto"):
                t = time.perf_counter()
                eyes = found.eyes if self.options.align else None
                crops = self.views(frame, found.boxes, self.options.margin, eyes)
                timings["crop"] = _ms(t)
                k = len(found)
                landmarks = None if found.landmarks is None else np.asarray(found.landmarks, np.float64).reshape(k, 5, 2)
                source = "detector" if detections is None else "tracked"
                return Faces(np.asarray(found.boxes, np.float64).reshape(k, 4), np.asarray(found.scores, np.float64),
                             landmarks, (source,) * k, np.zeros((k, n_classes)), self.class_names), crops
        else:
            timings["detect"] = 0.0
        t = time.perf_counter()
        h, w = frame.shape[:2]
        crops = self.views(frame, np.array([[0, 0, w, h]], np.float32), 0.0)
        timings["crop"] = _ms(t)
        return Faces(np.array([[0.0, 0.0, float(w), float(h)]]), np.array([np.nan]), None, ("whole_image",),
                     np.zeros((1, n_classes)), self.class_names), crops

    def view_margins(self, margin: float) -> list[float]:
        """The margins a face cropped at ``margin`` is cut at: ``margin`` plus each of :attr:`view_offsets`."""
        return [float(margin) + offset for offset in self.view_offsets]

    def views(self, frame: np.ndarray, boxes, margin: float, eyes=None) -> np.ndarray:
        """(N, V, S, S) grey crops of ``boxes``: at each of :meth:`view_margins`, then mirrored (:attr:`mirror`).

        What :meth:`locate` cuts for the faces it finds (``margin``: ``options.margin``; whole pictures: 0).
        """
        cut = crop_faces(frame, boxes, self.view_margins(margin), self.face_size, eyes=eyes)
        return np.concatenate([cut, cut[..., ::-1]], axis=1) if self.mirror else cut

    def _detect(self, frame, track_boxes, track_iou):
        """The detector's faces: those at the new-face threshold, and fainter ones that continue a track.

        The faint faces are matched one to one to the tracks the confident ones left, as the
        stream's tracker then matches them (:func:`~emotify_ml.scoring.face_tracks.match_boxes`);
        the rest are dropped.
        """
        found = self.detector.detect(frame)
        if self.new_face_threshold is None or not len(found):
            return found
        scores = np.asarray(found.scores)
        keep = scores >= self.new_face_threshold
        faint = (scores >= self.options.detector.detect_threshold) & ~keep
        if track_boxes is not None and len(track_boxes) and faint.any():
            from emotify_ml.scoring.face_tracks import match_boxes

            both = keep | faint
            owner = match_boxes(track_boxes, np.asarray(found.boxes)[both], track_iou, first=keep[both])
            keep[np.flatnonzero(both)[owner >= 0]] = True
        if keep.all():
            return found
        return type(found)(found.boxes[keep], found.scores[keep],
                           None if found.landmarks is None else found.landmarks[keep])

    def classify(self, crops, timings: dict | None = None) -> np.ndarray:
        """(K, 7) probabilities of K faces' grey crops, one model call for all of them.

        ``crops`` is (K, V, S, S), the views of each face (:meth:`locate`), whose probabilities are
        averaged, or one crop a face as the model takes it ((K, S, S) grey, (K, H, W, 3) BGR, a list);
        then re-weighted to the options' prior (:attr:`prior_weights`).
        ``timings`` receives ``embed`` and ``classify`` ms.
        """
        timings = {} if timings is None else timings
        if len(crops) == 0:
            timings["embed"] = timings["classify"] = 0.0
            return np.zeros((0, len(self.class_names)))
        size = (self.face_size, self.face_size)
        grouped = isinstance(crops, np.ndarray) and crops.ndim == 4 and crops.shape[-2:] == size
        k, views = len(crops), (crops.shape[1] if grouped else 1)
        flat = crops.reshape(k * views, *size) if grouped else crops
        if self._reports_timings:
            proba = np.asarray(self.model.predict_proba(flat, timings=timings), np.float64)
        else:
            t = time.perf_counter()  # a model that cannot split its time: all of it is "classify"
            proba = np.asarray(self.model.predict_proba(flat), np.float64)
            timings["embed"], timings["classify"] = 0.0, _ms(t)
        proba = proba.reshape(k, views, -1).mean(axis=1) if views > 1 else proba
        return reweight(proba, self.prior_weights)

    def score(self, frame: np.ndarray, *, picture: bool = True, index: int = 0, timestamp: float = 0.0,
              name: str | None = None, detections=None, track_boxes=None, track_iou: float = 0.3) -> Faces:
        """Detect, crop and classify the faces of one BGR frame (see :meth:`locate` for the keywords)."""
        timings: dict[str, float] = {}
        faces, crops = self.locate(frame, picture=picture, timings=timings, detections=detections,
                                   track_boxes=track_boxes, track_iou=track_iou)
        proba = self.classify(crops, timings)
        return faces.with_(probabilities=proba, index=index, timestamp=timestamp, name=name, timings=timings)

    def warm_up(self, frame_shape=(480, 640, 3)) -> None:
        """Run every stage once on a blank frame, so the first real frame is not slow (graph tracing, allocations)."""
        if self.detector is not None:
            self.detector.detect(np.zeros(frame_shape, np.uint8))
        self.classify(np.full((1, self.n_views, self.face_size, self.face_size), 128, np.uint8))

    def __repr__(self) -> str:
        return f"FrameStep(model={getattr(self.model, 'source', self.model)!r}, detector={self.detector!r})"


def _face_size(model) -> int:
    """The face side the model takes (:attr:`emotify_ml.models.FittedModel.input_size`), else :data:`FACE_SIZE`."""
    return int(getattr(model, "input_size", None) or FACE_SIZE)


def _takes_timings(model) -> bool:
    try:
        return "timings" in inspect.signature(model.predict_proba).parameters
    except (TypeError, ValueError, AttributeError):
        return False


def _ms(start: float, end: float | None = None) -> float:
    return ((time.perf_counter() if end is None else end) - start) * 1000.0
