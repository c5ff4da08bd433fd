"""Emotify: facial emotions and likely actions, with models trained and tracked by this project.

Public shortcuts are attributes resolved on first use, so ``import emotify_ml`` loads nothing:

>>> import emotify_ml
>>> model = emotify_ml.load_emotion_model()        # doctest: +SKIP
"""

from __future__ import annotations

import importlib

_LAZY = {
    "load_emotion_model": "emotify_ml.models.loading",
    "load_model": "emotify_ml.models.loading",
    "analyze": "emotify_ml.api",
    "analyze_video": "emotify_ml.api",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
