"""Where Emotify reads bundled files and writes caches.

Nothing here runs at import time; each function answers when called.
"""

from __future__ import annotations

import hashlib
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


def sha256_file(path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
