"""The one classifier wrapper of every model kind: :class:`FittedModel`.

>>> model = load_model()                                     # doctest: +SKIP
>>> timings = {}
>>> model.predict_proba(faces, timings=timings)              # doctest: +SKIP
>>> timings                                                  # doctest: +SKIP
{'embed': 3.1, 'classify': 0.4}
>>> model.predict(faces)                                     # doctest: +SKIP
   angry  disgust  fear  happy  sad  surprise  neutral  label
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from emotify_ml.features.preprocessing import FACE_SIZE
from emotify_ml.models.kinds import get_kind


def probabilities_frame(proba: np.ndarray, class_names) -> pd.DataFrame:
    """Probabilities (N, K) as a DataFrame with one column per class and the arg-max ``label``."""
    frame = pd.DataFrame(np.asarray(proba, dtype=np.float64), columns=list(class_names))
    frame["label"] = np.asarray(class_names, dtype=object)[np.argmax(proba, axis=1)] if len(frame) else []
    return frame


class FittedModel:
    """A fitted model of any kind with the product's calling convention.

    Parameters
    ----------
    estimator : fitted sklearn estimator or None
        Emotion: a Pipeline taking (N, H, W) grey uint8 faces; action: a classifier over
        (N, 32) poses. None when ``compiled`` scores instead.
    kind : {"emotion", "action"}
    source : str
        Where it came from (an exact model URI or a folder), for messages.
    name, version : str or None
        The registered model and version (None when not loaded from the registry).
    runtime : str
        ``"keras"`` (the fitted pipeline in this process) or the compiled runtime's name
        (e.g. ``"litert-int8"``).
    compiled : object, optional
        From :func:`emotify_ml.runtime.load_compiled`: ``predict_proba(faces uint8 (N, 48, 48))``.

    Attributes
    ----------
    classes_ : tuple of str
        The probability columns: :data:`~emotify_ml.labels.EMOTIONS` or
        :data:`~emotify_ml.labels.MPII_CATEGORIES`.
    """

    def __init__(self, estimator, *, kind: str = "emotion", source: str = "<in memory>", name: str | None = None,
                 version: str | None = None, runtime: str = "keras", compiled=None):
        self._kind = get_kind(kind)
        if estimator is None and compiled is None:
            raise ValueError("FittedModel needs an estimator or a compiled model")
        self.estimator = estimator
        self.compiled = compiled
        self.kind = self._kind.name
        self.source = source
        self.name = name
        self.version = None if version is None else str(version)
        self.runtime = runtime
        self.classes_ = self._kind.class_names

    @property
    def input_size(self) -> int:
        """The face side the emotion estimator takes (its FacePreprocessor's ``size``)."""
        steps = getattr(self.estimator, "steps", None)
        return int(getattr(steps[0][1], "size", FACE_SIZE)) if steps else FACE_SIZE

    def predict_proba(self, X, timings: dict | None = None) -> np.ndarray:
        """(N, K) probabilities, columns :attr:`classes_`; an empty batch gives (0, K).

        Parameters
        ----------
        X
            Emotion: uint8 (or float) face crops, (N, H, W) grey or (N, H, W, 3) BGR of any
            size, or a list of crops. Action: (N, 32) or (N, 16, 2) poses.
        timings : dict, optional
            Gets ``"embed"`` (input preparation and every step before the classifier) and
            ``"classify"`` (the last step) in milliseconds added, measured in this call.
        """
        n_classes = len(self.classes_)
        if isinstance(X, np.ndarray) and X.ndim >= 2 and len(X) == 0:
            self._add(timings, 0.0, 0.0)
            return np.zeros((0, n_classes))
        t0 = time.perf_counter()
        X = self._kind.prepare(X, self.input_size)
        if len(X) == 0:
            self._add(timings, 0.0, 0.0)
            return np.zeros((0, n_classes))
        if self.compiled is not None:
            return self._compiled_proba(X, timings, t0)
        import sklearn

        from emotify_ml.evaluation import full_proba

        with sklearn.config_context(assume_finite=self._kind.assume_finite):
            steps = getattr(self.estimator, "steps", None)
            if timings is None or not steps or len(steps) < 2:
                t1 = time.perf_counter()
                proba = full_proba(self.estimator, X, n_classes)
            else:  # the Pipeline's own predict path, step by step: nothing is rebuilt
                for _, step in steps[:-1]:
                    if step is not None and step != "passthrough":
                        X = step.transform(X)
                t1 = time.perf_counter()
                proba = full_proba(steps[-1][1], X, n_classes)
        self._add(timings, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3)
        return proba

    def _compiled_proba(self, X, timings, t0):
        if timings is not None and hasattr(self.compiled, "embed") and hasattr(self.compiled, "classify"):
            emb = self.compiled.embed(X)
            t1 = time.perf_counter()
            proba = self.compiled.classify(emb)
        else:  # the compiled graph scores in one call: its whole time counts as "classify"
            t1 = time.perf_counter()
            proba = self.compiled.predict_proba(X)
        self._add(timings, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3)
        return np.asarray(proba, dtype=np.float64)

    @staticmethod
    def _add(timings, embed_ms: float, classify_ms: float) -> None:
        if timings is not None:
            timings["embed"] = timings.get("embed", 0.0) + embed_ms
            timings["classify"] = timings.get("classify", 0.0) + classify_ms

    def predict(self, X) -> pd.DataFrame:
        """One probability column per class and the arg-max ``label``, as the MLflow model returns them."""
        return probabilities_frame(self.predict_proba(X), self.classes_)

    def __repr__(self) -> str:
        version = f", version={self.version!r}" if self.version else ""
        return f"FittedModel(kind={self.kind!r}, source={self.source!r}{version}, runtime={self.runtime!r})"
