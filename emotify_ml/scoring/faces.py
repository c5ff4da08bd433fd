"""The faces of one frame: the one type that flows through the scoring stages and out to every app.

:class:`Faces` holds arrays (one row per face), filled stage by stage: the frame step
(:class:`~emotify_ml.scoring.frame.FrameStep`) sets boxes, scores, landmarks, sources and
probabilities; the stream (:class:`~emotify_ml.scoring.stream.Stream`) adds track ids, smoothed
probabilities and actions. Iterating gives one :class:`Face` per face (what
:func:`emotify_ml.analyze` returns); :meth:`Faces.to_records` gives plain dicts for JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from emotify_ml.labels import EMOTIONS

FACE_SOURCES = ("detector", "whole_image", "tracked")
"""Where a face's box came from: the detector, the whole picture (``detect="never"`` or the ``auto`` fallback), or
the face's track (a :class:`~emotify_ml.scoring.stream.Stream` with ``detect_every`` > 1, between detections)."""


@dataclass
class Face:
    """One face in one frame.

    Attributes
    ----------
    box : (4,) float
        ``x, y, w, h`` in frame pixels.
    score : float
        Detector confidence (NaN for a whole-picture face).
    landmarks : (5, 2) float or None
        Right eye, left eye, nose tip, right and left mouth corners (YuNet), in frame pixels.
    probabilities : dict of str to float
        This frame's class probabilities, in :data:`emotify_ml.labels.EMOTIONS` order.
    label : str
        The face's emotion: arg-max of :attr:`smoothed` when the face is tracked, else of :attr:`probabilities`.
    source : {"detector", "whole_image", "tracked"}
    track_id : int or None
        Set by a :class:`~emotify_ml.scoring.stream.Stream`.
    smoothed : dict of str to float or None
        The track's smoothed probabilities (stream only).
    actions : dict or None
        The action predictor's result (``actions=True``): ``{"actions": [[name, p], ...], "label": ...,
        "person_box": [x, y, w, h]}``; None without a body or without actions.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray | None
    probabilities: dict
    label: str
    source: str = "detector"
    track_id: int | None = None
    smoothed: dict | None = None
    actions: dict | None = None

    @property
    def raw_label(self) -> str:
        """Arg-max of this frame's :attr:`probabilities`."""
        return max(self.probabilities, key=self.probabilities.get)

    @property
    def confidence(self) -> float:
        """Probability of :attr:`label` (smoothed when tracked)."""
        return float((self.smoothed or self.probabilities)[self.label])

    def to_record(self) -> dict:
        """Plain JSON-able dict: ``box``, ``score``, ``landmarks``, ``probabilities``, ``label``, ``track_id``,
        ``actions`` (and ``source``, and ``smoothed`` when tracked)."""
        record = {"box": [float(v) for v in self.box],
                  "score": None if np.isnan(self.score) else float(self.score),
                  "landmarks": None if self.landmarks is None else np.asarray(self.landmarks, float).tolist(),
                  "probabilities": {k: float(v) for k, v in self.probabilities.items()},
                  "label": self.label, "source": self.source,
                  "track_id": None if self.track_id is None else int(self.track_id),
                  "actions": jsonable(self.actions)}
        if self.smoothed is not None:
            record["smoothed"] = {k: float(v) for k, v in self.smoothed.items()}
        return record


@dataclass
class Faces:
    """Every face of one frame, as arrays (one row per face).

    Attributes
    ----------
    boxes : (N, 4) float64
        ``x, y, w, h`` in frame pixels.
    scores : (N,) float64
        Detector confidence; NaN for whole-picture faces.
    landmarks : (N, 5, 2) float64 or None
        None when the detector gives none (Haar, whole-picture faces).
    sources : tuple of str
        :data:`FACE_SOURCES`, one per face.
    probabilities : (N, K) float64
        This frame's class probabilities (columns: :attr:`class_names`).
    class_names : tuple of str
    track_ids : (N,) int64 or None
        Stream only.
    smoothed : (N, K) float64 or None
        Stream only: each track's smoothed probabilities.
    actions : list of (dict or None) or None
        Stream or API with actions only.
    index, timestamp, name
        The frame's position in its source, its time in seconds and its file name (images).
    timings : dict of str to float
        Milliseconds of each stage (``detect``, ``crop``, ``embed``, ``classify``; the stream adds
        ``track`` and ``actions``).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None
    sources: tuple
    probabilities: np.ndarray
    class_names: tuple = EMOTIONS
    track_ids: np.ndarray | None = None
    smoothed: np.ndarray | None = None
    actions: list | None = None
    index: int = 0
    timestamp: float = 0.0
    name: str | None = None
    timings: dict = field(default_factory=dict)

    @classmethod
    def empty(cls, class_names=EMOTIONS, **kwargs) -> "Faces":
        """No face."""
        return cls(np.zeros((0, 4)), np.zeros(0), None, (), np.zeros((0, len(class_names))), tuple(class_names),
                   **kwargs)

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def labels(self) -> list[str]:
        """Each face's emotion: arg-max of :attr:`smoothed` when tracked, else of :attr:`probabilities`."""
        proba = self.smoothed if self.smoothed is not None else self.probabilities
        return [self.class_names[int(k)] for k in np.argmax(proba, axis=1)] if len(self) else []

    def with_(self, **changes) -> "Faces":
        """A copy with some attributes replaced."""
        return replace(self, **changes)

    def __getitem__(self, k: int) -> Face:
        names = self.class_names
        return Face(box=self.boxes[k], score=float(self.scores[k]),
                    landmarks=None if self.landmarks is None else self.landmarks[k],
                    probabilities=dict(zip(names, self.probabilities[k].tolist())), label=self.labels[k],
                    source=self.sources[k],
                    track_id=None if self.track_ids is None else int(self.track_ids[k]),
                    smoothed=None if self.smoothed is None else dict(zip(names, self.smoothed[k].tolist())),
                    actions=None if self.actions is None else self.actions[k])

    def __iter__(self):
        return (self[k] for k in range(len(self)))

    def to_list(self) -> list[Face]:
        """One :class:`Face` per face."""
        return list(self)

    def to_records(self) -> list[dict]:
        """One plain dict per face (see :meth:`Face.to_record`): the JSON shape shared by every app."""
        return [face.to_record() for face in self]


def jsonable(value):
    """``value`` with numpy scalars and arrays turned into Python numbers and lists (for ``json.dumps``)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
