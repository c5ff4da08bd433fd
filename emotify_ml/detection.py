"""Face detection for live and batch scoring: YuNet (default) and a Haar-cascade fallback.

Both detectors take a full BGR (or grey) frame and return :class:`Detections` in
the frame's own pixel coordinates. Big frames are shrunk so that their longest
side is ``det_size`` before detection (speed scales with the pixels the detector
sees), and the boxes are scaled back. Nothing is loaded until a detector is made,
and nothing is ever downloaded: the YuNet ONNX file ships in
``emotify_ml/assets/yunet`` (MIT licence, see the README there).

>>> detector = make_detector("yunet", det_size=320, score_threshold=0.6)  # doctest: +SKIP
>>> found = detector.detect(frame_bgr)                                    # doctest: +SKIP
>>> found.boxes, found.scores, found.landmarks                            # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emotify_ml.exceptions import InputError, ModelNotFoundError
from emotify_ml.paths import PACKAGE_DIR
from emotify_ml.scoring.options import DETECTOR_KINDS, DetectorOptions

_DEFAULT = DetectorOptions()
"""The detector defaults (:class:`emotify_ml.scoring.options.DetectorOptions`, their one home)."""

YUNET_MODEL = PACKAGE_DIR / "assets" / "yunet" / "face_detection_yunet_2026may.onnx"
"""The vendored YuNet ONNX model (OpenCV Zoo, MIT)."""

HAAR_CASCADE = "haarcascade_frontalface_default.xml"
"""The frontal-face cascade shipped with OpenCV (``cv2.data.haarcascades``)."""

YUNET_MIN_SIDE = 160
"""Frames whose longest side is smaller are enlarged to it before YuNet looks: on 31-46 px photos of whole faces
(muxspace_dev) it then finds every face, where at their own size it found none or, from run to run, some."""

DETECTORS = DETECTOR_KINDS
"""Detector kinds accepted by :func:`make_detector`."""


@dataclass(frozen=True)
class Detections:
    """Faces found in one frame.

    Attributes
    ----------
    boxes : (K, 4) float32
        ``x, y, w, h`` in frame pixels (top-left corner, width, height).
    scores : (K,) float32
        Detector confidence in [0, 1] (YuNet); 1.0 for every Haar box, which has no score.
    landmarks : (K, 5, 2) float32 or None
        Right eye, left eye, nose tip, right and left mouth corners (subject's view), in
        frame pixels; None when the detector gives none (Haar).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def eyes(self) -> np.ndarray | None:
        """(K, 2, 2) eye centres (right eye, left eye) for face alignment, or None."""
        return None if self.landmarks is None else self.landmarks[:, :2]

    @classmethod
    def empty(cls, with_landmarks: bool = True) -> "Detections":
        """No face."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   np.zeros((0, 5, 2), np.float32) if with_landmarks else None)


def _check_frame(frame) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        raise InputError(f"frame must be an (H, W) grey or (H, W, 3) BGR uint8 image; "
                         f"got {frame.dtype} array of shape {frame.shape}")
    if min(frame.shape[:2]) < 16:
        raise InputError(f"frame must be at least 16x16 pixels; got {frame.shape[1]}x{frame.shape[0]}")
    return frame


def _shrink(frame: np.ndarray, det_size) -> tuple[np.ndarray, float]:
    """The frame scaled so that its longest side is at most ``det_size``, and the scale applied."""
    h, w = frame.shape[:2]
    if not det_size or max(h, w) <= det_size:
        return frame, 1.0
    scale = det_size / max(h, w)
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), scale


def _check_det_size(det_size, name: str = "det_size"):
    if det_size is not None and (not isinstance(det_size, (int, np.integer)) or det_size < 32):
        raise ValueError(f"{name} must be an int >= 32 (longest side in pixels) or None; got {det_size!r}")


class YuNetDetector:
    """Multi-face detection with the YuNet ONNX model through ``cv2.FaceDetectorYN``.

    Parameters
    ----------
    model_path : str or path, optional
        A YuNet ONNX file; None is the model vendored with the package.
    det_size : int or None, default=320
        Longest side, in pixels, of the image the detector sees; bigger frames are shrunk
        first (faster), smaller ones are used as they are. None: always the full frame.
        Faces smaller than about 10 pixels at this scale are missed.
    score_threshold : float, default=0.6
        Minimum face score.
    retry_size : int or None, default=640
        Longest side of a second, finer look at a frame shrunk for the first one, taken only when
        the first finds no face scoring ``retry_below`` or more. When the second look's best face
        scores higher, its faces are returned, with those of the first look that none of them
        overlaps; else the first look's. Faces that shrinking leaves small (about 100 px and under)
        are found far more often at the finer size; frames with a confident face pay nothing, frames
        without one (faceless, or only faint faces) pay for both looks. None, or not larger than
        ``det_size``: one look.
    retry_below : float or None
        Best-face score under which the second look is taken (None: ``score_threshold``, i.e.
        only when the first look finds nothing).
    nms_threshold : float, default=0.3
        IoU above which overlapping boxes are merged.
    top_k : int, default=50
        Most faces kept before non-maximum suppression.

    Examples
    --------
    >>> detector = YuNetDetector(det_size=320)
    >>> len(detector.detect(np.zeros((480, 640, 3), np.uint8)))
    0
    """

    def __init__(self, model_path=None, *, det_size: int | None = _DEFAULT.det_size,
                 score_threshold: float = _DEFAULT.score_threshold, retry_size: int | None = _DEFAULT.retry_size,
                 retry_below: float | None = None, nms_threshold: float = 0.3, top_k: int = 50):
        self.model_path = model_path
        self.det_size = det_size
        self.score_threshold = score_threshold
        self.retry_size = retry_size
        self.retry_below = retry_below
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        _check_det_size(det_size)
        _check_det_size(retry_size, "retry_size")
        if not 0.0 <= float(score_threshold) <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1]; got {score_threshold!r}")
        if retry_below is not None and (isinstance(retry_below, bool) or not 0.0 <= float(retry_below) <= 1.0):
            raise ValueError(f"retry_below must be in [0, 1] or None; got {retry_below!r}")
        path = Path(model_path) if model_path is not None else YUNET_MODEL
        if not path.is_file():
            raise ModelNotFoundError(f"YuNet model {str(path)!r} does not exist"
                                     + ("" if model_path else "; the package install is incomplete (emotify_ml/assets/yunet)"))
        self._path = path
        self._nets: dict[str, list] = {}  # one net per look, each keeping its input size
        self._net("first")

    def _net(self, look: str) -> list:
        """``[net, input size]`` for ``look`` ("first" or "retry"), made on first use."""
        if look not in self._nets:
            try:
                net = cv2.FaceDetectorYN.create(str(self._path), "", (320, 320), float(self.score_threshold),
                                                float(self.nms_threshold), int(self.top_k))
            except cv2.error as exc:
                raise ModelNotFoundError(f"cannot load YuNet model {str(self._path)!r}: "
                                         f"{str(exc).strip().splitlines()[-1]}") from None
            self._nets[look] = [net, (320, 320)]
        return self._nets[look]

    def detect(self, frame) -> Detections:
        """Find faces in an (H, W, 3) BGR or (H, W) grey uint8 frame (a second, finer look: ``retry_size``)."""
        frame = _check_frame(frame)
        if frame.ndim == 2 or frame.shape[2] == 1:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        found = self._look(frame, self.det_size, "first")
        best = float(found.scores.max()) if len(found) else -1.0
        below = self.score_threshold if self.retry_below is None else self.retry_below
        if (best < float(below) and self.retry_size and self.det_size
                and max(frame.shape[:2]) > self.det_size and self.retry_size > self.det_size):
            again = self._look(frame, self.retry_size, "retry")
            if len(again) and float(again.scores.max()) > best:
                return _joined(again, found)
        return found

    def _look(self, frame: np.ndarray, det_size, look: str) -> Detections:
        """The faces YuNet finds in ``frame`` shrunk to ``det_size``, in frame pixels."""
        small, scale = _shrink(frame, det_size)
        if max(small.shape[:2]) < YUNET_MIN_SIDE:  # a thumbnail: YuNet finds faces that fill it only when enlarged
            up = YUNET_MIN_SIDE / max(small.shape[:2])
            small = cv2.resize(small, (max(1, round(small.shape[1] * up)), max(1, round(small.shape[0] * up))),
                               interpolation=cv2.INTER_LINEAR)
            scale *= up
        size = (small.shape[1], small.shape[0])
        slot = self._net(look)
        if size != slot[1]:
            slot[0].setInputSize(size)
            slot[1] = size
        _, faces = slot[0].detect(small)
        if faces is None or len(faces) == 0:
            return Detections.empty()
        faces = faces[_overlaps_frame(faces[:, :4], small.shape[1], small.shape[0])]
        if len(faces) == 0:
            return Detections.empty()
        coords = faces[:, :14].astype(np.float32) / np.float32(scale)  # back to frame pixels
        return Detections(boxes=np.ascontiguousarray(coords[:, :4]),
                          scores=np.ascontiguousarray(faces[:, 14], dtype=np.float32),
                          landmarks=np.ascontiguousarray(coords[:, 4:14].reshape(-1, 5, 2)))

    def __repr__(self) -> str:
        return (f"YuNetDetector(det_size={self.det_size}, score_threshold={self.score_threshold}, "
                f"retry_size={self.retry_size}, retry_below={self.retry_below}, nms_threshold={self.nms_threshold})")


class HaarDetector:
    """Frontal-face Haar cascade of OpenCV, the fallback when YuNet cannot be used.

    Slower and less accurate than YuNet, gives no landmarks (so no alignment) and no score.

    Parameters
    ----------
    cascade_path : str or path, optional
        A cascade XML; None is ``haarcascade_frontalface_default.xml`` from ``cv2.data.haarcascades``.
    det_size : int or None, default=320
        Longest side of the image the cascade scans (see :class:`YuNetDetector`).
    scale_factor : float, default=1.2
        Image pyramid step (smaller: finds more sizes, slower).
    min_neighbors : int, default=5
        Overlapping hits needed to keep a face (higher: fewer false faces).
    min_size : int, default=24
        Smallest face side in pixels, at detection scale.
    """

    def __init__(self, cascade_path=None, *, det_size: int | None = _DEFAULT.det_size, scale_factor: float = 1.2,
                 min_neighbors: int = 5, min_size: int = 24):
        self.cascade_path = cascade_path
        self.det_size = det_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        _check_det_size(det_size)
        if cascade_path is None:
            folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
            if not folder:
                raise ModelNotFoundError("this OpenCV build ships no Haar cascades (cv2.data.haarcascades is missing); "
                                         "pass cascade_path, or use the YuNet detector")
            cascade_path = Path(folder) / HAAR_CASCADE
        path = Path(cascade_path)
        self._cascade = cv2.CascadeClassifier(str(path)) if path.is_file() else None
        if self._cascade is None or self._cascade.empty():
            raise ModelNotFoundError(f"cannot load the Haar cascade {str(path)!r}")

    def detect(self, frame) -> Detections:
        """Find faces in an (H, W, 3) BGR or (H, W) grey uint8 frame."""
        frame = _check_frame(frame)
        grey = frame if frame.ndim == 2 else (frame[..., 0] if frame.shape[2] == 1 else
                                               cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if frame.shape[2] == 3
                                                            else cv2.COLOR_BGRA2GRAY))
        small, scale = _shrink(grey, self.det_size)
        small = cv2.equalizeHist(small)
        found = self._cascade.detectMultiScale(small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                               minSize=(self.min_size, self.min_size))
        if len(found) == 0:
            return Detections.empty(with_landmarks=False)
        boxes = _drop_nested(np.asarray(found, np.float32)) / np.float32(scale)
        return Detections(boxes=boxes, scores=np.ones(len(boxes), np.float32), landmarks=None)

    def __repr__(self) -> str:
        return f"HaarDetector(det_size={self.det_size}, min_neighbors={self.min_neighbors})"


def _joined(main: Detections, other: Detections, overlap: float = 0.3) -> Detections:
    """``main``'s faces, then those of ``other`` that overlap none of them (IoU below ``overlap``)."""
    from emotify_ml.scoring.face_tracks import iou_matrix

    if not len(other):
        return main
    extra = iou_matrix(other.boxes, main.boxes).max(axis=1) < overlap
    if not extra.any():
        return main
    landmarks = None if main.landmarks is None or other.landmarks is None else \
        np.concatenate([main.landmarks, other.landmarks[extra]])
    return Detections(np.concatenate([main.boxes, other.boxes[extra]]),
                      np.concatenate([main.scores, other.scores[extra]]), landmarks)


def _overlaps_frame(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(K,) bool: the box's centre lies in the frame. YuNet can place a box wholly off a small image (seen on a 31x40
    photo), which no crop can be cut from."""
    cx = boxes[:, 0] + boxes[:, 2] / 2.0
    cy = boxes[:, 1] + boxes[:, 3] / 2.0
    return (boxes[:, 2] > 0) & (boxes[:, 3] > 0) & (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)


def _drop_nested(boxes: np.ndarray, overlap: float = 0.6) -> np.ndarray:
    """Drop boxes lying mostly (``overlap`` of their area) inside a bigger one: the cascade often finds a face twice."""
    order = np.argsort(-(boxes[:, 2] * boxes[:, 3]))
    kept: list[np.ndarray] = []
    for box in boxes[order]:
        x0, y0, w, h = box
        nested = False
        for big in kept:
            iw = min(x0 + w, big[0] + big[2]) - max(x0, big[0])
            ih = min(y0 + h, big[1] + big[3]) - max(y0, big[1])
            if iw > 0 and ih > 0 and iw * ih >= overlap * w * h:
                nested = True
                break
        if not nested:
            kept.append(box)
    return np.stack(kept)


def make_detector(kind: str = _DEFAULT.kind, **kwargs):
    """Make a face detector.

    Parameters
    ----------
    kind : {"yunet", "haar"}
        YuNet (default: accurate, fast, gives eye landmarks) or the Haar cascade fallback.
    **kwargs
        Passed to :class:`YuNetDetector` or :class:`HaarDetector` (``det_size``,
        ``score_threshold``, ``min_neighbors``...).

    Returns
    -------
    YuNetDetector or HaarDetector
        An object whose ``detect(frame_bgr)`` returns :class:`Detections`.

    Raises
    ------
    ModelNotFoundError
        The detector's model file cannot be found or loaded.
    """
    classes = {"yunet": YuNetDetector, "haar": HaarDetector}
    if kind not in classes:
        raise ValueError(f"kind must be one of {', '.join(DETECTORS)}; got {kind!r}")
    return classes[kind](**kwargs)
