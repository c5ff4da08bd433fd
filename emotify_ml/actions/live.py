"""Per-frame action prediction for the live loop: BlazePose → MPII joints → action model → emotion fusion.

The live loop calls::

    predictor = load_action_predictor(model_uri=None, emotion_weight=1.0, min_confidence=0.3)
    results = predictor.predict(frame_bgr, face_boxes, emotion_proba, track_ids=ids)   # one item per face
    predictor.forget(ended_track_ids)                                    # tracks the face tracker dropped
    predictor.last_timings                                               # {"pose": ms, "action": ms}

Each face gets ``None`` (no detected body contains it) or
``{"actions": [[name, prob], ...top 3], "label": name or "uncertain", "person_box": [x, y, w, h]}``.
With ``track_ids`` (the live face tracker's), each person's fused action probabilities are
smoothed over frames like the emotions are, so a still person's label does not flicker
with every small error of the keypoints.
"""

from __future__ import annotations

import time

import numpy as np

from emotify_ml.actions.fusion import fuse, top_actions
from emotify_ml.exceptions import InputError
from emotify_ml.labels import EMOTIONS
from emotify_ml.scoring.smoothing import ProbabilitySmoother


class ActionPredictor:
    """Actions of the people whose bodies contain the given faces.

    Parameters
    ----------
    pose_estimator : callable
        ``pose_estimator(frame_bgr) -> list`` of objects with ``joints`` (16, 2) MPII pixels
        (NaN = missing), ``box`` (x, y, w, h) and ``landmarks`` (L, 2+) pixels;
        e.g. :class:`emotify_ml.actions.blazepose.BlazePose`.
    action_model : object with ``predict_proba(poses (N, 16, 2)) -> (N, 20)``
        e.g. :class:`emotify_ml.models.FittedModel` of kind "action".
    prior : (7, 20) array
        P(category | emotion), see :func:`emotify_ml.actions.fusion.load_action_prior`.
    emotion_weight : float
        λ of the fusion; 0 = pose only.
    min_confidence : float
        Below this top probability the ``label`` is ``"uncertain"``.
    top_k : int
    smoothing : ProbabilitySmoother, optional
        Smooths each track's fused probabilities across frames when ``predict`` gets
        ``track_ids``; default: :class:`~emotify_ml.scoring.options.SmoothingOptions` (as the emotions). ``method="none"`` turns it off.
    pose_every : int, default 1
        Run the pose estimator and the action model on every ``pose_every``-th frame with faces;
        in between, the last frame's people and their action probabilities are fused with the
        current emotions (a person who enters is found up to ``pose_every - 1`` frames later).

    Attributes
    ----------
    last_timings : dict of str → float
        Milliseconds of the last :meth:`predict`: ``pose`` (keypoints) and ``action`` (features, model, fusion).
    """

    def __init__(self, pose_estimator, action_model, prior, *, emotion_weight: float = 1.0,
                 min_confidence: float = 0.3, top_k: int = 3, smoothing: ProbabilitySmoother | None = None,
                 pose_every: int = 1):
        if isinstance(pose_every, bool) or not isinstance(pose_every, int) or pose_every < 1:
            raise ValueError(f"pose_every must be an int >= 1; got {pose_every!r}")
        self.pose_every = pose_every
        self.pose_estimator = pose_estimator
        self.action_model = action_model
        self.prior = prior
        self.emotion_weight = emotion_weight
        self.min_confidence = min_confidence
        self.top_k = top_k
        self.smoothing = smoothing if smoothing is not None else ProbabilitySmoother()
        self.last_timings: dict[str, float] = {}
        self._people, self._person_proba, self._since_pose = None, {}, 0

    def reset(self) -> None:
        """Forget the tracked people (the next frame is unrelated to the last, e.g. another image)."""
        self._people, self._person_proba, self._since_pose = None, {}, 0
        reset = getattr(self.pose_estimator, "reset", None)
        if reset is not None:
            reset()
        self.smoothing.reset()

    def forget(self, track_ids) -> None:
        """Drop the smoothing state of face tracks that ended."""
        self.smoothing.forget(track_ids)

    def predict(self, frame_bgr, face_boxes, emotion_proba, track_ids=None) -> list:
        """One result per face box (see the module docstring).

        Parameters
        ----------
        frame_bgr : (H, W, 3) uint8
        face_boxes : (K, 4) x, y, w, h in pixels
        emotion_proba : (K, 7) emotion probabilities of those faces (None: pose only)
        track_ids : (K,) ints, optional
            The faces' track ids: smooth each one's actions over frames (None: this frame only).
        """
        boxes = np.asarray(face_boxes, dtype=np.float64).reshape(-1, 4)
        if track_ids is not None:
            track_ids = np.asarray(track_ids).reshape(-1)
            if len(track_ids) != len(boxes) or len(set(track_ids.tolist())) != len(track_ids):
                raise InputError(f"track_ids must be one distinct id per face box; got {track_ids.tolist()} "
                                 f"for {len(boxes)} boxes")
        if emotion_proba is not None:
            emotion_proba = np.asarray(emotion_proba, dtype=np.float64).reshape(-1, len(EMOTIONS))
            if len(emotion_proba) != len(boxes):
                raise InputError(f"emotion_proba has {len(emotion_proba)} rows for {len(boxes)} face boxes")
        t0 = time.perf_counter()
        people = self._people_of(frame_bgr) if len(boxes) else []
        t1 = time.perf_counter()
        results: list = [None] * len(boxes)
        owner = assign_faces(boxes, people)
        matched = [i for i in range(len(boxes)) if owner[i] >= 0]
        if matched:
            new = sorted({int(owner[i]) for i in matched} - set(self._person_proba))
            if new:  # the action model runs once per person per pose estimate
                for j, row in zip(new, self.action_model.predict_proba(np.stack([people[j].joints for j in new]))):
                    self._person_proba[j] = row
            proba = np.stack([self._person_proba[int(owner[i])] for i in matched])
            emo = emotion_proba[matched] if emotion_proba is not None else None
            fused = fuse(proba, emo, self.prior, self.emotion_weight)
            if track_ids is not None:
                fused = np.stack([self.smoothing.update(int(track_ids[i]), row) for i, row in zip(matched, fused)])
            for i, item in zip(matched, top_actions(fused, k=self.top_k, min_confidence=self.min_confidence)):
                item["person_box"] = [float(v) for v in people[owner[i]].box]
                results[i] = item
        if track_ids is not None:  # a face seen without its body starts afresh when the body is found again
            self.smoothing.forget([int(track_ids[i]) for i in range(len(boxes)) if owner[i] < 0])
        self.last_timings = {"pose": 1000 * (t1 - t0), "action": 1000 * (time.perf_counter() - t1)}
        return results

    def _people_of(self, frame_bgr) -> list:
        """This frame's people: a new pose estimate every ``pose_every`` frames, else the last one."""
        if self._people is None or self._since_pose + 1 >= self.pose_every:
            self._people, self._person_proba, self._since_pose = self.pose_estimator(frame_bgr), {}, 0
        else:
            self._since_pose += 1
        return self._people


def assign_faces(face_boxes, people) -> np.ndarray:
    """Index of the person whose body box contains each face's centre (-1: none).

    When several contain it, the person whose head landmarks (the first 11 BlazePose
    points, or all of them) lie nearest the face centre wins; each person takes at most one face.
    """
    boxes = np.asarray(face_boxes, dtype=np.float64).reshape(-1, 4)
    owner = np.full(len(boxes), -1)
    if not len(people):
        return owner
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    cost = np.full((len(boxes), len(people)), np.inf)
    for j, person in enumerate(people):
        x, y, w, h = person.box
        inside = (centres[:, 0] >= x) & (centres[:, 0] <= x + w) & (centres[:, 1] >= y) & (centres[:, 1] <= y + h)
        lm = np.asarray(person.landmarks, dtype=np.float64)[:, :2]
        head = lm[:11] if len(lm) >= 33 else lm
        head = head[np.isfinite(head).all(1)]
        ref = head.mean(0) if len(head) else np.array([x + w / 2, y])
        cost[inside, j] = np.linalg.norm(centres[inside] - ref, axis=1)
    taken = set()
    for i, j in sorted(((i, j) for i in range(len(boxes)) for j in range(len(people)) if np.isfinite(cost[i, j])),
                       key=lambda ij: cost[ij]):
        if owner[i] < 0 and j not in taken:
            owner[i] = j
            taken.add(j)
    return owner


def load_action_predictor(model_uri=None, emotion_weight: float = 1.0, min_confidence: float = 0.3,
                          smoothing: ProbabilitySmoother | None = None, pose_every: int = 1) -> ActionPredictor:
    """The live action predictor: vendored BlazePose, the action model and the emotion prior.

    Parameters
    ----------
    model_uri : str, optional
        An action model (MLflow URI or model directory); None is the model shipped in
        ``emotify_ml/models/shipped/action`` (nothing is downloaded). It is scored by
        :func:`emotify_ml.actions.lean.lean_model` (its own probabilities, without sklearn's
        per-call checks) with its estimators set to one thread (one pose per frame);
        BlazePose runs on two.
    emotion_weight : float
        λ of the emotion fusion (0 = pose only).
    min_confidence : float
        Top probability below which the label is ``"uncertain"``.
    smoothing : ProbabilitySmoother, optional
        Smooths each tracked person's actions (the live app passes one with its ``--smoothing``
        settings); default: see :class:`ActionPredictor`.
    pose_every : int
        Pose estimate every this many frames (see :class:`ActionPredictor`).
    """
    from emotify_ml.actions.blazepose import BlazePose
    from emotify_ml.actions.fusion import load_action_prior
    from emotify_ml.actions.lean import lean_model
    from emotify_ml.actions.threads import set_n_jobs
    from emotify_ml.models.loading import load_action_model

    model = load_action_model(model_uri)
    set_n_jobs(model.estimator, 1)  # one pose per frame: one thread is faster
    return ActionPredictor(BlazePose(), lean_model(model), load_action_prior(),
                           emotion_weight=emotion_weight, min_confidence=min_confidence, smoothing=smoothing,
                           pose_every=pose_every)
