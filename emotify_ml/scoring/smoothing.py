"""Temporal smoothing of each tracked face's probabilities, and the flicker metric that shows its effect."""

from __future__ import annotations

from collections import deque

import numpy as np

from emotify_ml.scoring.options import SMOOTHING_METHODS, SmoothingOptions

_DEFAULT = SmoothingOptions()


class ProbabilitySmoother:
    """Smooth class probabilities over time, separately for each track id.

    Defaults are those of :class:`~emotify_ml.scoring.options.SmoothingOptions`.

    Parameters
    ----------
    method : {"ema", "window", "none"}, default="ema"
        ``"ema"``: exponential moving average, ``s = alpha * p + (1 - alpha) * s``;
        ``"window"``: mean of the last ``window`` frames; ``"none"``: raw probabilities.
    alpha : float, default=0.3
        Weight of the newest frame for ``"ema"`` (smaller: smoother, slower; the label
        follows a real change after about ``1 / alpha`` frames).
    window : int, default=8
        Frames averaged by ``"window"``.

    Examples
    --------
    >>> smoother = ProbabilitySmoother(method="ema", alpha=0.5)
    >>> smoother.update(1, np.array([1.0, 0.0])).tolist()
    [1.0, 0.0]
    >>> smoother.update(1, np.array([0.0, 1.0])).tolist()
    [0.5, 0.5]
    """

    def __init__(self, *, method: str = _DEFAULT.method, alpha: float = _DEFAULT.alpha, window: int = _DEFAULT.window):
        if method not in SMOOTHING_METHODS:
            raise ValueError(f"method must be one of {', '.join(SMOOTHING_METHODS)}; got {method!r}")
        if not 0.0 < float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in (0, 1]; got {alpha!r}")
        if int(window) < 1:
            raise ValueError(f"window must be a positive int; got {window!r}")
        self.method = method
        self.alpha = float(alpha)
        self.window = int(window)
        self._state: dict[int, object] = {}

    def update(self, track_id: int, proba: np.ndarray) -> np.ndarray:
        """Add one frame's probabilities of a track and return its smoothed probabilities."""
        proba = np.asarray(proba, np.float64)
        if self.method == "none":
            return proba
        if self.method == "ema":
            state = self._state.get(track_id)
            state = proba.copy() if state is None else self.alpha * proba + (1.0 - self.alpha) * state
            self._state[track_id] = state
            return state.copy()
        history = self._state.setdefault(track_id, deque(maxlen=self.window))
        history.append(proba)
        return np.mean(history, axis=0)

    def forget(self, track_ids) -> None:
        """Drop the state of tracks that ended."""
        for track_id in track_ids:
            self._state.pop(track_id, None)

    def reset(self) -> None:
        """Drop every track's state."""
        self._state.clear()

    def __repr__(self) -> str:
        detail = {"ema": f", alpha={self.alpha}", "window": f", window={self.window}", "none": ""}[self.method]
        return f"ProbabilitySmoother(method={self.method!r}{detail})"


class FlickerMeter:
    """Label changes per second of face time, for raw and smoothed labels.

    For each track, every change of label between consecutive observations counts
    once; the time is the sum over tracks of the time between their first and last
    observation. A steady face should score near 0; the raw arg-max of a noisy model
    scores high.

    Examples
    --------
    >>> meter = FlickerMeter()
    >>> for t, raw in enumerate(["happy", "sad", "happy", "happy"]):
    ...     meter.update(1, raw, "happy", float(t))
    >>> meter.summary()["raw_changes_per_s"], meter.summary()["smoothed_changes_per_s"]
    (0.6667, 0.0)
    """

    def __init__(self):
        self._last: dict[int, tuple[str, str, float]] = {}
        self.raw_changes = 0
        self.smoothed_changes = 0
        self.face_seconds = 0.0
        self.observations = 0

    def update(self, track_id: int, raw_label: str, smoothed_label: str, timestamp: float) -> None:
        """Record one observation of a track."""
        self.observations += 1
        last = self._last.get(track_id)
        if last is not None:
            self.raw_changes += raw_label != last[0]
            self.smoothed_changes += smoothed_label != last[1]
            self.face_seconds += max(0.0, timestamp - last[2])
        self._last[track_id] = (raw_label, smoothed_label, timestamp)

    def forget(self, track_ids) -> None:
        """Stop following tracks that ended (their counts stay)."""
        for track_id in track_ids:
            self._last.pop(track_id, None)

    def summary(self) -> dict:
        """``raw_changes``, ``smoothed_changes``, ``face_seconds`` and the two rates per second (None without time)."""
        def rate(n):
            return round(n / self.face_seconds, 4) if self.face_seconds > 0 else None

        return {"raw_changes": int(self.raw_changes), "smoothed_changes": int(self.smoothed_changes),
                "face_seconds": round(self.face_seconds, 3),
                "raw_changes_per_s": rate(self.raw_changes), "smoothed_changes_per_s": rate(self.smoothed_changes)}
