"""Where Emotify reads bundled files and writes caches.

Nothing here runs at import time; each function answers when called.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The source checkout holding the package (where data/ and experiments/ live)."""
    return PACKAGE_DIR.parent


def sample_data_dir() -> Path:
    """The bundled FER-2013 sample, the default data root (``data/fer2013_sample``)."""
    return repo_root() / "data" / "fer2013_sample"


def cache_dir() -> Path:
    """A writable cache folder: ``$EMOTIFY_CACHE_DIR`` or the user's cache dir.

    Never inside a data root (which may be read-only, as in CI).
    """
    env = os.environ.get("EMOTIFY_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("emotify"))
