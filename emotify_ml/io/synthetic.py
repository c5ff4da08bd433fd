"""Synthetic clips made from face crops: a camera-free stand-in for tests, demos and the live benchmark.

Each face crop (e.g. a 48x48 FER-2013 image) is upscaled and pasted into a plain
frame, held for a number of frames with a little camera-like jitter and sensor
noise, so a steady face gives a steady true label and any label change of the
model is flicker.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emotify_ml.io.frames import to_bgr
from emotify_ml.io.sinks import VideoWriter


def synthetic_frames(faces, *, frames_per_face: int = 30, size=(640, 480), face_px: int = 200, n_per_frame: int = 1,
                     jitter: int = 2, noise: float = 4.0, background: int = 90, seed: int = 0, blank_frames: int = 0):
    """Yield BGR frames showing the given faces, each held for ``frames_per_face`` frames.

    Parameters
    ----------
    faces : sequence of (h, w) grey or (h, w, 3) BGR uint8 crops
    frames_per_face : int
        Frames each face (or group of ``n_per_frame`` faces) stays on screen.
    size : (width, height)
        Frame size.
    face_px : int
        Side of the pasted face, in pixels.
    n_per_frame : int
        Faces side by side in each frame.
    jitter : int
        Largest random shift per frame, in pixels (a hand-held camera).
    noise : float
        Standard deviation of the Gaussian pixel noise (a webcam sensor).
    background : int
        Grey level of the frame.
    seed : int
        Random seed: the same arguments give the same frames.
    blank_frames : int
        Faceless frames (background and noise) after each face or group: more than a tracker's
        ``max_missed`` and no track carries from one face to the next, as between two people.

    Yields
    ------
    (height, width, 3) uint8
    """
    rng = np.random.default_rng(seed)
    width, height = size
    gap = (width - n_per_frame * face_px) // (n_per_frame + 1)
    if gap < 0 or face_px + 2 * jitter > height:
        raise ValueError(f"{n_per_frame} faces of {face_px} px do not fit in a {width}x{height} frame")
    faces = list(faces)
    for start in range(0, len(faces) - n_per_frame + 1, n_per_frame):
        group = [cv2.resize(to_bgr(np.asarray(f, np.uint8)), (face_px, face_px), interpolation=cv2.INTER_CUBIC)
                 for f in faces[start:start + n_per_frame]]
        for _ in range(frames_per_face):
            frame = np.full((height, width, 3), background, np.uint8)
            for k, face in enumerate(group):
                dx, dy = rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0)
                x = gap + k * (face_px + gap) + int(dx)
                y = (height - face_px) // 2 + int(dy)
                frame[y:y + face_px, x:x + face_px] = face
            if noise:
                frame = np.clip(frame + rng.normal(0.0, noise, frame.shape), 0, 255).astype(np.uint8)
            yield frame
        for _ in range(blank_frames):
            frame = np.full((height, width, 3), background, np.uint8)
            yield np.clip(frame + rng.normal(0.0, noise, frame.shape), 0, 255).astype(np.uint8) if noise else frame


def detectable_faces(faces, n: int, detector, *, min_score: float = 0.8, labels=None):
    """The first ``n`` crops of ``faces`` that ``detector`` finds as exactly one face of at least ``min_score``.

    Each crop is tried as :func:`synthetic_frames` shows it (200 px, no jitter or noise), so a clip made
    of the chosen crops has a face the detector can see in every frame. Returns the crops, or
    ``(crops, labels)`` when ``labels`` (one per crop) are given.
    """
    chosen, chosen_labels = [], []
    for k, face in enumerate(faces):
        if len(chosen) == n:
            break
        found = detector.detect(next(synthetic_frames([face], frames_per_face=1, noise=0, jitter=0)))
        if len(found) == 1 and found.scores[0] >= min_score:
            chosen.append(face)
            if labels is not None:
                chosen_labels.append(labels[k])
    return chosen if labels is None else (chosen, np.asarray(chosen_labels))


def write_video(path, frames, fps: float = 30.0) -> Path:
    """Write BGR frames to a video file (``.mp4``: mp4v codec, ``.avi``: MJPG) and return its path."""
    writer = VideoWriter(path, fps)
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.close()
    if writer.n_frames == 0:
        raise ValueError("no frames to write")
    return writer.path

