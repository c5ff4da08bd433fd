"""Errors raised by Emotify.

Each subclasses the standard exception a caller would catch anyway, so
``except ValueError`` or ``except FileNotFoundError`` keeps working.
"""

from __future__ import annotations


class EmotifyError(Exception):
    """Base class of every error raised on purpose by Emotify."""


class DataError(EmotifyError, ValueError):
    """A data set is malformed: wrong layout, corrupt image, bad csv row."""


class DataNotFoundError(EmotifyError, FileNotFoundError):
    """A data root, file or folder that was asked for does not exist."""


class InputError(EmotifyError, ValueError):
    """Images handed to a model or transformer are not of the expected shape or type."""


class ModelNotFoundError(EmotifyError, FileNotFoundError):
    """A model URI or path does not resolve to a loadable model."""


class SourceError(EmotifyError, OSError):
    """A live source (camera, video, image folder) cannot be opened or read."""


class OutputError(EmotifyError, OSError):
    """An output file (annotated video, JSON lines, parquet) cannot be written."""
