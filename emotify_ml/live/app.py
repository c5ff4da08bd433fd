"""The live loop: read frames (capture thread), score them (a :class:`~emotify_ml.scoring.stream.Stream`), draw, show
and write, until the source ends or the user quits."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field

import cv2

from emotify_ml.exceptions import InputError, ModelNotFoundError, OutputError
from emotify_ml.live.render import draw_faces, draw_status

QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q, Esc


@dataclass
class RunSummary:
    """What a run did.

    Attributes
    ----------
    frames : int
        Frames scored.
    faces : int
        Face observations (faces summed over frames).
    seconds : float
        Wall time from the first frame to the last (start-up and warm-up excluded).
    fps : float
        ``frames / seconds``: frames scored, drawn and written per second.
    stage_ms : dict
        Mean milliseconds per frame of each stage (``detect``, ``crop``, ``embed``, ``classify``,
        ``track``, ``actions``, ``draw``, ``total``).
    flicker : dict
        See :meth:`emotify_ml.scoring.smoothing.FlickerMeter.summary`.
    stopped_by : {"end", "user", "interrupt", "max_frames"}
    skipped : list of str
        Images of a folder that could not be scored (too small, say), each named on stderr as it is
        skipped; a video or camera frame that cannot be scored still stops the run.
    """

    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    stage_ms: dict = field(default_factory=dict)
    flicker: dict = field(default_factory=dict)
    stopped_by: str = "end"
    skipped: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class Display:
    """The overlay window (needs an OpenCV build with a GUI and a screen).

    Raises
    ------
    OutputError
        No screen, or an OpenCV without GUI support (``opencv-python-headless``).
    """

    def __init__(self, title: str = "Emotify live"):
        self.title = title
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise OutputError("no screen to show the window on (DISPLAY is not set); run with --no-display "
                              "and --output annotated.mp4 and/or --jsonl results.jsonl")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise OutputError("this OpenCV has no GUI support (opencv-python-headless), so it cannot open a window; "
                              "install opencv-python, or run with --no-display and --output/--jsonl") from None
        self._open = True

    def show(self, image, wait_ms: int = 1) -> int:
        """Show a frame and return the key pressed (-1 for none). ``wait_ms=0`` waits for a key."""
        cv2.imshow(self.title, image)
        return cv2.waitKey(wait_ms) & 0xFF if wait_ms >= 0 else -1

    @property
    def closed(self) -> bool:
        """True once the user closed the window."""
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass


def run_live(source, stream, *, display: Display | None = None, video=None, jsonl=None, max_frames: int | None = None,
             bars: bool = True, pace: bool = False, status: bool = True, draw: bool | None = None,
             on_result=None) -> RunSummary:
    """Score every frame of ``source`` until it ends, the user quits, or ``max_frames``.

    Parameters
    ----------
    source : :class:`~emotify_ml.io.frames.FrameSource`
        Read in its own thread; closed on return.
    stream : :class:`~emotify_ml.scoring.stream.Stream`
        Scores each frame (tracks, smoothing, actions); its flicker meter gives the summary's ``flicker``.
    display : Display, optional
        Show each annotated frame; ``q`` or Esc (or closing the window) stops. For image
        sources, each image waits for a key.
    video : :class:`~emotify_ml.io.sinks.VideoWriter`, optional
        Receives each annotated frame; closed on return.
    jsonl : :class:`~emotify_ml.io.sinks.JsonlWriter`, optional
        Receives each frame's faces; closed on return.
    max_frames : int, optional
        Stop after this many frames.
    bars : bool
        Draw the probability bar chart next to each face.
    pace : bool
        Play a video file at its own frame rate instead of as fast as possible.
    status : bool
        Draw the FPS / timing line.
    draw : bool, optional
        Draw the overlay; None (default) draws only when there is a display or a video to show it.
    on_result : callable, optional
        Called with each frame's :class:`~emotify_ml.scoring.faces.Faces`.

    Returns
    -------
    RunSummary
        Also when stopped by Ctrl-C (``stopped_by="interrupt"``): outputs are flushed first.
    """
    summary = RunSummary()
    totals: dict[str, float] = {}
    if draw is None:
        draw = display is not None or video is not None
    read_timeout = (getattr(source, "stall_timeout", 2.0) + 3.0) if getattr(source, "live", False) else None
    wait_ms = 0 if getattr(source, "independent", False) else 1
    fps = None
    start = last = None
    try:
        stream.warm_up()
        while True:
            frame = source.read(timeout=read_timeout)
            if frame is None:
                break
            now = time.perf_counter()
            if start is None:
                start = last = now
            if pace and source.fps and start is not None:
                delay = frame.timestamp - (now - start)
                if delay > 0:
                    time.sleep(delay)
            try:
                result = stream.update(frame.image, index=frame.index, timestamp=frame.timestamp, name=frame.name,
                                       independent=source.independent)
            except InputError as exc:
                if not source.independent:
                    raise
                summary.skipped.append(frame.name)
                print(f"skipped {frame.name}: {exc}", file=sys.stderr)
                continue
            t = time.perf_counter()
            image = frame.image
            if draw:
                draw_faces(image, result, bars=bars)
                if status:
                    draw_status(image, fps, result.timings, len(result))
            result.timings["draw"] = (time.perf_counter() - t) * 1000.0
            if jsonl is not None:
                jsonl.write(result)
            if video is not None:
                video.write(image)
            if on_result is not None:
                on_result(result)
            summary.frames += 1
            summary.faces += len(result)
            for stage, ms in result.timings.items():
                totals[stage] = totals.get(stage, 0.0) + ms
            end = time.perf_counter()
            totals["total"] = totals.get("total", 0.0) + (end - now) * 1000.0
            if summary.frames > 1:
                instant = 1.0 / max(end - last, 1e-6)
                fps = instant if fps is None else 0.9 * fps + 0.1 * instant
            last = end
            if display is not None:
                key = display.show(image, wait_ms)
                if key in QUIT_KEYS or display.closed:
                    summary.stopped_by = "user"
                    break
            if max_frames and summary.frames >= max_frames:
                summary.stopped_by = "max_frames"
                break
    except KeyboardInterrupt:
        summary.stopped_by = "interrupt"
    finally:
        for closer in (source, jsonl, video, display):
            if closer is not None:
                closer.close()
    if start is not None and summary.frames:
        summary.seconds = round(last - start, 4)
        summary.fps = round(summary.frames / summary.seconds, 2) if summary.seconds > 0 else 0.0
        summary.stage_ms = {k: round(v / summary.frames, 3) for k, v in totals.items()}
    summary.flicker = stream.flicker.summary()
    return summary


def _store(tracking_uri=None) -> str:
    """The tracking store, for messages (mlflow is imported only when none was named: start-up time)."""
    if tracking_uri:
        return str(tracking_uri)
    import mlflow

    return mlflow.get_tracking_uri()


def load_model(uri=None, tracking_uri=None, say=print, *, allow_remote: bool = False, runtime: str = "auto"):
    """Load the emotion model for live scoring and say which one is used.

    Parameters
    ----------
    uri : str or path, optional
        MLflow model URI or model folder; None: ``models:/emotify-emotion@champion`` from the
        tracking store, else the model shipped with the package (see
        :func:`emotify_ml.models.load_model`).
    tracking_uri : str, optional
        The tracking store (default: MLflow's).
    allow_remote : bool
        Allow a remote ``uri`` or tracking store (``--allow-remote-model``).
    runtime : {"auto", "keras", "compiled"}
    say : callable
        Receives the one-line description of the model in use.

    Raises
    ------
    ModelError
        Nothing loadable, a model of another kind, or one refused (remote, pickled); the message
        says what to pass instead.
    """
    from emotify_ml.mlflow_runs import DEFAULT_TRACKING_URI
    from emotify_ml.models.loading import load_emotion_model, model_origin

    # MLflow's own default, named here so that a store that does not exist costs no mlflow import
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    model = load_emotion_model(uri, tracking_uri=tracking_uri, allow_remote=allow_remote, runtime=runtime)
    source = str(model.source)
    if model_origin(model, uri) == "shipped":  # the fallback: say why
        say(f"model: the model shipped with the package ({source}); no champion in the tracking store {_store(tracking_uri)}")
    elif source.startswith("models:"):
        say(f"model: {source} (tracking store {_store(tracking_uri)})")
    else:
        say(f"model: {source}")
    return model



def load_actions(smoothing=None, pose_every: int = 1):
    """The action predictor of ``--actions`` (imported only when asked for).

    Parameters
    ----------
    smoothing : :class:`~emotify_ml.scoring.options.SmoothingOptions`, optional
        Smooth each person's actions like the emotions (the stream's settings).
    pose_every : int
        Estimate body poses on every this many frames (``--pose-every``; see
        :class:`emotify_ml.actions.live.ActionPredictor`).

    Raises
    ------
    ModelNotFoundError
        ``emotify_ml.actions.live`` cannot be imported in this install.
    """
    try:
        from emotify_ml.actions.live import load_action_predictor
    except ImportError as exc:
        raise ModelNotFoundError(f"--actions needs the action predictor (emotify_ml.actions.live), which cannot be "
                                 f"imported here: {exc}") from None
    return load_action_predictor(smoothing=None if smoothing is None else smoothing.make(), pose_every=pose_every)
