"""Per-frame scoring shared by every app (live, batch, the Python API, the server).

* :class:`FrameStep` (:mod:`.frame`): stateless detect → align/crop → classify of one BGR
  frame, with per-stage timings (``detect``, ``crop``, ``embed``, ``classify``);
* :class:`Stream` (:mod:`.stream`): a frame step plus tracks (:mod:`.face_tracks`),
  smoothing (:mod:`.smoothing`) and actions, for successive frames of one source;
* :class:`Faces` / :class:`Face` (:mod:`.faces`): the one result type, ``to_records()`` for JSON;
* :class:`ScoringOptions`, :class:`DetectorOptions`, :class:`StreamOptions` (:mod:`.options`):
  every default, in one place.

>>> from emotify_ml.scoring import FrameStep, ScoringOptions, Stream, StreamOptions   # doctest: +SKIP
>>> step = FrameStep(model, options=ScoringOptions(detect="always"))                   # doctest: +SKIP
>>> step.score(frame_bgr).to_records()                                                  # doctest: +SKIP
>>> Stream(step, StreamOptions()).update(frame_bgr, timestamp=t).track_ids              # doctest: +SKIP

Names are imported on first use: importing this package loads no model, detector or OpenCV.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "FrameStep": "frame", "STAGES": "frame",
    "Stream": "stream",
    "Face": "faces", "Faces": "faces",
    "ScoringOptions": "options", "DetectorOptions": "options", "StreamOptions": "options",
    "SmoothingOptions": "options", "TrackingOptions": "options", "DETECT_MODES": "options",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
