"""Headless outputs of live scoring: results as JSON lines and the annotated video."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from emotify_ml.exceptions import OutputError
from emotify_ml.scoring.faces import jsonable

__all__ = ["OutputError", "JsonlWriter", "VideoWriter", "face_record"]


def _check_parent(path: Path, flag: str) -> Path:
    path = Path(path).expanduser()
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"{flag} {str(path)!r}: {str(parent)!r} is a file, not a folder")
    if not path.parent.is_dir():
        raise OutputError(f"{flag} {str(path)!r}: the folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise OutputError(f"{flag} {str(path)!r} is a folder; give a file name")
    return path


def face_record(faces, face) -> dict:
    """The JSON line of one face (a :class:`~emotify_ml.scoring.faces.Face`) of a frame's :class:`~emotify_ml.scoring.faces.Faces`.

    Keys: ``frame``, ``timestamp`` (s), ``image`` (file name, image sources only), ``track_id``,
    ``box`` (``[x, y, w, h]`` pixels), ``score`` (detector), ``probabilities`` (this frame, per class,
    as the API and the server name them), ``smoothed`` (per class), ``label`` (smoothed arg-max),
    ``confidence``, ``raw_label``, and ``actions`` with ``--actions``.
    """
    record = {"frame": int(faces.index), "timestamp": round(float(faces.timestamp), 4)}
    if faces.name is not None:
        record["image"] = faces.name
    smoothed = face.smoothed if face.smoothed is not None else face.probabilities
    record.update({
        "track_id": None if face.track_id is None else int(face.track_id),
        "box": [round(float(v), 1) for v in face.box],
        "score": None if np.isnan(face.score) else round(float(face.score), 4),
        "probabilities": {name: round(float(p), 5) for name, p in face.probabilities.items()},
        "smoothed": {name: round(float(p), 5) for name, p in smoothed.items()},
        "label": face.label,
        "confidence": round(face.confidence, 5),
        "raw_label": face.raw_label,
    })
    if face.actions is not None:
        record["actions"] = jsonable(face.actions)
    return record


class JsonlWriter:
    """One JSON line per face per frame (see :func:`face_record`)."""

    def __init__(self, path):
        self.path = _check_parent(path, "--jsonl")
        try:
            self._fh = open(self.path, "w", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"--jsonl {str(self.path)!r}: {exc.strerror or exc}") from None
        self.n_lines = 0

    def write(self, faces) -> None:
        """Write the faces of one frame (:class:`~emotify_ml.scoring.faces.Faces`)."""
        for face in faces:
            self._fh.write(json.dumps(face_record(faces, face)) + "\n")
            self.n_lines += 1

    def close(self) -> None:
        """Flush and close (idempotent)."""
        if not self._fh.closed:
            self._fh.close()


class VideoWriter:
    """The annotated frames as a video; opened on the first frame (its size fixes the video's).

    Frames of another size (an image folder) are letterboxed to the first frame's size.
    ``.mp4`` is written with the ``mp4v`` codec, ``.avi`` with MJPG.
    """

    CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}

    def __init__(self, path, fps: float = 30.0):
        self.path = _check_parent(path, "--output")
        if self.path.suffix.lower() not in self.CODECS:
            raise OutputError(f"--output {str(self.path)!r}: unsupported video type; use one of "
                              f"{', '.join(sorted(self.CODECS))}")
        self.fps = float(fps) if fps else 30.0
        self._writer = None
        self._size = None
        self.n_frames = 0

    def write(self, image: np.ndarray) -> None:
        """Append one BGR frame."""
        if self._writer is None:
            self._size = (image.shape[1], image.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*self.CODECS[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self._size)
            if not self._writer.isOpened():
                self._writer = None
                raise OutputError(f"--output {str(self.path)!r}: OpenCV cannot write this video (codec or permissions)")
        if (image.shape[1], image.shape[0]) != self._size:
            image = _letterbox(image, self._size)
        self._writer.write(image)
        self.n_frames += 1

    def close(self) -> None:
        """Finish the file (idempotent)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def _letterbox(image: np.ndarray, size) -> np.ndarray:
    w, h = size
    scale = min(w / image.shape[1], h / image.shape[0])
    resized = cv2.resize(image, (max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))))
    canvas = np.zeros((h, w, 3), np.uint8)
    y, x = (h - resized.shape[0]) // 2, (w - resized.shape[1]) // 2
    canvas[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
    return canvas
