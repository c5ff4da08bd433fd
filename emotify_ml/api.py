"""The Python API: :func:`analyze` a picture, :func:`analyze_video` a video file.

>>> import emotify_ml
>>> faces = emotify_ml.analyze("photo.jpg")                     # doctest: +SKIP
>>> faces[0].label, faces[0].probabilities["happy"], faces[0].box   # doctest: +SKIP
>>> table = emotify_ml.analyze_video("clip.mp4", stride=5)      # doctest: +SKIP

Both run the scoring core every app shares (:class:`emotify_ml.scoring.FrameStep`), so a face
gets the same probabilities here as in live scoring, batch scoring and the MLflow model.
Each call loads the model it is given by URI; to score many pictures, load it once
(``model = emotify_ml.load_emotion_model()``) and pass it, or pass a ``FrameStep``.
"""

from __future__ import annotations

import pandas as pd

from emotify_ml.labels import EMOTIONS
from emotify_ml.scoring.faces import Face
from emotify_ml.scoring.options import ScoringOptions, SmoothingOptions, StreamOptions

__all__ = ["analyze", "analyze_video", "Face"]

VIDEO_COLUMNS = ("frame", "time_s", "face", "track_id", "x", "y", "w", "h", "score", *EMOTIONS, "label")
"""Columns of :func:`analyze_video`, one row per face per frame."""


def analyze(image_or_path, *, model=None, actions: bool = False, detect: str | None = None,
            options: ScoringOptions | None = None, tracking_uri=None) -> list[Face]:
    """The faces of one picture, with their emotions (and actions when asked).

    Parameters
    ----------
    image_or_path : str or path or bytes or numpy.ndarray
        An image file, its encoded bytes, or an (H, W, 3) BGR / (H, W) grey uint8 array.
    model : str or path or model or FrameStep, optional
        An MLflow model URI or folder, a loaded emotion model (``predict_proba``), or a ready
        :class:`~emotify_ml.scoring.FrameStep` (built with its own options: ``detect`` and ``options``
        must then be left unset). None: the champion of the tracking store, else the model shipped
        with the package.
    actions : bool
        Also predict each person's action from their body pose (loads the action model and BlazePose).
    detect : {"auto", "always", "never"}, optional
        Overrides ``options.detect``. ``auto`` (default): a picture in which no face is found is
        scored as one whole face (an already-cropped face); ``always``: detector faces only;
        ``never``: the whole picture is one face.
    options : ScoringOptions, optional
        Detector, crop margin, alignment, the views of each face (default:
        :class:`~emotify_ml.scoring.ScoringOptions` ()).
    tracking_uri : str, optional
        The MLflow tracking store to find ``model`` (or the champion) in.

    Returns
    -------
    list of :class:`~emotify_ml.scoring.Face`
        ``box`` (x, y, w, h pixels), ``score``, ``landmarks`` (5 points or None), ``probabilities``
        ({emotion: p}), ``label``, ``source`` and ``actions`` (with ``actions=True``: a dict, or None
        for a face without a detected body). Empty when ``detect="always"`` finds no face.

    Raises
    ------
    InputError
        Not a readable picture.
    ModelNotFoundError
        No model to score with.
    """
    from emotify_ml.io.frames import load_image

    frame = load_image(image_or_path)
    step = _step(model, options, detect, tracking_uri)
    faces = step.score(frame, picture=True)
    if actions and len(faces):
        from emotify_ml.actions.live import load_action_predictor

        results = load_action_predictor().predict(frame, faces.boxes, faces.probabilities)
        faces = faces.with_(actions=list(results))
    return faces.to_list()


def analyze_video(path, *, stride: int = 1, start: int = 0, end: int | None = None, model=None,
                  detect: str | None = None, options: ScoringOptions | None = None,
                  stream: StreamOptions | None = None, tracking_uri=None) -> pd.DataFrame:
    """The faces of a video's frames: one row per face per scored frame.

    Parameters
    ----------
    path : str or path
        A video file OpenCV can read.
    stride : int
        Score frames 0, stride, 2*stride... (frames between are skipped without decoding).
    start, end : int
        Score the frames ``[start, end)`` only (``end`` None: to the end).
    model, detect, options, tracking_uri
        As in :func:`analyze`; a video frame without a face has no row (no whole-frame fallback).
    stream : StreamOptions, optional
        Tracking and smoothing across the scored frames. Default: tracking on, smoothing off,
        so the probabilities are each frame's own.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`VIDEO_COLUMNS`: ``frame`` (index in the video), ``time_s`` (media time),
        ``face`` (number in its frame), ``track_id`` (the same face across frames), ``x, y, w, h``,
        ``score``, one probability column per emotion, and ``label``.

    Raises
    ------
    InputError
        Not a video OpenCV can read.
    """
    from emotify_ml.io.frames import read_video
    from emotify_ml.scoring.stream import Stream

    step = _step(model, options, detect, tracking_uri)
    scorer = Stream(step, stream if stream is not None else StreamOptions(smoothing=SmoothingOptions(method="none")))
    rows = []
    for frame in read_video(path, stride=stride, start=start, end=end):
        faces = scorer.update(frame.image, index=frame.index, timestamp=frame.timestamp)
        labels = faces.labels
        for k in range(len(faces)):
            x, y, w, h = faces.boxes[k].tolist()
            rows.append({"frame": frame.index, "time_s": frame.timestamp, "face": k, "track_id": int(faces.track_ids[k]),
                         "x": x, "y": y, "w": w, "h": h, "score": float(faces.scores[k]),
                         **dict(zip(EMOTIONS, faces.probabilities[k].tolist())), "label": labels[k]})
    table = pd.DataFrame(rows, columns=list(VIDEO_COLUMNS))
    return table.astype({"frame": "int64", "face": "int64", "track_id": "int64", "label": "string",
                         **{c: "float64" for c in ("time_s", "x", "y", "w", "h", "score", *EMOTIONS)}})


def _step(model, options, detect, tracking_uri):
    """A FrameStep from what the caller gave: a step, a loaded model, or a URI/folder/None to load."""
    from dataclasses import replace

    from emotify_ml.scoring.frame import FrameStep

    if isinstance(model, FrameStep):
        if options is not None or detect is not None:
            raise ValueError("options and detect set how a FrameStep is built; a ready FrameStep keeps its own: "
                             "build it with them (FrameStep(model, options=...)) or pass the model instead")
        return model
    options = options if options is not None else ScoringOptions()
    if detect is not None:
        options = replace(options, detect=detect)
    if model is None or isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        return FrameStep.load(model, options, tracking_uri=tracking_uri)
    if not hasattr(model, "predict_proba"):
        raise TypeError(f"model must be a URI, a folder, a model with predict_proba or a FrameStep; "
                        f"got {type(model).__name__}")
    return FrameStep(model, options=options)
