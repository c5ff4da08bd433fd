"""Emotify against the fer peer on the same crops: FER-2013 PrivateTest and in-the-wild photos (muxspace_dev).

- PrivateTest (3,589 faces): the 48x48 files are the crops, given to both models as they are (one
  crop, as the product scores face crops with ``detect="never"``), and in the product's views of a
  face crop (``views_on_crops``: margins 0 -/+ the spread, each mirrored), the same squares for both.
- muxspace_dev (2,156 photos): the product path finds and crops each photo's biggest face
  (:meth:`emotify_ml.scoring.FrameStep.locate`: YuNet, eye alignment, the default margin, and the
  product's views: margins around it, mirrored); Emotify classifies exactly those crops, and the peer
  gets the same squares of the photo, cropped by the same function
  (:func:`emotify_ml.features.preprocessing.crop_face`) at full resolution and resized to its 64x64
  input. Both are scored on the views averaged (the product) and on the one crop at the default
  margin. Photos without a face are left out for both (and counted).

Reported per set and model: accuracy, macro-F1, per-class recall (disgust, fear, surprise included)
and the share of neutral faces called angry. Several Emotify models can be compared (``--model`` a b).

    python benchmarks/accuracy_benchmark.py [--model <uri or folder> ...] [--sets privatetest muxspace_dev]

Prints one table and writes ``benchmarks/results/accuracy.json``. The peer is loaded by
``benchmarks/fer_peer.py`` (its row is skipped when ``../shared/models/fer_peer`` is absent).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared"
SETS = ("privatetest", "muxspace_dev")


def write_json(result: dict, path) -> Path:
    """Write a benchmark's result as indented JSON (folders made) and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return out


def metrics(y_true, proba) -> dict:
    """Accuracy, macro-F1, per-class recall and neutral-called-angry of one model on one set."""
    from emotify_ml.evaluation import evaluate
    from emotify_ml.labels import EMOTIONS
    from emotify_ml.photo_evaluation import called_as

    m = evaluate(y_true, proba, EMOTIONS)
    out = {"n": m["n"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
    out.update({f"recall_{c}": m[f"recall_{c}"] for c in EMOTIONS})
    out["neutral_as_angry"] = called_as(y_true, np.asarray(proba).argmax(1), "neutral", "angry")
    return out


def fer_test_crops(root, model, usage=None):
    """(peer views, product views (N, V, 48, 48), labels, counts) of a FER-2013 test split's 48x48 files.

    PrivateTest, unless ``usage`` names another split (``emotify_ml.labels.VALIDATION``: PublicTest).

    One view, the file itself, is how the product scores face crops (``detect="never"``); the V views
    are how it scores them with ``views_on_crops`` (margins 0 -/+ the spread of the picture, mirrored;
    also how ``detect="auto"`` scores a picture in which it finds no face). The peer gets the same squares.
    """
    import cv2

    from emotify_ml.data import load_fer2013
    from emotify_ml.labels import TEST
    from emotify_ml.photo_evaluation import make_frame_step

    test = load_fer2013(root).split(usage or TEST)
    step = make_frame_step(model, detect="never", views_on_crops=True)
    whole = np.array([[0, 0, test.images.shape[2], test.images.shape[1]]], np.float32)
    crops = np.concatenate([step.views(cv2.cvtColor(face, cv2.COLOR_GRAY2BGR), whole, 0.0) for face in test.images])
    assert np.array_equal(crops[:, 0], test.images)  # the first view is the file itself
    return [list(views) for views in crops], crops, test.labels, {"n_photos": len(test), "n_no_face": 0,
                                                                  **views_of(step)}


def photo_crops(root, model):
    """(peer views at full resolution, product views (N, V, 48, 48), labels, counts) of each photo's biggest face.

    The views are the product's (:attr:`emotify_ml.scoring.FrameStep.n_views`: the default margin and the
    margins around it, each also mirrored), the first one the crop at the default margin; each peer view
    is the same square of the photo at full resolution.
    """
    from emotify_ml.data.photos import load_photos
    from emotify_ml.features.preprocessing import crop_face
    from emotify_ml.photo_evaluation import make_frame_step

    photos = load_photos(root)
    step = make_frame_step(model, detect="always")
    full, crops, labels = [], [], []
    for i in range(len(photos)):
        frame = photos.read(i)
        faces, cut = step.locate(frame, picture=True)
        if not len(faces.boxes):
            continue
        k = int(np.argmax(faces.boxes[:, 2] * faces.boxes[:, 3]))
        eyes = faces.landmarks[k, :2] if (faces.landmarks is not None and step.options.align) else None
        views = [crop_face(frame, faces.boxes[k], margin, eyes) for margin in step.view_margins(step.options.margin)]
        full.append(views + ([np.ascontiguousarray(v[:, ::-1]) for v in views] if step.mirror else []))
        crops.append(cut[k])
        labels.append(photos.labels[i])
    return full, np.stack(crops), np.array(labels), {"n_photos": len(photos), "n_no_face": len(photos) - len(labels),
                                                     **views_of(step)}


def views_of(step) -> dict:
    """How a frame step cuts each face: its margin, the views' offsets from it, mirroring, crops a face."""
    return {"margin": float(step.options.margin), "offsets": list(step.view_offsets), "mirror": step.mirror,
            "n_views": step.n_views}


def per_view(predict_proba, views) -> np.ndarray:
    """(N, V, 7): ``predict_proba`` of every view of each face, in one call.

    ``views``: an (N, V, ...) array, or a list of N lists of V pictures (of any sizes, as the peer's are).
    """
    n, per_face = len(views), len(views[0])
    flat = [v for face in views for v in face] if isinstance(views, list) else views.reshape(-1, *views.shape[2:])
    return np.asarray(predict_proba(flat)).reshape(n, per_face, -1)


def mean_of_views(predict_proba, views) -> np.ndarray:
    """(N, 7): :func:`per_view`'s probabilities averaged over each face's views."""
    return per_view(predict_proba, views).mean(axis=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=[None], help="Emotify model URIs or folders (default: champion, "
                                                                 "else the shipped model)")
    parser.add_argument("--runtime", default="auto", help="Emotify runtime: auto (as the product scores), keras, compiled")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--fer-root", default=str(SHARED / "data" / "fer2013"))
    parser.add_argument("--photos", default=str(SHARED / "data" / "muxspace_dev"))
    parser.add_argument("--out", default=str(RESULTS / "accuracy.json"))
    args = parser.parse_args(argv)

    from fer_peer import PeerNotFoundError, load_peer

    from emotify_ml.features.preprocessing import DEFAULT_MARGIN
    from emotify_ml.models import load_emotion_model

    models = {str(uri or "default"): load_emotion_model(uri, runtime=args.runtime) for uri in args.model}
    try:
        peer = load_peer()
    except PeerNotFoundError as exc:
        print(f"skipping the peer: {exc}")
        peer = None
    result = {"margin": DEFAULT_MARGIN, "peer": getattr(peer, "name", None), "sets": {},
              "models": {k: {"source": str(m.source), "runtime": m.runtime} for k, m in models.items()}}
    first = next(iter(models.values()))
    for name in args.sets:
        t0 = time.perf_counter()
        full, crops, labels, counts = (fer_test_crops(args.fer_root, first) if name == "privatetest"
                                       else photo_crops(args.photos, first))
        rows = {}
        views = f"{counts['n_views']} views"  # both models on the product's views and on the one crop (the first)
        for label, model in models.items():
            rows[f"emotify {label} ({model.runtime}), one crop"] = metrics(labels, model.predict_proba(crops[:, 0]))
            rows[f"emotify {label} ({model.runtime}), {views}"] = metrics(
                labels, mean_of_views(model.predict_proba, crops))
        if peer is not None:
            rows["fer peer, one crop"] = metrics(labels, peer.predict_proba([face[0] for face in full]))
            rows[f"fer peer, same {views}"] = metrics(labels, mean_of_views(peer.predict_proba, full))
        result["sets"][name] = {**counts, "seconds": time.perf_counter() - t0, "rows": rows}

    cols = ("accuracy", "macro_f1", "recall_disgust", "recall_fear", "recall_surprise", "neutral_as_angry")
    print(f"\nsame crops for both (margin {DEFAULT_MARGIN}); muxspace_dev: the product path's biggest face per photo\n")
    print("| set | model | " + " | ".join(cols) + " |\n|---|---|" + "---:|" * len(cols))
    for name, block in result["sets"].items():
        for model, m in block["rows"].items():
            print(f"| {name} ({m['n']}) | {model} | " + " | ".join(f"{m[c]:.3f}" for c in cols) + " |")
    write_json(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
