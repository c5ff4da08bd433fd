"""The server's one adapter over the scoring core: a frame in, face records out.

The HTTP routes and the websocket never touch detectors, crops or models: they call

* :meth:`Engine.analyze` for a stateless request (one picture: a
  :class:`~emotify_ml.scoring.FrameStep`, no tracking or smoothing);
* :meth:`Engine.open_stream` for a websocket connection or a video upload: a fresh
  :class:`~emotify_ml.scoring.Stream` (its own tracks, smoothing and action smoothing), so a
  new connection starts clean.

Both take the class prior of the request (``prior``: a name in
:data:`~emotify_ml.scoring.prior.PRIORS`; None, the server's own, ``--prior``): the same frame
step, scoring options and detector otherwise, so a request under the server's prior and one that
names it get the same answer.

Both return the scoring core's face records (:meth:`emotify_ml.scoring.Faces.to_records`):
``box`` ``[x, y, w, h]``, ``score``, ``landmarks``, ``probabilities`` ``{label: p}`` (this
frame's), ``label``, and for streams ``track_id`` and ``smoothed``; ``actions`` when asked for.
The frames of an uploaded video come from :class:`emotify_ml.io.frames.VideoFile` (stride,
maximum duration), the one video reader of every app.

The engine is shared by the worker threads of the server's pool. The model is shared (its
``predict_proba`` is thread-safe); each worker thread has its own face detector (OpenCV's
``FaceDetectorYN`` keeps per-call state) and its own frame step for each prior it has been asked
for, and the action predictor, loaded on first use, is called under a lock.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotify_ml.labels import EMOTIONS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What ``GET /v1/model`` reports and the start-up line prints.

    Attributes
    ----------
    name : str
        Registered model name, or a short name of the folder.
    version : str or None
        Registry version (None for a model that was never registered).
    classes : tuple of str
    runtime : str
        The model's own ``runtime`` (``"keras"``, ``"litert-int8"``...), else ``"keras"`` for a
        pipeline with a CNN feature step and ``"sklearn"`` without.
    source : str
        ``"champion"``, ``"shipped"`` or ``"given"`` (``--model``).
    uri : str
        The exact URI or folder it was loaded from.
    """

    name: str
    version: str | None
    classes: tuple[str, ...] = EMOTIONS
    runtime: str = "sklearn"
    source: str = "given"
    uri: str = "<in memory>"

    def describe(self) -> str:
        """One line, e.g. ``shipped model .../emotion (emotify-emotion v3, keras)``."""
        version = f" v{self.version}" if self.version else ""
        return f"{self.source} model {self.uri} ({self.name}{version}, {self.runtime})"


class Engine:
    """Score frames for the server.

    Parameters
    ----------
    model : object with ``predict_proba(faces) -> (N, 7)``
        An emotion model (:func:`emotify_ml.load_emotion_model`).
    info : ModelInfo, optional
        Described from the model when omitted.
    scoring : ScoringOptions, optional
        Default: :class:`~emotify_ml.scoring.ScoringOptions` with ``detect="always"`` (a picture
        without a face has no face, never a whole-picture one).
    stream : StreamOptions, optional
        Tracking and smoothing of each stream (default: the scoring core's defaults).
    detector_factory : callable, optional
        ``detector_factory() -> detector``, called once per worker thread; default:
        ``scoring.detector.make()``.
    action_loader : callable, optional
        ``action_loader() -> ActionPredictor``, called once, on the first request for actions;
        default: :func:`emotify_ml.actions.live.load_action_predictor`.
    """

    def __init__(self, model, *, info: ModelInfo | None = None, scoring=None, stream=None, detector_factory=None,
                 action_loader=None):
        from emotify_ml.scoring.options import ScoringOptions, StreamOptions

        self.model = model
        self.info = info if info is not None else describe_model(model)
        self.scoring = (scoring if scoring is not None else ScoringOptions(detect="always")).check()
        self.stream_options = (stream if stream is not None else StreamOptions()).check()
        self._detector_factory = detector_factory or self.scoring.detector.make
        self._action_loader = action_loader
        self._local = threading.local()
        self._actions = None
        self._actions_lock = threading.Lock()
        self._load_lock = threading.Lock()

    @property
    def prior(self) -> str:
        """The name of the server's own prior (``scoring.prior``); ``"custom"`` for a mapping."""
        prior = self.scoring.prior
        return prior if isinstance(prior, str) else "custom"

    def check_prior(self, prior) -> None:
        """Raise ``ValueError`` unless ``prior`` is None (the server's own) or a name in :data:`PRIORS`."""
        from emotify_ml.scoring.prior import PRIORS

        if prior is not None and (not isinstance(prior, str) or prior not in PRIORS):
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}; got {prior!r}")

    def step(self, prior: str | None = None):
        """This thread's :class:`~emotify_ml.scoring.FrameStep` for ``prior`` (None: the server's own).

        The thread's steps share its detector and the engine's model; they differ only in their prior.
        ``prior`` is checked when its step is made (once a thread), not on every call: a stream looks its
        step up on every frame.
        """
        steps = getattr(self._local, "steps", None)
        if steps is None:
            steps = self._local.steps = {}
        key = None if prior is None or prior == self.scoring.prior else prior
        step = steps.get(key)
        if step is None:
            from dataclasses import replace

            from emotify_ml.scoring.frame import FrameStep

            self.check_prior(prior)
            if not hasattr(self._local, "detector"):
                self._local.detector = self._detector_factory()
            options = self.scoring if key is None else replace(self.scoring, prior=key)
            step = steps[key] = FrameStep(self.model, self._local.detector, options)
        return step

    def actions(self):
        """The shared action predictor, loaded on first use (raises ModelNotFoundError when it cannot be)."""
        with self._load_lock:
            if self._actions is None:
                loader = self._action_loader
                if loader is None:
                    from emotify_ml.actions.live import load_action_predictor as loader
                self._actions = loader()
        return self._actions

    # -- what the routes call ----------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Score a blank frame once (graph tracing, allocations), so the first request is not slow."""
        self.step().warm_up()

    def analyze(self, frame: np.ndarray, *, actions: bool = False, prior: str | None = None
                ) -> tuple[list[dict], dict]:
        """Faces of one picture, with no state kept: (records, per-stage milliseconds).

        Raises
        ------
        InputError
            The frame is not a BGR/grey uint8 image of at least 16x16 pixels.
        ValueError
            ``prior`` is not None or a name in :data:`~emotify_ml.scoring.prior.PRIORS`.
        """
        if actions:
            faces = self.open_stream(actions=True, prior=prior)._stream.update(frame, picture=True)
        else:
            faces = self.step(prior).score(frame, picture=True)
        records = [_stateless(record, actions) for record in faces.to_records()]
        return records, dict(faces.timings)

    def open_stream(self, *, actions: bool = False, prior: str | None = None) -> "FaceStream":
        """A fresh per-connection stream: its own tracks, smoothing and (``actions``) action smoothing,
        its faces scored under ``prior`` (None: the server's own)."""
        from emotify_ml.scoring.stream import Stream

        self.check_prior(prior)
        predictor = _LockedActions(self.actions(), self._actions_lock, self.stream_options) if actions else None
        return FaceStream(Stream(_ThreadStep(self, prior), self.stream_options, actions=predictor))


class FaceStream:
    """Successive frames of one source (a websocket connection, an uploaded video).

    Not thread-safe: feed it one frame at a time (from any thread).
    """

    def __init__(self, stream):
        self._stream = stream
        self.frames = 0

    def update(self, frame: np.ndarray, timestamp: float = 0.0) -> tuple[list[dict], dict]:
        """Faces of the next frame with track ids and smoothed probabilities: (records, ms per stage)."""
        faces = self._stream.update(frame, index=self.frames, timestamp=timestamp)
        self.frames += 1
        asked = self._stream.actions is not None
        records = faces.to_records()
        for record in records:
            record.pop("source", None)
            if not asked:
                record.pop("actions", None)
            _tidy(record)
        return records, dict(faces.timings)

    def reset(self) -> None:
        """Forget every track (the next frame starts clean)."""
        self._stream.reset()

    @property
    def flicker(self) -> dict:
        """Label changes per second of face time, raw and smoothed."""
        return self._stream.flicker.summary()


def _stateless(record: dict, actions: bool) -> dict:
    for key in ("source", "track_id", "smoothed"):
        record.pop(key, None)
    if not actions:
        record.pop("actions", None)
    return _tidy(record)


def _tidy(record: dict) -> dict:
    """Round for JSON: pixels to 0.01, scores to 1e-4, probabilities to 1e-6."""
    record["box"] = [round(v, 2) for v in record["box"]]
    if record.get("score") is not None:
        record["score"] = round(record["score"], 4)
    if record.get("landmarks") is not None:
        record["landmarks"] = [[round(v, 2) for v in point] for point in record["landmarks"]]
    for key in ("probabilities", "smoothed"):
        if record.get(key) is not None:
            record[key] = {name: round(p, 6) for name, p in record[key].items()}
    return record


class _ThreadStep:
    """Stands in for a frame step: each call uses the calling thread's own step (and detector) for ``prior``."""

    def __init__(self, engine: Engine, prior: str | None = None):
        self._engine = engine
        self._prior = prior

    def __getattr__(self, name):
        return getattr(self._engine.step(self._prior), name)


class _LockedActions:
    """One connection's action predictor: the shared pose estimator and action model, called under a lock,
    with this connection's own state (smoothing, and the last pose estimate that ``pose_every`` reuses).

    The predictor is copied once per connection, not per frame, so ``pose_every > 1`` skips
    pose estimates as in the live app. The shared pose estimator is reset before each frame,
    so one connection's body track never leaks into another's.
    """

    def __init__(self, predictor, lock, options):
        self._lock = lock
        self.smoothing = options.smoothing.make()
        self.last_timings: dict[str, float] = {}
        self._mine = copy.copy(predictor)
        if hasattr(self._mine, "smoothing"):
            self._mine.smoothing = self.smoothing
        with lock:
            reset = getattr(self._mine, "reset", None)
            if reset is not None:  # this copy's own people cache (a fresh dict), not the shared one
                reset()

    def predict(self, frame, boxes, proba, track_ids=None):
        mine = self._mine
        with self._lock:
            reset = getattr(getattr(mine, "pose_estimator", None), "reset", None)
            if reset is not None:
                reset()
            results = mine.predict(frame, boxes, proba, track_ids=track_ids)
            self.last_timings = dict(getattr(mine, "last_timings", {}) or {})
        return results

    def forget(self, track_ids) -> None:
        self.smoothing.forget(track_ids)

    def reset(self) -> None:
        self.smoothing.reset()


# -- loading ------------------------------------------------------------------------------------------------
def describe_model(model, *, source: str = "given") -> ModelInfo:
    """A :class:`ModelInfo` from the model's own attributes (``name``, ``version``, ``runtime``, ``source``),
    else from its URI and the ``provenance.json`` of a shipped model folder."""
    import json

    uri = str(getattr(model, "source", None) or "<in memory>")
    version = getattr(model, "version", None)
    name = getattr(model, "name", None)
    provenance = Path(uri) / "provenance.json" if uri != "<in memory>" else None
    if (name is None or version is None) and provenance is not None and provenance.is_file():
        try:
            registered = str(json.loads(provenance.read_text(encoding="utf-8")).get("registered_version") or "")
        except (OSError, ValueError):
            registered = ""
        if "/" in registered:
            reg_name, reg_version = registered.rsplit("/", 1)
            name, version = name or reg_name, version or reg_version
    if name is None:
        if uri.startswith("models:/"):
            name = uri[len("models:/"):].split("/")[0].split("@")[0]
        else:
            name = Path(uri).name or uri
    found = (getattr(model, "classes_", None), getattr(model, "class_names", None))
    classes = next((c for c in found if c is not None), EMOTIONS)
    classes = tuple(str(c) for c in classes)
    return ModelInfo(name=str(name), version=None if version is None else str(version), classes=classes,
                     runtime=str(getattr(model, "runtime", None) or _runtime(model)), source=source, uri=uri)


def _runtime(model) -> str:
    pipeline = getattr(model, "pipeline", None)
    steps = getattr(pipeline, "steps", None) or []
    names = " ".join(type(step).__name__ for _, step in steps)
    return "keras" if "CNN" in names or "Backbone" in names else "sklearn"


def load_engine(model_uri=None, *, tracking_uri=None, scoring=None, stream=None, allow_remote: bool = False) -> Engine:
    """Load the model (``model_uri``; default the champion, else the shipped model) into an :class:`Engine`.

    ``allow_remote`` allows a remote ``model_uri`` or tracking store (``--allow-remote-model``).

    Raises
    ------
    ModelError
        No model at ``model_uri``, neither a champion nor a shipped model, a model of another
        kind, or one refused (remote without ``allow_remote``, a pickle).
    """
    from emotify_ml.models.loading import load_emotion_model, model_origin

    model = load_emotion_model(model_uri, tracking_uri=tracking_uri, allow_remote=allow_remote)
    return Engine(model, info=describe_model(model, source=model_origin(model, model_uri)), scoring=scoring,
                  stream=stream)
