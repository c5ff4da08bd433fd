"""Pydantic models of every request and response body, so ``/docs`` documents the whole API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from emotify_ml.scoring.prior import PRIORS

PriorName = Literal[tuple(PRIORS)]
"""A class prior a request may ask for (``?prior=``): a name in :data:`emotify_ml.scoring.prior.PRIORS`."""
PRIOR_HELP = ("the class prior the faces are scored under: `training` (FER-2013's class shares: the model's "
              "probabilities as they are), `web` (the shares of faces in photos on the web: mostly happy and "
              "neutral), `uniform`; default: the server's (`--prior`, see `GET /v1/model`)")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer."""

    error: str = Field(description="short machine-readable kind, e.g. `unsupported_media_type`, `too_large`")
    message: str = Field(description="one human-readable line saying what was wrong and what is expected")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ModelSummary(BaseModel):
    name: str = Field(description="registered model name (or the model folder's name)")
    version: str | None = Field(None, description="registry version; null for a model never registered")


class ModelResponse(ModelSummary):
    classes: list[str] = Field(description="class names, in the order of every probability vector")
    runtime: str = Field(description="`keras` (CNN features), `sklearn`, or a compiled runtime")
    source: str = Field(description="`champion`, `shipped` or `given` (`--model`)")
    prior: str = Field(description="the class prior faces are scored under unless a request asks for another "
                       "(`--prior`): `training` (FER-2013's class shares, the model's probabilities as they are), "
                       "`web`, `uniform`, or `custom`")
    priors: list[str] = Field(description="the priors a request may ask for with `?prior=`")


class Actions(BaseModel):
    actions: list[tuple[str, float]] = Field(description="top actions with their probabilities, best first")
    label: str = Field(description="the best action, or `uncertain` below the confidence threshold")
    person_box: list[float] = Field(description="`[x, y, w, h]` of the body that contains the face")


class Face(BaseModel):
    box: list[float] = Field(description="`[x, y, w, h]` in image pixels", min_length=4, max_length=4)
    score: float | None = Field(description="detector confidence in [0, 1]")
    landmarks: list[list[float]] | None = Field(None, description="right eye, left eye, nose tip, right and left "
                                                "mouth corners, `[x, y]` in image pixels (YuNet)")
    probabilities: dict[str, float] = Field(description="this image's probability of each class")
    label: str = Field(description="the most probable class")
    actions: Actions | None = Field(None, description="only with `?actions=true`; null when no body contains the face")


class TrackedFace(Face):
    track_id: int = Field(description="stays the same while the face is followed from frame to frame")
    smoothed: dict[str, float] = Field(description="the track's smoothed probabilities; `label` is their arg-max")


class AnalyzeResponse(BaseModel):
    faces: list[Face]
    model: ModelSummary
    prior: str = Field(description="the class prior these faces were scored under")
    width: int = Field(description="image width in pixels")
    height: int = Field(description="image height in pixels")
    ms: float = Field(description="server time for decoding and scoring, in milliseconds")


class VideoFrameLine(BaseModel):
    """One NDJSON line of ``POST /v1/analyze/video`` per scored frame."""

    type: Literal["frame"] = "frame"
    frame: int = Field(description="0-based frame index in the video")
    timestamp: float = Field(description="media time in seconds")
    faces: list[TrackedFace]


class TrackSummary(BaseModel):
    track_id: int
    frames: int = Field(description="scored frames in which the face was seen")
    first: float = Field(description="media time of the first sighting, seconds")
    last: float = Field(description="media time of the last sighting, seconds")
    label: str = Field(description="arg-max of the mean probabilities")
    mean_probabilities: dict[str, float]


class VideoSummaryLine(BaseModel):
    """The last NDJSON line of ``POST /v1/analyze/video``."""

    type: Literal["summary"] = "summary"
    frames_scored: int
    faces: int = Field(description="face observations (faces summed over scored frames)")
    stride: int
    fps: float = Field(description="the video's frame rate")
    duration: float | None = Field(description="the video's length in seconds, when its container says")
    scored_until: float = Field(description="media time of the last scored frame, seconds")
    stopped_by: Literal["end", "max_seconds", "error"]
    tracks: list[TrackSummary]
    model: ModelSummary
    prior: str = Field(description="the class prior the faces were scored under")
    ms: float = Field(description="server time, milliseconds")


class VideoErrorLine(BaseModel):
    """Sent instead of further frames when the video breaks mid-way (then the summary follows)."""

    type: Literal["error"] = "error"
    message: str


class StreamReply(BaseModel):
    """What ``WS /v1/stream`` sends back for each binary JPEG/PNG/WebP frame (JSON text)."""

    type: Literal["faces"] = "faces"
    frame: int = Field(description="0-based count of frames received on this connection")
    faces: list[TrackedFace]
    width: int
    height: int
    ms: float
