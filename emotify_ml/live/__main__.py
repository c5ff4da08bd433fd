"""``python -m emotify_ml.live``: live emotion scoring of a camera, a video, an image or a folder.

Examples::

    python -m emotify_ml.live                                   # default webcam, overlay window
    python -m emotify_ml.live --source clip.mp4 --no-display --output annotated.mp4 --jsonl results.jsonl
    python -m emotify_ml.live --source photos/ --model runs:/<run_id>/model --jsonl faces.jsonl --no-display

Exit codes: 0 done (end of source, ``q``/Esc, ``--max-frames``), 1 other error, 2 bad arguments,
3 model not found, 4 source cannot be read, 5 output cannot be written, 130 interrupted (Ctrl-C,
SIGTERM; outputs are flushed).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

from emotify_ml.scoring.options import DETECTOR_KINDS, SMOOTHING_METHODS, ScoringOptions, StreamOptions
from emotify_ml.scoring.prior import PRIORS

PROG = "python -m emotify_ml.live"

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_MODEL, EXIT_SOURCE, EXIT_OUTPUT, EXIT_INTERRUPT = 0, 1, 2, 3, 4, 5, 130


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (defaults: :mod:`emotify_ml.scoring.options`)."""
    scoring, stream = ScoringOptions(), StreamOptions()
    detector, smoothing, tracking = scoring.detector, stream.smoothing, stream.tracking
    p = argparse.ArgumentParser(
        prog=PROG, description="Score facial emotions live: a box per face with its smoothed emotion, "
        "a probability chart and FPS; or headless, to an annotated video and JSON lines.",
        epilog="Keys in the window: q or Esc quits; with images, any other key shows the next one. "
        "Exit codes: 0 done, 1 error, 2 bad arguments, 3 model not found, 4 source unreadable, "
        "5 output unwritable, 130 interrupted.")
    io = p.add_argument_group("input and output")
    io.add_argument("--source", default="0",
                    help="camera index, video file or stream URL, image file, or folder of images (default: 0, the default camera)")
    io.add_argument("--model", default=None,
                    help="MLflow model URI (runs:/<id>/model, models:/<name>@<alias>) or local model folder; "
                    "default: models:/emotify-emotion@champion from the tracking store, else the shipped model")
    io.add_argument("--tracking-uri", default=None, help="MLflow tracking store to resolve --model in")
    io.add_argument("--runtime", default=scoring.runtime, metavar="{auto,keras,compiled,compiled:<variant>}",
                    help="auto: the model's compiled (TensorFlow-free) graph when it has one, else keras (default: %(default)s)")
    io.add_argument("--allow-remote-model", action="store_true",
                    help="allow --model or --tracking-uri to be remote (http(s)://, s3://, ...); refused by default. "
                    "Models are never unpickled, see the README's \"What loading a model trusts\"")
    io.add_argument("--no-display", dest="display", action="store_false", help="run without a window")
    io.add_argument("--output", default=None, help="write the annotated video here (.mp4 or .avi)")
    io.add_argument("--jsonl", default=None, help="write one JSON line per face per frame here")
    io.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    io.add_argument("--realtime", action="store_true",
                    help="play a video file at its own frame rate (default with a window; headless runs go as fast as possible)")
    io.add_argument("--width", type=int, default=640, help="camera frame width to ask for (default: 640)")
    io.add_argument("--height", type=int, default=480, help="camera frame height to ask for (default: 480)")

    det = p.add_argument_group("face detection")
    det.add_argument("--detector", choices=DETECTOR_KINDS, default=detector.kind, help="face detector (default: %(default)s; haar is a slower fallback without alignment)")
    det.add_argument("--det-size", type=int, default=detector.det_size,
                     help="longest side in pixels of the image the detector sees; bigger frames are shrunk for speed "
                     "(default: %(default)s; 0: the full frame)")
    det.add_argument("--score-threshold", type=finite_float, default=detector.score_threshold, help="least YuNet face score (default: %(default)s)")
    det.add_argument("--track-threshold", type=finite_float, default=detector.track_threshold,
                     help="least YuNet score of a face that continues a tracked face (default: %(default)s; "
                     "set it to --score-threshold to turn this off)")
    det.add_argument("--retry-size", type=int, default=detector.retry_size,
                     help="longest side of YuNet's second, finer look at a frame in which it finds no face of "
                     "--score-threshold at --det-size (default: %(default)s; 0: one look)")
    det.add_argument("--margin", type=finite_float, default=scoring.margin, help="crop margin, as a fraction of the face box (default: %(default)s, approximating the framing of FER-2013 crops)")
    det.add_argument("--no-align", dest="align", action="store_false", help="do not rotate faces to level the eyes")
    det.add_argument("--crop-spread", type=finite_float, default=scoring.crop_spread,
                     help="also crop each face at --margin minus and plus this, and average the views' probabilities "
                     "(default: %(default)s; 0: the margin alone, one crop a face with --no-mirror)")
    det.add_argument("--no-mirror", dest="mirror", action="store_false",
                     help="do not also score each face's crops mirrored")
    det.add_argument("--prior", choices=tuple(PRIORS), default=scoring.prior,
                     help="how often to expect each emotion: training (FER-2013's shares, the model as it is), web "
                     "(faces in photos: mostly neutral and happy; fewer neutral faces read as angry or sad) or "
                     "uniform (default: %(default)s)")

    sm = p.add_argument_group("tracking and smoothing")
    sm.add_argument("--smoothing", choices=SMOOTHING_METHODS, default=smoothing.method, help="temporal smoothing of each face's probabilities (default: %(default)s)")
    sm.add_argument("--alpha", type=finite_float, default=smoothing.alpha, help="EMA weight of the newest frame; smaller is smoother and slower (default: %(default)s)")
    sm.add_argument("--window", type=int, default=smoothing.window, help="frames averaged by --smoothing window (default: %(default)s)")
    sm.add_argument("--iou", type=finite_float, default=tracking.iou_threshold, help="least box overlap (IoU) to continue a track (default: %(default)s)")
    sm.add_argument("--max-missed", type=int, default=tracking.max_missed, help="frames a face may be missed before its track ends (default: %(default)s)")
    sm.add_argument("--detect-every", type=int, default=stream.detect_every,
                    help="run the face detector every N frames and score the tracked faces in between; a lost face "
                    "is detected again on the next frame (default: %(default)s, every frame)")

    misc = p.add_argument_group("other")
    misc.add_argument("--actions", action="store_true", help="also predict each person's action (emotify_ml.actions)")
    misc.add_argument("--pose-every", type=int, default=1,
                      help="with --actions: estimate body poses every N frames and reuse the last people in between "
                      "(default: %(default)s, every frame)")
    misc.add_argument("--no-bars", dest="bars", action="store_false", help="no probability bar chart")
    misc.add_argument("--threads", type=int, default=None, help="OpenCV threads (default: OpenCV's choice)")
    misc.add_argument("--summary-json", default=None, help="write the run summary (FPS, stage ms, flicker) here")
    misc.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    return p


def finite_float(text: str) -> float:
    """An argparse type: a finite number (``nan`` and ``inf`` are refused when the command line is parsed)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def check_args(args) -> tuple[int, str] | None:
    """What can be checked before anything is opened or loaded: ``(exit code, message)``, or None when all is well.

    Output files (``--output``, ``--jsonl``, ``--summary-json``) must go to an existing folder
    (exit code 5), and ``--tracking-uri`` must be a store MLflow knows (exit code 3, the
    model cannot be found there). Nothing is written.
    """
    from emotify_ml.exceptions import ConfigError, OutputError
    from emotify_ml.io.sinks import _check_parent
    from emotify_ml.mlflow_runs import check_tracking_uri

    for flag in ("output", "jsonl", "summary_json"):
        path = getattr(args, flag)
        if path:
            try:
                _check_parent(path, "--" + flag.replace("_", "-"))
            except OutputError as exc:
                return EXIT_OUTPUT, str(exc)
    if args.tracking_uri is not None:
        try:
            check_tracking_uri(args.tracking_uri)
        except ConfigError as exc:
            return EXIT_MODEL, f"--tracking-uri: {exc}"
    return None


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    """Run the CLI; returns the exit code (errors are printed as one line, without a traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from emotify_ml.mlflow_runs import disable_telemetry

    disable_telemetry()
    problem = check_args(args)
    if problem is not None:
        print(f"{PROG}: error: {problem[1]}", file=sys.stderr)
        return problem[0]
    if not args.quiet and not args.display and not (args.output or args.jsonl or args.summary_json):
        print(f"{PROG}: warning: --no-display without --output, --jsonl or --summary-json: results are not kept",
              file=sys.stderr)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING,
                        format="emotify-live: %(levelname)s: %(message)s")
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        return _run(args, parser)
    except KeyboardInterrupt:  # during start-up
        return EXIT_INTERRUPT
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _run(args, parser) -> int:
    import os

    import cv2

    from emotify_ml.exceptions import EmotifyError, ModelError, SourceError
    from emotify_ml.exceptions import OutputError

    def say(message):
        if not args.quiet:
            print(message, file=sys.stderr)

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # one clear message of ours instead of FFmpeg's
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # no backend warnings on a missing camera
    except AttributeError:
        pass
    if args.threads:
        cv2.setNumThreads(args.threads)
    try:
        parts = _components(args)
    except ValueError as exc:  # an out-of-range option value
        parser.error(str(exc))
    try:
        summary = _score(args, parts, say)
    except ModelError as exc:  # not found, of the wrong kind, or refused (remote, pickled)
        return _fail(exc, EXIT_MODEL)
    except SourceError as exc:
        return _fail(exc, EXIT_SOURCE)
    except OutputError as exc:
        return _fail(exc, EXIT_OUTPUT)
    except EmotifyError as exc:
        return _fail(exc, EXIT_ERROR)
    flicker = summary.flicker
    stages = " ".join(f"{k} {v:.1f}" for k, v in summary.stage_ms.items() if "." not in k)
    say(f"{summary.frames} frames, {summary.faces} faces in {summary.seconds:.1f} s: {summary.fps:.1f} FPS; "
        f"ms per frame: {stages}")
    if summary.skipped:
        say(f"{len(summary.skipped)} image(s) could not be scored and were skipped: {', '.join(summary.skipped)}")
    if flicker.get("raw_changes_per_s") is not None:
        say(f"label changes per second of face time: raw {flicker['raw_changes_per_s']:.2f}, "
            f"smoothed {flicker['smoothed_changes_per_s']:.2f}")
    if args.jsonl:
        say(f"results: {args.jsonl}")
    if args.output:
        say(f"annotated video: {args.output}")
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as fh:
            json.dump(summary.as_dict(), fh, indent=2)
    return EXIT_INTERRUPT if summary.stopped_by == "interrupt" else EXIT_OK


def _fail(exc, code: int) -> int:
    print(f"{PROG}: error: {exc}", file=sys.stderr)
    return code


def _components(args):
    """Scoring and stream options, and the detector, from the flags (cheap: a bad value fails before the model loads)."""
    from emotify_ml.scoring.options import DetectorOptions, SmoothingOptions, TrackingOptions

    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be a positive int; got {args.max_frames}")
    if args.margin < 0:
        raise ValueError(f"--margin must be >= 0; got {args.margin}")
    if args.pose_every < 1:
        raise ValueError(f"--pose-every must be an int >= 1; got {args.pose_every}")
    detector = DetectorOptions(args.detector, args.det_size or None, args.score_threshold, args.track_threshold,
                               args.retry_size or None)
    scoring = ScoringOptions(detector=detector,
                             margin=args.margin, align=args.align, crop_spread=args.crop_spread, mirror=args.mirror,
                             prior=args.prior, runtime=args.runtime).check()
    stream = StreamOptions(SmoothingOptions(args.smoothing, args.alpha, args.window),
                           TrackingOptions(args.iou, args.max_missed), detect_every=args.detect_every).check()
    return scoring, stream, scoring.detector.make()


def _score(args, parts, say):
    from emotify_ml.io.frames import open_source
    from emotify_ml.io.sinks import JsonlWriter, VideoWriter
    from emotify_ml.live.app import Display, load_actions, load_model, run_live
    from emotify_ml.scoring import FrameStep, Stream

    scoring, stream_options, detector = parts
    display = Display() if args.display else None
    source = jsonl = video = None
    try:
        source = open_source(args.source, width=args.width, height=args.height)
        classifier = load_model(args.model, args.tracking_uri, say, allow_remote=args.allow_remote_model,
                                runtime=scoring.runtime)
        predictor = load_actions(stream_options.smoothing, args.pose_every) if args.actions else None
        jsonl = JsonlWriter(args.jsonl) if args.jsonl else None
        video = VideoWriter(args.output, fps=source.fps or 30.0) if args.output else None
    except BaseException:
        for item in (source, jsonl, display):
            if item is not None:
                item.close()
        raise
    stream = Stream(FrameStep(classifier, detector, scoring), stream_options, actions=predictor)
    thresholds = ("" if stream.step.new_face_threshold is None else
                  f" (new faces from score {stream.step.new_face_threshold}, "
                  f"tracked faces from {scoring.detector.detect_threshold})")
    step = stream.step
    views = (f"margin {scoring.margin}" + (f" -/+ {scoring.crop_spread}" if len(step.view_offsets) > 1 else "")
             + (", mirrored" if step.mirror else "") + f" ({step.n_views} crop{'s' * (step.n_views > 1)} a face)")
    say(f"source: {source.description}; detector: {detector!r}{thresholds}; views: {views}; "
        f"smoothing: {stream.smoother!r}" + (f"; prior: {scoring.prior}" if scoring.prior != "training" else "")
        + ("; actions: on" if predictor is not None else ""))
    say("press q or Esc in the window to quit" if display else "press Ctrl-C to stop")
    pace = source.kind == "video" and (args.realtime or display is not None)
    return run_live(source, stream, display=display, video=video, jsonl=jsonl, max_frames=args.max_frames,
                    bars=args.bars, pace=pace)


if __name__ == "__main__":
    sys.exit(main())
