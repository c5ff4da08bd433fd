"""Scoring options: plain dataclasses, the one home of every scoring default.

Live (``python -m emotify_ml.live``), batch (``python -m pipelines.score_batch``), the Python
API (:func:`emotify_ml.analyze`) and the server read their defaults from here; command-line
flags and config files only override them. Nothing is validated in ``__init__`` (so a config
system can build them field by field); :meth:`check` validates and returns the object.

>>> ScoringOptions().margin == DEFAULT_MARGIN
True
>>> ScoringOptions(detect="sometimes").check()
Traceback (most recent call last):
...
ValueError: detect must be one of auto, always, never; got 'sometimes'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emotify_ml.features.preprocessing import DEFAULT_MARGIN

DEFAULT_CROP_SPREAD = 0.05
"""Margin spread of the views each face is scored in (:attr:`ScoringOptions.crop_spread`), with mirroring.

Chosen on validation only (``python benchmarks/framing.py --views``, 2026-12-03, the shipped model;
``benchmarks/results/framing_views.json``): spreads 0, 0.025, 0.05, 0.075 and 0.1, each with and
without mirroring, on muxspace_dev through the product path and on three 640x480 clips of PublicTest
faces, frame by frame, against the same faces as crops. One crop: muxspace_dev 58.8 % / macro-F1
0.386, the clips 3.4 points below the crops on average. Spread 0.05 mirrored: 60.6 % / 0.401, 1.4
points below (the smallest gap of the ten; 0.075 mirrored scores 0.405 on muxspace_dev, within the
rule's 0.005, and 1.6 on the clips). Without mirroring 0.05 is 59.7 % / 0.392 and 1.8 points
(docs/accuracy.md, "Views of each face")."""

MAX_CROP_SPREAD = 0.25
"""Largest :attr:`ScoringOptions.crop_spread`: the tightest view keeps half the box (``margin`` 0)."""

ONE_CROP = {"crop_spread": 0.0, "mirror": False}
""":class:`ScoringOptions` settings of one crop a face, the views off (live ``--crop-spread 0 --no-mirror``)."""

DETECT_MODES = ("auto", "always", "never")
"""``always``: faces come from the detector only. ``never``: each picture (or frame) is one face,
as for already-cropped faces like FER-2013's 48x48 files. ``auto``: the detector, and the whole
picture when it finds nothing in a *still image* (video and camera frames without a face stay faceless)."""

DETECTOR_KINDS = ("yunet", "haar")
"""Face detectors (see :func:`emotify_ml.detection.make_detector`)."""

SMOOTHING_METHODS = ("ema", "window", "none")
"""Temporal smoothing of a face track's probabilities (see :class:`~emotify_ml.scoring.smoothing.ProbabilitySmoother`)."""

RUNTIMES = ("auto", "keras", "compiled")
"""Model runtimes a loader may be asked for (``auto``: the compiled model when the folder has one;
``compiled:<variant>`` picks a compiled variant, see :func:`emotify_ml.models.load_model`)."""


@dataclass
class DetectorOptions:
    """Which face detector, and how it looks.

    Parameters
    ----------
    kind : {"yunet", "haar"}
        YuNet (accurate, fast, eye landmarks for alignment) or OpenCV's Haar cascade (fallback).
    det_size : int or None
        Longest side in pixels of the image the detector sees; bigger frames are shrunk first.
        None (or 0): the full frame.
    score_threshold : float
        Least YuNet face score (Haar has no score).
    track_threshold : float
        Least YuNet score of a face that continues a face track of a video stream: a face the
        detector scores between this and ``score_threshold`` is kept only where it overlaps a face
        of the last frames (a :class:`~emotify_ml.scoring.stream.Stream` passes its tracks'
        boxes), so a face turned, blurred or half-lit for a moment keeps its box, and nothing new
        appears below ``score_threshold`` (ByteTrack's low-score association). At or above
        ``score_threshold`` it is off; single pictures never use it.
    retry_size : int or None
        YuNet takes a second look at a frame in which it finds no face of ``score_threshold``,
        shrunk to this longest side instead of ``det_size``, and keeps the look whose best face
        scores higher (with the other look's faces it does not overlap). Faces that shrinking
        leaves small are found far more often. Frames with a confident face are looked at once;
        frames without one (faceless, or a faint face continuing a track) pay for both looks.
        None (or 0), not larger than ``det_size``, or a frame no bigger than ``det_size``: one look.
    """

    kind: str = "yunet"
    det_size: int | None = 320
    score_threshold: float = 0.6
    track_threshold: float = 0.3
    retry_size: int | None = 640

    def check(self) -> "DetectorOptions":
        if self.kind not in DETECTOR_KINDS:
            raise ValueError(f"detector kind must be one of {', '.join(DETECTOR_KINDS)}; got {self.kind!r}")
        if self.det_size not in (None, 0) and (not isinstance(self.det_size, int) or self.det_size < 32):
            raise ValueError(f"det_size must be an int >= 32 (longest side in pixels), or 0/None for the full frame; "
                             f"got {self.det_size!r}")
        if self.retry_size not in (None, 0) and (not isinstance(self.retry_size, int) or self.retry_size < 32):
            raise ValueError(f"retry_size must be an int >= 32 (longest side in pixels), or 0/None for one look; "
                             f"got {self.retry_size!r}")
        if not 0.0 <= float(self.score_threshold) <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1]; got {self.score_threshold!r}")
        if not 0.0 <= float(self.track_threshold) <= 1.0:
            raise ValueError(f"track_threshold must be in [0, 1]; got {self.track_threshold!r}")
        return self

    @property
    def detect_threshold(self) -> float:
        """The least score the detector reports: the lower of the two thresholds."""
        return min(float(self.score_threshold), float(self.track_threshold))

    def make(self):
        """The detector these options describe (:func:`emotify_ml.detection.make_detector`).

        YuNet reports faces down to :attr:`detect_threshold`; :class:`~emotify_ml.scoring.frame.FrameStep`
        keeps those below ``score_threshold`` only where they continue a track.
        """
        from emotify_ml.detection import make_detector

        self.check()
        kwargs = {"det_size": self.det_size or None}
        if self.kind == "yunet":
            kwargs.update(score_threshold=self.detect_threshold, retry_size=self.retry_size or None,
                          retry_below=float(self.score_threshold))
        return make_detector(self.kind, **kwargs)


@dataclass
class ScoringOptions:
    """How one frame is scored: which faces, how they are cropped, which runtime.

    Parameters
    ----------
    detect : {"auto", "always", "never"}
        See :data:`DETECT_MODES`.
    detector : DetectorOptions
    margin : float
        Crop margin around detector boxes, a fraction of the box (:data:`DEFAULT_MARGIN`);
        whole-picture faces are cropped without margin (their views: 0 -/+ ``crop_spread``).
    align : bool
        Rotate each detected face so its eyes are level (needs eye landmarks: YuNet).
    crop_spread : float
        Each face is also cropped at ``margin - crop_spread`` and ``margin + crop_spread``, and the
        model's probabilities of these views are averaged (:data:`DEFAULT_CROP_SPREAD`). The
        detector's box frames a face within about 12 % of FER-2013's crop either way, so averaging over
        that uncertainty scores camera faces closer to how the same faces score as crops. 0: the
        margin alone.
    mirror : bool
        Also score each view mirrored (left-right) and average it in. ``crop_spread=0, mirror=False``:
        one crop a face.
        ``crop_spread`` and ``mirror`` apply to every face of a detecting step (``detect`` ``auto`` or
        ``always``), a whole picture in which ``auto`` finds no face included; under
        ``detect="never"`` only with ``views_on_crops``.
    views_on_crops : bool
        Under ``detect="never"`` (each picture is a face crop), score each crop in the views too
        (margins 0 -/+ ``crop_spread`` of the picture, mirrored). Off by default: one crop a picture,
        so batch scoring of face crops keeps its speed; on, FER-2013 PrivateTest scores 68.5 %
        instead of 65.6 % with the shipped model, for six times the model's work (docs/accuracy.md,
        "Views of each face").
    prior : {"training", "web", "uniform"} or mapping
        How often the model should expect each emotion (:mod:`emotify_ml.scoring.prior`): ``training``
        (default), the model's probabilities as they are, under FER-2013's class frequencies; ``web``, the
        frequencies of faces in photos on the web (mostly neutral and happy), or ``uniform``, or a mapping of
        each emotion to its count or share. Each face's probabilities (after its views are averaged) are
        re-weighted by the ratio of this prior to FER-2013's. Under ``web`` the shipped model labels 68.1 %
        of the web photos of muxspace_dev right instead of 60.5 % and calls 17.5 % of neutral faces angry
        instead of 23.3 %, and 3.5 points fewer of FER-2013's validation faces (PublicTest; docs/accuracy.md).
    runtime : {"auto", "keras", "compiled"} or "compiled:<variant>"
        Asked of the model loader (:func:`emotify_ml.models.load_model`) when the step loads the model itself.
    """

    detect: str = "auto"
    detector: DetectorOptions = field(default_factory=DetectorOptions)
    margin: float = DEFAULT_MARGIN
    align: bool = True
    crop_spread: float = DEFAULT_CROP_SPREAD
    mirror: bool = True
    views_on_crops: bool = False
    prior: Any = "training"
    runtime: str = "auto"

    def check(self) -> "ScoringOptions":
        if self.detect not in DETECT_MODES:
            raise ValueError(f"detect must be one of {', '.join(DETECT_MODES)}; got {self.detect!r}")
        if not _number_in(self.margin, 0.0, 1.0):
            raise ValueError(f"margin must be in [0, 1]; got {self.margin!r}")
        if not _number_in(self.crop_spread, 0.0, MAX_CROP_SPREAD):
            raise ValueError(f"crop_spread must be a number in [0, {MAX_CROP_SPREAD}] (a fraction of the face box; "
                             f"0: the margin alone); got {self.crop_spread!r}")
        for name in ("mirror", "views_on_crops"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false; got {getattr(self, name)!r}")
        from emotify_ml.scoring.prior import check_prior

        check_prior(self.prior)
        if self.runtime not in RUNTIMES and not str(self.runtime).startswith("compiled:"):
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)} or compiled:<variant>; got {self.runtime!r}")
        self.detector.check()
        return self


def _number_in(value, low: float, high: float) -> bool:
    """``value`` is a real number (not a bool, not text) from ``low`` to ``high``."""
    import numbers

    return isinstance(value, numbers.Real) and not isinstance(value, bool) and low <= float(value) <= high


@dataclass
class SmoothingOptions:
    """Temporal smoothing of each face track's probabilities.

    Parameters
    ----------
    method : {"ema", "window", "none"}
    alpha : float
        EMA weight of the newest frame; smaller is smoother (a real change shows after about 1/alpha frames).
    window : int
        Frames averaged by ``method="window"``.
    """

    method: str = "ema"
    alpha: float = 0.3
    window: int = 8

    def check(self) -> "SmoothingOptions":
        if self.method not in SMOOTHING_METHODS:
            raise ValueError(f"smoothing must be one of {', '.join(SMOOTHING_METHODS)}; got {self.method!r}")
        if not 0.0 < float(self.alpha) <= 1.0:
            raise ValueError(f"alpha must be in (0, 1]; got {self.alpha!r}")
        if not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be a positive int; got {self.window!r}")
        return self

    def make(self):
        """A fresh :class:`~emotify_ml.scoring.smoothing.ProbabilitySmoother` with these settings."""
        from emotify_ml.scoring.smoothing import ProbabilitySmoother

        return ProbabilitySmoother(method=self.method, alpha=self.alpha, window=self.window)


@dataclass
class TrackingOptions:
    """Face tracking across frames by box overlap.

    Parameters
    ----------
    iou_threshold : float
        Least box overlap (IoU) for a face to continue a track.
    max_missed : int
        Frames a face may be missed before its track ends.
    """

    iou_threshold: float = 0.3
    max_missed: int = 10

    def check(self) -> "TrackingOptions":
        if not 0.0 < float(self.iou_threshold) <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1]; got {self.iou_threshold!r}")
        if not isinstance(self.max_missed, int) or self.max_missed < 0:
            raise ValueError(f"max_missed must be an int >= 0; got {self.max_missed!r}")
        return self

    def make(self):
        """A fresh :class:`~emotify_ml.scoring.face_tracks.IoUTracker` with these settings."""
        from emotify_ml.scoring.face_tracks import IoUTracker

        return IoUTracker(iou_threshold=self.iou_threshold, max_missed=self.max_missed)


@dataclass
class StreamOptions:
    """What the stream layer adds over frames: tracking, smoothing, and how often the detector runs.

    Parameters
    ----------
    smoothing : SmoothingOptions
    tracking : TrackingOptions
    detect_every : int
        Run the face detector on every ``detect_every``-th frame; in between, the faces of the
        last detection are scored again at their tracked boxes. 1 (default): every frame. The
        detector still runs on the very next frame whenever the last detection found no face or
        lost a tracked one, so a face that leaves is dropped as with ``1``; a face that enters is
        found up to ``detect_every - 1`` frames later.
    """

    smoothing: SmoothingOptions = field(default_factory=SmoothingOptions)
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    detect_every: int = 1

    def check(self) -> "StreamOptions":
        self.smoothing.check()
        self.tracking.check()
        if isinstance(self.detect_every, bool) or not isinstance(self.detect_every, int) or self.detect_every < 1:
            raise ValueError(f"detect_every must be an int >= 1 (1: detect on every frame); got {self.detect_every!r}")
        return self
