"""Errors raised by Emotify.

Each subclasses the standard exception a caller would catch anyway, so
``except ValueError`` or ``except FileNotFoundError`` keeps working.
"""

from __future__ import annotations


class EmotifyError(Exception):
    """Base class of every error raised on purpose by Emotify."""


class DataError(EmotifyError, ValueError):
    """A data set is malformed: wrong layout, corrupt image, bad csv row."""


class ConfigError(EmotifyError, ValueError):
    """A configuration value is invalid: a config override, a command-line option, a tracking URI."""


class DataNotFoundError(EmotifyError, FileNotFoundError):
    """A data root, file or folder that was asked for does not exist."""


class InputError(EmotifyError, ValueError):
    """Images handed to a model or transformer are not of the expected shape or type."""


class ModelError(EmotifyError):
    """A model cannot be used: not found, of the wrong kind, or not trusted (entry points: exit code 3)."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model URI or path does not resolve to a loadable model."""


class ModelKindError(ModelError, ValueError):
    """A model of another kind than asked for (an action model where an emotion model is needed)."""


class UntrustedModelError(ModelError, PermissionError):
    """A model Emotify refuses to load: a remote URI not allowed, or a folder holding a pickle (code run on load)."""


class FolderInUseError(EmotifyError, RuntimeError):
    """A folder another process is writing: a training's checkpoint folder held by a running training."""


class SourceError(EmotifyError, OSError):
    """A live source (camera, video, image folder) cannot be opened or read."""


class OutputError(EmotifyError, OSError):
    """An output file (annotated video, JSON lines, parquet) cannot be written."""


class MissingDependencyError(EmotifyError, ImportError):
    """An optional dependency is not installed (TensorFlow and Keras come with the ``train`` extra)."""
