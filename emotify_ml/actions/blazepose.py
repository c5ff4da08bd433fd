"""BlazePose body keypoints (MediaPipe's tflite models run with ai-edge-litert), mapped to the MPII-16 joints.

Two models, vendored in ``emotify_ml/assets/blazepose`` (Apache-2.0, see its README):
a person detector (224x224, SSD anchors) and a landmark model (256x256 crop of one
person, 33 landmarks). A frame goes: letterbox → detector → non-maximum suppression →
rotated square region per person → landmarks → image pixels → MPII joints. With
``track=True`` the next frame's region comes from the previous landmarks, and the
detector runs only when no person is tracked or every ``redetect_every`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emotify_ml.exceptions import InputError, ModelNotFoundError
from emotify_ml.labels import MPII_JOINTS

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "blazepose"
DETECTOR_FILE, LANDMARK_FILE = "pose_detection.tflite", "pose_landmark_full.tflite"

BLAZEPOSE_DIRECT: dict[str, int] = {
    "r ankle": 28, "r knee": 26, "r hip": 24, "l hip": 23, "l knee": 25, "l ankle": 27,
    "r wrist": 16, "r elbow": 14, "r shoulder": 12, "l shoulder": 11, "l elbow": 13, "l wrist": 15,
}
"""MPII joints that are BlazePose landmarks (BlazePose-33 index). Left/right are the person's own."""

_NOSE, _L_EAR, _R_EAR = 0, 7, 8


def blazepose_to_mpii(landmarks, visibility=None, min_visibility: float = 0.5) -> np.ndarray:
    """MPII-16 joints (16, 2) from BlazePose-33 landmarks (33, 2+) in pixels; NaN where not visible.

    Direct: ankles, knees, hips, wrists, elbows, shoulders. Derived: pelvis = mid-hips;
    thorax = mid-shoulders; upper neck = halfway from the thorax to the mid-ears;
    head top = mid-ears + 0.5 (mid-ears − thorax). The last two are approximations
    (MPII marks the neck base and the top of the skull); the action features use them
    only as the direction of the head.

    Parameters
    ----------
    landmarks : (33, >=2) array, x and y first
    visibility : (33,) array in [0, 1], optional
        Landmarks below ``min_visibility`` count as missing, and so do joints derived from them.

    Examples
    --------
    >>> lm = np.zeros((33, 2)); lm[23], lm[24] = (10, 50), (30, 50)
    >>> blazepose_to_mpii(lm)[6].tolist()      # pelvis = mid-hips
    [20.0, 50.0]
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] < 33 or lm.shape[1] < 2:
        raise InputError(f"landmarks must be (33, 2+) BlazePose points; got shape {lm.shape}")
    lm = lm[:33, :2].copy()
    if visibility is not None:
        lm[np.asarray(visibility)[:33] < min_visibility] = np.nan
    out = np.full((len(MPII_JOINTS), 2), np.nan)
    idx = {name: i for i, name in enumerate(MPII_JOINTS)}
    for name, b in BLAZEPOSE_DIRECT.items():
        out[idx[name]] = lm[b]
    out[idx["pelvis"]] = 0.5 * (lm[23] + lm[24])
    thorax = 0.5 * (lm[11] + lm[12])
    out[idx["thorax"]] = thorax
    ears = 0.5 * (lm[_L_EAR] + lm[_R_EAR])
    ears = np.where(np.isnan(ears), lm[_NOSE], ears)
    out[idx["upper neck"]] = thorax + 0.5 * (ears - thorax)
    out[idx["head top"]] = ears + 0.5 * (ears - thorax)
    return out


def detector_anchors() -> np.ndarray:
    """The 2254 SSD anchor centres (x, y in [0, 1]) of the 224x224 pose detector."""
    centres = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):
        fm = 224 // stride
        ys, xs = np.mgrid[0:fm, 0:fm]
        grid = np.stack([(xs.ravel() + 0.5) / fm, (ys.ravel() + 0.5) / fm], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres)


def _nms(boxes, scores, iou: float):
    order, keep = np.argsort(-scores), []
    x0, y0, x1, y1 = boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2, \
        boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
    area = (x1 - x0) * (y1 - y0)
    while len(order):
        i, order = order[0], order[1:]
        keep.append(i)
        inter = np.clip(np.minimum(x1[i], x1[order]) - np.maximum(x0[i], x0[order]), 0, None) * \
            np.clip(np.minimum(y1[i], y1[order]) - np.maximum(y0[i], y0[order]), 0, None)
        order = order[inter / np.maximum(area[i] + area[order] - inter, 1e-9) < iou]
    return keep


@dataclass
class Person:
    """One person in a frame.

    Attributes
    ----------
    joints : (16, 2) MPII joints in pixels, NaN = not visible or outside the frame
    landmarks : (33, 3) BlazePose x, y (pixels), visibility
    box : (4,) x, y, w, h around the visible landmarks, clipped to the frame
    score : float, the landmark model's person-present score
    """

    joints: np.ndarray
    landmarks: np.ndarray
    box: np.ndarray
    score: float


class BlazePose:
    """Multi-person BlazePose keypoints for BGR frames.

    Parameters
    ----------
    model_dir : path, optional
        Folder with the two tflite files; default the vendored ``emotify_ml/assets/blazepose``.
    max_people : int, default 2
    detection_threshold, presence_threshold : float
        Minimum detector score and landmark person-present score.
    min_visibility : float
        Landmarks less visible than this are missing joints.
    track : bool, default True
        Take each person's next region from their landmarks instead of running the detector.
    redetect_every : int, default 15
        Run the detector at least every this many frames while tracking (new people).
    num_threads : int, default 2
    """

    def __init__(self, model_dir=None, *, max_people: int = 2, detection_threshold: float = 0.5,
                 presence_threshold: float = 0.5, min_visibility: float = 0.5, track: bool = True,
                 redetect_every: int = 15, num_threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        model_dir = Path(model_dir) if model_dir is not None else ASSET_DIR
        for name in (DETECTOR_FILE, LANDMARK_FILE):
            if not (model_dir / name).is_file():
                raise ModelNotFoundError(f"BlazePose model {str(model_dir / name)!r} not found")
        self.max_people, self.detection_threshold = max_people, detection_threshold
        self.presence_threshold, self.min_visibility = presence_threshold, min_visibility
        self.track, self.redetect_every = track, redetect_every
        self._det = Interpreter(model_path=str(model_dir / DETECTOR_FILE), num_threads=num_threads)
        self._lmk = Interpreter(model_path=str(model_dir / LANDMARK_FILE), num_threads=num_threads)
        for it in (self._det, self._lmk):
            it.allocate_tensors()
        outs = {d["name"]: d["index"] for d in self._det.get_output_details()}
        self._det_io = (self._det.get_input_details()[0]["index"], outs["Identity"], outs["Identity_1"])
        outs = {d["name"]: d["index"] for d in self._lmk.get_output_details()}
        self._lmk_io = (self._lmk.get_input_details()[0]["index"], outs["Identity"], outs["Identity_1"])
        self._anchors = detector_anchors()
        self._regions: list = []
        self._since_detect = 0

    def reset(self) -> None:
        """Forget tracked people (call between unrelated frames or videos)."""
        self._regions, self._since_detect = [], 0

    def detect_regions(self, frame_bgr) -> list[tuple[np.ndarray, float, float]]:
        """Person regions (centre (2,), side, rotation in radians) found by the detector, best first."""
        h, w = frame_bgr.shape[:2]
        side = max(h, w)
        pad_x, pad_y = (side - w) // 2, (side - h) // 2
        square = cv2.copyMakeBorder(frame_bgr, pad_y, side - h - pad_y, pad_x, side - w - pad_x, cv2.BORDER_CONSTANT)
        rgb = cv2.cvtColor(cv2.resize(square, (224, 224), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        inp, boxes_i, scores_i = self._det_io
        self._det.set_tensor(inp, (rgb.astype(np.float32)[None] / 127.5 - 1.0))
        self._det.invoke()
        raw = self._det.get_tensor(boxes_i)[0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(self._det.get_tensor(scores_i)[0, :, 0].astype(np.float64), -100, 100)))
        good = np.flatnonzero(scores >= self.detection_threshold)
        if not len(good):
            return []
        anchors = self._anchors[good]
        boxes = raw[good, :4] / 224.0
        boxes[:, :2] += anchors
        kps = raw[good, 4:8].reshape(-1, 2, 2) / 224.0 + anchors[:, None]
        return [_region(kps[i, 0] * side - (pad_x, pad_y), kps[i, 1] * side - (pad_x, pad_y))
                for i in _nms(boxes, scores[good], 0.3)[: self.max_people]]

    def landmarks(self, frame_bgr, centre, side, rotation):
        """Landmarks (39, 5) in image pixels (x, y, z, visibility, presence in [0, 1]) and the person score."""
        cos, sin = np.cos(rotation), np.sin(rotation)
        k = side / 256.0
        # crop pixel (u, v) -> image: centre + R @ ((u, v) - 128) * k
        M = np.array([[k * cos, -k * sin, 0.0], [k * sin, k * cos, 0.0]])
        M[:, 2] = centre - M[:, :2] @ np.array([128.0, 128.0])
        crop = cv2.warpAffine(frame_bgr, M, (256, 256), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT)
        inp, pts_i, score_i = self._lmk_io
        self._lmk.set_tensor(inp, cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0)
        self._lmk.invoke()
        pts = self._lmk.get_tensor(pts_i)[0].reshape(39, 5).astype(np.float64)
        score = float(self._lmk.get_tensor(score_i).ravel()[0])
        xy = pts[:, :2] @ M[:, :2].T + M[:, 2]
        prob = 1.0 / (1.0 + np.exp(-pts[:, 3:5]))
        return np.column_stack([xy, pts[:, 2], prob]), score

    def __call__(self, frame_bgr) -> list[Person]:
        """The people in a BGR uint8 frame (H, W, 3); an empty list when there is none."""
        frame = np.asarray(frame_bgr)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise InputError(f"frame must be (H, W, 3) uint8 BGR; got shape {frame.shape}, dtype {frame.dtype}")
        self._since_detect += 1
        if not (self.track and self._regions) or self._since_detect >= self.redetect_every:
            regions, self._since_detect = self.detect_regions(frame), 0
        else:
            regions = self._regions
        people, next_regions = [], []
        h, w = frame.shape[:2]
        for centre, side, rotation in regions:
            lm, score = self.landmarks(frame, centre, side, rotation)
            if score < self.presence_threshold:
                continue
            vis = lm[:33, 3]
            seen = lm[:33, :2][vis >= self.min_visibility]
            if not len(seen):
                continue
            x0, y0 = np.clip(seen.min(0), 0, (w, h))
            x1, y1 = np.clip(seen.max(0), 0, (w, h))
            joints = blazepose_to_mpii(lm[:33, :2], vis, self.min_visibility)
            # BlazePose guesses joints beyond the frame edge; MPII leaves those unannotated, and so do we
            with np.errstate(invalid="ignore"):
                joints[~((joints >= 0) & (joints < (w, h))).all(1)] = np.nan
            people.append(Person(joints, lm[:33, [0, 1, 3]], np.array([x0, y0, x1 - x0, y1 - y0]), score))
            next_regions.append(_region(lm[33, :2], lm[34, :2]))
        self._regions = next_regions if self.track else []
        return people


def _region(kp0, kp1):
    """Centre, side and rotation of the landmark crop from the hip centre and the body-size point."""
    d = np.asarray(kp1, dtype=np.float64) - np.asarray(kp0, dtype=np.float64)
    side = 2.0 * float(np.hypot(*d)) * 1.25
    rotation = np.pi / 2 - np.arctan2(-d[1], d[0])
    rotation = (rotation + np.pi) % (2 * np.pi) - np.pi
    return np.asarray(kp0, dtype=np.float64), side, float(rotation)
