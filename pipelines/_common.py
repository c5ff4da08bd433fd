"""Glue shared by the entry points: config to plain objects, and errors to one line."""

from __future__ import annotations

import functools
import logging
import sys

from omegaconf import DictConfig, OmegaConf

from emotify_ml.exceptions import EmotifyError

log = logging.getLogger("emotify")

CONFIG_PATH = "../experiments"


def to_dict(cfg: DictConfig) -> dict:
    """The resolved config as a plain dict (for logging and for library calls)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def exit_on_error(fn):
    """Turn an expected error (bad data, bad config, missing file) into one line on stderr and exit code 2.

    Unexpected errors keep their traceback: they are bugs.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (EmotifyError, FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    return wrapper
