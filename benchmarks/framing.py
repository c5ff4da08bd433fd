"""Where YuNet puts the face box and the eyes on FER-2013 training faces: the framing the crop must copy.

Each 48x48 training face is upscaled (``--scale``, 4: 192 px), padded on every side by
half its size (edge pixels replicated, so the detector sees context rather than a cut-off
face at the border), and given to the product's detector (:func:`emotify_ml.detection.make_detector`,
YuNet, ``det_size=None`` so it sees every pixel). Box and landmarks are mapped back to the
48-px frame of the original face; in units of the box, the FER-2013 crop (the whole 48x48
image) is then

- ``side / max(w, h)``: how much bigger than the box the crop is (``1 + 2 * margin``);
- ``(crop centre - box centre) / h`` vertically and ``/ w`` horizontally: the centre offset.

The median margin is :data:`emotify_ml.features.preprocessing.DEFAULT_MARGIN`; the centre offset
is within the spread (and changes sign between 2x and 4x), so the crop stays centred on the box.
Eye positions and the eye-line tilt are reported too.

``--effect`` shows what the framing does through the product path (:class:`emotify_ml.scoring.FrameStep`),
old margin against new: on the in-the-wild photos of ``muxspace_dev`` (:mod:`emotify_ml.photo_evaluation`),
and on a 640x480 clip made of labelled FER-2013 PublicTest faces (each face upscaled to 200 px and
held for 5 frames with camera jitter and noise, :func:`emotify_ml.io.synthetic.synthetic_frames`):
the live path's per-frame accuracy against the same faces given as crops (``detect="never"``).

    python benchmarks/framing.py [--root ../shared/data/fer2013] [--n 3000] [--scale 4 2]
    python benchmarks/framing.py --effect [--model <uri or folder>] [--margins 0.15 0.0]
    python benchmarks/framing.py --clip-seeds 1 2 [--model <uri or folder>] [--prior web]
    python benchmarks/framing.py --views [--model <uri or folder>] [--view-seeds 0 1 2]

``--views`` chooses the views each face is scored in (:class:`emotify_ml.scoring.ScoringOptions`
``crop_spread`` and ``mirror``): every candidate on muxspace_dev and on the clips, frame by frame.

Prints tables and writes ``benchmarks/results/framing.json`` (``--effect``: ``framing_effect.json``;
``--clip-seeds``: ``framing_clip_seeds.json``; ``--views``: ``framing_views.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = REPO / "benchmarks" / "results"

from accuracy_benchmark import write_json  # noqa: E402 - a sibling script

from accuracy_benchmark import views_of  # noqa: E402

from emotify_ml.scoring.options import ONE_CROP  # noqa: E402

CLIP_FRAMES_PER_FACE, CLIP_BLANK_FRAMES = 5, 12
"""The clip of :func:`clip_effect` and ``--views``: frames each face is held, faceless frames after it."""


def measure(faces: np.ndarray, *, scale: int = 4, pad: float = 0.5, detector=None) -> dict[str, np.ndarray]:
    """Box and landmarks of each face in its own 48-px coordinates (NaN rows where no face was found).

    Parameters
    ----------
    faces : (N, S, S) uint8 grey faces
    scale : int
        Upscaling factor before detection.
    pad : float
        Padding on each side, as a fraction of the upscaled side (replicated border).
    detector : object with ``detect``, optional
        Default: YuNet with ``det_size=None``.
    """
    from emotify_ml.detection import make_detector

    detector = detector or make_detector("yunet", det_size=None)
    n, side = len(faces), faces.shape[1]
    big = side * scale
    p = int(round(big * pad))
    boxes = np.full((n, 4), np.nan)
    marks = np.full((n, 5, 2), np.nan)
    scores = np.full(n, np.nan)
    for i, face in enumerate(faces):
        up = cv2.resize(face, (big, big), interpolation=cv2.INTER_CUBIC)
        frame = cv2.copyMakeBorder(up, p, p, p, p, cv2.BORDER_REPLICATE)
        found = detector.detect(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        if not len(found):
            continue
        k = int(np.argmax(found.scores))
        box = found.boxes[k].astype(np.float64)
        boxes[i] = [(box[0] - p) / scale, (box[1] - p) / scale, box[2] / scale, box[3] / scale]
        marks[i] = (found.landmarks[k].astype(np.float64) - p) / scale
        scores[i] = found.scores[k]
    return {"boxes": boxes, "landmarks": marks, "scores": scores}


def framing_stats(boxes: np.ndarray, landmarks: np.ndarray, side: int = 48) -> dict[str, dict]:
    """Per-measure quantiles of the crop relative to the box, and of the eyes relative to the crop."""
    ok = ~np.isnan(boxes[:, 0])
    b, lm = boxes[ok], landmarks[ok]
    x, y, w, h = b.T
    size = np.maximum(w, h)
    eye_mid = lm[:, :2].mean(1)
    eye_dist = np.linalg.norm(lm[:, 1] - lm[:, 0], axis=1)
    tilt = np.degrees(np.arctan2(lm[:, 1, 1] - lm[:, 0, 1], lm[:, 1, 0] - lm[:, 0, 0]))
    measures = {
        "box_w_over_side": w / side,
        "box_h_over_side": h / side,
        "box_h_over_w": h / w,
        "crop_side_over_box": side / size,
        "margin": (side / size - 1.0) / 2.0,
        "shift_x_over_w": (side / 2 - (x + w / 2)) / w,
        "shift_y_over_h": (side / 2 - (y + h / 2)) / h,
        "eye_mid_x_over_side": eye_mid[:, 0] / side,
        "eye_mid_y_over_side": eye_mid[:, 1] / side,
        "eye_dist_over_side": eye_dist / side,
        "eye_tilt_deg": tilt,
        "abs_eye_tilt_deg": np.abs(tilt),
    }
    out = {}
    for name, v in measures.items():
        q = np.percentile(v, [10, 25, 50, 75, 90])
        out[name] = {"mean": float(v.mean()), "p10": float(q[0]), "p25": float(q[1]), "median": float(q[2]),
                     "p75": float(q[3]), "p90": float(q[4])}
    return out


def clip_effect(model, faces, labels, margins, *, frames_per_face: int = CLIP_FRAMES_PER_FACE, seed: int = 0,
                align: bool = True, blank_frames: int = CLIP_BLANK_FRAMES, prior: str = "training") -> dict:
    """Per-frame accuracy of the live path on a clip of ``faces`` for each margin, and of the same faces as crops.

    The live path is the live loop's :class:`~emotify_ml.scoring.Stream` (tracks: a face whose detector
    score dips below the threshold for a moment keeps its box), scored on each frame's raw probabilities;
    ``frames_alone`` is the same frame step without a stream (each frame on its own, as photos are);
    ``live_one_look`` is the live path without the detector's second look (``retry_size=None``);
    ``live_one_crop`` is the live path with one crop a face (``ONE_CROP``: no views).
    ``crops`` scores each face as its crop (one view, as ``detect="never"`` does); ``crops_views`` in
    the views too (``views_on_crops``).
    Each face is followed by ``blank_frames`` faceless frames (not counted), more than the tracker's
    ``max_missed``, so no track carries from one face to the next (two people, not one).
    ``accuracy`` counts frames where no face was found as wrong; ``accuracy_found`` is over the frames with a face.
    Every path scores under the class prior ``prior`` (:attr:`~emotify_ml.scoring.ScoringOptions.prior`).
    """
    from emotify_ml.io.synthetic import synthetic_frames
    from emotify_ml.photo_evaluation import make_frame_step
    from emotify_ml.scoring import Stream

    out = {"n_faces": int(len(faces)), "frames_per_face": frames_per_face, "frame": "640x480, face 200 px, jitter 2 px, "
           "noise 4", "blank_frames_between_faces": blank_frames, "prior": prior, "crops": None, "live": {}}
    for key, settings in (("crops", {}), ("crops_views", {"views_on_crops": True})):
        out[key] = crop_accuracy(model, faces, labels, prior=prior, **settings)
    n, period = len(faces) * frames_per_face, frames_per_face + blank_frames
    variants = [("live", True, {}), ("frames_alone", False, {}), ("live_one_look", True, {"retry_size": None}),
                ("live_one_crop", True, ONE_CROP)]
    for margin in margins:
        for key, stream, settings in variants:
            step = make_frame_step(model, detect="always", margin=margin, align=align, prior=prior, **settings)
            score = Stream(step).update if stream else step.score
            correct, found = 0, 0
            for k, frame in enumerate(synthetic_frames(faces, frames_per_face=frames_per_face, face_px=200, seed=seed,
                                                       blank_frames=blank_frames)):
                result = score(frame, picture=False, index=k, timestamp=k / 30)
                if k % period >= frames_per_face:  # a faceless frame between two faces: not counted
                    continue
                if len(result.boxes):
                    found += 1
                    big = int(np.argmax(result.boxes[:, 2] * result.boxes[:, 3]))
                    correct += int(result.probabilities[big].argmax() == labels[k // period])
            out.setdefault(key, {})[str(margin)] = {
                "detector": repr(step.detector), "views": views_of(step), "accuracy": correct / n,
                "face_found": found / n,
                "accuracy_found": correct / max(found, 1),
                "align": align, "gap_to_crops_points": 100 * (correct / n - out["crops"]["accuracy"]),
                "gap_to_crops_views_points": 100 * (correct / n - out["crops_views"]["accuracy"]),
                "gap_found_points": 100 * (correct / max(found, 1) - out["crops"]["accuracy"])}
    return out


def crop_accuracy(model, faces, labels, **settings) -> dict:
    """Accuracy of the grey ``faces`` given as face crops (``detect="never"``, the frame step's ``settings``)."""
    from emotify_ml.photo_evaluation import make_frame_step

    step = make_frame_step(model, detect="never", **settings)
    pred = np.array([step.score(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR)).probabilities[0].argmax() for f in faces])
    return {"accuracy": float(np.mean(pred == labels)), "views": views_of(step)}


def clip_faces(root, per_class: int, seed: int):
    """``(faces, labels)``: ``per_class`` PublicTest faces of each class, seeded, in a seeded order."""
    from emotify_ml.data import load_fer2013
    from emotify_ml.labels import EMOTIONS, VALIDATION

    val = load_fer2013(root).split(VALIDATION)
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(val.labels == c), size=min(per_class, int((val.labels == c).sum())),
                                     replace=False) for c in range(len(EMOTIONS))])
    idx = rng.permutation(idx)
    return val.images[idx], val.labels[idx]


def clip_seeds(args) -> int:
    """The clip of :func:`effect` with other faces: one clip per seed, at the default margin only, under ``--prior``."""
    from emotify_ml.features.preprocessing import DEFAULT_MARGIN
    from emotify_ml.models import load_emotion_model

    model = load_emotion_model(args.model)
    result = {"model": str(getattr(model, "source", args.model)), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "command": "python benchmarks/framing.py --clip-seeds " + " ".join(map(str, args.clip_seeds))
              + (f" --model {args.model}" if args.model else "")
              + (f" --prior {args.prior}" if args.prior != "training" else ""), "prior": args.prior, "clips": {}}
    print("| seed | crops | live path | found | one look | found | frames alone | one crop |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|")
    for seed in args.clip_seeds:
        clip = clip_effect(model, *clip_faces(args.root, args.clip_per_class, seed), [DEFAULT_MARGIN], seed=seed,
                           prior=args.prior)
        result["clips"][str(seed)] = clip
        live, one, alone, crop = (clip[k][str(DEFAULT_MARGIN)]
                                  for k in ("live", "live_one_look", "frames_alone", "live_one_crop"))
        print(f"| {seed} | {clip['crops']['accuracy']:.3f} | {live['accuracy']:.3f} ({live['gap_to_crops_points']:+.1f}) | "
              f"{live['face_found']:.1%} | {one['accuracy']:.3f} ({one['gap_to_crops_points']:+.1f}) | "
              f"{one['face_found']:.1%} | {alone['accuracy']:.3f} ({alone['gap_to_crops_points']:+.1f}) | "
              f"{crop['accuracy']:.3f} ({crop['gap_to_crops_points']:+.1f}) |", flush=True)
    name = "framing_clip_seeds.json" if args.prior == "training" else f"framing_clip_seeds_prior_{args.prior}.json"
    write_json(result, Path(args.out).with_name(name))
    return 0


VIEW_OFFSETS = (-0.1, -0.075, -0.05, -0.025, 0.0, 0.025, 0.05, 0.075, 0.1)
"""Margin offsets each face is cropped at by ``--views``; every candidate is a subset of them."""

VIEW_CANDIDATES = {f"{'+/-' + str(spread) if spread else 'one crop'}{', mirrored' if mirror else ''}":
                   ((0.0, -spread, spread) if spread else (0.0,), mirror)
                   for spread in (0.0, 0.025, 0.05, 0.075, 0.1) for mirror in (False, True)}
"""The views compared by ``--views``: (offsets, mirror), as :class:`~emotify_ml.scoring.ScoringOptions`
``crop_spread`` and ``mirror`` make them."""


def view_probabilities(model, frames, margin: float):
    """``(found, proba)``: which frames had a face, and (F, 2 x len(VIEW_OFFSETS), 7) probabilities of each
    found frame's biggest face cropped at ``margin`` plus every offset, then the same mirrored."""
    from emotify_ml.features.preprocessing import crop_faces
    from emotify_ml.photo_evaluation import make_frame_step

    step = make_frame_step(model, detect="always", margin=margin, **ONE_CROP)
    found, views = [], []
    for frame, picture in frames:
        faces, _ = step.locate(frame, picture=picture)
        found.append(len(faces) > 0)
        if len(faces):
            k = int(np.argmax(faces.boxes[:, 2] * faces.boxes[:, 3]))
            eyes = None if faces.landmarks is None else faces.landmarks[k:k + 1, :2]
            cut = crop_faces(frame, faces.boxes[k:k + 1], [margin + o for o in VIEW_OFFSETS], step.face_size,
                             eyes=eyes)[0]
            views.append(np.concatenate([cut, cut[..., ::-1]]))
    views = np.stack(views)
    flat = views.reshape(-1, *views.shape[-2:])
    proba = np.concatenate([model.predict_proba(flat[i:i + 1024]) for i in range(0, len(flat), 1024)])
    return np.array(found), proba.reshape(len(views), views.shape[1], -1)


def candidate_proba(proba, offsets, mirror: bool):
    """The mean probabilities of one candidate's views, from :func:`view_probabilities`' columns."""
    cols = [VIEW_OFFSETS.index(o) for o in offsets]
    cols += [len(VIEW_OFFSETS) + c for c in cols] if mirror else []
    return proba[:, cols].mean(axis=1)


def views(args) -> int:
    """Which views of each face to average: every candidate on muxspace_dev and on clips of PublicTest faces."""
    from sklearn.metrics import f1_score, recall_score

    from emotify_ml.data.photos import load_photos
    from emotify_ml.features.preprocessing import DEFAULT_MARGIN
    from emotify_ml.io.synthetic import synthetic_frames
    from emotify_ml.labels import EMOTION_TO_INDEX
    from emotify_ml.models import load_emotion_model

    model = load_emotion_model(args.model)
    margin = DEFAULT_MARGIN
    result = {"model": str(getattr(model, "source", args.model)), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "command": "python benchmarks/framing.py --views" + (f" --model {args.model}" if args.model else ""),
              "margin": margin, "what": "frame by frame (no stream); muxspace_dev: photos with a face; clips: "
              "accuracy over every frame (no face: wrong) and over the frames with a face, against the crops",
              "candidates": {}}
    photos = load_photos(args.photos)
    found, proba = view_probabilities(model, ((photos.read(i), True) for i in range(len(photos))), margin)
    y_photos = photos.labels[found]
    clips = {}
    for seed in args.view_seeds:
        faces, labels = clip_faces(args.root, args.clip_per_class, seed)
        crop_acc = crop_accuracy(model, faces, labels)["accuracy"]
        fpf, blank = CLIP_FRAMES_PER_FACE, CLIP_BLANK_FRAMES
        frames = [(f, False) for k, f in enumerate(synthetic_frames(faces, frames_per_face=fpf, face_px=200, seed=seed,
                                                                      blank_frames=blank)) if k % (fpf + blank) < fpf]
        f_found, f_proba = view_probabilities(model, frames, margin)
        clips[seed] = (np.repeat(labels, fpf)[f_found], f_proba, len(frames), crop_acc)
    angry, neutral = EMOTION_TO_INDEX["angry"], EMOTION_TO_INDEX["neutral"]
    head = " | ".join(f"clip {s}: all / found / gap" for s in clips)
    print(f"| views | muxspace acc. | macro-F1 | disgust | fear | surprise | neutral -> angry | {head} | mean gap |\n"
          f"|---|---:|---:|---:|---:|---:|---:|{'---:|' * len(clips)}---:|")
    for name, (offsets, mirror) in VIEW_CANDIDATES.items():
        pred = candidate_proba(proba, offsets, mirror).argmax(1)
        recall = recall_score(y_photos, pred, labels=range(7), average=None, zero_division=0)
        row = {"offsets": list(offsets), "mirror": mirror, "n_views": len(offsets) * (1 + mirror),
               "muxspace_dev": {"accuracy": float(np.mean(pred == y_photos)),
                                "macro_f1": float(f1_score(y_photos, pred, average="macro")),
                                "recall_disgust": float(recall[EMOTION_TO_INDEX["disgust"]]),
                                "recall_fear": float(recall[EMOTION_TO_INDEX["fear"]]),
                                "recall_surprise": float(recall[EMOTION_TO_INDEX["surprise"]]),
                                "neutral_as_angry": float(np.mean(pred[y_photos == neutral] == angry)),
                                "n_faces": int(len(y_photos))}, "clips": {}}
        for seed, (y, p, n, crop_acc) in clips.items():
            correct = int(np.sum(candidate_proba(p, offsets, mirror).argmax(1) == y))
            row["clips"][str(seed)] = {"accuracy": correct / n, "accuracy_found": correct / len(y), "crops": crop_acc,
                                       "face_found": len(y) / n, "gap_to_crops_points": 100 * (correct / n - crop_acc)}
        row["mean_gap_points"] = float(np.mean([c["gap_to_crops_points"] for c in row["clips"].values()]))
        result["candidates"][name] = row
        m = row["muxspace_dev"]
        cells = " | ".join(f"{c['accuracy']:.3f} / {c['accuracy_found']:.3f} / {c['gap_to_crops_points']:+.1f}"
                           for c in row["clips"].values())
        print(f"| {name} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['recall_disgust']:.2f} | "
              f"{m['recall_fear']:.2f} | {m['recall_surprise']:.2f} | {m['neutral_as_angry']:.3f} | {cells} | "
              f"{row['mean_gap_points']:+.1f} |",
              flush=True)
    write_json(result, Path(args.out).with_name("framing_views.json"))
    return 0


def effect(args) -> int:
    """Old against new framing through the product path: muxspace_dev photos, and a clip of labelled faces."""
    from emotify_ml.data.photos import load_photos
    from emotify_ml.labels import EMOTIONS
    from emotify_ml.models import load_emotion_model
    from emotify_ml.photo_evaluation import photo_report, score_photos

    model = load_emotion_model(args.model)
    result = {"model": str(getattr(model, "source", args.model)), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "margins": args.margins, "muxspace_dev": {}, "muxspace_dev_one_crop": {}}
    keys = ("accuracy", "macro_f1", "accuracy_all", "n_no_face", "neutral_as_angry",
            *(f"recall_{c}" for c in EMOTIONS))
    photos = load_photos(args.photos)
    print(f"| margin | {' | '.join(keys)} |\n|---|{'---:|' * len(keys)}")
    for margin in args.margins:
        for name, settings in (("", {}), (", one crop", ONE_CROP)):
            report = photo_report(score_photos(photos, model, margin=margin, **settings))
            key = "muxspace_dev" + name.replace(", ", "_").replace(" ", "_")
            result[key][str(margin)] = {k: report[k] for k in keys}
            print(f"| {margin}{name} | " + " | ".join(f"{report[k]:.3f}" if isinstance(report[k], float)
                                                     else str(report[k]) for k in keys) + " |", flush=True)
    clip = clip_effect(model, *clip_faces(args.root, args.clip_per_class, args.seed), args.margins, seed=args.seed)
    result["clip"] = clip
    print(f"\nclip of {clip['n_faces']} PublicTest faces x {clip['frames_per_face']} frames: crops "
          f"{clip['crops']['accuracy']:.3f} (in views: {clip['crops_views']['accuracy']:.3f})")
    for key, what in (("live", "live path (stream)"), ("frames_alone", "frames alone"),
                      ("live_one_look", "live path, one look"), ("live_one_crop", "live path, one crop")):
        for margin, r in clip[key].items():
            print(f"  {what}, margin {margin}: {r['accuracy']:.3f} (face found in {r['face_found']:.1%} of frames), "
                  f"{r['gap_to_crops_points']:+.1f} points against the crops")
    write_json(result, Path(args.out).with_name("framing_effect.json"))
    return 0


def main(argv=None) -> int:
    from emotify_ml.scoring.prior import PRIORS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "fer2013"))
    parser.add_argument("--n", type=int, default=3000, help="training faces, a seeded stratified sample")
    parser.add_argument("--scale", type=int, nargs="+", default=[4], help="upscaling factors (48 -> 48*scale px)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "framing.json"))
    parser.add_argument("--effect", action="store_true", help="old vs new framing through the product path")
    parser.add_argument("--model", default=None, help="--effect: model URI or folder (default: champion, else shipped)")
    parser.add_argument("--margins", type=float, nargs="+", default=[0.15, 0.0], help="--effect: margins compared")
    parser.add_argument("--photos", default=str(REPO.parent / "shared" / "data" / "muxspace_dev"))
    parser.add_argument("--clip-per-class", type=int, default=50, help="--effect: PublicTest faces per class in the clip")
    parser.add_argument("--clip-seeds", type=int, nargs="+", default=None,
                        help="only the --effect clip, at the default margin, once per seed (other faces)")
    parser.add_argument("--prior", default="training", choices=tuple(PRIORS),
                        help="--clip-seeds: the class prior every path scores under (writes "
                             "framing_clip_seeds_prior_<prior>.json unless training)")
    parser.add_argument("--views", action="store_true",
                        help="which views of each face to average (margin offsets, mirroring): muxspace_dev and clips")
    parser.add_argument("--view-seeds", type=int, nargs="+", default=[0, 1, 2], help="--views: the clips' seeds")
    args = parser.parse_args(argv)
    if args.views:
        return views(args)
    if args.clip_seeds:
        return clip_seeds(args)
    if args.effect:
        return effect(args)

    from emotify_ml.data import load_fer2013
    from emotify_ml.features import preprocessing
    from emotify_ml.labels import EMOTIONS, TRAIN

    train = load_fer2013(args.root).split(TRAIN)
    rng = np.random.default_rng(args.seed)
    idx = np.sort(rng.choice(len(train), size=min(args.n, len(train)), replace=False))
    faces, labels = train.images[idx], train.labels[idx]
    result = {"root": args.root, "n_faces": int(len(idx)), "seed": args.seed, "padding": "0.5 of the upscaled side, "
              "replicated border", "detector": "YuNet (emotify_ml.detection), det_size=None, score_threshold=0.6",
              "by_scale": {}}
    for scale in args.scale:
        t0 = time.perf_counter()
        m = measure(faces, scale=scale)
        found = ~np.isnan(m["boxes"][:, 0])
        stats = framing_stats(m["boxes"], m["landmarks"], faces.shape[1])
        per_class = {EMOTIONS[c]: float(found[labels == c].mean()) for c in range(len(EMOTIONS)) if (labels == c).any()}
        result["by_scale"][str(scale)] = {"face_px": int(faces.shape[1] * scale), "detected": float(found.mean()),
                                          "detected_by_class": per_class, "seconds": time.perf_counter() - t0,
                                          "stats": stats}
        print(f"\nscale x{scale} ({faces.shape[1] * scale} px): face found in {found.mean():.1%} of {len(idx)} "
              f"training faces ({time.perf_counter() - t0:.0f} s)")
        print(f"| measure | p10 | p25 | median | p75 | p90 |\n|---|---:|---:|---:|---:|---:|")
        for name, s in stats.items():
            print(f"| {name} | {s['p10']:.3f} | {s['p25']:.3f} | {s['median']:.3f} | {s['p75']:.3f} | {s['p90']:.3f} |")
    ref = result["by_scale"][str(args.scale[0])]["stats"]
    result["derived"] = {"margin": round(ref["margin"]["median"], 3), "shift_y": round(ref["shift_y_over_h"]["median"], 3),
                         "shift_x": round(ref["shift_x_over_w"]["median"], 3)}
    result["defaults_in_code"] = {"margin": preprocessing.DEFAULT_MARGIN}
    print(f"\nderived crop: margin {result['derived']['margin']} (side = {1 + 2 * result['derived']['margin']:.2f} x "
          f"the box), centre shifted by {result['derived']['shift_y']} x the box height "
          f"(horizontal {result['derived']['shift_x']}); in code now: {result['defaults_in_code']}")
    write_json(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
