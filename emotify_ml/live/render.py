"""Overlay drawing: a box per face with its smoothed emotion, a probability bar chart, actions, and a status line."""

from __future__ import annotations

import cv2
import numpy as np

from emotify_ml.labels import EMOTION_COLOURS_BGR, EMOTIONS

FONT = cv2.FONT_HERSHEY_SIMPLEX

EMOTION_COLOURS = dict(zip(EMOTIONS, EMOTION_COLOURS_BGR))
"""Colour of each emotion in the overlay (BGR), from :data:`emotify_ml.labels.EMOTION_COLOURS_BGR`."""


def _text(image, text, org, scale=0.45, colour=(255, 255, 255), thickness=1, background=(0, 0, 0)):
    """Text with a filled background box, so it reads on any picture."""
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    x, y = int(org[0]), int(org[1])
    cv2.rectangle(image, (x - 1, y - h - 3), (x + w + 1, y + base), background, -1)
    cv2.putText(image, text, (x, y), FONT, scale, colour, thickness, cv2.LINE_AA)
    return h + base + 4


def draw_bars(image, proba, origin, class_names=EMOTIONS, width: int = 70, bar_height: int = 9) -> None:
    """A small horizontal bar chart of probabilities, top-left corner at ``origin``."""
    x, y = int(origin[0]), int(origin[1])
    label_w = 30
    height = len(class_names) * (bar_height + 2) + 2
    overlay_region = image[max(y, 0):max(y + height, 0), max(x, 0):max(x + label_w + width + 4, 0)]
    if overlay_region.size:
        overlay_region[:] = (overlay_region * 0.4).astype(np.uint8)  # darken behind the chart
    for i, (name, p) in enumerate(zip(class_names, proba)):
        top = y + 2 + i * (bar_height + 2)
        cv2.putText(image, name[:3], (x + 2, top + bar_height - 1), FONT, 0.3, (230, 230, 230), 1, cv2.LINE_AA)
        x0 = x + label_w
        cv2.rectangle(image, (x0, top), (x0 + width, top + bar_height), (80, 80, 80), 1)
        filled = int(round(float(p) * width))
        if filled > 0:
            cv2.rectangle(image, (x0, top), (x0 + filled, top + bar_height),
                          EMOTION_COLOURS.get(name, (0, 255, 0)), -1)


def draw_faces(image: np.ndarray, faces, bars: bool = True) -> np.ndarray:
    """Draw every face of a frame's :class:`~emotify_ml.scoring.faces.Faces` onto ``image`` (in place) and return it."""
    h, w = image.shape[:2]
    for face in faces:
        x, y, bw, bh = (int(round(v)) for v in face.box)
        colour = EMOTION_COLOURS.get(face.label, (0, 255, 0))
        cv2.rectangle(image, (x, y), (x + bw, y + bh), colour, 2)
        track = "" if face.track_id is None else f"  #{face.track_id}"
        _text(image, f"{face.label} {face.confidence:.0%}{track}", (x, max(y - 6, 14)),
              scale=0.55, colour=colour)
        if face.actions:
            top = face.actions.get("actions") or []
            lines = [str(face.actions.get("label", ""))] + [f"{name} {float(p):.0%}" for name, p in top[:3]]
            ty = min(y + bh + 16, h - 4)
            for line in lines:
                if line:
                    ty += _text(image, line, (x, ty), scale=0.42, colour=(255, 255, 255))
            person = face.actions.get("person_box")
            if person is not None and len(person) == 4:
                px, py, pw, ph = (int(round(v)) for v in person)
                cv2.rectangle(image, (px, py), (px + pw, py + ph), (120, 120, 120), 1)
        if bars:
            chart_w = 104
            bx = x + bw + 6 if x + bw + 6 + chart_w <= w else max(x - chart_w - 6, 0)
            shown = face.smoothed if face.smoothed is not None else face.probabilities
            draw_bars(image, list(shown.values()), (bx, max(y, 0)), tuple(shown))
    return image


def draw_status(image: np.ndarray, fps: float | None, timings: dict | None = None, n_faces: int | None = None) -> np.ndarray:
    """FPS, face count and per-stage milliseconds in the top-left corner (in place)."""
    parts = [f"{fps:.1f} FPS" if fps else "-- FPS"]
    if n_faces is not None:
        parts.append(f"{n_faces} face{'s' if n_faces != 1 else ''}")
    y = 18
    y += _text(image, "  ".join(parts), (6, y), scale=0.55, colour=(0, 255, 0))
    if timings:
        stages = [f"{k} {v:.1f}" for k, v in timings.items() if "." not in k and v is not None]
        _text(image, "ms: " + " ".join(stages), (6, y + 4), scale=0.4, colour=(200, 200, 200))
    return image
