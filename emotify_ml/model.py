"""Moved to :mod:`emotify_ml.models` (one contract for every model kind); this module goes once no caller is left.

Use ``emotify_ml.models.load_model`` / ``emotify_ml.load_emotion_model`` and
:class:`emotify_ml.models.FittedModel`.
"""

from __future__ import annotations

from emotify_ml.models.kinds import DEFAULT_REGISTERED_MODEL, KINDS
from emotify_ml.models.loading import export_model, load_emotion_model
from emotify_ml.models.pyfunc import log_emotion_model as log_pyfunc
from emotify_ml.models.pyfunc import write_pyfunc
from emotify_ml.models.resolve import ResolvedModel, resolve_model
from emotify_ml.models.wrapper import FittedModel, probabilities_frame

SHIPPED_MODEL_DIR = KINDS["emotion"].shipped_dir

__all__ = ["DEFAULT_REGISTERED_MODEL", "SHIPPED_MODEL_DIR", "EmotionClassifier", "ResolvedModel", "export_model",
           "load_emotion_model", "log_pyfunc", "probabilities_frame", "resolve_model", "save_pyfunc"]


def EmotionClassifier(pipeline, source: str = "<in memory>") -> FittedModel:  # noqa: N802 - the old class name
    """A fitted emotion Pipeline as a :class:`FittedModel`."""
    return FittedModel(pipeline, kind="emotion", source=source)


def save_pyfunc(pipeline, path, *, input_example=None, extra_pip_requirements=None):
    """Write a fitted emotion Pipeline as an MLflow model folder (:func:`emotify_ml.models.write_pyfunc`)."""
    return write_pyfunc(pipeline, kind="emotion", path=path, input_example=input_example,
                        extra_pip_requirements=extra_pip_requirements)
