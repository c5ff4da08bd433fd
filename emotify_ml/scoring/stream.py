"""The stream layer: a frame step plus what successive frames of one source add, tracks, smoothing and actions.

>>> stream = Stream(FrameStep.load(), StreamOptions())              # doctest: +SKIP
>>> for frame in frames:                                            # doctest: +SKIP
...     faces = stream.update(frame.image, index=frame.index, timestamp=frame.timestamp)
...     faces.track_ids, faces.smoothed, faces.labels, faces.timings

:class:`Stream` owns its tracker, smoother and flicker meter (one per stream, so two
cameras never share a track). The action predictor is injected and only called: it is
given each face's raw emotion probabilities and track id, and told which tracks ended.
"""

from __future__ import annotations

import time

import numpy as np

from emotify_ml.scoring.faces import Faces
from emotify_ml.scoring.options import StreamOptions
from emotify_ml.scoring.smoothing import FlickerMeter


class Stream:
    """Score successive frames of one source: the frame step, then tracking, smoothing and (optionally) actions.

    Parameters
    ----------
    step : :class:`~emotify_ml.scoring.frame.FrameStep`
    options : StreamOptions, optional
        Tracking and smoothing settings (default: :class:`~emotify_ml.scoring.options.StreamOptions` ()).
    actions : object, optional
        ``predict(frame_bgr, face_boxes (K, 4), emotion_proba (K, 7), track_ids=(K,)) -> list of K (dict or None)``
        with a ``last_timings`` dict of milliseconds, and optionally ``forget(track_ids)`` and
        ``reset()``: e.g. :func:`emotify_ml.actions.live.load_action_predictor`. Give it a
        smoother with this stream's settings when its actions should be smoothed like the emotions.

    Attributes
    ----------
    tracker : :class:`~emotify_ml.scoring.face_tracks.IoUTracker`
    smoother : :class:`~emotify_ml.scoring.smoothing.ProbabilitySmoother`
    flicker : :class:`~emotify_ml.scoring.smoothing.FlickerMeter`
        Label changes per second of face time, raw and smoothed, since the stream began.
    """

    def __init__(self, step, options: StreamOptions | None = None, actions=None):
        self.step = step
        self.options = (options if options is not None else StreamOptions()).check()
        self.actions = actions
        self.tracker = self.options.tracking.make()
        self.smoother = self.options.smoothing.make()
        self.flicker = FlickerMeter()
        self._carry = None  # the last detection's faces, scored again until the next one (detect_every > 1)
        self._since_detect = 0

    @property
    def class_names(self) -> tuple:
        return self.step.class_names

    def warm_up(self, frame_shape=(480, 640, 3)) -> None:
        """Warm the frame step up (see :meth:`FrameStep.warm_up`)."""
        self.step.warm_up(frame_shape)

    def reset(self) -> None:
        """Forget every track and its smoothing (the next frame is unrelated to the last); the flicker counts stay."""
        self.tracker.reset()
        self.smoother.reset()
        self._carry, self._since_detect = None, 0
        reset = getattr(self.actions, "reset", None)
        if reset is not None:
            reset()

    def update(self, frame: np.ndarray, *, index: int = 0, timestamp: float = 0.0, name: str | None = None,
               independent: bool = False, picture: bool = False) -> Faces:
        """Score one BGR frame and add track ids, smoothed probabilities and actions.

        Parameters
        ----------
        frame : (H, W, 3) uint8 BGR
        index, timestamp, name
            The frame's position in its source, its time in seconds (flicker is per second of
            face time) and its file name.
        independent : bool
            The frame is unrelated to the previous one (a folder of photos): tracks and smoothing
            start afresh, and flicker is not counted.
        picture : bool
            Passed to :meth:`FrameStep.locate` (a faceless still picture is one face under ``detect="auto"``).
        """
        carry = None if independent else self._carried()
        tracked = None if independent else self.tracker.boxes
        faces = self.step.score(frame, picture=picture, index=index, timestamp=timestamp, name=name, detections=carry,
                                track_boxes=tracked, track_iou=self.tracker.iou_threshold)
        timings = faces.timings
        t = time.perf_counter()
        if independent:
            self.reset()
        threshold = getattr(self.step, "new_face_threshold", None)
        first = None if threshold is None else np.asarray(faces.scores) >= threshold  # as the step kept them
        ids = np.asarray(self.tracker.update(faces.boxes, first=first), np.int64)
        self._remember(faces, carried=carry is not None)
        dropped = self.tracker.dropped
        self.smoother.forget(dropped)
        self.flicker.forget(dropped)
        smoothed = (np.stack([self.smoother.update(int(i), p) for i, p in zip(ids, faces.probabilities)])
                    if len(faces) else np.zeros_like(faces.probabilities))
        faces = faces.with_(track_ids=ids, smoothed=smoothed)
        if not independent:
            names = self.class_names
            for i, raw, smooth in zip(ids, faces.probabilities, smoothed):
                self.flicker.update(int(i), names[int(np.argmax(raw))], names[int(np.argmax(smooth))], timestamp)
        timings["track"] = _ms(t)

        if self.actions is not None:
            t = time.perf_counter()
            forget = getattr(self.actions, "forget", None)
            if forget is not None:
                forget(dropped)
            results = self.actions.predict(frame, faces.boxes.reshape(-1, 4), faces.probabilities, track_ids=ids)
            if results is None or len(results) != len(faces):
                raise ValueError(f"the action predictor returned {0 if results is None else len(results)} results "
                                 f"for {len(faces)} faces")
            faces = faces.with_(actions=list(results))
            timings["actions"] = _ms(t)
            for stage, ms in (getattr(self.actions, "last_timings", None) or {}).items():
                timings[f"actions.{stage}"] = float(ms)
        return faces

    def _carried(self):
        """The faces to score again without detecting (``detect_every`` > 1), or None: run the detector."""
        if self._carry is None or self._since_detect + 1 >= self.options.detect_every:
            return None
        return self._carry

    def _remember(self, faces: Faces, *, carried: bool) -> None:
        """After tracking: keep this detection's faces to carry, unless it found none, lost a track or was a picture."""
        if carried:
            self._since_detect += 1
            return
        self._since_detect = 0
        self._carry = None
        if (self.options.detect_every > 1 and len(faces) and not self.tracker.missed_ids and not self.tracker.dropped
                and all(source == "detector" for source in faces.sources)):
            from emotify_ml.detection import Detections

            self._carry = Detections(faces.boxes.astype(np.float32), faces.scores.astype(np.float32),
                                     None if faces.landmarks is None else faces.landmarks.astype(np.float32))


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
