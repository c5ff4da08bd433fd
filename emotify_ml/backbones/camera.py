"""Camera augmentation: turn FER-2013 training faces into what the product's camera crops look like.

FER-2013 faces are centred, grey, mostly sharp web images; the product scores faces that a
detector cropped from webcam and phone frames. :func:`camera_augment` spans that gap on a batch
of uint8 grey faces, each effect drawn independently per face:

- framing jitter: scale +-15 % and shifts (a detector box is never exactly where FER-2013's crop was),
  borders replicated as :func:`emotify_ml.features.preprocessing.crop_face` replicates them;
- blur, and down-then-up scaling (a small face in a big frame, upscaled to 48 px);
- sensor noise;
- JPEG compression at quality 30-95 (streams and uploads);
- gamma and contrast (exposure, cheap sensors);
- colour cast under the serving conversion: random white-balance gains of the three channels
  folded into grey with the weights of ``cv2.COLOR_BGR2GRAY``, as serving converts a colour crop;
- occlusion: random erasing of a rectangle (hands, glasses, microphones).

Plain NumPy/OpenCV, seeded, so it is unit-tested like any function; training runs it inside
``tf.data`` (:func:`emotify_ml.backbones.train.train_backbone`, ``camera=...``).

>>> faces = np.full((4, 48, 48), 128, np.uint8)
>>> camera_augment(faces, np.random.default_rng(0)).shape
(4, 48, 48)
"""

from __future__ import annotations

import cv2
import numpy as np

GREY_WEIGHTS = (0.114, 0.587, 0.299)
"""B, G, R weights of ``cv2.cvtColor(..., COLOR_BGR2GRAY)``: how serving turns a colour crop grey."""

CAMERA_DEFAULTS = {
    "p_framing": 0.8, "scale": 0.15, "shift": 0.08,
    "p_blur": 0.3, "blur_sigma": (0.3, 1.2),
    "p_downscale": 0.3, "downscale": (0.35, 0.8),
    "p_noise": 0.4, "noise_std": (2.0, 10.0),
    "p_jpeg": 0.5, "jpeg_quality": (30, 95),
    "p_gamma": 0.5, "gamma": (0.6, 1.6), "p_contrast": 0.5, "contrast": (0.6, 1.4),
    "p_colour": 0.3, "colour_gain": 0.25,
    "p_erase": 0.25, "erase_area": (0.05, 0.25),
}
"""Probabilities and ranges of each effect (see :func:`camera_augment`)."""


def camera_augment(faces: np.ndarray, rng: np.random.Generator, **params) -> np.ndarray:
    """Camera-like versions of a batch of grey faces.

    Parameters
    ----------
    faces : (N, H, W) uint8
    rng : numpy Generator
        Source of every random draw: the same generator state gives the same batch.
    **params
        Overrides of :data:`CAMERA_DEFAULTS`: ``p_<effect>`` is the probability of an effect per
        face (0 turns it off); ``scale`` (fraction, +-), ``shift`` (fraction of the side, +-),
        ``blur_sigma``, ``downscale`` (factor range), ``noise_std`` (grey levels), ``jpeg_quality``,
        ``gamma``, ``contrast``, ``colour_gain`` (+- per channel) and ``erase_area`` (fraction of the
        face) are ranges or amplitudes.

    Returns
    -------
    (N, H, W) uint8
    """
    unknown = set(params) - set(CAMERA_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown camera augmentation parameter(s) {sorted(unknown)}; expected {sorted(CAMERA_DEFAULTS)}")
    p = {**CAMERA_DEFAULTS, **params}
    faces = np.asarray(faces)
    if faces.ndim != 3 or faces.dtype != np.uint8:
        raise ValueError(f"faces must be (N, H, W) uint8; got {faces.dtype} array of shape {faces.shape}")
    return np.stack([_one(face, rng, p) for face in faces]) if len(faces) else faces.copy()


def _one(face: np.ndarray, rng: np.random.Generator, p: dict) -> np.ndarray:
    h, w = face.shape
    x = face
    if rng.random() < p["p_framing"]:
        s = 1.0 + rng.uniform(-p["scale"], p["scale"])
        tx, ty = rng.uniform(-p["shift"], p["shift"], 2) * (w, h)
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), 0.0, s)
        m[:, 2] += (tx, ty)
        x = cv2.warpAffine(x, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < p["p_downscale"]:
        f = rng.uniform(*p["downscale"])
        small = cv2.resize(x, (max(4, round(w * f)), max(4, round(h * f))), interpolation=cv2.INTER_AREA)
        x = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < p["p_blur"]:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(*p["blur_sigma"]))
    y = x.astype(np.float32)
    if rng.random() < p["p_colour"]:  # white-balance gains of B, G, R, folded to grey as serving does
        gains = 1.0 + rng.uniform(-p["colour_gain"], p["colour_gain"], 3)
        y = y * float(np.dot(GREY_WEIGHTS, gains))
    if rng.random() < p["p_gamma"]:
        y = 255.0 * (np.clip(y, 0, 255) / 255.0) ** rng.uniform(*p["gamma"])
    if rng.random() < p["p_contrast"]:
        mean = y.mean()
        y = (y - mean) * rng.uniform(*p["contrast"]) + mean
    if rng.random() < p["p_noise"]:
        y = y + rng.normal(0.0, rng.uniform(*p["noise_std"]), y.shape)
    x = np.clip(np.rint(y), 0, 255).astype(np.uint8)
    if rng.random() < p["p_jpeg"]:
        quality = int(rng.integers(p["jpeg_quality"][0], p["jpeg_quality"][1] + 1))
        ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            x = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    if rng.random() < p["p_erase"]:
        area = rng.uniform(*p["erase_area"]) * h * w
        aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
        eh, ew = min(h, max(1, round(np.sqrt(area * aspect)))), min(w, max(1, round(np.sqrt(area / aspect))))
        y0, x0 = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
        x = x.copy()
        x[y0:y0 + eh, x0:x0 + ew] = rng.integers(0, 256, (eh, ew), dtype=np.uint8)
    return x
