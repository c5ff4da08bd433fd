"""Emotify over HTTP: a REST API, a websocket of webcam frames, and a page that works offline.

``python -m emotify_ml.serve`` starts it (see docs/serve.md). In Python::

    from emotify_ml.serve import ServeSettings, create_app, load_engine
    app = create_app(load_engine(), ServeSettings(token="secret"))   # any ASGI server runs ``app``

Nothing is imported or loaded until a name is used.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"create_app": "app", "ServeSettings": "app", "Engine": "engine", "load_engine": "engine",
            "ModelInfo": "engine"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
