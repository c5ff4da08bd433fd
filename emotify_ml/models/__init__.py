"""One model contract for every model kind (emotion, action, compiled): wrap, pyfunc, resolve a URI, ship.

- :func:`load_model` (``uri=None, *, kind="emotion", tracking_uri=None, allow_remote=False,
  runtime="auto"``) -> :class:`FittedModel` (``predict_proba(X, timings=None)``, ``predict``,
  ``classes_``, ``kind``, ``source``, ``name``, ``version``, ``runtime``)
- :func:`resolve_model`: a URI (or the default) to a local folder, aliases pinned to a version
- :func:`write_pyfunc`: save or log a fitted estimator as an MLflow model (skops, no pickle)
- :func:`export_model`: copy a model into a plain folder (``shipped/<kind>``)

Modules: ``kinds`` (what each kind takes and returns), ``wrapper`` (FittedModel),
``persist`` (skops + .keras, trusted types), ``pyfunc``, ``resolve``, ``loading``.
Nothing is imported until an attribute is asked for.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "FittedModel": "wrapper", "probabilities_frame": "wrapper",
    "load_model": "loading", "load_emotion_model": "loading", "load_action_model": "loading",
    "load_resolved": "loading", "export_model": "loading", "model_origin": "loading",
    "resolve_model": "resolve", "ResolvedModel": "resolve", "is_remote": "resolve",
    "write_pyfunc": "pyfunc", "log_emotion_model": "pyfunc", "log_action_model": "pyfunc",
    "KINDS": "kinds", "SHIPPED_DIR": "kinds", "DEFAULT_REGISTERED_MODEL": "kinds", "ACTION_INPUT_COLUMNS": "kinds",
    "TRUSTED_TYPES": "persist",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
