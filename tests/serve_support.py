"""Helpers of the server tests (tests/test_serve.py, tests/test_browser.py): faces, encoded images, stub models."""

from __future__ import annotations

import functools
import socket

import cv2
import numpy as np

from emotify_ml.labels import EMOTIONS


@functools.lru_cache(maxsize=None)
def clear_faces(n: int = 4) -> tuple:
    """Bundled sample test faces (48x48 grey) that YuNet finds with a high score once pasted at 200 px."""
    from emotify_ml.data import load_fer2013
    from emotify_ml.detection import make_detector
    from emotify_ml.io.synthetic import synthetic_frames

    yunet = make_detector("yunet")
    keep = []
    for face in load_fer2013(cache=False).split("PrivateTest").images[:60]:
        found = yunet.detect(next(synthetic_frames([face], frames_per_face=1, noise=0, jitter=0)))
        if len(found) == 1 and found.scores.max() >= 0.85:
            keep.append(face)
        if len(keep) == n:
            break
    return tuple(keep)


def face_frame(size=(640, 480), face_px: int = 200, k: int = 0) -> np.ndarray:
    """One BGR frame of ``size`` (width, height) showing one sample face of ``face_px`` pixels."""
    from emotify_ml.io.synthetic import synthetic_frames

    return next(synthetic_frames([clear_faces()[k]], frames_per_face=1, size=size, face_px=face_px, noise=0,
                                 jitter=0))


def encode(frame: np.ndarray, ext: str = ".jpg") -> bytes:
    """A frame as the bytes of a JPEG (``.jpg``), PNG (``.png``) or WebP (``.webp``) file."""
    ok, data = cv2.imencode(ext, frame)
    assert ok
    return data.tobytes()


class StubModel:
    """An emotion model that needs no training: ``happy`` first, then each call shifts weight towards ``sad``."""

    def __init__(self):
        self.calls = 0

    def predict_proba(self, crops):
        self.calls += 1
        p = np.full((len(crops), len(EMOTIONS)), 0.04)
        p[:, EMOTIONS.index("happy")] = 0.7 if self.calls % 2 else 0.1
        p[:, EMOTIONS.index("sad")] = 0.1 if self.calls % 2 else 0.7
        return p


class StubActions:
    """An action predictor stand-in: every face is ``dancing``."""

    def __init__(self):
        from emotify_ml.scoring.smoothing import ProbabilitySmoother

        self.smoothing = ProbabilitySmoother()
        self.last_timings = {}

    def predict(self, frame, boxes, proba, track_ids=None):
        self.last_timings = {"pose": 0.1, "action": 0.1}
        return [{"actions": [["dancing", 0.9]], "label": "dancing", "person_box": [0.0, 0.0, 10.0, 10.0]}
                for _ in range(len(boxes))]

    def forget(self, track_ids):
        pass

    def reset(self):
        pass


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_y4m(path, frames, fps: int = 30) -> None:
    """Write BGR frames as a YUV4MPEG2 (4:2:0) clip, the format of Chrome's fake camera file."""
    frames = list(frames)
    h, w = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            yuv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
            out.write(b"FRAME\n")
            out.write(yuv.tobytes())
