"""Live-scoring benchmark: play a video as fast as possible and report FPS, per-stage milliseconds and flicker.

Runs the same code as ``python -m emotify_ml.live`` (capture thread, detection,
aligned crops, batched classification, tracking, smoothing, overlay drawing), without
a window and without writing outputs, so it measures what scoring a camera costs.

Usage::

    python benchmarks/live_benchmark.py                       # default model, generated 640x480 clip
    python benchmarks/live_benchmark.py --video clip.mp4 --model runs:/<id>/model --json bench.json
    python benchmarks/live_benchmark.py --demo-model hog      # no trained model yet: HOG + logistic
                                                              # regression fitted on the bundled sample
    python benchmarks/live_benchmark.py --demo-model cnn      # the cost of a CNN model (untrained weights)
    python benchmarks/live_benchmark.py --actions --person    # pose + actions with a real body in the frame

With no ``--video``, the clip is made from the bundled FER-2013 sample (one face
upscaled to 200 px in a 640x480 frame, 10 faces of 30 frames, with camera-like jitter
and noise), so its true label changes only 9 times: the rest of the raw label changes
are flicker. With ``--person`` the clip is a photograph of a person instead (scikit-image's
bundled ``astronaut``: head, torso and arms), so ``--actions`` times BlazePose's landmark
model and the action model on a real body, not just the person detector on an empty scene.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

def make_clip(path: Path, n_faces: int = 10, frames_per_face: int = 30, faces_per_frame: int = 1) -> Path:
    """Write the default benchmark clip from the bundled sample's test faces that YuNet finds."""
    from emotify_ml.data import load_fer2013
    from emotify_ml.detection import make_detector
    from emotify_ml.io.synthetic import synthetic_frames, write_video

    faces = load_fer2013(cache=False).split("PrivateTest").images
    detector = make_detector("yunet")
    chosen = []
    for face in faces:
        found = detector.detect(next(synthetic_frames([face], frames_per_face=1, noise=0, jitter=0)))
        if len(found) == 1 and found.scores[0] >= 0.8:
            chosen.append(face)
        if len(chosen) == n_faces * faces_per_frame:
            break
    face_px = 200 if faces_per_frame == 1 else 560 // faces_per_frame
    return write_video(path, synthetic_frames(chosen, frames_per_face=frames_per_face, n_per_frame=faces_per_frame,
                                              face_px=face_px), fps=30)


def make_person_clip(path: Path, n_frames: int = 300) -> Path:
    """Write a 640x480 clip of a real photograph of a person (440 px), with camera-like jitter and noise."""
    import cv2
    import skimage.data

    from emotify_ml.io.synthetic import synthetic_frames, write_video

    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    return write_video(path, synthetic_frames([photo], frames_per_face=n_frames, face_px=440, jitter=3), fps=30)


def demo_model(kind: str = "hog", workdir=None):
    """A stand-in when no trained model exists, fitted on the bundled sample.

    ``"hog"``: HOG + logistic regression. ``"cnn"``: the default backbone architecture with
    *untrained* weights, its embeddings and HOG into a logistic regression: meaningless labels,
    but the per-frame cost of a CNN-based shipped model.
    """
    from sklearn.linear_model import LogisticRegression

    from emotify_ml.data import load_fer2013
    from emotify_ml.features.hog import HOGTransformer
    from emotify_ml.models import FittedModel
    from emotify_ml.pipeline import build_pipeline

    train = load_fer2013(cache=False).split("Training")
    features = {"hog": HOGTransformer()}
    name = "demo: HOG + logistic regression (bundled sample)"
    if kind == "cnn":
        from emotify_ml.backbones.cnn import build_backbone
        from emotify_ml.features.cnn_embedding import CNNEmbedder

        path = Path(workdir) / "untrained_backbone.keras"
        build_backbone().save(path)
        features["cnn"] = CNNEmbedder(model_path=str(path))
        name = "demo: untrained default CNN backbone embeddings + HOG + logistic regression (timing only)"
    pipeline = build_pipeline(features=features, classifier=LogisticRegression(C=0.1, max_iter=500))
    return FittedModel(pipeline.fit(train.images, train.labels), source=name)


def _video_size(path) -> list[int]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    size = [int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))]
    cap.release()
    return size


def percentile_table(per_frame: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Mean, median and 95th percentile milliseconds of each stage, in pipeline order."""
    from emotify_ml.scoring.frame import STAGES

    order = (*STAGES, "total")
    stages = [s for s in order if s in per_frame] + sorted(s for s in per_frame if s not in order)
    return {s: {"mean": round(float(np.mean(per_frame[s])), 3), "p50": round(float(np.percentile(per_frame[s], 50)), 3),
                "p95": round(float(np.percentile(per_frame[s], 95)), 3)} for s in stages}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--video", help="video to play (default: a generated 640x480 clip of sample faces)")
    p.add_argument("--faces", type=int, default=1, help="faces per frame of the generated clip")
    p.add_argument("--person", action="store_true",
                   help="generate a clip of a photographed person instead of sample faces (for --actions)")
    p.add_argument("--model", help="MLflow model URI or folder (default: as python -m emotify_ml.live)")
    p.add_argument("--demo-model", choices=("hog", "cnn"), default=None,
                   help="no trained model yet: fit a stand-in on the bundled sample (hog: HOG + logistic regression; "
                   "cnn: untrained default backbone embeddings + HOG, for timing only)")
    p.add_argument("--tracking-uri", default=None)
    from emotify_ml.scoring.options import DETECTOR_KINDS, SMOOTHING_METHODS, DetectorOptions, SmoothingOptions

    p.add_argument("--detector", choices=DETECTOR_KINDS, default=DetectorOptions.kind)
    p.add_argument("--det-size", type=int, default=DetectorOptions.det_size)
    p.add_argument("--smoothing", choices=SMOOTHING_METHODS, default=SmoothingOptions.method)
    p.add_argument("--alpha", type=float, default=SmoothingOptions.alpha)
    p.add_argument("--window", type=int, default=SmoothingOptions.window)
    p.add_argument("--no-align", dest="align", action="store_false")
    p.add_argument("--threads", type=int, default=None, help="OpenCV threads (default: OpenCV's choice)")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--actions", action="store_true", help="also time pose + action prediction (as live --actions)")
    p.add_argument("--json", default=str(Path(__file__).resolve().parent / "results" / "live.json"),
                   help="where to write the results (default: benchmarks/results/live.json)")
    args = p.parse_args(argv)

    import cv2

    from emotify_ml.exceptions import EmotifyError
    from emotify_ml.io.frames import open_source
    from emotify_ml.live.app import load_actions, load_model, run_live
    from emotify_ml.scoring import FrameStep, ScoringOptions, Stream, StreamOptions
    from emotify_ml.scoring.options import DetectorOptions, SmoothingOptions

    if args.threads:
        cv2.setNumThreads(args.threads)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.video:
                video = Path(args.video)
            elif args.person:
                video = make_person_clip(Path(tmp) / "person.avi")
            else:
                video = make_clip(Path(tmp) / "bench.avi", faces_per_frame=args.faces)
            classifier = (demo_model(args.demo_model, tmp) if args.demo_model
                          else load_model(args.model, args.tracking_uri, print))
            scoring = ScoringOptions(detector=DetectorOptions(args.detector, args.det_size or None), align=args.align)
            options = StreamOptions(SmoothingOptions(args.smoothing, args.alpha, args.window))
            step = FrameStep(classifier, options=scoring)
            detector = step.detector
            scorer = Stream(step, options, actions=load_actions(options.smoothing) if args.actions else None)
            size = _video_size(video)
            source = open_source(video)
            per_frame: dict[str, list[float]] = {}

            def collect(result):
                for stage, ms in result.timings.items():
                    per_frame.setdefault(stage, []).append(ms)
                per_frame.setdefault("total", []).append(sum(v for k, v in result.timings.items() if "." not in k))

            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            summary = run_live(source, scorer, draw=True, max_frames=args.max_frames, on_result=collect)
    except EmotifyError as exc:
        print(f"live_benchmark: error: {exc}", file=sys.stderr)
        return 1

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    report = {
        "video": str(args.video or ("generated from skimage's astronaut photo (one person), 30 FPS" if args.person
                                    else f"generated from the bundled sample: {args.faces} face(s) per frame, 30 FPS")),
        "frame_size": size,
        "model": str(classifier.source),
        "detector": repr(detector),
        "smoothing": repr(scorer.smoother),
        "align": args.align,
        "actions": args.actions,
        "frames": summary.frames,
        "faces": summary.faces,
        "fps": summary.fps,
        "stage_ms": percentile_table(per_frame),
        "flicker": summary.flicker,
        "machine": {"cpu_cores": cores, "load_average_1min_at_start": load, "opencv_threads": cv2.getNumThreads(),
                    "platform": platform.platform(), "python": platform.python_version(), "opencv": cv2.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(f"\nmodel: {report['model']}\nvideo: {report['video']}\ndetector: {report['detector']}, "
          f"smoothing: {report['smoothing']}, align: {args.align}")
    print(f"frames: {size[0]}x{size[1]}; machine: {cores} cores, load average {load if load is None else round(load, 2)} "
          f"at start, OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads\n")
    print(f"{'stage':<12}{'mean ms':>10}{'p50 ms':>10}{'p95 ms':>10}")
    for stage, row in report["stage_ms"].items():
        print(f"{stage:<12}{row['mean']:>10.2f}{row['p50']:>10.2f}{row['p95']:>10.2f}")
    flicker = summary.flicker
    print(f"\nthroughput: {summary.fps:.1f} FPS over {summary.frames} frames ({summary.faces} faces), "
          "capture and decoding included")
    if flicker.get("raw_changes_per_s") is not None:
        print(f"flicker (label changes per second of face time): raw {flicker['raw_changes_per_s']:.2f}, "
              f"smoothed {flicker['smoothed_changes_per_s']:.2f} "
              f"({flicker['raw_changes']} vs {flicker['smoothed_changes']} changes in {flicker['face_seconds']:.1f} s)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
