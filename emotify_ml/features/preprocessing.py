"""Face preprocessing shared by training, batch scoring and live scoring.

Every path from pixels to features goes through :func:`to_model_input` (crops
of any size and colour to the model's grey square) and, for full frames,
:func:`crop_face` / :func:`crop_faces` (a detector box grown by a margin, clipped to the
frame, and rotated to level the eyes when eye landmarks are given). Keeping
both in one place is what guarantees that live and batch see identical inputs.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from emotify_ml.exceptions import InputError

FACE_SIZE = 48
"""Side of the square grey face the models are trained on (FER-2013 native size)."""

DEFAULT_MARGIN = 0.0
"""Fraction of the box size added on each side of a detector box: 0, the crop is the box's own square.

Measured (``benchmarks/framing.py``, ``benchmarks/results/framing.json``): YuNet on 3,000 FER-2013
training faces upscaled 4x (192 px, padded) finds a box whose longer side (the height; h/w median
1.30) is the FER-2013 crop's side: crop side / max(w, h) median 0.996 (p25-p75 0.88-1.13; 1.04 at
2x, 96 px), i.e. margin -0.002 (0.02 at 2x). The crop's centre sits on the box's centre: offset
+0.018 of the box height at 4x, -0.027 at 2x (p25-p75 -0.05..+0.06), horizontally 0.002, so no
offset is applied. The eyes then fall at 38 % of the crop's height, 35 % of its width apart, as in
FER-2013. The margin of 0.15 used before framed faces 30 % wider than training saw them: on the
in-the-wild photos of muxspace_dev, the shipped model's macro-F1 through the product path rose
from 0.328 to 0.370 with margin 0 (docs/accuracy.md)."""


def validate_faces(faces) -> np.ndarray:
    """Check that ``faces`` is a batch of uint8 face crops and return it as an array.

    Accepts (N, H, W) grey or (N, H, W, 3) BGR uint8 arrays (a list of equally
    sized crops is stacked). Raises :class:`InputError` naming what was wrong.
    """
    if isinstance(faces, np.ndarray) and faces.dtype == object:
        # a batch of separate crops (what MLflow's object-tensor signature hands over)
        try:
            faces = [np.asarray(f) for f in faces] if faces.ndim == 1 else faces.astype(np.float64)
        except (TypeError, ValueError):
            raise InputError("faces is an object array that does not hold numbers; pass uint8 face crops") from None
    if isinstance(faces, (list, tuple)):
        if len(faces) == 0:
            raise InputError("faces is an empty list; expected at least one face crop")
        shapes = {np.shape(f) for f in faces}
        if len(shapes) != 1:
            return [validate_faces(np.asarray(f)[None])[0] for f in faces]  # ragged: check each
        faces = np.stack([np.asarray(f) for f in faces])
    faces = np.asarray(faces)
    if faces.ndim not in (3, 4) or (faces.ndim == 4 and faces.shape[-1] not in (1, 3)):
        raise InputError(
            f"faces must be (N, H, W) grey or (N, H, W, 3) BGR uint8; got shape {faces.shape}"
        )
    if faces.shape[0] == 0:
        raise InputError("faces is empty (N = 0); expected at least one face crop")
    if min(faces.shape[1:3]) < 8:
        raise InputError(f"face crops must be at least 8x8 pixels; got {faces.shape[1]}x{faces.shape[2]}")
    if faces.dtype != np.uint8:
        if np.issubdtype(faces.dtype, np.floating) or np.issubdtype(faces.dtype, np.integer):
            if np.issubdtype(faces.dtype, np.floating) and not np.isfinite(faces).all():
                bad = int((~np.isfinite(faces)).reshape(len(faces), -1).any(1).sum())
                raise InputError(f"faces hold NaN or infinite pixels ({bad} of {len(faces)} faces); "
                                 "pass uint8 pixels in [0, 255]")
            lo, hi = (float(faces.min()), float(faces.max()))
            if lo < 0 or hi > 255:
                raise InputError(
                    f"faces must be uint8 in [0, 255]; got {faces.dtype} with values in [{lo:g}, {hi:g}]"
                )
            if np.issubdtype(faces.dtype, np.floating) and hi <= 1.0 and faces.size > 1 and hi > 0:
                raise InputError(
                    f"faces look scaled to [0, 1] ({faces.dtype}); pass uint8 pixels in [0, 255]"
                )
            faces = faces.astype(np.uint8)
        else:
            raise InputError(f"faces must be uint8; got dtype {faces.dtype}")
    return faces


def to_grey_square(face: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Convert one crop (H, W), (H, W, 1) or (H, W, 3) BGR to a (size, size) grey uint8 image."""
    if face.ndim == 3:
        face = face[..., 0] if face.shape[-1] == 1 else cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    h, w = face.shape
    if (h, w) == (size, size):
        return np.ascontiguousarray(face)
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(face, (size, size), interpolation=interp)


def to_model_input(faces, size: int = FACE_SIZE) -> np.ndarray:
    """Turn a batch of face crops into the (N, size, size) grey uint8 model input.

    Parameters
    ----------
    faces : array-like
        (N, H, W) grey or (N, H, W, 3) BGR uint8 crops of any H x W, or a list of crops.
    size : int
        Output side in pixels.

    Returns
    -------
    numpy.ndarray
        (N, size, size) uint8.

    Examples
    --------
    >>> to_model_input(np.zeros((2, 96, 80, 3), np.uint8)).shape
    (2, 48, 48)
    """
    faces = validate_faces(faces)
    if not isinstance(faces, list) and faces.ndim == 3 and faces.shape[1:] == (size, size):
        return np.ascontiguousarray(faces)
    return np.stack([to_grey_square(f, size) for f in faces])


def square_box(box, margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """Grow an (x, y, w, h) box by ``margin`` on each side and make it square (same centre)."""
    x, y, w, h = (float(v) for v in box[:4])
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    return (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side)), int(round(side)))


def eye_angle(eyes) -> float:
    """Tilt of the eye line in degrees: the rotation that makes the eyes level.

    Parameters
    ----------
    eyes : array-like (2, 2)
        ``[[x, y], [x, y]]`` of the eye on the image's left (the subject's right eye, YuNet's
        first landmark) and the eye on the image's right.

    Returns
    -------
    float
        Angle of the line from the first to the second eye; positive when the second eye is lower
        (the head leans to the image's right, y pointing down).

    Examples
    --------
    >>> eye_angle([[10, 20], [30, 20]])
    0.0
    """
    (x0, y0), (x1, y1) = np.asarray(eyes, dtype=np.float64)[:2]
    return float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))


def crop_face(frame: np.ndarray, box, margin: float = DEFAULT_MARGIN, eyes=None) -> np.ndarray:
    """Cut a square face crop around a detector box from a frame.

    The box is grown by ``margin`` and squared; parts outside the frame are
    filled by replicating the border, so a face at the edge keeps its aspect.
    Returns a crop with the frame's channels (grey or BGR).

    Parameters
    ----------
    frame : (H, W) or (H, W, C) uint8
    box : (x, y, w, h)
        Detector box in frame pixels.
    margin : float
        Fraction of the box size added on each side (:data:`DEFAULT_MARGIN`).
    eyes : (2, 2) array-like, optional
        Eye centres (see :func:`eye_angle`). When given, the square is rotated about the
        box's centre by the tilt of the eye line, so the eyes are level in the crop (face
        alignment); a level pair gives exactly the unaligned crop. (The box's centre, not the
        square's rounded one: so the squares of every margin turn about the same point, and
        each is a square of the widest, see :func:`crop_views`.)

    Examples
    --------
    >>> frame = np.zeros((120, 160, 3), np.uint8)
    >>> crop_face(frame, (40, 30, 50, 60)).shape
    (60, 60, 3)
    >>> crop_face(frame, (40, 30, 50, 60), margin=0.15, eyes=[[55, 50], [75, 54]]).shape
    (78, 78, 3)
    """
    x, y, s, _ = square_box(box, margin)
    h, w = frame.shape[:2]
    if s <= 0:
        raise InputError(f"face box must have a positive size; got {tuple(box)}")
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + s, w), min(y + s, h)
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"face box {tuple(box)} lies outside the {w}x{h} frame")
    if eyes is not None:
        angle = eye_angle(eyes)
        if angle != 0.0:
            bx, by, bw, bh = (float(v) for v in box[:4])
            return _rotated_crop(frame, (x, y, s), angle, (bx + bw / 2.0, by + bh / 2.0))
    crop = frame[y0:y1, x0:x1]
    pads = (y0 - y, (y + s) - y1, x0 - x, (x + s) - x1)
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, borderType=cv2.BORDER_REPLICATE)
    return crop


def _rotated_crop(frame: np.ndarray, square, angle: float, centre) -> np.ndarray:
    """The ``(x, y, side)`` square of ``frame`` turned by ``angle`` degrees about ``centre`` (x, y)."""
    x, y, s = square
    matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
    matrix[:, 2] -= (x, y)  # the square's corner becomes the crop's origin
    crop = cv2.warpAffine(frame, matrix, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop[..., None] if frame.ndim == 3 and crop.ndim == 2 else crop


def crop_faces(frame: np.ndarray, boxes, margin=DEFAULT_MARGIN, size: int = FACE_SIZE, eyes=None) -> np.ndarray:
    """Crop every box of a frame and return the grey model input.

    ``margin`` a number: (N, size, size), one crop a box. A sequence of M margins: (N, M, size,
    size), each box cropped at every margin (the views a frame step averages); they are cut from
    one crop at the widest margin (:func:`crop_views`). ``eyes`` (N, 2, 2), optional, aligns each
    face as in :func:`crop_face`. This is the one function from frames to model input, shared by
    live and batch scoring.
    """
    margins = None if np.ndim(margin) == 0 else [float(m) for m in margin]
    if len(boxes) == 0:
        return np.zeros((0, size, size) if margins is None else (0, len(margins), size, size), np.uint8)
    if eyes is not None and len(eyes) != len(boxes):
        raise InputError(f"eyes must give one (2, 2) pair per box; got {len(eyes)} for {len(boxes)} boxes")
    pairs = eyes if eyes is not None else [None] * len(boxes)
    if margins is None or len(margins) == 1:  # one margin: no widest crop to share
        one = np.stack([to_grey_square(crop_face(frame, b, margin if margins is None else margins[0], e), size)
                        for b, e in zip(boxes, pairs)])
        return one if margins is None else one[:, None]
    return np.stack([crop_views(frame, b, margins, size, e) for b, e in zip(boxes, pairs)])


def crop_views(frame: np.ndarray, box, margins, size: int = FACE_SIZE, eyes=None) -> np.ndarray:
    """(M, size, size) grey crops of one box at each of ``margins``, cut from one crop at the widest.

    The squares of every margin are centred on the box and turn about its centre, so each is a
    square of the widest one: one rotation (given ``eyes``) and one grey conversion serve them all,
    and each view is :func:`crop_face` at its margin (exactly, unrotated; rotated, up to OpenCV's
    fixed-point rounding of the source coordinates, at most a grey level here and there).
    """
    widest = max(margins)
    big = crop_face(frame, box, widest, eyes)
    if big.ndim == 3:
        big = big[..., 0] if big.shape[-1] == 1 else cv2.cvtColor(big, cv2.COLOR_BGR2GRAY)
    x0, y0, side0, _ = square_box(box, widest)
    views = []
    for margin in margins:
        x, y, side, _ = square_box(box, margin)
        dx, dy = x - x0, y - y0
        if side > 0 and dx >= 0 and dy >= 0 and dx + side <= side0 and dy + side <= side0:
            views.append(to_grey_square(big[dy:dy + side, dx:dx + side], size))
        else:  # a tiny box whose rounding leaves this square outside the widest: cut it on its own
            views.append(to_grey_square(crop_face(frame, box, margin, eyes), size))
    return np.stack(views)


def __getattr__(name):
    if name == "FacePreprocessor":
        return _face_preprocessor_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _face_preprocessor_class():
    """:class:`FacePreprocessor`, defined on first use.

    It subclasses sklearn's ``BaseEstimator``; importing sklearn costs about a CPU-second, which
    cropping faces and scoring with a compiled model (live start-up) do not need. The class keeps
    this module's name, so pickles and skops files name ``emotify_ml.features.preprocessing.FacePreprocessor``.
    """
    from sklearn.base import BaseEstimator, TransformerMixin

    class FacePreprocessor(TransformerMixin, BaseEstimator):
        """First step of every emotion Pipeline: any crops in, (N, size, size) grey uint8 out.

        Parameters
        ----------
        size : int, default=48
            Side of the output square.
        """

        def __init__(self, *, size: int = FACE_SIZE):
            self.size = size

        def fit(self, X, y=None):
            if not isinstance(self.size, (int, np.integer)) or self.size < 8:
                raise ValueError(f"size must be an int >= 8; got {self.size!r}")
            self.n_features_in_ = self.size * self.size
            return self

        def transform(self, X):
            from sklearn.utils.validation import check_is_fitted

            check_is_fitted(self, "n_features_in_")
            return to_model_input(X, self.size)

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.two_d_array = False
            tags.input_tags.three_d_array = True
            tags.requires_fit = True
            return tags

    FacePreprocessor.__module__, FacePreprocessor.__qualname__ = __name__, "FacePreprocessor"
    return FacePreprocessor
