"""The one place where label names live.

Emotion classes follow the FER-2013 index order used by the Kaggle csv and every
published result: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
"""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""Emotion names in FER-2013 index order."""

EMOTION_COLOURS_BGR: tuple[tuple[int, int, int], ...] = (
    (40, 40, 230), (40, 140, 40), (160, 60, 160), (30, 200, 250), (200, 110, 30), (230, 200, 40), (190, 190, 190))
"""Overlay colour (BGR) of each emotion, in :data:`EMOTIONS` order."""

EMOTION_TO_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}

N_EMOTIONS: int = len(EMOTIONS)

FER_USAGES: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
"""FER-2013 usage values: train, validation (model choice) and test (reporting only)."""

TRAIN, VALIDATION, TEST = FER_USAGES

MPII_CATEGORIES: tuple[str, ...] = (
    "bicycling",
    "conditioning exercise",
    "dancing",
    "fishing and hunting",
    "home activities",
    "home repair",
    "inactivity quiet/light",
    "lawn and garden",
    "miscellaneous",
    "music playing",
    "occupation",
    "religious activities",
    "running",
    "self care",
    "sports",
    "transportation",
    "volunteer activities",
    "walking",
    "water activities",
    "winter activities",
)
"""The 20 MPII Human Pose activity categories (alphabetical), the action vocabulary."""

MPII_JOINTS: tuple[str, ...] = (
    "r ankle",
    "r knee",
    "r hip",
    "l hip",
    "l knee",
    "l ankle",
    "pelvis",
    "thorax",
    "upper neck",
    "head top",
    "r wrist",
    "r elbow",
    "r shoulder",
    "l shoulder",
    "l elbow",
    "l wrist",
)
"""The 16 MPII joints in annotation order."""


def emotion_index(name: str) -> int:
    """Return the FER-2013 index of an emotion name (case-insensitive).

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`EMOTIONS`.
    """
    key = str(name).strip().lower()
    if key not in EMOTION_TO_INDEX:
        raise ValueError(f"unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}")
    return EMOTION_TO_INDEX[key]
