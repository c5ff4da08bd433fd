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
    nice -n 0 python benchmarks/live_benchmark.py --suite     # everything side by side: benchmarks/results/live_speed.json

``--suite`` runs, taking turns for ``--rounds`` rounds (best and median FPS): 1 face, 3 faces and
``--actions`` (the person clip), with and without ``--detect-every`` and ``--pose-every 2``, each for
runtime ``keras`` and ``compiled int8``, and a fer-style loop on the 1-face clip (:func:`fer_style_run`:
OpenCV's Haar cascade as fer uses it by default, and the fer model from ``fer_peer.py``; the fer package
itself is not installed, so its loop is emulated). Each speed-up's labels are compared with the same run
without it. Then, on in-memory clips of every sample face YuNet finds (known labels): faces found,
accuracy and detector time for ``det_size`` 160 to 640 and faces of 200, 100 and 60 px, and for
``--detect-every`` 1, 2, 3, 5; and the start-up of ``python -m emotify_ml.live`` on a photo, per runtime.

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

from emotify_ml.scoring.options import ONE_CROP  # noqa: E402 - after the path above

def make_clip(path: Path, n_faces: int = 10, frames_per_face: int = 30, faces_per_frame: int = 1) -> Path:
    """Write the default benchmark clip from the bundled sample's test faces that YuNet finds."""
    from emotify_ml.io.synthetic import synthetic_frames, write_video

    chosen, _ = sample_faces(n_faces * faces_per_frame)
    face_px = 200 if faces_per_frame == 1 else 560 // faces_per_frame
    return write_video(path, synthetic_frames(chosen, frames_per_face=frames_per_face, n_per_frame=faces_per_frame,
                                              face_px=face_px), fps=30)


def sample_faces(n: int, usages=("PrivateTest",)):
    """The first ``n`` faces of the bundled sample's ``usages`` splits that YuNet finds (score >= 0.8), and their labels."""
    from emotify_ml.data import load_fer2013
    from emotify_ml.detection import make_detector
    from emotify_ml.io.synthetic import detectable_faces

    data = load_fer2013(cache=False)
    splits = [data.split(usage) for usage in usages]
    images = np.concatenate([split.images for split in splits])
    labels = np.concatenate([split.labels for split in splits])
    return detectable_faces(images, n, make_detector("yunet"), labels=labels)


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


def measure(video, stream, *, max_frames=None) -> dict:
    """Play ``video`` through ``stream`` as the live app does (capture thread, overlay drawn, nothing written)."""
    from emotify_ml.io.frames import open_source
    from emotify_ml.live.app import run_live

    per_frame: dict[str, list[float]] = {}
    labels: list[tuple] = []

    def collect(result):
        for stage, ms in result.timings.items():
            per_frame.setdefault(stage, []).append(ms)
        per_frame.setdefault("total", []).append(sum(v for k, v in result.timings.items() if "." not in k))
        order = np.argsort(result.boxes[:, 0]) if len(result) else []
        actions = result.actions or [None] * len(result)
        labels.append(tuple((result.labels[i], None if actions[i] is None else actions[i]["label"]) for i in order))

    summary = run_live(open_source(video), stream, draw=True, max_frames=max_frames, on_result=collect)
    return {"frames": summary.frames, "faces": summary.faces, "fps": summary.fps,
            "stage_ms": percentile_table(per_frame), "flicker": summary.flicker, "labels": labels}


def agreement(labels, reference) -> dict:
    """Share of faces (left to right, in frames where both runs found as many) whose smoothed emotion label, and
    whose action label (faces with an action in both runs), equal the reference run's."""
    same = [(a, b) for frame, ref in zip(labels, reference) if len(frame) == len(ref) for a, b in zip(frame, ref)]
    acted = [(a[1], b[1]) for a, b in same if a[1] is not None and b[1] is not None]
    return {"faces_compared": len(same),
            "emotion_label_agreement": float(np.mean([a[0] == b[0] for a, b in same])) if same else None,
            "action_label_agreement": float(np.mean([a == b for a, b in acted])) if acted else None,
            "frames_with_other_face_count": sum(len(f) != len(r) for f, r in zip(labels, reference))}


# --- the suite: every configuration side by side, in rounds -----------------------------------------------------

FER_SCALE_FACTOR, FER_MIN_NEIGHBORS, FER_MIN_FACE, FER_OFFSET, FER_PADDING = 1.1, 5, 50, 10, 40
"""fer's ``FER()`` defaults (fer 25.x ``fer/fer.py``): Haar cascade ``haarcascade_frontalface_default.xml`` on the full
grey frame with ``scaleFactor=1.1, minNeighbors=5, minSize=(50, 50)``; boxes squared, grown by 10 px offsets, cut from
the grey frame padded by 40 px (its bottom rows' mean) and resized to the model's 64x64."""


def fer_style_run(video, peer) -> dict:
    """A loop like the fer package's: ``FER().detect_emotions(frame)`` on each frame, then a box and label drawn.

    fer is not installed here, so this emulates it step by step: frames read with ``cv2.VideoCapture`` in the
    loop's own thread, one grey conversion, OpenCV's Haar cascade with fer's defaults on the full frame, fer's
    square box, offsets and padding, ``cv2.resize`` to 64x64, the fer model itself (:mod:`fer_peer`: its int8
    tflite, one ``invoke()`` per face, as fer's tflite path runs it), a rectangle and the top emotion drawn.
    """
    import cv2

    from emotify_ml.labels import EMOTIONS

    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
    cap = cv2.VideoCapture(str(video))
    per_frame: dict[str, list[float]] = {"detect": [], "crop": [], "classify": [], "draw": [], "total": []}
    frames = faces = 0
    start = time.perf_counter()
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            t0 = time.perf_counter()
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            rects = cascade.detectMultiScale(grey, scaleFactor=FER_SCALE_FACTOR, minNeighbors=FER_MIN_NEIGHBORS,
                                             flags=cv2.CASCADE_SCALE_IMAGE, minSize=(FER_MIN_FACE, FER_MIN_FACE))
            t1 = time.perf_counter()
            mean = cv2.mean(grey[-2:])[0]
            padded = cv2.copyMakeBorder(grey, FER_PADDING, FER_PADDING, FER_PADDING, FER_PADDING,
                                        cv2.BORDER_CONSTANT, value=[mean, mean, mean])
            crops, boxes = [], []
            for x, y, w, h in (rects if len(rects) else []):
                side = max(w, h)
                x, y = x - (side - w) // 2, y - (side - h) // 2
                x1, y1 = max(0, x - FER_OFFSET + FER_PADDING), max(0, y - FER_OFFSET + FER_PADDING)
                crop = padded[y1:y + side + FER_OFFSET + FER_PADDING, x1:x + side + FER_OFFSET + FER_PADDING]
                if crop.size:
                    crops.append(cv2.resize(crop, (64, 64)))
                    boxes.append((x, y, side))
            t2 = time.perf_counter()
            labels = [EMOTIONS[int(k)] for k in peer.predict_proba(np.stack(crops)).argmax(1)] if crops else []
            t3 = time.perf_counter()
            for (x, y, side), label in zip(boxes, labels):
                cv2.rectangle(frame, (int(x), int(y)), (int(x + side), int(y + side)), (0, 155, 255), 2)
                cv2.putText(frame, label, (int(x), int(y) - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 155, 255), 1)
            t4 = time.perf_counter()
            for stage, a, b in (("detect", t0, t1), ("crop", t1, t2), ("classify", t2, t3), ("draw", t3, t4),
                                ("total", t0, t4)):
                per_frame[stage].append((b - a) * 1000.0)
            frames += 1
            faces += len(labels)
    finally:
        cap.release()
    seconds = time.perf_counter() - start
    return {"frames": frames, "faces": faces, "fps": round(frames / seconds, 2), "stage_ms": percentile_table(per_frame)}


def quality_sweep(model, faces, labels, *, face_px, det_sizes=(320,), detect_every=(1,), frames_per_face=8, jitter=2,
                  blank_frames=12, detector=None, size=(640, 480)):
    """Faces found, labels and detector time of each (det_size, detect_every) on an in-memory clip with known labels.

    Every face of ``faces`` is shown for ``frames_per_face`` frames (jitter and noise as the benchmark clip),
    so each frame has one face with a known label, then ``blank_frames`` faceless frames (played, not
    counted), more than the tracker's ``max_missed``: no face continues the previous face's track.
    ``agreement`` compares each frame's raw and smoothed labels with those of the first configuration
    (a frame counts only if both found exactly one face). ``detector``: other :class:`DetectorOptions` fields than
    ``det_size`` (e.g. ``{"retry_size": None}``; None: the defaults).
    """
    from emotify_ml.io.synthetic import synthetic_frames
    from emotify_ml.scoring import FrameStep, ScoringOptions, Stream, StreamOptions
    from emotify_ml.scoring.options import DetectorOptions

    frames = list(synthetic_frames(faces, frames_per_face=frames_per_face, face_px=face_px, jitter=jitter, seed=1,
                                   blank_frames=blank_frames, size=size))
    counted = np.arange(len(frames)) % (frames_per_face + blank_frames) < frames_per_face
    truth = np.repeat(np.asarray(labels), frames_per_face)
    rows, reference = [], None
    for det_size in det_sizes:
        for k in detect_every:
            options = DetectorOptions(det_size=det_size, **(detector or {}))
            stream = Stream(FrameStep(model, options=ScoringOptions(detector=options)), StreamOptions(detect_every=k))
            stream.warm_up()
            raw, smooth, per_frame = [], [], {}
            for i, frame in enumerate(frames):
                result = stream.update(frame, index=i, timestamp=i / 30)
                one = len(result) == 1
                raw.append(int(result.probabilities[0].argmax()) if one else -1)
                smooth.append(int(result.smoothed[0].argmax()) if one else -1)
                if not counted[i]:
                    continue
                for stage, ms in result.timings.items():
                    per_frame.setdefault(stage, []).append(ms)
                per_frame.setdefault("total", []).append(sum(result.timings.values()))
            raw, smooth = np.array(raw)[counted], np.array(smooth)[counted]
            found = raw >= 0
            row = {"frame": f"{size[0]}x{size[1]}", "face_px": face_px, "jitter_px": jitter, "det_size": det_size,
                   "detect_every": k, "frames": len(raw),
                   "blank_frames_between_faces": blank_frames, "track_threshold": options.track_threshold,
                   "retry_size": options.retry_size,
                   "frames_with_one_face": int(found.sum()),
                   "faces_found": float(found.mean()),
                   "raw_accuracy": float(np.mean(raw[found] == truth[found])) if found.any() else None,
                   "smoothed_accuracy": float(np.mean(smooth[found] == truth[found])) if found.any() else None,
                   "detector_runs": int(sum(ms > 0 for ms in per_frame.get("detect", []))),
                   "ms": {s: round(float(np.mean(v)), 3) for s, v in per_frame.items()}}
            if reference is None:
                reference = (raw, smooth)
            both = found & (reference[0] >= 0)
            row["raw_agreement"] = float(np.mean(raw[both] == reference[0][both])) if both.any() else None
            row["smoothed_agreement"] = float(np.mean(smooth[both] == reference[1][both])) if both.any() else None
            rows.append(row)
            print(f"  {row['frame']}, {face_px:>3} px faces, jitter {jitter}, det_size {det_size}, retry {options.retry_size}, "
                  f"detect every {k}: one face in {row['faces_found']:.1%} of "
                  f"frames, raw accuracy {row['raw_accuracy']}, agreement raw/smoothed {row['raw_agreement']}/"
                  f"{row['smoothed_agreement']}, detect {row['ms'].get('detect', 0):.2f} ms, "
                  f"total {row['ms']['total']:.2f} ms", flush=True)
    return rows


SWEEPS = ("det_size", "detect_every", "track_threshold_off", "retry", "hd")
"""The labelled-clip sweeps of :func:`sweeps`."""


def sweeps(model, names=SWEEPS) -> dict:
    """The :func:`quality_sweep` s named: detector input sizes (``det_size``), detection intervals
    (``detect_every``), the low-score association off (``track_threshold_off``), the detector's second look
    on and off (``retry``), on a 640x480 clip; the second look on and off on an HD (1280x720) clip (``hd``)."""
    from emotify_ml.scoring.options import DetectorOptions

    faces, labels = sample_faces(1000, usages=("PrivateTest", "PublicTest"))  # never seen in training
    out = {"sweep_clip": f"{len(faces)} bundled PrivateTest and PublicTest faces that YuNet finds, 8 frames each, "
                         "then 12 faceless frames; 640x480 (hd: 1280x720), jitter and noise as the benchmark clip, "
                         "in memory"}
    print(f"{len(faces)} sample faces, 8 frames each, {model!r}:", flush=True)
    plans = {
        "det_size": [{"face_px": px, "det_sizes": (320, 240, 160, 480, 640)} for px in (200, 100, 60)],
        "detect_every": [{"face_px": 200, "detect_every": (1, 2, 3, 5), "jitter": jitter} for jitter in (2, 6)],
        "track_threshold_off": [{"face_px": px, "detector": {"track_threshold": DetectorOptions().score_threshold}}
                                for px in (200, 100, 60)],
        "retry": [{"face_px": px, "detector": detector} for px in (200, 100, 60)
                  for detector in ({}, {"retry_size": None})],
        "hd": [{"face_px": px, "detector": detector, "size": (1280, 720)} for px in (200, 120, 80)
               for detector in ({}, {"retry_size": None})],
    }
    for name in names:
        print(f"{name}:", flush=True)
        out[f"{name}_sweep"] = [row for plan in plans[name] for row in quality_sweep(model, faces, labels, **plan)]
    return out


def startup(rounds: int, workdir: Path, model=None) -> list[dict]:
    """Seconds and peak memory of ``python -m emotify_ml.live --source <photo> --no-display`` to its exit after the
    first (only) scored image, per runtime, each in a fresh process (the first run only warms the file cache): from
    a fresh folder (no tracking store: the shipped model, MLflow never imported) and from the repository, whose
    ``mlflow.db`` is looked up for a champion first."""
    import cv2
    import skimage.data

    from speed_benchmark import REPO, run_measured

    photo = workdir / "astronaut.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    fresh = workdir / "fresh"
    fresh.mkdir()
    rows = []
    for folder, store in ((fresh, "none (a fresh folder)"), (REPO, "the repository's sqlite:///mlflow.db")):
        for runtime in ("keras", "compiled"):
            cmd = ["env", "-C", str(folder), sys.executable, "-m", "emotify_ml.live", "--source", str(photo),
                   "--no-display", "--runtime", runtime, "--jsonl", str(workdir / f"startup_{runtime}.jsonl"),
                   *(["--model", str(model)] if model else [])]
            run_measured(cmd)
            runs = [run_measured(cmd) for _ in range(rounds)]
            if any(r["exit_code"] for r in runs):
                raise RuntimeError(f"{' '.join(cmd)} failed: exit codes {[r['exit_code'] for r in runs]}")
            seconds = [r["seconds"] for r in runs]
            rows.append({"runtime": runtime, "tracking_store": store, "cwd": str(folder),
                         "command": f"python -m emotify_ml.live --source <photo> --no-display --runtime {runtime} "
                         "--jsonl <file>" + (f" --model {model}" if model else ""), "rounds": runs, "best_seconds": min(seconds),
                         "median_seconds": float(np.median(seconds)),
                         "median_cpu_seconds": float(np.median([r["cpu_seconds"] for r in runs])),
                         "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)})
            print(f"  start-up, {runtime}, store {store}: best {min(seconds):.2f} s, median {np.median(seconds):.2f} s, "
                  f"peak {rows[-1]['peak_rss_mib']:.0f} MiB", flush=True)
    return rows


LIVE_CONFIGS = (
    # name, clip, stream options, pose_every (None: no actions), scoring options (beyond the defaults)
    ("1 face", "1 face", {}, None, {}),
    ("1 face, one crop (--crop-spread 0 --no-mirror)", "1 face", {}, None, ONE_CROP),
    ("1 face, --detect-every 2", "1 face", {"detect_every": 2}, None, {}),
    ("1 face, --detect-every 3", "1 face", {"detect_every": 3}, None, {}),
    ("3 faces", "3 faces", {}, None, {}),
    ("3 faces, --detect-every 3", "3 faces", {"detect_every": 3}, None, {}),
    ("1 face and its body, --actions", "person", {}, 1, {}),
    ("1 face and its body, --actions, one crop", "person", {}, 1, ONE_CROP),
    ("1 face and its body, --actions --pose-every 2", "person", {}, 2, {}),
    ("1 face and its body, --actions --pose-every 2 --detect-every 2", "person", {"detect_every": 2}, 2, {}),
)


def suite(args) -> dict:
    """Every live configuration for runtime keras and compiled int8, and the fer-style loop, taking turns for
    ``args.rounds`` rounds (best and median FPS kept); then the detector and detect-every sweeps and start-up."""
    from emotify_ml.actions.live import load_action_predictor
    from emotify_ml.live.app import load_model
    from emotify_ml.scoring import FrameStep, ScoringOptions, Stream, StreamOptions

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fer_peer import PEER_NAME, PeerNotFoundError, load_peer

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report = {"machine": machine(load), "rounds": args.rounds, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = {"1 face": make_clip(tmp / "one.avi"), "3 faces": make_clip(tmp / "three.avi", faces_per_frame=3),
                 "person": make_person_clip(tmp / "person.avi")}
        models = {"keras": load_model(args.model, args.tracking_uri, print, runtime="keras"),
                  "compiled int8": load_model(args.model, args.tracking_uri, print, runtime="compiled:int8")}
        predictors = {k: load_action_predictor(smoothing=StreamOptions().smoothing.make(), pose_every=k)
                      for k in sorted({c[3] for c in LIVE_CONFIGS if c[3]})}
        try:
            peer = load_peer()
        except PeerNotFoundError as exc:
            print(f"  fer-style loop skipped: {exc}")
            peer = None
        results: dict[tuple, list] = {}
        for r in range(args.rounds):
            for name, clip, stream_options, pose_every, scoring in LIVE_CONFIGS:
                for runtime, model in models.items():
                    actions = predictors.get(pose_every)
                    if actions is not None:
                        actions.reset()
                    stream = Stream(FrameStep(model, options=ScoringOptions(**scoring)),
                                    StreamOptions(**stream_options),
                                    actions=actions)
                    run = measure(clips[clip], stream)
                    results.setdefault((name, runtime), []).append(run)
                    print(f"  round {r + 1}: {name}, {runtime}: {run['fps']:.1f} FPS", flush=True)
            if peer is not None:
                run = fer_style_run(clips["1 face"], peer)
                results.setdefault(("fer-style loop, 1 face", PEER_NAME), []).append(run)
                print(f"  round {r + 1}: fer-style loop: {run['fps']:.1f} FPS ({run['faces']} faces)", flush=True)
        report["live"] = []
        for (name, runtime), runs in results.items():
            row = summarize(name, runtime, runs)
            clip = next((c for n, c, *_ in LIVE_CONFIGS if n == name), None)
            base = next((n for n, c, *_ in LIVE_CONFIGS if c == clip), None)
            if base is not None and base != name:  # the same clip and runtime with every frame detected, pose every frame
                row["agreement_with"] = {"config": base, **agreement(runs[0]["labels"], results[base, runtime][0]["labels"])}
            report["live"].append(row)
        report["clips"] = {"1 face": "generated from the bundled sample: 10 PrivateTest faces YuNet finds, 200 px, "
                                     "30 frames each, 640x480, jitter and noise, MJPG",
                           "3 faces": "the same with 3 faces of 186 px side by side per frame",
                           "person": "skimage's astronaut photo (one person, head, torso, arms) at 440 px, 300 frames"}
        report["models"] = {runtime: repr(model) for runtime, model in models.items()}
        report["fer_style_loop"] = (fer_style_run.__doc__ or "").split("\n\n")[1].strip() if peer is not None else None

        if args.sweeps is None or args.sweeps:
            report.update(sweeps(models["compiled int8"], SWEEPS if args.sweeps is None else args.sweeps))
        if args.startup_rounds:
            print("start-up:", flush=True)
            report["startup"] = startup(args.startup_rounds, tmp, args.model)
    report["machine"]["load_average_1min_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(markdown(report))
    return report


def summarize(name, runtime, runs) -> dict:
    """Best and median FPS over the rounds; the stage times of the median round."""
    fps = [run["fps"] for run in runs]
    median_run = sorted(runs, key=lambda run: run["fps"])[len(runs) // 2]
    return {"config": name, "runtime": runtime, "fps_rounds": fps, "best_fps": max(fps),
            "median_fps": float(np.median(fps)), "frames": median_run["frames"], "faces": median_run["faces"],
            "stage_ms_median_round": median_run["stage_ms"], "flicker": median_run.get("flicker")}



def machine(load) -> dict:
    import cv2

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_cores": cores, "load_average_1min_at_start": load, "opencv_threads": cv2.getNumThreads(),
            "platform": platform.platform(), "python": platform.python_version(), "opencv": cv2.__version__}


def markdown(report) -> str:
    """The tables docs/live.md and the README quote, from the report."""
    lines = ["| run | runtime | FPS best (median) | detect | crop | embed | classify | track | actions | draw | "
             "total ms (p95) | labels as without the speed-up: emotion / action |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"] if report["live"] else []

    def pct(value):
        return "–" if value is None else f"{value:.1%}"

    for row in report["live"]:
        ms = row["stage_ms_median_round"]

        def cell(stage):
            return f"{ms[stage]['mean']:.2f}" if stage in ms else "–"

        lines.append(f"| {row['config']} | {row['runtime']} | **{row['best_fps']:.1f}** ({row['median_fps']:.1f}) | "
                     + " | ".join(cell(s) for s in ("detect", "crop", "embed", "classify", "track", "actions", "draw"))
                     + f" | {ms['total']['mean']:.2f} ({ms['total']['p95']:.2f}) | "
                     + (f"{pct(row['agreement_with']['emotion_label_agreement'])} / "
                        f"{pct(row['agreement_with']['action_label_agreement'])} |" if "agreement_with" in row else "– |"))
    lines += ["", "| frame | faces | jitter | det_size | second look | detect every | track threshold | "
              "frames with the face | raw accuracy | agreement raw / smoothed | detect ms | total ms |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in [row for name in SWEEPS for row in report.get(f"{name}_sweep", [])]:
        lines.append(f"| {row.get('frame', '640x480')} | {row['face_px']} px | ±{row['jitter_px']} px | "
                     f"{row['det_size']} | {row.get('retry_size') or 'off'} | {row['detect_every']} | "
                     f"{row['track_threshold']} | {pct(row['faces_found'])} | "
                     f"{pct(row['raw_accuracy'])} | {pct(row['raw_agreement'])} / {pct(row['smoothed_agreement'])} | "
                     f"{row['ms'].get('detect', 0):.2f} | {row['ms']['total']:.2f} |")
    if report.get("startup"):
        lines += ["", "| start-up | tracking store | best s | median s | median CPU s | peak RSS MiB |",
                  "|---|---|---:|---:|---:|---:|"]
        for row in report["startup"]:
            lines.append(f"| {row['runtime']} | {row['tracking_store']} | {row['best_seconds']:.2f} | "
                         f"{row['median_seconds']:.2f} | "
                         f"{row['median_cpu_seconds']:.2f} | {row['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


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
    p.add_argument("--detect-every", type=int, default=1, help="run the face detector every N frames (as live)")
    p.add_argument("--suite", action="store_true",
                   help="every configuration (1 face, 3 faces, --actions, --detect-every) for runtime keras and "
                   "compiled int8 and the fer-style loop, in rounds; det_size and detect-every sweeps; start-up")
    p.add_argument("--quality", nargs="*", choices=SWEEPS, default=None,
                   help="only the suite's labelled-clip sweeps named (none named: all), faces found and accuracy by "
                   "detector setting, compiled int8; writes benchmarks/results/live_quality.json")
    p.add_argument("--sweeps", nargs="*", choices=SWEEPS, default=None,
                   help="--suite: the labelled-clip sweeps to run (default: all; --sweeps alone: none)")
    p.add_argument("--rounds", type=int, default=3, help="--suite: rounds of every configuration (default: 3)")
    p.add_argument("--startup-rounds", type=int, default=3, help="--suite: start-up runs per runtime (0: none)")
    p.add_argument("--json", default=None,
                   help="where to write the results (default: benchmarks/results/live.json, with --suite live_speed.json)")
    args = p.parse_args(argv)
    if args.model and Path(args.model).expanduser().exists():  # the start-up runs start in other folders
        args.model = str(Path(args.model).expanduser().resolve())
    results_dir = Path(__file__).resolve().parent / "results"
    if args.quality is not None:
        from emotify_ml.live.app import load_model

        model = load_model(args.model, args.tracking_uri, print, runtime="compiled:int8")
        report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "model": repr(model),
                  "command": " ".join(["python benchmarks/live_benchmark.py --quality", *args.quality]
                                      + ([f"--model {args.model}"] if args.model else [])),
                  "machine": machine(os.getloadavg()[0] if hasattr(os, "getloadavg") else None),
                  **sweeps(model, args.quality or SWEEPS)}
        print(markdown({"live": [], **report}))
        path = Path(args.json or results_dir / "live_quality.json")
        path.write_text(json.dumps(report, indent=2))
        print(f"results: {path}")
        return 0
    if args.suite:
        report = suite(args)
        path = Path(args.json or results_dir / "live_speed.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))
        print(f"results: {path}")
        return 0
    args.json = args.json or str(results_dir / "live.json")

    import cv2

    from emotify_ml.exceptions import EmotifyError
    from emotify_ml.live.app import load_actions, load_model
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
            scorer = Stream(step, StreamOptions(options.smoothing, detect_every=args.detect_every),
                            actions=load_actions(options.smoothing) if args.actions else None)
            size = _video_size(video)
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            run = measure(video, scorer, max_frames=args.max_frames)
    except EmotifyError as exc:
        print(f"live_benchmark: error: {exc}", file=sys.stderr)
        return 1

    report = {
        "video": str(args.video or ("generated from skimage's astronaut photo (one person), 30 FPS" if args.person
                                    else f"generated from the bundled sample: {args.faces} face(s) per frame, 30 FPS")),
        "frame_size": size,
        "model": str(classifier.source),
        "runtime": getattr(classifier, "runtime", None),
        "detector": repr(detector),
        "smoothing": repr(scorer.smoother),
        "align": args.align,
        "detect_every": args.detect_every,
        "actions": args.actions,
        **{k: v for k, v in run.items() if k != "labels"},
        "machine": machine(load),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    cores = report["machine"]["cpu_cores"]
    print(f"\nmodel: {report['model']}\nvideo: {report['video']}\ndetector: {report['detector']}, "
          f"smoothing: {report['smoothing']}, align: {args.align}")
    print(f"frames: {size[0]}x{size[1]}; machine: {cores} cores, load average {load if load is None else round(load, 2)} "
          f"at start, OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads\n")
    print(f"{'stage':<12}{'mean ms':>10}{'p50 ms':>10}{'p95 ms':>10}")
    for stage, row in report["stage_ms"].items():
        print(f"{stage:<12}{row['mean']:>10.2f}{row['p50']:>10.2f}{row['p95']:>10.2f}")
    flicker = run["flicker"]
    print(f"\nthroughput: {run['fps']:.1f} FPS over {run['frames']} frames ({run['faces']} faces), "
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
